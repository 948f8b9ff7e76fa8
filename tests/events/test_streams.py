"""Stream management services: credentials shown once and stored sealed or hashed, URL
guard, validation, audit without secrets, pause/resume, replay, redeliver, test events."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone

from provisioning.audit.models import AuditEntry
from provisioning.events import claims, crypto, outbox, poll, streams
from provisioning.events.models import Delivery, DeliveryAttempt, Event, EventKind, EventStream
from tests.factories import OperatorFactory, ScimClientFactory

from .helpers import publish_event

pytestmark = pytest.mark.django_db

HOOK = "https://receiver.example.com/hooks/scim"


@pytest.fixture
def operator():
    return OperatorFactory(role="administrator")


@pytest.fixture
def kicks(monkeypatch):
    """Stream ids a delivery run was asked for (the on-commit kick, run at once)."""
    asked: list[str] = []

    class Task:
        def delay(self, stream_id):
            asked.append(stream_id)

    monkeypatch.setattr(outbox, "task", lambda name: Task())
    monkeypatch.setattr(outbox.transaction, "on_commit", lambda callback, robust=False: callback())
    return asked


def entries_for(stream) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(
            content_type__app_label="events", object_pk=str(stream.pk)
        ).order_by("id")
    )


def audit_text() -> str:
    """Everything the audit trail holds, as one string to search for secrets."""
    rows = AuditEntry.objects.values("changes", "object_repr", "search_text", "serialized_data")
    return json.dumps(list(rows), default=str)


# --- create ---------------------------------------------------------------------------


def test_webhook_stream_gets_a_standard_webhooks_secret_stored_sealed(operator):
    stream, secret = streams.create_stream(
        name="HR app", method="webhook", endpoint_url=HOOK, operator=operator
    )
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    stored = EventStream.objects.get(pk=stream.pk)
    assert stored.secret and secret not in stored.secret
    assert streams.webhook_secret(stored) == secret
    assert stored.created_by == operator
    # Audited as a creation by the operator, without the secret in any form.
    [entry] = entries_for(stream)
    assert entry.action == AuditEntry.Action.CREATE and entry.actor == operator
    assert entry.change_set is not None and entry.change_set.operator == operator
    assert "secret" not in entry.changes
    assert entry.changes["endpoint_url"] == [None, HOOK]
    assert secret not in audit_text() and stored.secret not in audit_text()


def test_poll_stream_token_is_hashed_like_scim_tokens(operator):
    stream, token = streams.create_stream(name="Pollster", method="poll", operator=operator)
    match = re.fullmatch(r"scgev_([A-Za-z0-9]{8})_[A-Za-z0-9_-]{43}", token)
    assert match
    stored = EventStream.objects.get(pk=stream.pk)
    assert stored.poll_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert stored.poll_token_prefix == match.group(1)
    assert streams.poll_token_matches(stored, token)
    assert not streams.poll_token_matches(stored, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not streams.poll_token_matches(stored, "")
    assert stored.endpoint_url == ""
    assert token not in audit_text() and stored.poll_token_hash not in audit_text()


def test_push_stream_has_no_secret_and_seals_its_authorization_header(operator):
    stream, secret = streams.create_stream(
        name="SIEM",
        method="push",
        endpoint_url=HOOK,
        authorization="Bearer receiver-credential-123",
        operator=operator,
    )
    assert secret is None
    stored = EventStream.objects.get(pk=stream.pk)
    assert "receiver-credential-123" not in stored.authorization
    assert streams.authorization_header(stored) == "Bearer receiver-credential-123"
    assert stored.secret == "" and stored.poll_token_hash == ""
    assert "receiver-credential-123" not in audit_text()
    assert stored.authorization not in audit_text()


def test_filters_are_stored_in_a_fixed_order_and_all_means_none(operator):
    client = ScimClientFactory(name="okta")
    stream, _ = streams.create_stream(
        name="Filtered",
        method="push",
        endpoint_url=HOOK,
        resource_types=["Group", "User", "User"],
        event_kinds=["delete", "create"],
        payload="full",
        client=client,
        pause_after=timedelta(hours=2),
        audience="urn:example:receiver",
    )
    assert stream.resource_types == []  # both types: no filter
    assert stream.event_kinds == ["create", "delete"]
    assert stream.payload == "full" and stream.client == client
    assert stream.pause_after_seconds == 7200 and stream.audience == "urn:example:receiver"


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"name": "  "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"method": "carrier-pigeon"}, "method"),
        ({"endpoint_url": ""}, "endpoint_url"),
        ({"endpoint_url": "http://receiver.example.com/hook"}, "endpoint_url"),
        ({"endpoint_url": "ftp://receiver.example.com/hook"}, "endpoint_url"),
        ({"endpoint_url": "https://user:pw@receiver.example.com/hook"}, "endpoint_url"),
        ({"endpoint_url": "https:///no-host"}, "endpoint_url"),
        ({"endpoint_url": "https://receiver.example.com:99999/"}, "endpoint_url"),
        ({"endpoint_url": HOOK + "#frag"}, "endpoint_url"),
        ({"endpoint_url": "https://r.example.com/" + "a" * 2000}, "endpoint_url"),
        ({"method": "poll", "endpoint_url": HOOK}, "endpoint_url"),
        ({"resource_types": ["Device"]}, "resource_types"),
        ({"event_kinds": ["verify"]}, "event_kinds"),
        ({"event_kinds": ["asyncresp"]}, "event_kinds"),  # without a client: never delivered
        ({"payload": "everything"}, "payload"),
        ({"authorization": "Bearer x"}, "authorization"),  # webhook streams send none
        ({"method": "push", "authorization": "Bearer x\r\nX-Evil: 1"}, "authorization"),
        # RFC 9110 §5.5: field values are visible ASCII (httpx could not send others).
        ({"method": "push", "authorization": "Bearer tökén"}, "authorization"),
        ({"method": "push", "authorization": "Bearer x\u00a0y"}, "authorization"),
        ({"pause_after": 10}, "pause_after"),
        ({"pause_after": timedelta(days=31)}, "pause_after"),
        ({"audience": "a" * 2001}, "audience"),
    ],
)
def test_invalid_input_is_refused_by_field_and_nothing_is_created(arguments, field, settings):
    settings.SCIMGATE_EVENTS_ALLOW_HTTP = False  # the production rule: https only
    values = {"name": "Receiver", "method": "webhook", "endpoint_url": HOOK, **arguments}
    with pytest.raises(ValidationError) as raised:
        streams.create_stream(**values)
    assert field in raised.value.message_dict
    assert not EventStream.objects.exists()
    assert not AuditEntry.objects.filter(content_type__app_label="events").exists()


def test_names_are_unique_case_insensitively():
    streams.create_stream(name="HR app", method="poll")
    with pytest.raises(ValidationError) as raised:
        streams.create_stream(name="hr APP", method="poll")
    assert "already exists" in raised.value.message_dict["name"][0]
    assert EventStream.objects.count() == 1


@override_settings(SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES=False)
@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:192.168.1.1]/hook",
        "https://localhost/hook",
    ],
)
def test_endpoints_on_non_public_addresses_are_refused(url):
    with pytest.raises(ValidationError) as raised:
        streams.clean_endpoint_url(url)
    assert "not a public address" in raised.value.messages[0]


@override_settings(SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES=False)
def test_a_public_address_is_accepted():
    assert streams.clean_endpoint_url(" https://8.8.8.8/hook ") == "https://8.8.8.8/hook"


@override_settings(SCIMGATE_EVENTS_ALLOW_HTTP=True)
def test_http_only_with_the_development_switch():
    assert streams.clean_endpoint_url("http://127.0.0.1:8765/hook") == "http://127.0.0.1:8765/hook"


def test_poll_addresses():
    stream, _ = streams.create_stream(name="P", method="poll")
    assert poll.poll_path(stream.pk) == f"/events/v1/streams/{stream.pk}/poll"
    assert (
        streams.poll_url(stream, "https://scim.example.com/")
        == f"https://scim.example.com/events/v1/streams/{stream.pk}/poll"
    )
    with override_settings(SCIM_BASE_URL="https://idm.example.org/tenant/scim/v2"):
        assert streams.poll_url(stream).startswith("https://idm.example.org/tenant/events/v1/")
    with override_settings(SCIM_BASE_URL="", SCIMGATE_EVENTS_ISSUER="https://issuer.example.org"):
        assert streams.poll_url(stream).startswith("https://issuer.example.org/events/v1/")
    with override_settings(
        SCIM_BASE_URL="",
        SCIMGATE_EVENTS_ISSUER="scimgate",
        SCIMGATE_CONSOLE_URL="https://console.example.org/",
    ):
        assert streams.poll_url(stream).startswith("https://console.example.org/events/v1/")


# --- update, credentials --------------------------------------------------------------


def test_update_changes_settings_and_audits_them(operator):
    stream, _ = streams.create_stream(name="SIEM", method="push", endpoint_url=HOOK)
    other_url = "https://siem.example.net/events"
    streams.update_stream(
        stream=stream,
        name="SIEM prod",
        endpoint_url=other_url,
        event_kinds=["delete"],
        authorization="Bearer new-header-value",
        operator=operator,
    )
    stream.refresh_from_db()
    assert (stream.name, stream.endpoint_url, stream.event_kinds) == (
        "SIEM prod",
        other_url,
        ["delete"],
    )
    assert streams.authorization_header(stream) == "Bearer new-header-value"
    changes = {}
    for entry in entries_for(stream)[1:]:
        assert entry.actor == operator
        changes.update(entry.changes)
    assert changes["name"] == ["SIEM", "SIEM prod"]
    assert changes["endpoint_url"] == [HOOK, other_url]
    assert changes["push_auth_header"] == ["none", "set"]
    assert "authorization" not in changes
    assert "new-header-value" not in audit_text()
    # Clearing the header.
    streams.update_stream(stream=stream, authorization="", operator=operator)
    stream.refresh_from_db()
    assert stream.authorization == ""


def test_update_refuses_invalid_changes_and_keeps_the_stream(settings):
    settings.SCIMGATE_EVENTS_ALLOW_HTTP = False  # the production rule: https only
    streams.create_stream(name="Taken", method="poll")
    stream, _ = streams.create_stream(name="SIEM", method="push", endpoint_url=HOOK)
    with pytest.raises(ValidationError) as raised:
        streams.update_stream(stream=stream, name="taken", endpoint_url="http://x.example.com/")
    assert set(raised.value.message_dict) == {"name", "endpoint_url"}
    stream.refresh_from_db()
    assert (stream.name, stream.endpoint_url) == ("SIEM", HOOK)


def test_rotating_a_webhook_secret_replaces_it(operator):
    stream, first = streams.create_stream(name="HR", method="webhook", endpoint_url=HOOK)
    second = streams.rotate_secret(stream=stream, operator=operator)
    assert second != first and second.startswith("whsec_")
    stream.refresh_from_db()
    assert streams.webhook_secret(stream) == second
    last = entries_for(stream)[-1]
    assert last.actor == operator and "webhook_signing" in last.changes
    assert first not in audit_text() and second not in audit_text()


def test_a_new_poll_token_makes_the_old_one_stop_working(operator):
    stream, first = streams.create_stream(name="Pollster", method="poll")
    old_prefix = stream.poll_token_prefix
    second = streams.rotate_secret(stream=stream, operator=operator)
    stream.refresh_from_db()
    assert streams.poll_token_matches(stream, second)
    assert not streams.poll_token_matches(stream, first)
    assert entries_for(stream)[-1].changes == {
        "poll_access_prefix": [old_prefix, stream.poll_token_prefix]
    }
    assert second not in audit_text()


def test_a_push_stream_has_no_secret_to_rotate():
    stream, _ = streams.create_stream(name="SIEM", method="push", endpoint_url=HOOK)
    with pytest.raises(ValidationError):
        streams.rotate_secret(stream=stream)


# --- pause, resume --------------------------------------------------------------------


def test_pause_and_resume(operator, kicks):
    stream, _ = streams.create_stream(name="HR", method="webhook", endpoint_url=HOOK)
    streams.pause_stream(stream=stream, operator=operator)
    assert EventStream.objects.get(pk=stream.pk).state == EventStream.State.PAUSED
    assert entries_for(stream)[-1].changes["state"] == ["active", "paused"]
    streams.resume_stream(stream=stream, operator=operator)
    assert EventStream.objects.get(pk=stream.pk).state == EventStream.State.ACTIVE
    assert kicks == [str(stream.pk)]


def test_resuming_a_failing_stream_clears_its_failure_clock(kicks):
    stream, _ = streams.create_stream(name="HR", method="webhook", endpoint_url=HOOK)
    EventStream.objects.filter(pk=stream.pk).update(
        state=EventStream.State.FAILING, failing_since=timezone.now() - timedelta(days=1)
    )
    stream.refresh_from_db()
    streams.pause_stream(stream=stream)  # already not delivering: stays as it is
    assert EventStream.objects.get(pk=stream.pk).state == EventStream.State.FAILING
    streams.resume_stream(stream=stream)
    stream.refresh_from_db()
    assert stream.state == EventStream.State.ACTIVE and stream.failing_since is None
    assert kicks == [str(stream.pk)]


# --- replay, redeliver ----------------------------------------------------------------


def test_replay_resets_and_creates_deliveries_from_a_point_in_time(operator, kicks):
    now = timezone.now()
    since = now - timedelta(hours=1)
    stream, _ = streams.create_stream(
        name="Users only", method="webhook", endpoint_url=HOOK, resource_types=["User"]
    )
    old = publish_event(at=now - timedelta(hours=2))
    delivered = publish_event(at=now - timedelta(minutes=50))
    Delivery.objects.filter(event=delivered).update(
        status=Delivery.Status.DELIVERED, attempts=2, delivered_at=now
    )
    DeliveryAttempt.objects.create(
        delivery=Delivery.objects.get(event=delivered), at=now, status_code=200, ok=True
    )
    # Recorded while no stream heard them (this one existed, but a stream created later
    # or filters changed since are the same case): replay creates their deliveries.
    unheard = [publish_event(at=now - timedelta(minutes=m), candidates=[]) for m in (40, 30, 20)]
    group_event = publish_event(
        resource_type="Group", at=now - timedelta(minutes=10), candidates=[]
    )
    other, _ = streams.create_stream(name="Other", method="poll")
    other_test = streams.send_test_event(stream=other)
    kicks.clear()

    result = streams.replay(stream=stream, since=since, operator=operator)

    assert result == {"reset": 1, "created": 3}
    rows = list(Delivery.objects.filter(stream=stream).order_by("id"))
    assert [d.event_id for d in rows] == [old.pk, delivered.pk] + [e.pk for e in unheard]
    by_event = {d.event_id: d for d in rows}
    assert by_event[old.pk].status == Delivery.Status.PENDING  # before `since`: untouched
    reset = by_event[delivered.pk]
    assert (reset.status, reset.attempts, reset.delivered_at) == (Delivery.Status.PENDING, 0, None)
    assert reset.log.count() == 1  # the delivery log keeps its history
    assert all(by_event[e.pk].next_attempt_at <= timezone.now() for e in unheard)
    assert group_event.pk not in by_event and other_test.pk not in by_event
    assert kicks == [str(stream.pk)]
    entry = entries_for(stream)[-1]
    assert entry.actor == operator
    assert entry.changes["replayed_from"] == [None, since.isoformat()]
    # Replaying again creates nothing new: deliveries are unique per stream and event.
    assert streams.replay(stream=stream, since=since) == {"reset": 4, "created": 0}


def test_replay_refuses_a_naive_or_future_start():
    stream, _ = streams.create_stream(name="P", method="poll")
    with pytest.raises(ValidationError):
        streams.replay(stream=stream, since=timezone.now().replace(tzinfo=None))
    with pytest.raises(ValidationError):
        streams.replay(stream=stream, since=timezone.now() + timedelta(hours=1))


def test_replay_routes_asynchronous_completions_only_to_the_bound_client():
    okta, entra = ScimClientFactory(name="okta"), ScimClientFactory(name="entra")
    stream, _ = streams.create_stream(name="Okta", method="poll", client=okta)
    since = timezone.now() - timedelta(minutes=5)
    mine = publish_event(EventKind.ASYNC_RESPONSE, client=okta, candidates=[])
    publish_event(EventKind.ASYNC_RESPONSE, client=entra, candidates=[])
    assert streams.replay(stream=stream, since=since) == {"reset": 0, "created": 1}
    assert Delivery.objects.get(stream=stream).event_id == mine.pk


def test_redeliver_puts_one_delivery_back_in_the_queue(operator, kicks):
    stream, _ = streams.create_stream(name="HR", method="webhook", endpoint_url=HOOK)
    event = publish_event()
    delivery = Delivery.objects.get(stream=stream, event=event)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.FAILED, attempts=3, last_status_code=400, last_error="bad"
    )
    DeliveryAttempt.objects.create(delivery=delivery, at=timezone.now(), status_code=400)
    kicks.clear()
    result = streams.redeliver(delivery=delivery, operator=operator)
    assert (result.status, result.attempts, result.last_status_code, result.last_error) == (
        Delivery.Status.PENDING,
        0,
        None,
        "",
    )
    assert result.log.count() == 1
    assert kicks == [str(stream.pk)]
    assert entries_for(stream)[-1].changes == {"redelivered_event": [None, str(event.pk)]}


# --- test event, delete -----------------------------------------------------------------


def test_a_test_event_reaches_only_its_stream_whatever_the_filters(operator):
    stream, _ = streams.create_stream(
        name="Deletes only",
        method="push",
        endpoint_url=HOOK,
        resource_types=["Group"],
        event_kinds=["delete"],
    )
    bystander, _ = streams.create_stream(name="Everything", method="poll")
    event = streams.send_test_event(stream=stream, operator=operator)
    assert list(Delivery.objects.filter(event=event).values_list("stream_id", flat=True)) == [
        stream.pk
    ]
    assert not Delivery.objects.filter(stream=bystander).exists()
    set_claims = claims.set_claims(event, stream)
    assert set_claims["sub_id"] == {"format": "opaque", "id": str(stream.pk)}
    [(uri, payload)] = set_claims["events"].items()
    assert uri == "https://schemas.openid.net/secevent/ssf/event-type/verification"
    assert set(payload) == {"state"} and len(payload["state"]) >= 16
    assert entries_for(stream)[-1].changes == {"test_event_sent": [None, event.jti.hex]}
    # Streams created later never hear it on replay either.
    later, _ = streams.create_stream(name="Later", method="poll")
    streams.replay(stream=later, since=timezone.now() - timedelta(minutes=1))
    assert not Delivery.objects.filter(stream=later).exists()


def test_deleting_a_stream_keeps_the_events(operator):
    stream, _ = streams.create_stream(name="HR", method="webhook", endpoint_url=HOOK)
    event = publish_event()
    streams.delete_stream(stream=stream, operator=operator)
    assert not EventStream.objects.exists() and not Delivery.objects.exists()
    assert Event.objects.filter(pk=event.pk).exists()
    assert entries_for(stream)[-1].action == AuditEntry.Action.DELETE


def test_sealed_values_survive_only_with_the_key():
    stream, secret = streams.create_stream(name="HR", method="webhook", endpoint_url=HOOK)
    with (
        override_settings(SCIMGATE_EVENTS_KEY="another key entirely"),
        pytest.raises(crypto.SecretUnreadable),
    ):
        streams.webhook_secret(EventStream.objects.get(pk=stream.pk))
    assert streams.webhook_secret(EventStream.objects.get(pk=stream.pk)) == secret
