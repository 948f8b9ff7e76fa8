"""RFC 8936 poll endpoint: bearer token per stream, ack, setErrs, maxEvents,
returnImmediately, moreAvailable, long polling, hand-out again after the ack timeout."""

import json
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from joserfc import jwt
from joserfc.jwk import KeySet

from provisioning.events.models import Delivery, DeliveryAttempt, EventStream

from .delivery_support import POLL_TOKEN, publish

pytestmark = pytest.mark.django_db


def poll_url(stream) -> str:
    return f"/events/v1/streams/{stream.pk}/poll"


def poll(client, stream, body=None, token=POLL_TOKEN, raw=None):
    return client.post(
        poll_url(stream),
        data=raw if raw is not None else json.dumps(body or {}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )


def quick(**body) -> dict:
    return {"returnImmediately": True, **body}


def test_a_poll_hands_out_signed_sets_keyed_by_jti(client, poll_stream):
    stream = poll_stream()
    events = [publish(), publish()]
    response = poll(client, stream, quick())
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    answer = response.json()
    assert set(answer["sets"]) == {e.jti.hex for e in events}
    assert answer["moreAvailable"] is False
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").json())
    for jti, token in answer["sets"].items():
        claims = jwt.decode(token, keys).claims
        assert claims["jti"] == jti
        # The audience of a polled SET: the stream's poll URL.
        assert claims["aud"] == f"http://testserver{poll_url(stream)}"
    assert set(Delivery.objects.filter(stream=stream).values_list("status", flat=True)) == {"sent"}


def test_ack_delivers_and_acked_sets_are_never_handed_out_again(client, poll_stream):
    stream = poll_stream()
    event = publish()
    [jti] = poll(client, stream, quick()).json()["sets"]
    answer = poll(client, stream, quick(ack=[jti])).json()
    assert answer == {"sets": {}, "moreAvailable": False}
    row = Delivery.objects.get(stream=stream)
    assert row.status == Delivery.Status.DELIVERED and row.delivered_at is not None
    assert DeliveryAttempt.objects.get(delivery=row).ok
    # Even after the acknowledgement timeout.
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(days=1))
    assert poll(client, stream, quick()).json()["sets"] == {}
    assert jti == event.jti.hex


def test_set_errs_fail_the_delivery_and_are_recorded(client, poll_stream):
    stream = poll_stream()
    publish()
    [jti] = poll(client, stream, quick()).json()["sets"]
    error = {"err": "invalid_key", "description": "unknown kid"}
    assert poll(client, stream, quick(setErrs={jti: error})).status_code == 200
    row = Delivery.objects.get(stream=stream)
    assert row.status == Delivery.Status.FAILED
    assert row.last_error == "invalid_key: unknown kid"
    attempt = DeliveryAttempt.objects.get(delivery=row)
    assert not attempt.ok and json.loads(attempt.response) == error


def test_tokens_quoted_in_set_errs_are_redacted_in_the_log(client, poll_stream):
    """The receiver's error text reaches storage: bearer tokens in it keep their prefix only."""
    stream = poll_stream()
    publish()
    [jti] = poll(client, stream, quick()).json()["sets"]
    leaked = "scgev_Ab12Cd34_" + "s" * 40
    error = {"err": "access_denied", "description": f"token {leaked} refused"}
    assert poll(client, stream, quick(setErrs={jti: error})).status_code == 200
    row = Delivery.objects.get(stream=stream)
    attempt = DeliveryAttempt.objects.get(delivery=row)
    assert "s" * 40 not in row.last_error and "s" * 40 not in attempt.response
    assert "scgev_Ab12Cd34_[REDACTED]" in row.last_error


def test_max_events_and_more_available(client, poll_stream):
    stream = poll_stream()
    events = [publish() for _ in range(5)]
    first = poll(client, stream, quick(maxEvents=2)).json()
    assert len(first["sets"]) == 2 and first["moreAvailable"] is True
    # Oldest first.
    assert set(first["sets"]) == {e.jti.hex for e in events[:2]}
    second = poll(client, stream, quick(maxEvents=2, ack=list(first["sets"]))).json()
    assert len(second["sets"]) == 2 and second["moreAvailable"] is True
    third = poll(client, stream, quick(maxEvents=2, ack=list(second["sets"]))).json()
    assert len(third["sets"]) == 1 and third["moreAvailable"] is False
    # maxEvents 0: only acknowledge.
    last = poll(client, stream, {"maxEvents": 0, "ack": list(third["sets"])}).json()
    assert last == {"sets": {}, "moreAvailable": False}
    assert Delivery.objects.filter(stream=stream, status="delivered").count() == 5


def test_one_resource_is_handed_out_in_order(client, poll_stream):
    stream = poll_stream()
    user = uuid.uuid4()
    first, second = publish(user), publish(user)
    answer = poll(client, stream, quick()).json()
    assert list(answer["sets"]) == [first.jti.hex] and answer["moreAvailable"] is True
    answer = poll(client, stream, quick(ack=[first.jti.hex])).json()
    assert list(answer["sets"]) == [second.jti.hex]


def test_unacknowledged_sets_are_handed_out_again_after_the_timeout(client, poll_stream, settings):
    settings.SCIMGATE_EVENTS_POLL_ACK_TIMEOUT_SECONDS = 60
    stream = poll_stream()
    event = publish()
    assert list(poll(client, stream, quick()).json()["sets"]) == [event.jti.hex]
    assert poll(client, stream, quick()).json()["sets"] == {}
    Delivery.objects.filter(stream=stream).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    assert list(poll(client, stream, quick()).json()["sets"]) == [event.jti.hex]
    row = Delivery.objects.get(stream=stream)
    assert row.attempts == 2
    assert "handed out again" in DeliveryAttempt.objects.get(delivery=row).response


def test_long_poll_waits_for_the_configured_time_when_nothing_is_available(
    client, poll_stream, settings
):
    settings.SCIMGATE_EVENTS_POLL_WAIT_SECONDS = 1.0
    settings.SCIMGATE_EVENTS_POLL_INTERVAL_SECONDS = 0.1
    stream = poll_stream()
    started = time.monotonic()
    answer = poll(client, stream, {}).json()
    waited = time.monotonic() - started
    assert answer == {"sets": {}, "moreAvailable": False}
    assert 1.0 <= waited < 3.0
    started = time.monotonic()
    poll(client, stream, quick())
    assert time.monotonic() - started < 0.9


@pytest.mark.django_db(transaction=True)
def test_a_long_poll_answers_as_soon_as_an_event_arrives(live_server, poll_stream, settings):
    import threading

    import httpx
    from django.db import connection

    settings.SCIMGATE_EVENTS_POLL_WAIT_SECONDS = 10
    settings.SCIMGATE_EVENTS_POLL_INTERVAL_SECONDS = 0.1
    stream = poll_stream()

    def later():
        publish()
        connection.close()  # this thread's own connection

    threading.Timer(0.7, later).start()
    started = time.monotonic()
    response = httpx.post(
        f"{live_server.url}{poll_url(stream)}",
        json={},
        headers={"Authorization": f"Bearer {POLL_TOKEN}"},
        timeout=20,
    )
    waited = time.monotonic() - started
    assert response.status_code == 200
    assert len(response.json()["sets"]) == 1
    assert 0.6 <= waited < 5


def test_paused_streams_hand_out_nothing_but_take_acknowledgements(client, poll_stream):
    stream = poll_stream()
    publish()
    [jti] = poll(client, stream, quick()).json()["sets"]
    publish()
    EventStream.objects.filter(pk=stream.pk).update(state=EventStream.State.PAUSED)
    assert poll(client, stream, quick(ack=[jti])).json() == {"sets": {}, "moreAvailable": False}
    assert Delivery.objects.filter(stream=stream, status="delivered").count() == 1


@pytest.mark.parametrize("token", [None, "wrong", POLL_TOKEN + "x", "x" * 300])
def test_authentication_is_required(client, poll_stream, token):
    stream = poll_stream()
    response = poll(client, stream, quick(), token=token)
    assert response.status_code == 401
    assert response.json()["err"] == "authentication_failed"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_token_opens_only_its_own_stream(client, poll_stream, push_stream):
    mine = poll_stream()
    other = poll_stream(token="evp_" + "y" * 43)
    assert poll(client, mine, quick()).status_code == 200
    assert poll(client, other, quick()).status_code == 401
    assert poll(client, push_stream(), quick()).status_code == 401
    response = client.post(
        f"/events/v1/streams/{uuid.uuid4()}/poll",
        data="{}",
        content_type="application/json",
        headers={"Authorization": f"Bearer {POLL_TOKEN}"},
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("[1]", "JSON object"),
        ("{not json", "not JSON"),
        ('{"ack": "abc"}', "ack"),
        ('{"ack": ["nope"]}', "nope"),
        ('{"setErrs": {"0f1e2d3c4b5a69788796a5b4c3d2e1f0": "bad"}}', "err"),
        ('{"maxEvents": -1}', "maxEvents"),
        ('{"maxEvents": true}', "maxEvents"),
        ('{"returnImmediately": "yes"}', "returnImmediately"),
    ],
)
def test_malformed_requests_are_invalid_request(client, poll_stream, raw, fragment):
    stream = poll_stream()
    publish()
    response = poll(client, stream, raw=raw)
    assert response.status_code == 400
    body = response.json()
    assert body["err"] == "invalid_request" and fragment in body["description"]
    # Nothing was handed out or changed.
    assert Delivery.objects.get(stream=stream).status == Delivery.Status.PENDING


def test_only_post_is_allowed(client, poll_stream):
    assert client.get(poll_url(poll_stream())).status_code == 405


def test_unknown_acknowledgements_are_ignored(client, poll_stream):
    stream = poll_stream()
    answer = poll(client, stream, quick(ack=[uuid.uuid4().hex])).json()
    assert answer == {"sets": {}, "moreAvailable": False}
