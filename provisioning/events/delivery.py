"""Sending due deliveries to a stream's receiver (push and webhook streams; poll streams
are fetched by their receiver)."""

from __future__ import annotations

from .models import EventStream


def deliver_due(stream_id) -> None:
    stream = EventStream.objects.filter(pk=stream_id).first()
    if stream is None or stream.method == EventStream.Method.POLL:
        return
    raise NotImplementedError("push and webhook delivery")
