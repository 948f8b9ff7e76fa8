"""The outbox: events written in the transaction of what they describe, fanned out to the
streams whose filters match, and a delivery run asked for once the transaction commits.

``publish`` is the one way an event enters the outbox (the pipeline's events recorder,
asynchronous completions, a stream's test event). A rolled-back transaction takes its
events and deliveries with it; a committed one always has them, whether or not the
broker hears the kick (the sweep finds due deliveries in the database).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connections, router, transaction
from django.utils import timezone

from provisioning.access import config_cache
from provisioning.audit.change_sets import insert_columns

from .models import Delivery, Event, EventKind, EventStream

logger = logging.getLogger(__name__)
# Streams a delivery run sends to; a poll stream's receiver comes to fetch its events.
SENT_BY_US = frozenset({EventStream.Method.PUSH, EventStream.Method.WEBHOOK})


def task(name: str):
    """An events Celery task by name (``delay()`` queues it, or runs it in-process when no
    broker is configured)."""
    return current_app.tasks[f"provisioning.events.tasks.{name}"]


def stream_matches(stream: EventStream, event: Event) -> bool:
    """Whether ``stream`` hears ``event``.

    A verification (test) event goes only to the stream it verifies; asynchronous
    completions only to the streams bound to the client that sent the write;
    provisioning events to every stream whose resource-type and kind filters admit
    them (empty filters admit all).
    """
    if event.kind == EventKind.VERIFY:
        # A test event verifies one stream: the one it names.
        return event.resource_id == stream.id
    if event.kind == EventKind.ASYNC_RESPONSE:
        return stream.client_id is not None and stream.client_id == event.client_id
    if stream.resource_types and event.resource_type not in stream.resource_types:
        return False
    return not stream.event_kinds or event.kind in stream.event_kinds


def streams(*, revision: Any = config_cache.UNSEEN) -> list[EventStream]:
    """Every registered stream (paused ones too: their deliveries wait for resume).

    A copy per process, read again only when the settings revision changed (a stream is
    created, edited, paused, resumed or deleted: ``apps`` watches the model; the
    sender's bookkeeping is written with ``update()`` and changes no filter). The
    instances are shared: callers read them and never change or save them.
    """
    if revision is config_cache.UNSEEN:
        revision = config_cache.revision()
    return list(config_cache.cached("event-streams", revision, _load_streams))


def _load_streams() -> tuple[EventStream, ...]:
    return tuple(
        EventStream.objects.only(
            "id", "method", "resource_types", "event_kinds", "payload", "client_id"
        )
    )


def wants_full(candidates: Iterable[EventStream], event: Event) -> bool:
    """Whether a stream that hears ``event`` asks for full payloads (``data``), so the
    recorder renders the resource only when someone will read it."""
    return any(
        s.payload == EventStream.Payload.FULL and stream_matches(s, event) for s in candidates
    )


def publish(events: list[Event], candidates: list[EventStream] | None = None) -> list[Delivery]:
    """Store ``events`` and one delivery per matching stream, in the caller's transaction.

    ``candidates`` is the stream list the caller already read (``streams()``), if any.
    Events no stream hears are still stored: they are the audit of what was announced
    and what a replay or a stream created later can start from.
    """
    if not events:
        return []
    now = timezone.now()
    for event in events:
        if event.created_at is None:
            event.created_at = now
    if candidates is None:
        candidates = streams()
    deliveries = [
        Delivery(
            stream=stream,
            event=event,
            resource_id=event.resource_id,
            next_attempt_at=now,
            created_at=now,
        )
        for event in events
        for stream in candidates
        if stream_matches(stream, event)
    ]
    _insert(events, deliveries)
    if deliveries:
        kick({d.stream_id for d in deliveries if d.stream.method in SENT_BY_US})
    return deliveries


def _insert(events: list[Event], deliveries: list[Delivery]) -> None:
    """Insert the events and their deliveries: one statement on PostgreSQL (with
    deliveries, a data-modifying CTE; each delivery finds its event's id by the event's
    ``jti``), two elsewhere. The rows get their ids either way."""
    connection = connections[router.db_for_write(Event)]
    if connection.vendor != "postgresql":
        Event.objects.bulk_create(events)
        if deliveries:
            Delivery.objects.bulk_create(deliveries)
        return
    quote = connection.ops.quote_name
    event_columns = delivery_columns = ""
    params: list = []
    event_rows, delivery_rows = [], []
    for event in events:
        event_columns, holders, values = insert_columns(connection, event)
        event_rows.append(f"({holders})")
        params += values
    for delivery in deliveries:
        delivery_columns, holders, values = insert_columns(connection, delivery, skip="event_id")
        delivery_rows.append(f"((SELECT id FROM ev WHERE jti = %s), {holders})")  # noqa: S608
        params += [delivery.event.jti, *values]
    # Names are the models' own, quoted; every value is a parameter.
    insert_events = (
        f"INSERT INTO {quote(Event._meta.db_table)} ({event_columns}) "  # noqa: S608
        f"VALUES {', '.join(event_rows)} RETURNING {quote('id')}, {quote('jti')}"
    )
    if deliveries:
        # Rows: (event id, jti, NULL, NULL) per event, (delivery id, NULL, event, stream)
        # per delivery.
        sql = (
            f"WITH ev AS ({insert_events}), "  # noqa: S608
            f"d AS (INSERT INTO {quote(Delivery._meta.db_table)} ({quote('event_id')}, {delivery_columns}) "
            f"VALUES {', '.join(delivery_rows)} "
            f"RETURNING {quote('id')}, {quote('event_id')}, {quote('stream_id')}) "
            f"SELECT {quote('id')}, {quote('jti')}, NULL::bigint, NULL::uuid FROM ev "
            f"UNION ALL SELECT {quote('id')}, NULL::uuid, {quote('event_id')}, {quote('stream_id')} FROM d"
        )
    else:
        # Without deliveries (no stream hears the events): the events alone, their rows
        # in the same shape, without the ORM's compilation of a bulk insert.
        sql = f"{insert_events}, NULL::bigint, NULL::uuid"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    event_ids = {jti: pk for pk, jti, _event_id, _stream_id in rows if jti is not None}
    for event in events:
        event.pk = event_ids[event.jti]
    delivery_ids = {
        (stream_id, event_id): pk for pk, jti, event_id, stream_id in rows if jti is None
    }
    for delivery in deliveries:
        delivery.event = delivery.event  # sets event_id from the event's new id, keeps it cached
        delivery.pk = delivery_ids[(delivery.stream_id, delivery.event_id)]
    for row in (*events, *deliveries):
        row._state.adding, row._state.db = False, connection.alias


def kick(stream_ids: Iterable) -> None:
    """Once the transaction commits, ask for a delivery run of each stream. ``robust``: a
    broker outage neither fails nor undoes the committed change; the sweep delivers.

    With a broker, kicks from this process are folded (``kicks``): a run asked for after
    the commit sends every delivery due by then, so one kick per stream per
    SCIMGATE_EVENTS_KICK_INTERVAL serves a burst of writes. In-process (no broker) each
    kick runs at once; the background sender already folds kicks that arrive while it runs.
    """
    for stream_id in sorted(str(s) for s in stream_ids):
        transaction.on_commit(lambda s=stream_id: kicks.send(s), robust=True)


def _deliver(stream_id: str) -> None:
    task("deliver_stream").delay(stream_id)


class Kicks:
    """At most one delivery kick per stream per ``interval`` seconds from this process.

    The first kick of a quiet stream is sent at once. One asked for within the interval
    after it is owed: a timer sends a single kick when the interval ends, for every
    commit in between (each committed before the kick is sent, so the run it asks for
    finds their deliveries). A kick is folded, not dropped: delivery is late by at most
    the interval (one still owed when the process exits is left to the sweep, as a kick
    a dead broker lost). Thread-safe; a forked child starts afresh (a timer does not
    survive a fork).
    """

    def __init__(self, send=_deliver, interval: float | None = None):
        self._send = send
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._owed: set[str] = set()

    @property
    def interval(self) -> float:
        if self._interval is not None:
            return self._interval
        return settings.SCIMGATE_EVENTS_KICK_INTERVAL

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._last, self._owed = {}, set()

    def send(self, stream_id: str) -> None:
        interval = self.interval
        if interval <= 0 or current_app.conf.task_always_eager:
            self._send(stream_id)
            return
        now = time.monotonic()
        with self._lock:
            last = self._last.get(stream_id)
            if last is None or now - last >= interval:
                self._last[stream_id] = now
                wait = None
            elif stream_id in self._owed:
                return  # the owed kick, still to come, is sent after this commit
            else:
                self._owed.add(stream_id)
                wait = last + interval - now
        if wait is None:
            self._send(stream_id)  # a broker error reaches on_commit(robust=True), logged
            return
        timer = threading.Timer(wait, self._owed_kick, (stream_id,))
        timer.daemon = True
        timer.start()

    def _owed_kick(self, stream_id: str) -> None:
        with self._lock:
            self._owed.discard(stream_id)
            self._last[stream_id] = time.monotonic()
        try:
            self._send(stream_id)
        except Exception:  # noqa: BLE001 - the broker is down: the sweep delivers
            logger.warning("could not queue the delivery of stream %s", stream_id, exc_info=True)


kicks = Kicks()
os.register_at_fork(after_in_child=kicks.reset)
