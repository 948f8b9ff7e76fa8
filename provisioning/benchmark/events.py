"""Outbound events figures for ``make bench``: what the outbox costs a write.

- PATCH of a user's title, server time in-process, in three alternating configurations:
  the events recorder off (no outbox at all), on with no stream, and on with one active
  stream. The stream is a webhook stream (one event row, one delivery row, and a delivery
  kick after the commit, as for any stream the server sends to) whose deliveries
  accumulate, as they do while no sender runs, so the figure is the cost of the outbox
  inside the write, not of delivery. The kick goes to a broker nothing consumes during
  the stage: the configured one, or, when none is (tasks would run in-process, delivery
  included), an in-memory one; kicks are folded per stream as in a web process.
- Add then remove one member of each scaling group (10 ... 100,000 members) with a
  full-mode stream active (the recorder renders ``data``, a PatchOp of the delta): the
  time and queries must not grow with the group's size.

The stream and its deliveries are removed afterwards; the events stay (the outbox is also
the record of what was announced).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator

from django.db import connection
from django.test.utils import CaptureQueriesContext

from provisioning.celery import app as celery_app
from provisioning.directory import pipeline
from provisioning.directory.models import Group, Membership
from provisioning.events.models import Delivery, Event, EventStream
from provisioning.events.recorder import events_recorder

from .history import scale_group_name
from .measure import PATCH_OP, InProcess, Timing

STREAM_NAME = "bench-events"


def _stream(payload: str) -> EventStream:
    EventStream.objects.filter(name=STREAM_NAME).delete()
    return EventStream.objects.create(
        name=STREAM_NAME,
        method=EventStream.Method.WEBHOOK,
        endpoint_url="https://receiver.bench.invalid/events",
        payload=payload,
    )


@contextlib.contextmanager
def kicks_queued() -> Iterator[str]:
    """Delivery kicks are published to a broker, not run in this process: the web
    process's share of the cost, as in production (a worker delivers)."""
    if not celery_app.conf.task_always_eager:
        yield "configured broker, no worker consuming"
        return
    previous = celery_app.conf.broker_url
    celery_app.conf.task_always_eager, celery_app.conf.broker_url = False, "memory://"
    try:
        yield "in-memory broker, no worker consuming"
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.broker_url = True, previous


def _recorder(on: bool) -> None:
    if on:
        pipeline.register_recorder("events", events_recorder, order=400)
    else:
        pipeline.unregister("events")


# Alternating rounds of the stream figure, each of a third of ``repeat`` PATCHes per side
# (at least five): short rounds, so that the machine's drift falls on every side alike.
# The difference is a few percent of a 5 ms request: with four rounds of seven PATCHes it
# ranged from 3 % to 24 % in one afternoon; with 24 rounds of ten and the medians of
# ``stream_figures``, from 3.1 % to 12.3 % (the README's round "Each JSON field encoded
# once" has the runs).
PATCH_ROUNDS = 24


def patch_throughput(client: InProcess, *, repeat: int, rounds: int = PATCH_ROUNDS) -> dict:
    """PATCH user title: recorder off / no stream / one stream, in alternating rounds."""
    user_id = client.create_user("bench-events")
    path = f"/Users/{user_id}"
    counter = iter(range(10**9))

    def patch() -> None:
        body = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "title", "value": f"t{next(counter)}"}],
        }
        client.request("PATCH", path, body)

    sides = {
        "recorder_off": Timing("off"),
        "no_stream": Timing("none"),
        "one_stream": Timing("one"),
    }
    queries: dict[str, int] = {}
    round_means: dict[str, list[float]] = {side: [] for side in sides}
    per_round = max(5, repeat // 3)
    try:
        for round_ in range(rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for side in order:
                _recorder(side != "recorder_off")
                if side == "one_stream":
                    _stream(EventStream.Payload.NOTICE)
                else:
                    EventStream.objects.filter(name=STREAM_NAME).delete()
                for _ in range(2):  # warm-up
                    patch()
                if side not in queries:
                    with CaptureQueriesContext(connection) as captured:
                        patch()
                    queries[side] = len(captured.captured_queries)
                samples = []
                for _ in range(per_round):
                    started = time.perf_counter()
                    patch()
                    samples.append((time.perf_counter() - started) * 1000)
                sides[side].samples += samples
                round_means[side].append(statistics.fmean(samples))
    finally:
        _recorder(True)
        EventStream.objects.filter(name=STREAM_NAME).delete()
    result = {}
    for side, timing in sides.items():
        timing.queries = queries.get(side)
        result[side] = timing.summary()
    return {**stream_figures(result, round_means), "stream": "webhook (deliveries accumulate, no sender running)"}


def stream_figures(sides: dict[str, dict], round_means: dict[str, list[float]]) -> dict:
    """Each side's throughput, the inverse of the median of its rounds' mean latencies (a
    round that something else on the machine slowed counts as one of many, where in the
    mean of every request a few slow requests moved the figure by up to a fifth), and the
    drops of one stream against none and against the outbox off."""
    result = {}
    for side, summary in sides.items():
        middle = statistics.median(round_means[side]) if round_means[side] else 0.0
        result[side] = {**summary, "per_s": round(1000 / middle, 1) if middle else 0.0}
    none, one = result["no_stream"]["per_s"], result["one_stream"]["per_s"]
    off = result["recorder_off"]["per_s"]
    result["stream_throughput_drop_pct"] = round((1 - one / max(none, 0.1)) * 100, 1)
    result["outbox_throughput_drop_pct"] = round((1 - one / max(off, 0.1)) * 100, 1)
    return result


def membership_with_stream(client: InProcess, sizes: list[int], *, repeat: int) -> dict:
    """Add and remove one member per scaling group, a full-mode stream active."""
    probe = client.create_user("bench-events-probe")
    stream = _stream(EventStream.Payload.FULL)
    results: dict = {}
    try:
        for size in sizes:
            group = Group.objects.filter(display_name=scale_group_name(size)).first()
            if group is None:
                continue
            path = f"/Groups/{group.pk}"
            add_op = {"op": "Add", "path": "members", "value": [{"value": probe}]}
            remove_op = {"op": "Remove", "path": f'members[value eq "{probe}"]'}

            def change(operation: dict, path=path) -> None:
                client.request(
                    "PATCH", path, {"schemas": [PATCH_OP], "Operations": [operation]}, expect=204
                )

            adds, removes = Timing("add"), Timing("remove")
            for i in range(repeat + 2):
                for timing, operation in ((adds, add_op), (removes, remove_op)):
                    started = time.perf_counter()
                    change(operation)
                    if i >= 2:  # warm-up
                        timing.samples.append((time.perf_counter() - started) * 1000)
            with CaptureQueriesContext(connection) as captured:
                change(add_op)
            adds.queries = len(captured.captured_queries)
            last = Event.objects.filter(resource_id=group.pk).order_by("-id").first()
            change(remove_op)
            results[str(size)] = {
                "members": Membership.objects.filter(group=group).count(),
                "patch_add": adds.summary(),
                "patch_remove": removes.summary(),
                "event_payload_bytes": len(str(last.payload)) if last else None,
            }
        results["deliveries"] = Delivery.objects.filter(stream=stream).count()
    finally:
        EventStream.objects.filter(name=STREAM_NAME).delete()
    timed = [v for k, v in results.items() if k.isdigit()]
    if len(timed) >= 2:
        smallest, largest = timed[0], timed[-1]
        results["largest_to_smallest_add_p50"] = round(
            largest["patch_add"]["p50_ms"] / max(smallest["patch_add"]["p50_ms"], 0.01), 2
        )
    return results


def events_figures(token: str, sizes: list[int], *, repeat: int) -> dict:
    client = InProcess(token)
    with kicks_queued() as kicks:
        return {
            "delivery_kicks": kicks,
            "patch_user": patch_throughput(client, repeat=repeat),
            "membership_with_stream": membership_with_stream(client, sorted(sizes), repeat=repeat),
        }
