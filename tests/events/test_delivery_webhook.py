"""Webhooks (Standard Webhooks) to a real local receiver, verified with the
``standardwebhooks`` package as a receiver would."""

import json
import uuid

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from provisioning.events import delivery
from provisioning.events.models import Delivery, DeliveryAttempt, EventKind, EventStream

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


def test_a_test_event_reaches_a_webhook_stream(receiver, webhook_stream):
    from provisioning.events import streams

    stream = webhook_stream()
    event = streams.send_test_event(stream=stream)
    assert deliver(stream) == 1
    [request] = receiver.received
    body = Webhook(WEBHOOK_SECRET).verify(request.body, request.headers)
    assert body["type"] == "stream.verification"
    assert body["data"]["id"] == event.jti.hex
    assert body["data"]["payload"]["state"] == event.payload["state"]
    assert Delivery.objects.get(stream=stream).status == Delivery.Status.DELIVERED


def test_an_unexpected_error_while_sending_is_a_failed_try_and_the_batch_is_recorded(
    receiver, webhook_stream, monkeypatch, caplog
):
    stream = webhook_stream()
    user = uuid.uuid4()  # one resource: the third waits for the second (per-resource order)
    first, second, third = publish(user), publish(user), publish(user)
    real = delivery._request

    def request(stream_, row, key):
        if row.event_id == second.pk:
            raise RuntimeError("Bearer do-not-log-me")
        return real(stream_, row, key)

    monkeypatch.setattr(delivery, "_request", request)
    assert deliver(stream) == 1

    rows = {d.event_id: d for d in Delivery.objects.filter(stream=stream)}
    assert rows[first.pk].status == Delivery.Status.DELIVERED
    assert rows[first.pk].attempts == 1
    failed = rows[second.pk]
    assert failed.status == Delivery.Status.PENDING and failed.attempts == 1
    assert failed.last_error.startswith("RuntimeError")
    assert "do-not-log-me" not in failed.last_error
    assert [a.ok for a in failed.log.all()] == [False]
    assert rows[third.pk].status == Delivery.Status.PENDING and rows[third.pk].attempts == 0
    assert len(receiver.received) == 1
    assert "do-not-log-me" not in caplog.text


def test_a_quoted_signing_secret_is_redacted_from_the_log(receiver, webhook_stream):
    stream = webhook_stream()
    key = WEBHOOK_SECRET.removeprefix("whsec_")
    receiver.always(401, f"expected {WEBHOOK_SECRET} or {key}".encode())
    publish()
    deliver(stream)
    [attempt] = DeliveryAttempt.objects.filter(delivery__stream=stream)
    assert attempt.response == "expected [redacted] or [redacted]"
