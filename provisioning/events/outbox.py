"""The outbox: events written in the transaction of what they describe, fanned out to the
streams whose filters match, and a delivery run asked for once the transaction commits.

``publish`` is the one way an event enters the outbox (the pipeline's events recorder,
asynchronous completions, a stream's test event). A rolled-back transaction takes its
events and deliveries with it; a committed one always has them, whether or not the
broker hears the kick (the sweep finds due deliveries in the database).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery import current_app
from django.db import transaction
from django.utils import timezone

from provisioning.access import config_cache

from .models import Delivery, Event, EventKind, EventStream


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
        EventStream.objects.only("id", "resource_types", "event_kinds", "payload", "client_id")
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
    Event.objects.bulk_create(events)
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
    if deliveries:
        Delivery.objects.bulk_create(deliveries)
        kick({d.stream_id for d in deliveries})
    return deliveries


def kick(stream_ids: Iterable) -> None:
    """Once the transaction commits, ask for a delivery run of each stream. ``robust``: a
    broker outage neither fails nor undoes the committed change; the sweep delivers."""
    deliver = task("deliver_stream")
    for stream_id in sorted(str(s) for s in stream_ids):
        transaction.on_commit(lambda s=stream_id: deliver.delay(s), robust=True)
