"""Console pages for event streams: roles, forms and their errors, credentials shown
once, actions, the delivery log and its filters, event claims, the dashboard notice."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from provisioning.audit.models import AuditEntry
from provisioning.events import streams
from provisioning.events.models import Delivery, DeliveryAttempt, Event, EventStream
from tests.events.helpers import publish_event

from .conftest import XSS, csrf_token

pytestmark = pytest.mark.django_db

HOOK = "https://receiver.example.com/hooks/scim"


@pytest.fixture
def webhook():
    stream, _ = streams.create_stream(name="HR app", method="webhook", endpoint_url=HOOK)
    return stream


@pytest.fixture
def poll():
    stream, _ = streams.create_stream(name="Pollster", method="poll")
    return stream


def post(client, url: str, data: dict | None = None, *, page: str = "/event-streams/", **extra):
    """A POST carrying the CSRF token a console page handed out (the clients enforce it)."""
    token = csrf_token(client, page)
    return client.post(url, {"csrfmiddlewaretoken": token, **(data or {})}, **extra)


# --- list, detail, roles ------------------------------------------------------------------


def test_viewer_sees_streams_and_their_health_but_no_controls(viewer_client, webhook):
    publish_event()
    publish_event()
    Delivery.objects.filter(stream=webhook).update(created_at=timezone.now() - timedelta(minutes=7))
    page = viewer_client.get("/event-streams/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "HR app" in html and "Webhook (Standard Webhooks)" in html
    assert "7 min" in html  # lag: the oldest undelivered delivery's age
    assert "New event stream" not in html
    detail = viewer_client.get(f"/event-streams/{webhook.pk}/").content.decode()
    assert "Backlog" in detail and ">2</a> not yet delivered" in detail
    assert "Send test event" not in detail and f"/event-streams/{webhook.pk}/pause/" not in detail
    assert HOOK in detail


@pytest.mark.parametrize("fixture", ["viewer_client", "approver_client"])
def test_changes_need_the_administrator_role(request, fixture, webhook):
    client = request.getfixturevalue(fixture)
    token = csrf_token(client, "/event-streams/")
    for path in ("pause", "resume", "test-event", "credential", "replay", "delete", "edit"):
        response = client.post(
            f"/event-streams/{webhook.pk}/{path}/", {"csrfmiddlewaretoken": token}
        )
        assert response.status_code == 403, path
    assert client.post("/event-streams/new/", {"csrfmiddlewaretoken": token}).status_code == 403
    assert EventStream.objects.get(pk=webhook.pk).state == "active"
    assert not Event.objects.exists()


def test_posts_without_a_csrf_token_are_refused(admin_client, webhook):
    response = admin_client.post(f"/event-streams/{webhook.pk}/pause/")
    assert response.status_code == 403
    assert EventStream.objects.get(pk=webhook.pk).state == "active"


# --- create, edit ---------------------------------------------------------------------------


def test_creating_a_webhook_stream_shows_its_secret_once(admin_client, administrator):
    response = post(
        admin_client,
        "/event-streams/new/",
        {
            "name": "HR app",
            "method": "webhook",
            "endpoint_url": HOOK,
            "resource_types": ["User"],
            "payload": "notice",
            "pause_after": "86400",
        },
    )
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"] and "no-store" in response["Cache-Control"]
    secret = re.search(r'value="(whsec_[^"]+)"', response.content.decode()).group(1)
    stream = EventStream.objects.get(name="HR app")
    assert streams.webhook_secret(stream) == secret
    assert stream.resource_types == ["User"] and stream.created_by == administrator
    # Never again: not on the detail page, not in the audit log page.
    assert secret not in admin_client.get(f"/event-streams/{stream.pk}/").content.decode()
    audit = admin_client.get("/audit/?resource_type=events.eventstream").content.decode()
    assert "HR app" in audit and secret not in audit
    assert f"/event-streams/{stream.pk}/" in audit  # entries link to the stream


def test_creating_a_poll_stream_shows_the_poll_url_and_token(admin_client):
    response = post(
        admin_client,
        "/event-streams/new/",
        {"name": "P", "method": "poll", "payload": "full", "pause_after": "3600"},
    )
    html = response.content.decode()
    stream = EventStream.objects.get(name="P")
    assert f'value="http://testserver/events/v1/streams/{stream.pk}/poll"' in html
    token = re.search(r'value="(scgev_[^"]+)"', html).group(1)
    assert streams.poll_token_matches(stream, token)


def test_creating_a_push_stream_goes_to_its_page(admin_client):
    response = post(
        admin_client,
        "/event-streams/new/",
        {
            "name": "SIEM",
            "method": "push",
            "endpoint_url": HOOK,
            "authorization": "Bearer zz",
            "payload": "notice",
            "pause_after": "3600",
        },
    )
    stream = EventStream.objects.get(name="SIEM")
    assert response.status_code == 302 and response["Location"] == f"/event-streams/{stream.pk}/"
    page = admin_client.get(response["Location"]).content.decode()
    assert "set (not shown)" in page and "Bearer zz" not in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"endpoint_url": "http://receiver.example.com/"}, "is not an https URL"),
        ({"endpoint_url": ""}, "needs the receiver"),
        ({"method": "poll"}, "A poll stream has no endpoint"),
        ({"name": "taken"}, "already exists"),
        ({"event_kinds": ["asyncresp"]}, "bound to a SCIM client"),
        ({"authorization": "Bearer x"}, "Only a SET push stream"),
        ({"method": ""}, "This field is required"),
        ({"pause_after": "5"}, "Select a valid choice"),
    ],
)
def test_form_errors_are_shown_and_nothing_is_created(admin_client, data, message, settings):
    settings.SCIMGATE_EVENTS_ALLOW_HTTP = False  # the production rule: https only
    streams.create_stream(name="Taken", method="poll")
    values = {
        "name": "New",
        "method": "webhook",
        "endpoint_url": HOOK,
        "payload": "notice",
        "pause_after": "3600",
        **data,
    }
    response = post(admin_client, "/event-streams/new/", values)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert EventStream.objects.count() == 1


def test_editing_keeps_the_authorization_header_unless_changed(admin_client):
    stream, _ = streams.create_stream(
        name="SIEM", method="push", endpoint_url=HOOK, authorization="Bearer one"
    )
    form = admin_client.get(f"/event-streams/{stream.pk}/edit/").content.decode()
    assert "Bearer one" not in form and 'name="method"' not in form
    base = {
        "name": "SIEM 2",
        "endpoint_url": HOOK,
        "payload": "full",
        "pause_after": "86400",
        "event_kinds": ["create", "delete"],
    }
    response = post(admin_client, f"/event-streams/{stream.pk}/edit/", base)
    assert response.status_code == 302
    stream.refresh_from_db()
    assert (stream.name, stream.payload, stream.event_kinds) == (
        "SIEM 2",
        "full",
        ["create", "delete"],
    )
    assert streams.authorization_header(stream) == "Bearer one"
    post(admin_client, f"/event-streams/{stream.pk}/edit/", {**base, "remove_authorization": "on"})
    stream.refresh_from_db()
    assert stream.authorization == ""
    bad = post(
        admin_client, f"/event-streams/{stream.pk}/edit/", {**base, "endpoint_url": "ftp://x"}
    )
    assert bad.status_code == 400 and "not an https URL" in bad.content.decode()


# --- actions ---------------------------------------------------------------------------------


def test_pause_resume_and_the_dashboard_notice(admin_client, viewer_client, webhook):
    assert "not delivering" not in viewer_client.get("/").content.decode()
    response = post(admin_client, f"/event-streams/{webhook.pk}/pause/")
    assert response.status_code == 302
    assert EventStream.objects.get(pk=webhook.pk).state == "paused"
    home = viewer_client.get("/").content.decode()
    assert "1 event stream not delivering" in home and "paused by an operator" in home
    assert (
        "Paused by an operator."
        in viewer_client.get(f"/event-streams/{webhook.pk}/").content.decode()
    )
    post(admin_client, f"/event-streams/{webhook.pk}/resume/")
    assert EventStream.objects.get(pk=webhook.pk).state == "active"
    EventStream.objects.filter(pk=webhook.pk).update(
        state="failing",
        failing_since=timezone.now() - timedelta(hours=25),
        last_error="HTTP 503 <b>down</b>",
    )
    home = viewer_client.get("/").content.decode()
    assert "paused after failing since" in home and "HTTP 503 &lt;b&gt;down&lt;/b&gt;" in home
    detail = viewer_client.get(f"/event-streams/{webhook.pk}/").content.decode()
    assert "Paused: the receiver has been failing" in detail
    nav = viewer_client.get("/event-streams/").content.decode()
    assert re.search(r"Event streams</span>\s*<span class=\"count\"[^>]*>1<", nav)


def test_send_test_event_and_its_claims(admin_client, webhook):
    response = post(admin_client, f"/event-streams/{webhook.pk}/test-event/")
    event = Event.objects.get()
    assert (
        response.status_code == 302
        and response["Location"] == f"/event-deliveries/events/{event.pk}/"
    )
    page = admin_client.get(response["Location"]).content.decode()
    assert "https://schemas.openid.net/secevent/ssf/event-type/verification" in page
    assert f"&quot;id&quot;: &quot;{webhook.pk}&quot;" in page
    assert Delivery.objects.get().stream == webhook


def test_rotating_shows_the_new_credential_once(admin_client, webhook, poll):
    response = post(admin_client, f"/event-streams/{webhook.pk}/credential/")
    secret = re.search(r'value="(whsec_[^"]+)"', response.content.decode()).group(1)
    webhook.refresh_from_db()
    assert streams.webhook_secret(webhook) == secret
    assert "no longer verify" in response.content.decode()
    response = post(admin_client, f"/event-streams/{poll.pk}/credential/")
    token = re.search(r'value="(scgev_[^"]+)"', response.content.decode()).group(1)
    poll.refresh_from_db()
    assert streams.poll_token_matches(poll, token)
    push, _ = streams.create_stream(name="SIEM", method="push", endpoint_url=HOOK)
    refused = post(admin_client, f"/event-streams/{push.pk}/credential/")
    assert refused.status_code == 302
    assert "has no secret" in admin_client.get(refused["Location"]).content.decode()


def test_replay_from_a_time(admin_client, webhook):
    old = publish_event(at=timezone.now() - timedelta(days=2), candidates=[])
    recent = publish_event(at=timezone.now() - timedelta(hours=1), candidates=[])
    since = (timezone.now() - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    response = post(admin_client, f"/event-streams/{webhook.pk}/replay/", {"since": since})
    assert response.status_code == 302
    assert list(Delivery.objects.filter(stream=webhook).values_list("event_id", flat=True)) == [
        recent.pk
    ]
    assert old.pk not in Delivery.objects.values_list("event_id", flat=True)
    assert "1 delivery queued (1 new)" in admin_client.get(response["Location"]).content.decode()
    future = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = post(admin_client, f"/event-streams/{webhook.pk}/replay/", {"since": future})
    assert "in the future" in admin_client.get(response["Location"]).content.decode()
    response = post(admin_client, f"/event-streams/{webhook.pk}/replay/", {"since": "yesterday"})
    assert "Enter a valid date/time" in admin_client.get(response["Location"]).content.decode()


def test_delete_asks_first(admin_client, webhook):
    confirm = admin_client.get(f"/event-streams/{webhook.pk}/delete/confirm/")
    assert confirm.status_code == 200 and "Delete event stream HR app?" in confirm.content.decode()
    response = post(admin_client, f"/event-streams/{webhook.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/event-streams/"
    assert not EventStream.objects.exists()
    assert AuditEntry.objects.filter(
        content_type__model="eventstream", action=AuditEntry.Action.DELETE
    ).exists()


@pytest.mark.parametrize(
    ("action", "data"),
    [("delete", {}), ("replay", {"since": "2026-01-01T00:00"})],
)
def test_delete_and_replay_need_a_step_up(admin_client, webhook, settings, action, data):
    # Both drop or rewrite deliveries the receiver is owed: a stale sign-in steps up first.
    from tests.signin.conftest import age_session

    settings.SCIMGATE_STEP_UP_MINUTES = 15
    publish_event(candidates=[webhook])
    before = list(Delivery.objects.values_list("pk", "status", "next_attempt_at"))
    age_session(admin_client, authenticated=20 * 60)
    response = post(
        admin_client,
        f"/event-streams/{webhook.pk}/{action}/",
        data,
        HTTP_REFERER=f"http://testserver/event-streams/{webhook.pk}/",
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/account/step-up/?next=")
    assert EventStream.objects.filter(pk=webhook.pk).exists()
    assert list(Delivery.objects.values_list("pk", "status", "next_attempt_at")) == before


# --- delivery log ----------------------------------------------------------------------------


def test_delivery_log_filters(viewer_client, webhook, poll):
    user_event = publish_event(at=timezone.now() - timedelta(days=3))
    group_event = publish_event("delete", resource_type="Group")
    failed = Delivery.objects.get(stream=webhook, event=user_event)
    Delivery.objects.filter(pk=failed.pk).update(
        status="failed", last_status_code=400, last_error="invalid_request"
    )

    def ids(query: str) -> set[int]:
        response = viewer_client.get("/event-deliveries/?" + query)
        assert response.status_code == 200
        return {int(m) for m in re.findall(r'id="delivery-(\d+)"', response.content.decode())}

    all_ids = set(Delivery.objects.values_list("id", flat=True))
    assert ids("") == all_ids and len(all_ids) == 4
    assert ids(f"stream={poll.pk}") == set(
        Delivery.objects.filter(stream=poll).values_list("id", flat=True)
    )
    assert ids("status=failed") == {failed.pk}
    assert ids("kind=delete") == set(
        Delivery.objects.filter(event=group_event).values_list("id", flat=True)
    )
    assert ids("resource_type=User") == set(
        Delivery.objects.filter(event=user_event).values_list("id", flat=True)
    )
    assert ids(f"resource={group_event.resource_id}") == set(
        Delivery.objects.filter(event=group_event).values_list("id", flat=True)
    )
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert ids(f"since={since}") == set(
        Delivery.objects.filter(event=group_event).values_list("id", flat=True)
    )
    assert ids(f"until={since}") == set(
        Delivery.objects.filter(event=user_event).values_list("id", flat=True)
    )
    # An invalid filter is shown as an error and ignored, never a 500.
    page = viewer_client.get("/event-deliveries/?resource=not-a-uuid&status=bogus").content.decode()
    assert "Enter a valid UUID" in page and "Select a valid choice" in page


def test_delivery_log_pages_and_answers_htmx_with_its_results(viewer_client, webhook):
    for _ in range(51):
        publish_event()
    first = viewer_client.get("/event-deliveries/").content.decode()
    assert first.count('id="delivery-') == 50 and 'rel="next"' in first
    after = re.search(r'href="\?after=(\d+)"', first).group(1)
    second = viewer_client.get(f"/event-deliveries/?after={after}").content.decode()
    assert second.count('id="delivery-') == 1
    partial = viewer_client.get("/event-deliveries/?status=pending", HTTP_HX_REQUEST="true")
    html = partial.content.decode()
    assert html.lstrip().startswith('<section id="results"') and "<html" not in html
    assert "HX-Request" in partial["Vary"]


def test_delivery_detail_shows_attempts_and_escaped_claims(viewer_client, webhook):
    event = publish_event()
    Event.objects.filter(pk=event.pk).update(payload={"version": 'W/"2"', "attributes": [XSS]})
    delivery = Delivery.objects.get(stream=webhook)
    DeliveryAttempt.objects.create(
        delivery=delivery,
        at=timezone.now(),
        status_code=400,
        latency_ms=12,
        response='{"err": "<script>x</script>"}',
    )
    page = viewer_client.get(f"/event-deliveries/{delivery.pk}/").content.decode()
    assert XSS not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>x</script>" not in page and "12 ms" in page
    assert f"&quot;jti&quot;: &quot;{event.jti.hex}&quot;" in page
    assert "urn:ietf:params:scim:event:prov:create:notice" in page
    event_page = viewer_client.get(f"/event-deliveries/events/{event.pk}/").content.decode()
    assert XSS not in event_page and "HR app" in event_page


def test_poll_stream_claims_carry_the_poll_url_as_audience(viewer_client, poll):
    publish_event()
    delivery = Delivery.objects.get(stream=poll)
    page = viewer_client.get(f"/event-deliveries/{delivery.pk}/").content.decode()
    assert (
        f"&quot;aud&quot;: &quot;http://testserver/events/v1/streams/{poll.pk}/poll&quot;" in page
    )


def test_redeliver_answers_htmx_with_the_row(admin_client, webhook):
    publish_event()
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(
        status="failed", attempts=4, last_status_code=400
    )
    response = post(
        admin_client,
        f"/event-deliveries/{delivery.pk}/redeliver/",
        {"next": "/event-deliveries/?status=failed"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and response["X-Console-Fragment"] == "row"
    html = response.content.decode()
    assert f'<tr id="delivery-{delivery.pk}"' in html and "<html" not in html
    assert "Queued again for HR app." in html
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    # Without JavaScript: back to where the form was, the outcome as a message.
    response = post(
        admin_client,
        f"/event-deliveries/{delivery.pk}/redeliver/",
        {"next": "/event-deliveries/?status=pending"},
    )
    assert (
        response.status_code == 302 and response["Location"] == "/event-deliveries/?status=pending"
    )


def test_unknown_ids_are_404(viewer_client):
    assert viewer_client.get("/event-deliveries/999/").status_code == 404
    assert viewer_client.get("/event-deliveries/events/999/").status_code == 404
    assert (
        viewer_client.get("/event-streams/00000000-0000-0000-0000-000000000000/").status_code == 404
    )
