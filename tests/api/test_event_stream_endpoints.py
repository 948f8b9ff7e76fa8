"""The management API's event stream endpoints: streams (list, detail, create, change,
pause, resume, rotate the credential, replay, test event, delete) and the delivery log
(list with the console's filters, detail, redeliver).

Reading needs a viewer, changing an administrator, as in the console; through the
console session, create, change, rotate, replay and delete need its recent sign-in. A
stream's credential is in the one answer that issues it; every change is audited with
source "api"; a replay and a test event really queue deliveries."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from console.api.models import IdempotencyRecord
from provisioning.audit.models import AuditEntry, ChangeSet
from provisioning.events import streams
from provisioning.events.models import Delivery, DeliveryAttempt, Event, EventStream
from tests.events.helpers import publish_event
from tests.factories import OperatorFactory, ScimClientFactory
from tests.signin.conftest import age_session

from .test_config_endpoints import api_change_sets, assert_error, etag, post

pytestmark = pytest.mark.django_db

STREAMS = "/api/v1/event-streams"
DELIVERIES = "/api/v1/event-deliveries"
HOOK = "https://receiver.example.com/hooks/scim"
POLL_STREAM = {"name": "hr-poll", "method": "poll", "resource_types": ["User"], "pause_after": 3600}


@pytest.fixture
def webhook() -> EventStream:
    stream, _secret = streams.create_stream(name="HR app", method="webhook", endpoint_url=HOOK)
    return stream


@pytest.fixture
def poll_stream() -> EventStream:
    stream, _token = streams.create_stream(name="Pollster", method="poll")
    return stream


@pytest.fixture
def push() -> EventStream:
    stream, _ = streams.create_stream(
        name="SIEM", method="push", endpoint_url=HOOK, authorization="Bearer siem-secret-value"
    )
    return stream


def stream_path(stream: EventStream) -> str:
    return f"{STREAMS}/{stream.pk}"


def walk(client, url: str) -> list[dict]:
    rows = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        rows += body["results"]
        url = body["next"]
    return rows


def entries(change_set: ChangeSet) -> list[dict]:
    """The audit entries of ``change_set``: their changes, by the model they are about."""
    return [
        {"model": e.content_type.model, "action": e.action, "changes": e.changes}
        for e in AuditEntry.objects.filter(change_set=change_set).select_related("content_type")
    ]


# --- Roles: every endpoint, every role ---------------------------------------------------------------

READS = [STREAMS, "{stream}", DELIVERIES, f"{DELIVERIES}/{{delivery}}"]
# (path, body): every change an administrator may make, none a viewer or an approver.
CHANGES = [
    (STREAMS, {**POLL_STREAM, "name": "other"}),
    ("{stream}/change", {"name": "renamed"}),
    ("{stream}/pause", {}),
    ("{stream}/resume", {}),
    ("{stream}/credential/rotate", {}),
    ("{stream}/replay", {"since": "2026-01-01T00:00:00Z"}),
    ("{stream}/test-event", {}),
    ("{stream}/delete", {}),
    (f"{DELIVERIES}/{{delivery}}/redeliver", {}),
]
# The console asks for a recent sign-in before these (require_step_up).
STEPPED_UP = {
    STREAMS,
    "{stream}/change",
    "{stream}/credential/rotate",
    "{stream}/replay",
    "{stream}/delete",
}


@pytest.fixture
def ids(webhook) -> dict:
    publish_event()
    delivery = Delivery.objects.get(stream=webhook)
    Delivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=3)
    return {"stream": stream_path(webhook), "delivery": delivery.pk}


@pytest.mark.parametrize("path", READS)
def test_reads_need_a_signed_in_viewer(viewer_api, ids, path):
    path = path.format(**ids)
    assert_error(APIClient().get(path), 401, "not_authenticated")
    assert viewer_api.get(path).status_code == 200


@pytest.mark.parametrize(("path", "body"), CHANGES)
def test_changes_need_an_administrator(viewer_api, approver_api, webhook, ids, path, body):
    path = path.format(**ids)
    secret = webhook.secret
    assert_error(post(APIClient(), path, body), 401, "not_authenticated")
    for lower in (viewer_api, approver_api):
        refused = assert_error(post(lower, path, body, etag="*"), 403, "permission_denied")
        assert "administrator" in refused["detail"]
    stream = EventStream.objects.get(pk=webhook.pk)
    assert (stream.name, stream.state, stream.secret) == ("HR app", "active", secret)
    assert list(EventStream.objects.values_list("name", flat=True)) == ["HR app"]
    assert Event.objects.count() == 1 and Delivery.objects.get().status == "failed"
    assert not ChangeSet.objects.filter(source="api").exists()


def test_the_schema_names_the_role_of_each_method(viewer_api):
    paths = viewer_api.get("/api/schema/?format=json").json()["paths"]
    assert paths[DELIVERIES]["get"]["x-required-role"] == "viewer"
    for path in (
        "/api/v1/event-streams/{stream_id}/change",
        "/api/v1/event-streams/{stream_id}/credential/rotate",
        "/api/v1/event-streams/{stream_id}/replay",
        "/api/v1/event-streams/{stream_id}/test-event",
        "/api/v1/event-deliveries/{delivery_id}/redeliver",
    ):
        assert paths[path]["post"]["x-required-role"] == "administrator", path


@override_settings(SCIMGATE_STEP_UP_MINUTES=15)
def test_session_changes_need_the_step_up_where_the_console_does(ids):
    session = APIClient()
    session.force_login(OperatorFactory(role="administrator"))
    age_session(session, authenticated=20 * 60)
    for path, body in CHANGES:
        if path in STEPPED_UP:
            response = post(session, path.format(**ids), body, etag="*")
            assert "step-up" in assert_error(response, 403, "permission_denied")["detail"], path
    assert EventStream.objects.get().name == "HR app" and Delivery.objects.count() == 1
    # Pausing, resuming, a test event and a redelivery need none in the console either.
    for path, status in [
        ("{stream}/pause", 200),
        ("{stream}/resume", 200),
        ("{stream}/test-event", 201),
        (f"{DELIVERIES}/{{delivery}}/redeliver", 200),
    ]:
        assert post(session, path.format(**ids)).status_code == status, path


# --- List, detail, create, pause, resume, delete --------------------------------------------------


def test_a_streams_credential_is_shown_once(admin_api, caplog):
    with caplog.at_level(logging.DEBUG):
        response = post(admin_api, STREAMS, POLL_STREAM)
    assert response.status_code == 201 and response["Cache-Control"] == "no-store"
    body = response.json()
    secret, stream = body["secret"], body["stream"]
    assert stream["poll_url"].startswith("http") and stream["poll_token_prefix"] in secret
    for read in (STREAMS, f"{STREAMS}/{stream['id']}"):
        assert secret not in admin_api.get(read).content.decode()
    assert secret not in caplog.text
    change_set = api_change_sets("event stream create").get()
    assert secret not in str(change_set.request)
    assert not IdempotencyRecord.objects.exists()


def test_stream_creation_is_validated_by_the_service(admin_api):
    push = {"name": "x", "method": "push"}  # a push stream needs a receiver URL
    assert "endpoint_url" in assert_error(post(admin_api, STREAMS, push), 400, "invalid")["fields"]
    bad = {**POLL_STREAM, "client": str(uuid.uuid4())}
    assert "client" in assert_error(post(admin_api, STREAMS, bad), 400, "invalid")["fields"]


def test_pause_resume_and_delete(admin_api):
    stream_id = post(admin_api, STREAMS, POLL_STREAM).json()["stream"]["id"]
    path = f"{STREAMS}/{stream_id}"
    assert post(admin_api, f"{path}/pause", key="s1").json()["state"] == "paused"
    assert post(admin_api, f"{path}/pause", key="s1")["Idempotent-Replayed"] == "true"
    assert post(admin_api, f"{path}/pause").json()["state"] == "paused"  # stays paused
    assert post(admin_api, f"{path}/resume").json()["state"] == "active"
    assert api_change_sets("event stream pause").count() == 1
    assert api_change_sets("event stream resume").count() == 1
    assert_error(post(admin_api, f"{path}/delete"), 428, "precondition_required")
    assert_error(post(admin_api, f"{path}/delete", etag='"stale"'), 412, "precondition_failed")
    assert post(admin_api, f"{path}/delete", etag=etag(admin_api, path)).status_code == 204
    assert_error(admin_api.get(path), 404, "not_found")


def test_a_streams_etag_holds_while_only_its_health_moves(admin_api, webhook):
    """The lag is measured at each read: a tag over it would never match a change."""
    publish_event()
    Delivery.objects.update(created_at=timezone.now() - timedelta(minutes=7))
    path = stream_path(webhook)
    first, second = admin_api.get(path), admin_api.get(path)
    assert first.json()["health"]["backlog"] == 1
    assert first.json()["health"]["lag_seconds"] != second.json()["health"]["lag_seconds"]
    assert first["ETag"] == second["ETag"]
    assert admin_api.get(path, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    changed = post(admin_api, f"{path}/change", {"audience": "hr-app"}, etag=first["ETag"])
    assert changed.status_code == 200, changed.content
    assert changed["ETag"] != first["ETag"]
    assert admin_api.get(path, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 200


# --- Change ------------------------------------------------------------------------------------------


def test_changing_a_stream_needs_its_current_etag_and_is_audited(admin_api, webhook):
    path = stream_path(webhook)
    tag = etag(admin_api, path)
    change = {
        "name": "HR application",
        "resource_types": ["Group"],
        "event_kinds": ["delete", "create"],
        "payload": "full",
        "pause_after": 6 * 3600,
        "audience": "https://hr.example.com",
    }
    assert_error(post(admin_api, f"{path}/change", change), 428, "precondition_required")
    assert_error(
        post(admin_api, f"{path}/change", change, etag='"stale"'), 412, "precondition_failed"
    )
    response = post(admin_api, f"{path}/change", change, etag=tag, key="c1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["resource_types"], body["event_kinds"]) == (
        "HR application",
        ["Group"],
        ["create", "delete"],  # in the service's order
    )
    assert (body["payload"], body["pause_after_seconds"], body["audience"]) == (
        "full",
        6 * 3600,
        "https://hr.example.com",
    )
    assert body["endpoint_url"] == HOOK  # not sent: unchanged
    assert response["ETag"] == etag(admin_api, path) != tag
    replayed = post(admin_api, f"{path}/change", change, etag=tag, key="c1")
    assert replayed["Idempotent-Replayed"] == "true" and replayed.json() == body
    # The tag read before the change is stale now.
    assert_error(
        post(admin_api, f"{path}/change", {"name": "x"}, etag=tag), 412, "precondition_failed"
    )
    change_set = api_change_sets("event stream edit").get()
    assert change_set.request["api"]["fields"] == sorted(change)
    assert change_set.operator == admin_api.user
    (entry,) = entries(change_set)
    assert entry["model"] == "eventstream" and entry["action"] == AuditEntry.Action.UPDATE
    assert {"name", "payload", "audience"} <= set(entry["changes"])
    # New filters apply to events from now on.
    publish_event(resource_type="User")
    assert not Delivery.objects.filter(stream=webhook).exists()


def test_a_change_sends_only_what_it_names(admin_api, webhook):
    path = stream_path(webhook)
    before = admin_api.get(path).json()
    response = post(admin_api, f"{path}/change", {"resource_types": []}, etag=etag(admin_api, path))
    assert response.status_code == 200, response.content
    after = response.json()
    unchanged = {k: v for k, v in before.items() if k not in ("updated_at", "health")}
    assert {k: after[k] for k in unchanged} == unchanged


def test_the_authorization_header_stays_unless_changed_and_is_never_shown(admin_api, push):
    path = stream_path(push)
    assert admin_api.get(path).json()["has_authorization"] is True
    kept = post(admin_api, f"{path}/change", {"authorization": ""}, etag=etag(admin_api, path))
    assert kept.json()["has_authorization"] is True
    assert (
        streams.authorization_header(EventStream.objects.get(pk=push.pk))
        == "Bearer siem-secret-value"
    )
    new = {"authorization": "Bearer another-value"}
    replaced = post(admin_api, f"{path}/change", new, etag=etag(admin_api, path))
    assert replaced.status_code == 200 and "another-value" not in replaced.content.decode()
    assert (
        streams.authorization_header(EventStream.objects.get(pk=push.pk)) == "Bearer another-value"
    )
    removed = post(
        admin_api, f"{path}/change", {"remove_authorization": True}, etag=etag(admin_api, path)
    )
    assert removed.json()["has_authorization"] is False
    assert streams.authorization_header(EventStream.objects.get(pk=push.pk)) == ""
    change_sets = api_change_sets("event stream edit")
    assert change_sets.count() == 2  # the first call changed nothing: no change set
    for change_set in change_sets:
        assert "another-value" not in str(change_set.request)
        assert "another-value" not in str(entries(change_set))
    recorded = [e["changes"] for cs in change_sets for e in entries(cs)]
    assert {"push_auth_header": ["set", "set"]} in recorded
    assert {"push_auth_header": ["set", "none"]} in recorded


@pytest.mark.parametrize(
    ("fixture", "change", "field", "message"),
    [
        # The console's form: its choices; the request's own types.
        ("webhook", {"pause_after": 7}, "pause_after", "Select a valid choice"),
        ("webhook", {"client": str(uuid.uuid4())}, "client", "Select a valid choice"),
        ("webhook", {"name": ""}, "name", "may not be blank"),
        # The service: the receiver's URL, the filters, what a method takes.
        (
            "webhook",
            {"endpoint_url": "ftp://receiver.example.com/"},
            "endpoint_url",
            "not an https URL",
        ),
        ("webhook", {"event_kinds": ["asyncresp"]}, "event_kinds", "bound to a SCIM client"),
        ("webhook", {"authorization": "Bearer x"}, "authorization", "Only a SET push stream"),
        ("poll_stream", {"endpoint_url": HOOK}, "endpoint_url", "A poll stream has no endpoint"),
        ("push", {"authorization": "Bearer a\u00e9"}, "authorization", "visible ASCII"),
    ],
)
def test_changes_are_validated_by_the_consoles_form_and_the_service(
    request, admin_api, fixture, change, field, message
):
    stream = request.getfixturevalue(fixture)
    path = stream_path(stream)
    before = admin_api.get(path).json()
    body = assert_error(
        post(admin_api, f"{path}/change", change, etag=etag(admin_api, path)), 400, "invalid"
    )
    assert message in " ".join(body["fields"][field]), body
    after = admin_api.get(path).json()
    assert {k: v for k, v in after.items() if k != "health"} == {
        k: v for k, v in before.items() if k != "health"
    }
    assert not api_change_sets("event stream edit").exists()


def test_a_name_another_stream_has_is_refused(admin_api, webhook, poll_stream):
    path = stream_path(webhook)
    body = assert_error(
        post(admin_api, f"{path}/change", {"name": "POLLSTER"}, etag=etag(admin_api, path)),
        400,
        "invalid",
    )
    assert "already exists" in body["fields"]["name"][0]


def test_a_pause_after_set_outside_the_choices_stays_choosable(admin_api):
    stream, _ = streams.create_stream(name="odd", method="poll", pause_after=600)
    path = stream_path(stream)
    response = post(
        admin_api,
        f"{path}/change",
        {"pause_after": 600, "audience": "x"},
        etag=etag(admin_api, path),
    )
    assert response.status_code == 200, response.content
    assert response.json()["pause_after_seconds"] == 600


def test_a_bound_client_can_be_set_and_cleared(admin_api, webhook):
    idp = ScimClientFactory(name="okta-prod")
    path = stream_path(webhook)
    change = {"client": str(idp.pk), "event_kinds": ["asyncresp"]}
    bound = post(admin_api, f"{path}/change", change, etag=etag(admin_api, path))
    assert bound.json()["client"] == {"id": str(idp.pk), "name": "okta-prod"}
    cleared = post(
        admin_api, f"{path}/change", {"client": None, "event_kinds": []}, etag=etag(admin_api, path)
    )
    assert cleared.json()["client"] is None


# --- Rotate the credential ---------------------------------------------------------------------------


def test_rotating_shows_the_new_credential_once(admin_api, webhook, poll_stream, caplog):
    old = streams.webhook_secret(webhook)
    with caplog.at_level(logging.DEBUG):
        response = post(admin_api, f"{stream_path(webhook)}/credential/rotate")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    secret = response.json()["secret"]
    assert secret.startswith("whsec_") and secret != old
    assert streams.webhook_secret(EventStream.objects.get(pk=webhook.pk)) == secret
    assert response.json()["stream"]["id"] == str(webhook.pk)
    for read in (STREAMS, stream_path(webhook)):
        assert secret not in admin_api.get(read).content.decode()
    assert secret not in caplog.text
    change_set = api_change_sets("event stream credential").get()
    assert secret not in str(change_set.request) and secret not in str(entries(change_set))
    assert entries(change_set)[0]["changes"] == {
        "webhook_signing": ["replaced", "new signing secret issued"]
    }
    # A poll stream's token: the old one stops working, the new one works.
    old_prefix = admin_api.get(stream_path(poll_stream)).json()["poll_token_prefix"]
    rotated = post(admin_api, f"{stream_path(poll_stream)}/credential/rotate").json()
    token = rotated["secret"]
    assert token.startswith("scgev_") and rotated["stream"]["poll_token_prefix"] in token
    assert rotated["stream"]["poll_token_prefix"] != old_prefix
    assert streams.poll_token_matches(EventStream.objects.get(pk=poll_stream.pk), token)
    # Never kept for a retry: a retry would have to store the secret.
    assert not IdempotencyRecord.objects.exists()


def test_a_push_stream_has_no_secret_to_rotate(admin_api, push):
    before = EventStream.objects.get(pk=push.pk)
    body = assert_error(post(admin_api, f"{stream_path(push)}/credential/rotate"), 409, "conflict")
    assert "has no secret" in body["detail"]
    after = EventStream.objects.get(pk=push.pk)
    assert (after.secret, after.authorization) == (before.secret, before.authorization)
    assert not api_change_sets("event stream credential").exists()


# --- Replay and test event ---------------------------------------------------------------------------


def test_replay_from_a_time_queues_deliveries(admin_api, webhook):
    old = publish_event(at=timezone.now() - timedelta(days=2), candidates=[])
    recent = publish_event(at=timezone.now() - timedelta(hours=1), candidates=[])
    since = (timezone.now() - timedelta(hours=3)).isoformat()
    path = f"{stream_path(webhook)}/replay"
    response = post(admin_api, path, {"since": since}, key="r1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["reset"]) == (1, 0) and body["stream"]["health"]["backlog"] == 1
    delivery = Delivery.objects.get(stream=webhook)
    assert (delivery.event_id, delivery.status) == (recent.pk, "pending")
    assert not Delivery.objects.filter(event=old).exists()
    # A retry with the same key is answered, not run again.
    assert post(admin_api, path, {"since": since}, key="r1")["Idempotent-Replayed"] == "true"
    assert api_change_sets("event stream replay").count() == 1
    # Again: the delivery goes back to pending, its attempts counted afresh.
    Delivery.objects.filter(pk=delivery.pk).update(status="delivered", attempts=2)
    again = post(admin_api, path, {"since": since}).json()
    assert (again["created"], again["reset"]) == (1 - 1, 1)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    change_set = api_change_sets("event stream replay").first()
    assert change_set.request["api"]["since"].startswith(since[:16])
    assert entries(change_set)[0]["changes"]["deliveries_queued"] == [None, "1"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"since": (timezone.now() + timedelta(days=1)).isoformat()}, "in the future"),
        ({"since": "yesterday"}, "Datetime has wrong format"),
        ({}, "required"),
    ],
)
def test_replay_is_validated_by_the_consoles_form(admin_api, webhook, body, message):
    publish_event(candidates=[])
    response = post(admin_api, f"{stream_path(webhook)}/replay", body)
    fields = assert_error(response, 400, "invalid")["fields"]
    assert message in " ".join(fields["since"])
    assert not Delivery.objects.exists() and not api_change_sets("event stream replay").exists()


def test_a_test_event_reaches_only_its_stream(admin_api, webhook, poll_stream):
    response = post(admin_api, f"{stream_path(webhook)}/test-event", key="t1")
    assert response.status_code == 201, response.content
    event = Event.objects.get()
    delivery = Delivery.objects.get()
    assert (delivery.stream_id, delivery.event_id, delivery.status) == (
        webhook.pk,
        event.pk,
        "pending",
    )
    assert event.kind == "verify" and event.sub_id == {"format": "opaque", "id": str(webhook.pk)}
    body = response.json()
    assert response["Location"] == f"{DELIVERIES}/{delivery.pk}"
    assert body["id"] == delivery.pk and body["event"]["jti"] == event.jti.hex
    (uri,) = body["claims"]["events"]
    assert uri == "https://schemas.openid.net/secevent/ssf/event-type/verification"
    assert post(admin_api, f"{stream_path(webhook)}/test-event", key="t1").json() == body
    assert Event.objects.count() == 1
    change_set = api_change_sets("event stream test").get()
    assert entries(change_set)[0]["changes"] == {"test_event_sent": [None, event.jti.hex]}


def test_a_paused_stream_keeps_its_test_event(admin_api, webhook):
    streams.pause_stream(stream=webhook)
    assert post(admin_api, f"{stream_path(webhook)}/test-event").status_code == 201
    assert Delivery.objects.get().status == "pending"


# --- The delivery log --------------------------------------------------------------------------------


def test_the_delivery_log_filters_as_the_console(viewer_api, webhook, poll_stream):
    user_event = publish_event(at=timezone.now() - timedelta(days=3))
    group_event = publish_event("delete", resource_type="Group")
    failed = Delivery.objects.get(stream=webhook, event=user_event)
    Delivery.objects.filter(pk=failed.pk).update(status="failed", last_status_code=400)

    def ids(query: str = "") -> set[int]:
        return {row["id"] for row in walk(viewer_api, f"{DELIVERIES}?page_size=1&{query}")}

    def of(**filters) -> set[int]:
        return set(Delivery.objects.filter(**filters).values_list("id", flat=True))

    assert ids() == of() and len(of()) == 4
    assert ids(f"stream={poll_stream.pk}") == of(stream=poll_stream)
    assert ids("status=failed") == {failed.pk}
    assert ids("kind=delete") == of(event=group_event)
    assert ids("resource_type=User") == of(event=user_event)
    assert ids(f"resource={group_event.resource_id}") == of(event=group_event)
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(f"since={since.replace('+', '%2B')}") == of(event=group_event)
    assert ids(f"until={since.replace('+', '%2B')}") == of(event=user_event)
    # Newest first; a row names its stream and event, never the payload.
    rows = viewer_api.get(DELIVERIES).json()["results"]
    assert [r["id"] for r in rows] == sorted(of(), reverse=True)
    row = next(r for r in rows if r["id"] == failed.pk)
    assert row["stream"] == {"id": str(webhook.pk), "name": "HR app", "method": "webhook"}
    assert row["event"]["kind"] == "create" and row["last_status_code"] == 400
    assert "payload" not in row["event"] and "userName" not in str(rows)


def test_an_invalid_filter_is_a_400_never_no_filter(viewer_api, webhook):
    publish_event()
    response = viewer_api.get(
        f"{DELIVERIES}?resource=not-a-uuid&status=bogus&stream={uuid.uuid4()}"
    )
    fields = assert_error(response, 400, "invalid")["fields"]
    assert set(fields) == {"resource", "status", "stream"}
    assert_error(viewer_api.get(f"{DELIVERIES}?cursor=bogus"), 400, "invalid")


def test_the_delivery_detail_shows_attempts_and_the_set(viewer_api, webhook, poll_stream):
    event = publish_event()
    delivery = Delivery.objects.get(stream=webhook)
    DeliveryAttempt.objects.create(
        delivery=delivery,
        at=timezone.now(),
        status_code=400,
        latency_ms=12,
        response='{"err": "x"}',
    )
    body = viewer_api.get(f"{DELIVERIES}/{delivery.pk}").json()
    assert [(a["status_code"], a["latency_ms"], a["ok"]) for a in body["log"]] == [(400, 12, False)]
    assert body["claims"]["jti"] == event.jti.hex and body["claims"]["aud"] == HOOK
    assert "urn:ietf:params:scim:event:prov:create:notice" in body["claims"]["events"]
    polled = Delivery.objects.get(stream=poll_stream)
    claims = viewer_api.get(f"{DELIVERIES}/{polled.pk}").json()["claims"]
    assert claims["aud"] == f"http://testserver/events/v1/streams/{poll_stream.pk}/poll"
    for missing in ("999999", "-1", str(2**70)):
        assert_error(viewer_api.get(f"{DELIVERIES}/{missing}"), 404, "not_found")


def test_redeliver_requeues_and_keeps_the_log(admin_api, webhook):
    publish_event()
    delivery = Delivery.objects.get()
    DeliveryAttempt.objects.create(delivery=delivery, at=timezone.now(), status_code=400)
    Delivery.objects.filter(pk=delivery.pk).update(
        status="failed", attempts=4, last_status_code=400, last_error="invalid_request"
    )
    path = f"{DELIVERIES}/{delivery.pk}/redeliver"
    response = post(admin_api, path, key="d1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["attempts"], body["last_status_code"], body["last_error"]) == (
        "pending",
        0,
        None,
        "",
    )
    assert len(body["log"]) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    assert delivery.next_attempt_at <= timezone.now()
    assert post(admin_api, path, key="d1")["Idempotent-Replayed"] == "true"
    change_set = api_change_sets("event redeliver").get()
    assert change_set.request["api"]["delivery"] == delivery.pk
    assert entries(change_set)[0]["changes"] == {
        "redelivered_event": [None, str(delivery.event_id)]
    }
    assert_error(post(admin_api, f"{DELIVERIES}/999999/redeliver"), 404, "not_found")
