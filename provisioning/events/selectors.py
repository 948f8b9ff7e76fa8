"""Reading event streams, their health and their delivery log (the console's queries)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import Delivery, DeliveryAttempt, Event, EventStream


@dataclass(frozen=True)
class Health:
    """How a stream is keeping up: ``backlog`` deliveries not yet delivered, the age of
    the oldest of them (``lag``), deliveries the receiver refused (``failed``)."""

    backlog: int
    lag: timedelta | None
    failed: int

    @property
    def attention(self) -> bool:
        return self.failed > 0


def _per_stream(queryset: QuerySet, aggregate) -> Subquery:
    return Subquery(
        queryset.filter(stream=OuterRef("pk"))
        .order_by()
        .values("stream")
        .annotate(v=aggregate)
        .values("v")
    )


def _with_health(queryset: QuerySet) -> QuerySet:
    """Per-stream subqueries rather than one join over every delivery: the open ones are
    read from the partial index of unfinished deliveries."""
    open_ = Delivery.objects.filter(status__in=Delivery.OPEN)
    failed = Delivery.objects.filter(status=Delivery.Status.FAILED)
    return queryset.annotate(
        backlog=Coalesce(_per_stream(open_, Count("id")), 0),
        oldest_open=_per_stream(open_, Min("created_at")),
        failed=Coalesce(_per_stream(failed, Count("id")), 0),
    )


def _health(stream: EventStream, now: datetime) -> Health:
    oldest = getattr(stream, "oldest_open", None)
    return Health(
        backlog=stream.backlog,
        lag=max(now - oldest, timedelta(0)) if oldest is not None else None,
        failed=stream.failed,
    )


def streams_with_health() -> list[tuple[EventStream, Health]]:
    """Every stream, by name, with its health (one query)."""
    now = timezone.now()
    rows = _with_health(EventStream.objects.select_related("client")).order_by("name")
    return [(stream, _health(stream, now)) for stream in rows]


def stream_get(stream_id: uuid.UUID) -> EventStream | None:
    return EventStream.objects.select_related("client", "created_by").filter(pk=stream_id).first()


def stream_health(stream: EventStream) -> Health:
    row = _with_health(EventStream.objects.filter(pk=stream.pk)).values(
        "backlog", "oldest_open", "failed"
    )[0]
    oldest = row["oldest_open"]
    return Health(
        backlog=row["backlog"],
        lag=max(timezone.now() - oldest, timedelta(0)) if oldest is not None else None,
        failed=row["failed"],
    )


# Streams not delivering: paused by an operator or for failing, or failing now.
_NOT_DELIVERING = Q(state__in=[EventStream.State.PAUSED, EventStream.State.FAILING]) | Q(
    failing_since__isnull=False
)


def streams_needing_attention() -> list[EventStream]:
    """Streams not delivering: paused by an operator or for failing, or failing now."""
    return list(EventStream.objects.filter(_NOT_DELIVERING).order_by("name"))


def streams_needing_attention_count() -> int:
    return EventStream.objects.filter(_NOT_DELIVERING).count()


def deliveries(
    *,
    stream: EventStream | None = None,
    status: str | None = None,
    kind: str | None = None,
    resource_type: str | None = None,
    resource_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet:
    """The delivery log: deliveries with their stream and event, narrowed by each given
    filter (``since``/``until`` bound the event's time, ``until`` exclusive)."""
    queryset = Delivery.objects.select_related("stream", "event")
    if stream is not None:
        queryset = queryset.filter(stream=stream)
    if status:
        queryset = queryset.filter(status=status)
    if kind:
        queryset = queryset.filter(event__kind=kind)
    if resource_type:
        queryset = queryset.filter(event__resource_type=resource_type)
    if resource_id is not None:
        queryset = queryset.filter(resource_id=resource_id)
    if since is not None:
        queryset = queryset.filter(event__created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(event__created_at__lt=until)
    return queryset


def delivery_get(delivery_id: int) -> Delivery | None:
    return (
        Delivery.objects.select_related("stream", "event", "event__client")
        .filter(pk=delivery_id)
        .first()
    )


def delivery_attempts(delivery: Delivery) -> list[DeliveryAttempt]:
    return list(delivery.log.order_by("id"))


def event_get(event_id: int) -> Event | None:
    return Event.objects.select_related("client").filter(pk=event_id).first()


def event_deliveries(event: Event) -> list[Delivery]:
    return list(event.deliveries.select_related("stream").order_by("stream__name"))
