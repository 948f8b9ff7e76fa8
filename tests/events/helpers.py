"""Outbox rows for tests of streams and their console pages: events published through
``outbox.publish`` (deliveries for every matching stream), at a chosen time."""

from __future__ import annotations

import uuid
from datetime import datetime

from provisioning.events import outbox
from provisioning.events.models import Event, EventKind


def publish_event(
    kind: str = EventKind.CREATE,
    *,
    resource_type: str = "User",
    resource_id: uuid.UUID | None = None,
    at: datetime | None = None,
    client=None,
    candidates=None,
) -> Event:
    resource_id = resource_id or uuid.uuid4()
    path = f"/{resource_type}s/{resource_id}"
    event = Event(
        kind=kind,
        txn=uuid.uuid4().hex,
        created_at=at,
        resource_type=resource_type,
        resource_id=resource_id,
        sub_id={"format": "scim", "uri": path, "id": str(resource_id)},
        payload={"version": 'W/"1"', "attributes": ["userName"]}
        if kind in (EventKind.CREATE, EventKind.PATCH, EventKind.PUT)
        else {},
        client=client,
    )
    outbox.publish([event], candidates=candidates)
    return event
