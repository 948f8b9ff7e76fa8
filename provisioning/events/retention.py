"""Retention of the outbox: events older than SCIMGATE_EVENTS_RETENTION_DAYS that every
stream has finished with (delivered, or refused by the receiver) are deleted with their
deliveries and delivery log. An event still owed to a stream (pending, or handed out and
not acknowledged) is kept however old, so retention never loses an undelivered event."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from .models import Delivery, DeliveryAttempt, Event

CHUNK = 1000


def prune_delivered(*, days: int | None = None, now: datetime | None = None) -> int:
    """Delete finished events older than ``days`` (default the setting); the number of
    events deleted. Works in chunks, each its own transaction."""
    days = settings.SCIMGATE_EVENTS_RETENTION_DAYS if days is None else days
    cutoff = (now or timezone.now()) - timedelta(days=days)
    unfinished = Delivery.objects.filter(event_id=OuterRef("pk"), status__in=Delivery.OPEN)
    deleted = 0
    while True:
        ids = list(
            Event.objects.filter(created_at__lt=cutoff)
            .filter(~Exists(unfinished))
            .order_by("id")
            .values_list("id", flat=True)[:CHUNK]
        )
        if not ids:
            return deleted
        with transaction.atomic():
            # Checked again inside the transaction: a replay may have reopened one.
            ids = list(
                Event.objects.filter(id__in=ids)
                .filter(~Exists(unfinished))
                .values_list("id", flat=True)
            )
            DeliveryAttempt.objects.filter(delivery__event_id__in=ids).delete()
            Delivery.objects.filter(event_id__in=ids).delete()
            Event.objects.filter(id__in=ids).delete()
        deleted += len(ids)
