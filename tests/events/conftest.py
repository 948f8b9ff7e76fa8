"""Fixtures for outbound events: streams that receive them and the events stored.

Streams here are poll streams (RFC 8936): their events wait in the database for the
receiver to fetch them, so no delivery code runs and what the recorder wrote can be read
back as is.
"""

from __future__ import annotations

import itertools

import pytest

from provisioning.events.models import Delivery, Event, EventStream
from tests.events.asyncsupport import idp, other_idp  # noqa: F401
from tests.events.delivery_support import (  # noqa: F401
    poll_stream,
    push_stream,
    receiver,
    webhook_stream,
)
from tests.oversight.conftest import breaker, decide, hold_rule, operators  # noqa: F401
from tests.scim.conftest import ScimApi, readonly_scim, scim  # noqa: F401

_names = itertools.count(1)


@pytest.fixture
def make_stream(db):
    """``make_stream(payload="full", resource_types=["Group"], ...)``: a poll stream."""

    def make(**fields) -> EventStream:
        fields.setdefault("name", f"stream-{next(_names)}")
        fields.setdefault("payload", EventStream.Payload.NOTICE)
        return EventStream.objects.create(method=EventStream.Method.POLL, **fields)

    return make


@pytest.fixture
def notice_stream(make_stream) -> EventStream:
    return make_stream()


@pytest.fixture
def full_stream(make_stream) -> EventStream:
    return make_stream(payload=EventStream.Payload.FULL)


def events(**filters) -> list[Event]:
    return list(Event.objects.filter(**filters).order_by("id"))


def kinds(**filters) -> list[tuple[str, str]]:
    """(kind, sub_id uri) of every stored event, oldest first."""
    return [(e.kind, e.sub_id["uri"]) for e in events(**filters)]


def delivered_to(stream: EventStream) -> list[Event]:
    return [
        d.event
        for d in Delivery.objects.filter(stream=stream).select_related("event").order_by("id")
    ]
