"""Celery tasks of outbound events. The database is the truth: a task only moves rows
that are due; a lost message is made up for by the sweep."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="provisioning.events.tasks.deliver_stream", ignore_result=True)
def deliver_stream(stream_id: str) -> None:
    from .delivery import deliver_due

    deliver_due(stream_id)
