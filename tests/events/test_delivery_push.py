"""SET push (RFC 8935) to a real local receiver: signed SETs verified against the served
JWKS, the receiver's 202/400/other answers, order per resource, the delivery log."""

import json
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from joserfc import jwt
from joserfc.jwk import KeySet

from provisioning.events import delivery, streams
from provisioning.events.models import Delivery, DeliveryAttempt, EventKind, EventStream

from .delivery_support import Answer, deliver, make_all_due, publish

pytestmark = pytest.mark.django_db


def served_keys(client) -> KeySet:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "public" in response["Cache-Control"]
    return KeySet.import_key_set(response.json())


def verify(client, token: str) -> dict:
    """What a receiver does: the kid's key from the JWKS, the signature, the typ."""
    token_ = jwt.decode(token, served_keys(client), algorithms=["RS256", "ES256"])
    assert token_.header["typ"] == "secevent+jwt"  # RFC 8417 §2.3
    return token_.claims


def test_a_pushed_set_verifies_against_the_served_jwks(client, receiver, push_stream):
    stream = push_stream(authorization="Bearer receiver-secret")
    user_id = uuid.uuid4()
    event = publish(user_id, kind=EventKind.CREATE)

    assert deliver(stream) == 1

    [request] = receiver.received
    assert request.headers["Content-Type"] == "application/secevent+jwt"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Authorization"] == "Bearer receiver-secret"
    claims = verify(client, request.body.decode())
    assert claims["jti"] == event.jti.hex
    assert claims["aud"] == receiver.url
    assert claims["txn"] == event.txn
    assert claims["sub_id"] == {"format": "scim", "uri": f"/Users/{user_id}", "id": str(user_id)}
    assert claims["events"] == {
        "urn:ietf:params:scim:event:prov:create:notice": {
            "version": 'W/"2"',
            "attributes": ["displayName"],
        }
    }
    row = Delivery.objects.get(stream=stream)
    assert row.status == Delivery.Status.DELIVERED and row.attempts == 1
    assert row.delivered_at is not None and row.last_status_code == 202
    [attempt] = DeliveryAttempt.objects.filter(delivery=row)
    assert attempt.ok and attempt.status_code == 202 and attempt.latency_ms is not None
    # The Authorization header is stored encrypted and never in the log.
    stream.refresh_from_db()
    assert "receiver-secret" not in stream.authorization
    assert "receiver-secret" not in attempt.response
    assert stream.last_success_at is not None


def test_es256_keys_sign_too(client, receiver, push_stream, settings):
    settings.SCIMGATE_EVENTS_SIGNING_ALGORITHM = "ES256"
    stream = push_stream()
    publish()
    deliver(stream)
    token = receiver.received[0].body.decode()
    claims = verify(client, token)
    assert claims["iss"]
    assert jwt.decode(token, served_keys(client)).header["alg"] == "ES256"


def test_a_400_error_body_is_recorded_and_not_retried(receiver, push_stream):
    """RFC 8935 §2.3: the receiver refuses the SET with {"err", "description"}."""
    stream = push_stream()
    refusal = {"err": "invalid_audience", "description": "not for us"}
    receiver.always(400, json.dumps(refusal).encode())
    first, second = publish(), publish()

    # A refusal is the receiver's answer about one SET: the run goes on with the next.
    assert deliver(stream) == 2
    rows = list(Delivery.objects.filter(stream=stream).order_by("event_id"))
    assert [r.status for r in rows] == [Delivery.Status.FAILED] * 2
    assert rows[0].last_error == "invalid_audience: not for us"
    assert rows[0].last_status_code == 400
    attempt = DeliveryAttempt.objects.get(delivery=rows[0])
    assert json.loads(attempt.response) == refusal and not attempt.ok

    make_all_due(stream)
    assert deliver(stream) == 0
    assert len(receiver.received) == 2
    stream.refresh_from_db()
    assert stream.failing_since is None and stream.state == EventStream.State.ACTIVE
    assert first.pk < second.pk


def test_a_400_without_an_error_body_is_retried(receiver, push_stream):
    stream = push_stream()
    receiver.always(400, b"<html>bad gateway config</html>", "text/html")
    publish()
    deliver(stream)
    row = Delivery.objects.get(stream=stream)
    assert row.status == Delivery.Status.PENDING and row.attempts == 1
    assert row.next_attempt_at > timezone.now()


def test_a_failing_receiver_that_recovers_gets_every_event_once_in_order(receiver, push_stream):
    """Failures (503, a timeout) are retried; after recovery every event arrives exactly
    once per successful delivery, each resource's events in their order."""
    stream = push_stream()
    a, b = uuid.uuid4(), uuid.uuid4()
    events = [publish(a), publish(b), publish(a), publish(a), publish(b)]
    answers = iter([Answer(503), Answer(202), Answer(500), Answer(202)])
    receiver.answer = lambda request: next(answers, Answer(202))

    for _ in range(10):
        deliver(stream)
        make_all_due(stream)
        if not Delivery.objects.filter(stream=stream, status__in=Delivery.OPEN).exists():
            break

    delivered = [json.loads(_payload(r.body))["jti"] for r in receiver.received]
    accepted = [jti for jti, ok in zip(delivered, _statuses(stream, delivered), strict=True) if ok]
    assert sorted(accepted) == sorted(e.jti.hex for e in events)
    assert len(set(accepted)) == len(accepted)
    for resource in (a, b):
        wanted = [e.jti.hex for e in events if e.resource_id == resource]
        assert [j for j in accepted if j in wanted] == wanted
    assert Delivery.objects.filter(stream=stream, status=Delivery.Status.DELIVERED).count() == 5
    stream.refresh_from_db()
    assert stream.failing_since is None


def _payload(token: bytes) -> str:
    import base64

    part = token.split(b".")[1]
    return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)).decode()


def _statuses(stream, jtis) -> list[bool]:
    """For each request in order: whether it was a successful attempt (from the log)."""
    attempts = list(
        DeliveryAttempt.objects.filter(delivery__stream=stream)
        .order_by("id")
        .values_list("delivery__event__jti", "ok")
    )
    assert [a[0].hex for a in attempts] == jtis
    return [ok for _, ok in attempts]


def test_no_event_is_sent_while_an_earlier_one_of_its_resource_is_unfinished(receiver, push_stream):
    stream = push_stream()
    user = uuid.uuid4()
    receiver.always(503)
    first = publish(user)
    second = publish(user)
    other = publish(uuid.uuid4())
    deliver(stream)  # the first try fails: the run stops
    make_all_due(stream)
    due = list(delivery.due(stream.pk, timezone.now()).values_list("event_id", flat=True))
    assert due == [first.pk, other.pk]
    assert second.pk not in due


def test_a_timeout_is_a_failed_try(receiver, push_stream, settings):
    settings.SCIMGATE_EVENTS_TIMEOUT = 0.3
    stream = push_stream()
    receiver.always(202, delay=1.0)
    publish()
    deliver(stream)
    row = Delivery.objects.get(stream=stream)
    assert row.status == Delivery.Status.PENDING
    assert "Timeout" in row.last_error
    stream.refresh_from_db()
    assert stream.failing_since is not None and "Timeout" in stream.last_error


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_send_deadline(
    receiver, push_stream, settings
):
    settings.SCIMGATE_EVENTS_CONNECT_TIMEOUT = 0.2
    settings.SCIMGATE_EVENTS_TIMEOUT = 0.5  # each byte comes in time: no read timeout
    stream = push_stream()
    receiver.answer = lambda request: Answer(status=202, body=b"x" * 20, trickle=0.2)
    publish()
    started = time.monotonic()
    deliver(stream)
    took = time.monotonic() - started
    row = Delivery.objects.get(stream=stream)
    assert row.status == Delivery.Status.PENDING
    assert "deadline" in row.last_error
    assert took < delivery.send_deadline() + 1.0 < 4.0  # the whole answer takes 4 s
    assert delivery.send_deadline() < delivery.lease().total_seconds()


def test_redirects_are_not_followed(receiver, push_stream):
    stream = push_stream()
    receiver.always(307)
    publish()
    deliver(stream)
    assert len(receiver.received) == 1
    assert Delivery.objects.get(stream=stream).last_error == "HTTP 307"


def test_private_addresses_are_refused_without_the_setting(receiver, push_stream, settings):
    settings.SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES = False
    stream = push_stream()
    publish()
    deliver(stream)
    assert receiver.received == []
    row = Delivery.objects.get(stream=stream)
    assert row.status == Delivery.Status.PENDING and "non-public address" in row.last_error


def test_the_connected_peer_is_checked_too(receiver, push_stream, settings, monkeypatch):
    """DNS rebinding: the name passed the check, the socket reached a private address."""
    settings.SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES = False
    monkeypatch.setattr(delivery.outbound, "check_destination", lambda url, allow_private: None)
    stream = push_stream()
    publish()
    deliver(stream)
    assert receiver.received == []
    assert "non-public address" in Delivery.objects.get(stream=stream).last_error


def test_http_urls_need_the_development_setting(receiver, push_stream, settings):
    settings.SCIMGATE_EVENTS_ALLOW_HTTP = False
    stream = push_stream()
    publish()
    deliver(stream)
    assert receiver.received == []
    assert "not an https URL" in Delivery.objects.get(stream=stream).last_error


def test_a_claimed_delivery_is_not_sent_by_a_second_sender(receiver, push_stream):
    stream = push_stream()
    publish()
    row = Delivery.objects.get(stream=stream)
    now = timezone.now()
    assert delivery.claim([row], now, now + delivery.lease()) == [row]
    later = now + timedelta(microseconds=1)
    assert delivery.claim([Delivery.objects.get(pk=row.pk)], later, later + delivery.lease()) == []
    assert deliver(stream) == 0 and receiver.received == []
    # A sender that died: once its lease ran out the delivery is due again.
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=now - timedelta(seconds=1))
    assert deliver(stream) == 1


def test_paused_streams_are_not_sent(receiver, push_stream):
    stream = push_stream(state=EventStream.State.PAUSED)
    publish()
    assert deliver(stream) == 0 and receiver.received == []
    assert delivery.streams_due() == []


def test_redeliver_sends_a_delivered_event_again(
    receiver, push_stream, django_capture_on_commit_callbacks
):
    stream = push_stream()
    publish()
    deliver(stream)
    row = Delivery.objects.get(stream=stream)
    with django_capture_on_commit_callbacks(execute=True):
        streams.redeliver(delivery=row)
    assert len(receiver.received) == 2
    row.refresh_from_db()
    # A redelivery starts the retry count afresh; the log keeps both attempts.
    assert row.status == Delivery.Status.DELIVERED and row.attempts == 1
    assert row.log.count() == 2
    assert DeliveryAttempt.objects.filter(delivery=row).count() == 2


def test_the_answer_kept_in_the_log_is_truncated(receiver, push_stream):
    stream = push_stream()
    receiver.always(500, b"x" * 100_000)
    publish()
    deliver(stream)
    attempt = DeliveryAttempt.objects.get(delivery__stream=stream)
    assert attempt.status_code == 500 and len(attempt.response) == delivery.MAX_LOGGED_ANSWER


def test_a_header_value_httpx_cannot_encode_is_a_failed_try(receiver, push_stream):
    # Stored before the service refused non-ASCII values: a failed try, not a wedged run.
    stream = push_stream(authorization="Bearer tökén")
    publish()
    assert deliver(stream) == 0
    row = Delivery.objects.get(stream=stream)
    assert row.status == Delivery.Status.PENDING and row.attempts == 1
    assert row.last_error.startswith("UnicodeEncodeError")
    assert "tökén" not in row.last_error
    assert not receiver.received


def test_an_echoed_authorization_header_is_redacted_from_the_log(receiver, push_stream):
    # httpbin-style receivers echo the request's headers; viewers read the delivery log.
    stream = push_stream(authorization="Bearer s3cr3t-credential-value")
    receiver.answer = lambda request: Answer(
        status=500, body=json.dumps({"headers": request.headers}).encode()
    )
    publish()
    deliver(stream)
    [attempt] = DeliveryAttempt.objects.filter(delivery__stream=stream)
    assert "s3cr3t-credential-value" not in attempt.response
    assert '"Authorization": "[redacted]"' in attempt.response
    receiver.answer = lambda request: Answer(
        status=500, body=b"unknown token s3cr3t-credential-value"
    )
    make_all_due(stream)
    deliver(stream)
    last = DeliveryAttempt.objects.filter(delivery__stream=stream).latest("at")
    assert last.response == "unknown token [redacted]"
    assert "s3cr3t" not in Delivery.objects.get(stream=stream).last_error


def test_a_redelivery_during_a_send_wins_over_the_senders_record(
    receiver, push_stream, monkeypatch
):
    stream = push_stream()
    publish()
    receiver.always(500)
    real_send = delivery.send

    def send(http, stream_, row, key=None):
        outcome = real_send(http, stream_, row, key)
        # The operator redelivers while the sender waits for the receiver.
        streams.redeliver(delivery=row)
        return outcome

    monkeypatch.setattr(delivery, "send", send)
    delivery._run(stream.pk)
    row = Delivery.objects.get(stream=stream)
    # The reset stands: pending, due now, no tries counted; the try is in the log.
    assert row.status == Delivery.Status.PENDING
    assert row.attempts == 0 and row.last_error == "" and row.last_status_code is None
    assert row.next_attempt_at <= timezone.now()
    assert row.log.count() == 1


@pytest.mark.parametrize(
    "url", ["https://receiver.example.com:0/", "https://receiver.example.com:99999/", "ftp://x/"]
)
def test_the_sender_checks_urls_by_the_rule_streams_are_saved_with(url):
    from django.core.exceptions import ValidationError

    from provisioning.access import outbound

    with pytest.raises(ValidationError):
        streams.clean_endpoint_url(url)
    with pytest.raises(outbound.DestinationRefused):
        delivery.check_url(url)
