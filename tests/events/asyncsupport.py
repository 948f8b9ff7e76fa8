"""Fixtures and helpers for the asynchronous completion tests (RFC 9967 §2.5.1)."""

from __future__ import annotations

import json
import uuid

import pytest

from provisioning.access.clients import scim_client_create
from provisioning.events.claims import set_claims
from provisioning.events.models import Delivery, Event, EventKind, EventStream
from tests.scim.conftest import PATCH_SCHEMA, ScimApi

ASYNCRESP = "urn:ietf:params:scim:event:misc:asyncresp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
ASYNC = {"HTTP_PREFER": "respond-async"}


class Idp:
    """A SCIM client (IdP connection) speaking HTTP, and its database row."""

    def __init__(self, name: str):
        self.client, token = scim_client_create(
            name=f"{name}-{uuid.uuid4().hex[:6]}", role="provisioner"
        )
        self.api = ScimApi(token)

    def stream(self, name: str | None = None) -> EventStream:
        """A poll stream bound to this client: its completions go there."""
        return EventStream.objects.create(
            method="poll", client=self.client, name=name or f"poll-{self.client.name}"
        )


@pytest.fixture
def idp(db) -> Idp:
    return Idp("idp")


@pytest.fixture
def other_idp(db) -> Idp:
    return Idp("other")


def deactivate(api: ScimApi, user_id: str, **headers):
    return api.patch_ops(
        f"/Users/{user_id}", {"op": "replace", "path": "active", "value": False}, **headers
    )


def patch_body(*operations: dict) -> dict:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


def completions(stream: EventStream) -> list[Event]:
    """The asyncresp events owed to ``stream``, oldest first."""
    return list(
        Event.objects.filter(deliveries__stream=stream, kind=EventKind.ASYNC_RESPONSE).order_by(
            "id"
        )
    )


def completion(stream: EventStream, txn: str) -> dict:
    """The one asyncresp SET ``stream`` gets for ``txn``: its claims, as delivered."""
    [event] = [e for e in completions(stream) if e.txn == txn]
    claims = set_claims(event, stream)
    assert list(claims["events"]) == [ASYNCRESP]
    assert claims["txn"] == txn
    return claims


def assert_async_202(response) -> str:
    """RFC 9967 §2.5.1.1 / §3: 202, no body, Set-Txn, Preference-Applied; returns the txn."""
    assert response.status_code == 202, response.content[:400]
    assert response.content == b""
    assert "Content-Type" not in response
    assert response["Preference-Applied"] == "respond-async"
    txn = response["Set-Txn"]
    assert txn
    return txn


def deliveries_of(event: Event) -> set:
    return set(Delivery.objects.filter(event=event).values_list("stream_id", flat=True))


def body(response) -> dict:
    return json.loads(response.content)
