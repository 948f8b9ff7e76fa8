"""Webhooks (Standard Webhooks) to a real local receiver, verified with the
``standardwebhooks`` package as a receiver would."""

import json
import uuid

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from provisioning.events import delivery
from provisioning.events.models import Delivery, EventKind, EventStream

from .delivery_support import WEBHOOK_SECRET, deliver, publish

pytestmark = pytest.mark.django_db


def test_a_webhook_verifies_with_the_standard_webhooks_library(receiver, webhook_stream):
    stream = webhook_stream(payload=EventStream.Payload.NOTICE)
    group_id = uuid.uuid4()
    event = publish(
        group_id,
        kind=EventKind.PATCH,
        resource_type="Group",
        attributes=["members"],
        members={"added": ["u1"], "removed": []},
    )

    assert deliver(stream) == 1

    [request] = receiver.received
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["webhook-id"] == event.jti.hex
    body = Webhook(WEBHOOK_SECRET).verify(request.body, request.headers)
    assert body == {
        "type": "group.updated",
        "timestamp": body["timestamp"],
        "data": {
            "id": event.jti.hex,
            "txn": event.txn,
            "issuer": body["data"]["issuer"],
            "event": "urn:ietf:params:scim:event:prov:patch:notice",
            "subject": {"format": "scim", "uri": f"/Groups/{group_id}", "id": str(group_id)},
            "payload": {
                "version": 'W/"2"',
                "attributes": ["members"],
                "members": {"added": ["u1"], "removed": []},
            },
        },
    }
    assert body["timestamp"].endswith("Z")
    assert Delivery.objects.get(stream=stream).status == Delivery.Status.DELIVERED


def test_a_wrong_secret_or_a_changed_body_does_not_verify(receiver, webhook_stream):
    stream = webhook_stream()
    publish()
    deliver(stream)
    [request] = receiver.received
    with pytest.raises(WebhookVerificationError):
        Webhook(delivery.new_webhook_secret()).verify(request.body, request.headers)
    tampered = request.body.replace(b'"type":"user.updated"', b'"type":"user.deleted"')
    assert tampered != request.body
    with pytest.raises(WebhookVerificationError):
        Webhook(WEBHOOK_SECRET).verify(tampered, request.headers)


@pytest.mark.parametrize(
    ("kind", "type_"),
    [
        (EventKind.CREATE, "user.created"),
        (EventKind.PUT, "user.replaced"),
        (EventKind.DELETE, "user.deleted"),
        (EventKind.ACTIVATE, "user.activated"),
        (EventKind.DEACTIVATE, "user.deactivated"),
    ],
)
def test_webhook_types(receiver, webhook_stream, kind, type_):
    stream = webhook_stream()
    publish(kind=kind)
    deliver(stream)
    assert json.loads(receiver.received[0].body)["type"] == type_


def test_any_non_2xx_answer_is_retried(receiver, webhook_stream):
    stream = webhook_stream()
    receiver.always(400, b'{"err": "invalid_request"}')
    publish()
    deliver(stream)
    row = Delivery.objects.get(stream=stream)
    assert row.status == Delivery.Status.PENDING and row.last_status_code == 400


def test_new_secrets_are_standard_webhooks_secrets():
    secret = delivery.new_webhook_secret()
    assert secret.startswith("whsec_")
    Webhook(secret)  # decodes
    assert secret != delivery.new_webhook_secret()
