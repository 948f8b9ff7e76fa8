"""Event streams in a real browser: register a webhook stream and see its secret once,
send it a test event, replay, and read the delivery log with its live filters.
Screenshots land in tests/screenshots/event-*.png."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from provisioning.events import outbox, streams
from provisioning.events.models import Delivery, DeliveryAttempt, EventStream
from tests.events.helpers import publish_event

from .test_access_and_logs import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOOK = "https://hr.example.com/hooks/scim"


@pytest.fixture(autouse=True)
def no_sending(monkeypatch):
    """Deliveries stay as the test sets them: no delivery run is asked for (the sender is
    tested with a real receiver elsewhere; hr.example.com does not exist)."""
    asked: list[str] = []
    monkeypatch.setattr(outbox, "kick", lambda stream_ids: asked.extend(map(str, stream_ids)))
    return asked


def nav(page, label: str) -> None:
    page.get_by_role("navigation", name="Console").get_by_role("link", name=label).click()


def test_webhook_stream_secret_shown_once_then_test_event(
    live_server, page, screenshot, no_sending, settings
):
    settings.SCIMGATE_EVENTS_ALLOW_HTTP = False  # the production rule: https only
    login(page, live_server, "administrator")
    nav(page, "Event streams")
    page.wait_for_url(f"{live_server.url}/event-streams/")
    page.get_by_role("link", name="New event stream").click()
    page.wait_for_url(f"{live_server.url}/event-streams/new/")
    page.get_by_label("Name").fill("HR system")
    page.get_by_label("Webhook (Standard Webhooks)").check()
    # A plain-http receiver is refused with the reason next to the field.
    page.get_by_label("Receiver URL").fill("http://hr.example.com/hooks/scim")
    page.get_by_label("User", exact=True).check()
    page.get_by_role("button", name="Create stream").click()
    assert page.get_by_text("is not an https URL").is_visible()
    assert page.get_by_label("User", exact=True).is_checked()  # the rest is kept
    screenshot("event-stream-new-error")
    assert not EventStream.objects.exists()

    page.get_by_label("Receiver URL").fill(HOOK)
    page.get_by_role("button", name="Create stream").click()
    page.wait_for_selector("#credential-value")
    assert page.get_by_role("heading", name="Event stream HR system created").is_visible()
    secret = page.locator("#credential-value").input_value()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
    stream = EventStream.objects.get(name="HR system")
    assert streams.webhook_secret(stream) == secret
    page.get_by_role("button", name="Copy secret").click()
    page.get_by_text("Secret copied to the clipboard.").wait_for()
    screenshot("event-stream-secret")

    # Done: the stream's page never shows the secret again.
    page.get_by_role("link", name=re.compile("Done")).click()
    page.wait_for_url(f"{live_server.url}/event-streams/{stream.pk}/")
    assert secret not in page.content()
    assert page.get_by_text(HOOK).is_visible()
    screenshot("event-stream-detail")

    # A test event reaches only this stream; its page shows the decoded claims.
    page.get_by_role("button", name="Send test event").click()
    page.wait_for_url(re.compile(r"/event-deliveries/events/\d+/$"))
    claims = page.get_by_label("SET claims for HR system")
    assert "ssf/event-type/verification" in claims.inner_text()
    assert str(stream.pk) in claims.inner_text()
    screenshot("event-test-event")
    assert Delivery.objects.filter(stream=stream).count() == 1
    assert no_sending == [str(stream.pk)]  # a delivery run was asked for

    # Pause: the dashboard says so.
    page.goto(f"{live_server.url}/event-streams/{stream.pk}/")
    page.get_by_role("button", name="Pause").click()
    page.wait_for_url(f"{live_server.url}/event-streams/{stream.pk}/")
    assert page.get_by_text("Paused by an operator.").is_visible()
    nav(page, "Dashboard")
    page.wait_for_url(f"{live_server.url}/")
    assert page.get_by_text("1 event stream not delivering").is_visible()
    screenshot("event-dashboard-paused")


def test_delivery_log_with_live_filters(live_server, page, screenshot):
    hr, _ = streams.create_stream(name="HR system", method="webhook", endpoint_url=HOOK)
    siem, _ = streams.create_stream(name="SIEM", method="push", endpoint_url=HOOK)
    for minutes in range(6):
        publish_event(at=timezone.now() - timedelta(minutes=10 - minutes))
    publish_event("delete", resource_type="Group")
    refused = Delivery.objects.filter(stream=siem).order_by("id").first()
    Delivery.objects.filter(pk=refused.pk).update(
        status="failed", attempts=1, last_status_code=400, last_error='{"err": "invalid_audience"}'
    )
    DeliveryAttempt.objects.create(
        delivery=refused,
        at=timezone.now(),
        status_code=400,
        latency_ms=31,
        response='{"err": "invalid_audience", "description": "aud mismatch"}',
    )
    Delivery.objects.filter(stream=hr).exclude(event__resource_type="Group").update(
        status="delivered", attempts=1, delivered_at=timezone.now()
    )
    EventStream.objects.filter(pk=siem.pk).update(
        last_error="HTTP 400 invalid_audience", last_failure_at=timezone.now()
    )

    login(page, live_server, "administrator")
    nav(page, "Event streams")
    page.wait_for_url(f"{live_server.url}/event-streams/")
    assert page.get_by_role("cell", name="SIEM").is_visible()
    screenshot("event-streams")

    nav(page, "Delivery log")
    page.wait_for_url(f"{live_server.url}/event-deliveries/")
    rows = page.locator("#results tbody tr")
    assert rows.count() == 14
    screenshot("event-delivery-log")
    # Choosing a status refreshes the results in place (htmx) and the address follows.
    page.get_by_label("Status").select_option(label="Refused by the receiver")
    page.wait_for_url(re.compile(r"status=failed"))
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length === 1")
    assert rows.first.get_by_text("SIEM").is_visible()
    screenshot("event-delivery-log-refused")

    # Redeliver from the row: the row is swapped for its new state.
    rows.first.get_by_role("button", name="Redeliver").click()
    rows.first.get_by_text("Queued again for SIEM.").wait_for()
    refused.refresh_from_db()
    assert refused.status == "pending" and refused.attempts == 0

    rows.first.get_by_role("link", name="prov:create").click()
    page.wait_for_url(re.compile(r"/event-deliveries/\d+/$"))
    assert page.get_by_text("aud mismatch").is_visible()
    assert (
        "urn:ietf:params:scim:event:prov:create:notice"
        in page.get_by_label("SET claims", exact=True).inner_text()
    )
    screenshot("event-delivery-detail")
