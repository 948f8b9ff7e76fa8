"""Celery tasks of outbound events. The database is the truth: a task only moves rows
that are due; a lost message is made up for by the sweep (Celery beat, every 30 s)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

logger = logging.getLogger(__name__)


@shared_task(name="provisioning.events.tasks.deliver_stream", ignore_result=True, bind=True)
def deliver_stream(self, stream_id: str) -> None:
    """Send the stream's due deliveries. In-process (no broker, ``make run``) the sends
    go to a background thread unless SCIMGATE_EVENTS_EAGER_DELIVERY is "inline", so the
    request that published the events never waits for a receiver."""
    from .delivery import deliver_due, deliver_in_background

    if self.request.is_eager and settings.SCIMGATE_EVENTS_EAGER_DELIVERY == "thread":
        deliver_in_background(stream_id)
    else:
        deliver_due(stream_id)


@shared_task(name="provisioning.events.tasks.sweep_deliveries", ignore_result=True, bind=True)
def sweep_deliveries(self) -> int:
    """Pause streams failing too long, then ask for a delivery run of every stream with
    a due delivery (retries whose time came, kicks a dead broker lost); the number of
    streams asked for. The runs go to the queue the sweep came from."""
    from .delivery import streams_due

    queue = (self.request.delivery_info or {}).get("routing_key") or None
    stream_ids = streams_due()
    for stream_id in stream_ids:
        try:
            deliver_stream.apply_async((str(stream_id),), queue=queue)
        except Exception:  # the broker is down: the next sweep tries again
            logger.warning("could not queue the delivery of stream %s", stream_id, exc_info=True)
    return len(stream_ids)


@shared_task(name="provisioning.events.tasks.prune_events", ignore_result=True)
def prune_events() -> int:
    """Retention: delivered events older than SCIMGATE_EVENTS_RETENTION_DAYS, and signing
    keys whose overlap ended."""
    from .retention import prune_delivered
    from .signing import retire_due

    retire_due()
    return prune_delivered()
