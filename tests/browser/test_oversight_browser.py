"""Oversight in a real browser: held operations, flagged changes, quarantines, policies.

SCIM requests go over HTTP to the live server with a bearer token, exactly as an
IdP sends them; the console is driven through Chromium. Every oversight page is
saved as a 1280x800 screenshot in tests/screenshots/.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from importlib import import_module

import pytest
from django.apps import apps
from django.db import OperationalError
from playwright.sync_api import expect

from provisioning.access.clients import scim_client_create
from provisioning.access.operators import operator_create
from provisioning.audit.models import RequestLog
from provisioning.oversight.models import CircuitBreaker, PendingOperation, PolicyRule, Review

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple-42"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
DEACTIVATE = {
    "schemas": [PATCH],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}


class Idp:
    """A SCIM client talking HTTP to the live server."""

    def __init__(self, live_server, name: str = "okta-prod"):
        self.client, self.token = scim_client_create(name=name, role="provisioner")
        self.base = f"{live_server.url}/scim/v2"

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        logged = _request_logs()
        try:
            return self._send(method, path, body)
        finally:
            _wait_for_request_log(logged)

    def _send(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/scim+json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the live server
                raw = response.read()
                return response.status, json.loads(raw) if raw else {}
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else {}

    def create_user(self, user_name: str, **attrs) -> dict:
        status, body = self.call(
            "POST", "/Users", {"schemas": [USER], "userName": user_name, **attrs}
        )
        assert status == 201, body
        return body


def _request_logs() -> int:
    for _ in range(100):
        try:
            return RequestLog.objects.count()
        except OperationalError:  # SQLite: the server thread holds the table
            time.sleep(0.02)
    raise AssertionError("the database stayed locked")


def _wait_for_request_log(before: int) -> None:
    """The server writes the request log after the response is sent: wait until it has, so
    this thread's next query does not race the server's write (SQLite locks whole tables)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _request_logs() <= before:
        time.sleep(0.02)


def login(page, live_server, role: str, username: str | None = None) -> None:
    username = username or f"{role}-op"
    operator_create(username=username, role=role, password=PASSWORD)
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/")


BUILT_IN = {
    "Hold user deletions": ("delete_user", "hold"),
    "Flag deactivations": ("deactivate_user", "flag"),
}


def enable(name: str) -> PolicyRule:
    """Switch on a built-in rule (a transactional test may have flushed the migration's rows)."""
    kind, action = BUILT_IN[name]
    rule, _ = PolicyRule.objects.update_or_create(
        name=name, defaults={"kind": kind, "action": action, "enabled": True}
    )
    return rule


def test_a_held_scim_delete_is_approved_in_the_browser(live_server, page, screenshot):
    enable("Hold user deletions")
    idp = Idp(live_server)
    user = idp.create_user("leaver@example.com", displayName="Lee Ver", title="Analyst")
    idp.create_user("stayer@example.com")
    status, body = idp.call("DELETE", f"/Users/{user['id']}")
    assert status == 202 and body["status"] == "pending"
    assert idp.call("GET", f"/Users/{user['id']}")[0] == 200

    login(page, live_server, "approver")
    nav = page.get_by_role("navigation", name="Console")
    assert nav.get_by_role("link", name=re.compile("Pending operations")).inner_text().endswith("1")
    screenshot("oversight-dashboard")
    nav.get_by_role("link", name=re.compile("Pending operations")).click()
    page.wait_for_url(f"{live_server.url}/pending/")
    row = page.locator("#results tbody tr").filter(has_text="leaver@example.com")
    expect(row.get_by_text("Hold user deletions")).to_be_visible()
    screenshot("pending-queue")

    row.get_by_role("link", name="leaver@example.com").click()
    page.wait_for_url(re.compile(r"/pending/[0-9a-f-]+/$"))
    expect(page.get_by_role("heading", name=re.compile("Current state"))).to_be_visible()
    expect(page.locator("table.diff").get_by_text("Analyst")).to_be_visible()
    screenshot("pending-detail")
    page.go_back()

    # Approve inline: htmx swaps the row in place (no page load), after a confirmation.
    page.evaluate("window.__sameDocument = true")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Approve").click()
    page.wait_for_selector("#results tr.decided")
    assert "Approved and applied" in row.inner_text()
    assert page.evaluate("window.__sameDocument") is True
    screenshot("pending-approved-row")

    assert idp.call("GET", f"/Users/{user['id']}")[0] == 404
    assert PendingOperation.objects.get().status == PendingOperation.Status.APPLIED


def test_rejecting_inline_with_a_reason_and_bulk_approval(live_server, page, screenshot):
    enable("Hold user deletions")
    idp = Idp(live_server)
    users = [idp.create_user(f"bulk{i}@example.com") for i in range(3)]
    for user in users:
        assert idp.call("DELETE", f"/Users/{user['id']}")[0] == 202
    login(page, live_server, "approver")
    page.goto(f"{live_server.url}/pending/")

    first = page.locator("#results tbody tr").filter(has_text="bulk0@example.com")
    first.get_by_text("Reject…").click()
    first.get_by_label("Reason for rejecting").fill("Still employed")
    first.get_by_role("button", name="Reject", exact=True).click()
    page.wait_for_selector("#results tr.decided")
    assert "Rejected" in first.inner_text()

    page.reload()
    for name in ("bulk1@example.com", "bulk2@example.com"):
        page.locator("#results tbody tr").filter(has_text=name).get_by_role("checkbox").check()
    page.get_by_role("button", name="Approve…").click()
    page.wait_for_url(re.compile(r"/pending/bulk/\?"))
    expect(page.get_by_role("heading", name="Approve 2 operations?")).to_be_visible()
    screenshot("pending-bulk-confirm")
    page.get_by_role("button", name="Approve 2 operations").click()
    expect(page.get_by_role("heading", name="Approved 2 of 2")).to_be_visible()
    screenshot("pending-bulk-result")

    assert idp.call("GET", f"/Users/{users[0]['id']}")[0] == 200
    assert all(idp.call("GET", f"/Users/{u['id']}")[0] == 404 for u in users[1:])


def test_the_user_page_shows_held_and_rejected_idp_changes(live_server, page, screenshot):
    enable("Hold user deletions")
    PolicyRule.objects.update_or_create(
        name="Hold deactivations",
        defaults={"kind": "deactivate_user", "action": "hold", "enabled": True},
    )
    idp = Idp(live_server)
    user = idp.create_user("drift@example.com", displayName="Dri Ft", active=True)
    assert idp.call("DELETE", f"/Users/{user['id']}")[0] == 202
    login(page, live_server, "approver")
    page.goto(f"{live_server.url}/pending/")
    row = page.locator("#results tbody tr").filter(has_text="drift@example.com")
    row.get_by_text("Reject…").click()
    row.get_by_label("Reason for rejecting").fill("Still employed")
    row.get_by_role("button", name="Reject", exact=True).click()
    page.wait_for_selector("#results tr.decided")
    assert idp.call("PATCH", f"/Users/{user['id']}", DEACTIVATE)[0] == 202

    page.goto(f"{live_server.url}/users/{user['id']}/")
    held = page.locator("#held-changes")
    expect(held.get_by_text("Waiting for approval")).to_be_visible()
    expect(held.get_by_text("The identity provider believes this was applied.")).to_be_visible()
    expect(held.get_by_text("never applied")).to_be_visible()
    screenshot("user-detail-held-changes")
    held.get_by_role("link", name="See the decision").click()
    page.wait_for_url(re.compile(r"/pending/[0-9a-f-]+/$"))
    expect(page.get_by_text("Still employed").first).to_be_visible()


def test_a_flagged_deactivation_is_rolled_back_in_the_browser(live_server, page, screenshot):
    enable("Flag deactivations")
    idp = Idp(live_server)
    user = idp.create_user("flagged@example.com", active=True, displayName="Fla Gged")
    status, body = idp.call("PATCH", f"/Users/{user['id']}", DEACTIVATE)
    assert status == 200 and body["active"] is False
    review = Review.objects.get()

    login(page, live_server, "approver")
    nav = page.get_by_role("navigation", name="Console")
    nav.get_by_role("link", name=re.compile("Flagged changes")).click()
    page.wait_for_url(f"{live_server.url}/reviews/")
    screenshot("reviews-queue")
    page.get_by_role("link", name=f"Change set {review.change_set_id}").click()
    page.wait_for_url(f"{live_server.url}/reviews/{review.pk}/")
    diff_row = page.locator("table.diff tr").filter(has_text="active")
    assert "true" in diff_row.inner_text() and "false" in diff_row.inner_text()
    screenshot("review-detail")

    page.get_by_role("link", name="Roll back…").click()
    page.wait_for_url(re.compile(r"/changesets/\d+/rollback/$"))
    assert page.get_by_role(
        "heading", name=f"Roll back change set {review.change_set_id}?"
    ).is_visible()
    screenshot("rollback-confirm")
    page.get_by_role("button", name="Roll back", exact=True).click()
    page.wait_for_url(f"{live_server.url}/reviews/{review.pk}/")
    expect(page.get_by_text("rolled back as change set")).to_be_visible()
    screenshot("review-rolled-back")

    assert idp.call("GET", f"/Users/{user['id']}")[1]["active"] is True


def test_a_rollback_conflict_needs_force(live_server, page, screenshot):
    enable("Flag deactivations")
    idp = Idp(live_server)
    user = idp.create_user("conflict@example.com", active=True)
    idp.call("PATCH", f"/Users/{user['id']}", DEACTIVATE)
    review = Review.objects.get()
    rename = {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "path": "title", "value": "Later"}],
    }
    idp.call("PATCH", f"/Users/{user['id']}", rename)

    login(page, live_server, "approver")
    page.goto(f"{live_server.url}/changesets/{review.change_set_id}/rollback/")
    expect(page.get_by_text("1 resource changed after this change set.")).to_be_visible()
    expect(page.get_by_role("cell", name=re.compile("conflict It changed after"))).to_be_visible()
    screenshot("rollback-conflict")
    page.get_by_label("Force: overwrite the later changes").check()
    page.get_by_role("button", name="Roll back with force").click()
    page.wait_for_url(f"{live_server.url}/reviews/{review.pk}/")
    assert idp.call("GET", f"/Users/{user['id']}")[1]["active"] is True


def test_a_viewer_sees_no_actions_and_posting_one_is_refused(live_server, page, screenshot):
    enable("Hold user deletions")
    enable("Flag deactivations")
    idp = Idp(live_server)
    user = idp.create_user("held@example.com", active=True)
    idp.call("PATCH", f"/Users/{user['id']}", DEACTIVATE)
    idp.call("DELETE", f"/Users/{user['id']}")
    pending = PendingOperation.objects.get()
    review = Review.objects.get()

    login(page, live_server, "viewer")
    for path in (
        "/pending/",
        f"/pending/{pending.pk}/",
        "/reviews/",
        f"/reviews/{review.pk}/",
        "/policies/",
    ):
        page.goto(live_server.url + path)
        main = page.locator("main")
        for name in ("Approve", "Reject", "Accept", "Roll back…", "Disable", "Edit", "New rule"):
            assert main.get_by_role("button", name=name, exact=True).count() == 0, (path, name)
            assert main.get_by_role("link", name=name, exact=True).count() == 0, (path, name)
        assert main.locator("form[method=post]").count() == 0, path
    screenshot("pending-viewer")

    # Posting directly, with a valid CSRF token, is refused by the role check.
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    for path in (f"/pending/{pending.pk}/approve/", f"/reviews/{review.pk}/accept/"):
        response = page.request.post(
            live_server.url + path,
            headers={"X-CSRFToken": token, "Referer": live_server.url + "/pending/"},
            form={"reason": "x"},
        )
        assert response.status == 403, path
    assert PendingOperation.objects.get().status == PendingOperation.Status.PENDING
    assert Review.objects.get().status == Review.Status.OPEN


def test_quarantine_and_policy_pages(live_server, page, screenshot):
    CircuitBreaker.objects.all().delete()
    CircuitBreaker.objects.create(max_operations=2)
    # The built-in rules (off), as the migration creates them, for the policies page.
    import_module("provisioning.oversight.migrations.0002_defaults").create_defaults(apps, None)
    idp = Idp(live_server, name="entra-burst")
    users = [idp.create_user(f"burst{i}@example.com", active=True) for i in range(5)]
    established()
    statuses = [idp.call("PATCH", f"/Users/{u['id']}", DEACTIVATE)[0] for u in users]
    assert statuses == [200, 200, 202, 202, 202]

    login(page, live_server, "administrator")
    expect(page.get_by_text("1 SCIM client quarantined")).to_be_visible()
    screenshot("dashboard-quarantine")
    page.get_by_role("navigation", name="Console").get_by_role(
        "link", name=re.compile("Quarantines")
    ).click()
    screenshot("quarantines")
    page.get_by_role("link", name="Review…").click()
    page.wait_for_url(re.compile(r"/quarantines/[0-9a-f-]+/$"))
    screenshot("quarantine-detail")
    page.get_by_role("checkbox", name=re.compile("burst3@example.com")).check()
    page.get_by_role("button", name="Release selected…").click()
    expect(page.get_by_role("heading", name=re.compile("Release the quarantine"))).to_be_visible()
    screenshot("quarantine-release-confirm")
    page.get_by_role("button", name="Release: apply 1, discard 2").click()
    expect(page.get_by_text("1 operation approved, 2 discarded")).to_be_visible()
    assert idp.call("GET", f"/Users/{users[3]['id']}")[1]["active"] is False
    assert idp.call("GET", f"/Users/{users[2]['id']}")[1]["active"] is True

    # A second burst trips the breaker again; this time everything is discarded.
    again = [idp.create_user(f"again{i}@example.com", active=True) for i in range(4)]
    established()
    statuses = [idp.call("PATCH", f"/Users/{u['id']}", DEACTIVATE)[0] for u in again]
    assert statuses == [200, 200, 202, 202]
    page.goto(f"{live_server.url}/quarantines/")
    page.get_by_role("link", name="Review…").click()
    page.get_by_role("link", name="Discard all…").click()
    screenshot("quarantine-discard-confirm")
    page.get_by_role("button", name=re.compile(r"Discard \d+ operation")).click()
    expect(page.get_by_text("discarded").first).to_be_visible()

    page.goto(f"{live_server.url}/policies/")
    screenshot("policies")
    page.get_by_role("link", name="New rule").click()
    page.get_by_label("Name", exact=True).fill("Hold title changes")
    page.get_by_label("Applies to", exact=True).select_option("attribute_change")
    page.get_by_label(re.compile(r"^Attributes")).fill("title\nnot-an-attribute")
    page.get_by_label("Action", exact=True).select_option("hold")
    page.get_by_role("button", name="Create rule").click()
    expect(page.get_by_text("“not-an-attribute” is not a User or Group attribute.")).to_be_visible()
    assert page.get_by_text("Name at least one attribute").count() == 0
    screenshot("policy-form-errors")
    page.get_by_label(re.compile(r"^Attributes")).fill("title")
    page.get_by_role("button", name="Create rule").click()
    page.wait_for_url(f"{live_server.url}/policies/")
    row = page.locator("tr").filter(has_text="Hold title changes")
    expect(row.get_by_text("Enabled")).to_be_visible()
    row.get_by_role("button", name=re.compile("Disable")).click()
    expect(page.get_by_text("Rule “Hold title changes” disabled.")).to_be_visible()
    expect(
        page.locator("tr").filter(has_text="Hold title changes").get_by_text("Disabled")
    ).to_be_visible()
    page.locator("tr").filter(has_text="Hold title changes").get_by_role(
        "link", name=re.compile("Delete")
    ).click()
    screenshot("policy-delete-confirm")
    page.get_by_role("button", name="Delete rule").click()
    page.get_by_role("link", name="Thresholds and clients").click()
    screenshot("circuit-breaker")
    page.get_by_label("Operations", exact=True).fill("25")
    page.get_by_role("button", name="Save defaults").click()
    expect(page.get_by_text("Circuit breaker saved")).to_be_visible()
    assert CircuitBreaker.objects.get().max_operations == 25


def established() -> None:
    """Age every user, group and membership by a day: destroying them is no longer churn."""
    from datetime import timedelta

    from django.utils import timezone

    from provisioning.directory.models import Group, Membership, User

    day_ago = timezone.now() - timedelta(days=1)
    for model in (User.with_retired, Group.objects, Membership.objects):
        model.update(created=day_ago)


def test_the_breaker_decision_page_allows_the_deletions_only(live_server, page, screenshot):
    """The breaker trips on a mixed burst; an approver sees it by kind and allows only the
    deletions; the deactivations and member removal are discarded."""
    CircuitBreaker.objects.all().delete()
    CircuitBreaker.objects.create(max_operations=3)
    idp = Idp(live_server, name="entra-mixed")
    users = [idp.create_user(f"leaver{i}@example.com", active=True) for i in range(12)]
    status, group = idp.call(
        "POST",
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Finance",
            "members": [{"value": u["id"]} for u in users[8:12]],
        },
    )
    assert status == 201, group
    established()
    statuses = [idp.call("DELETE", f"/Users/{u['id']}")[0] for u in users[:6]]
    statuses += [idp.call("PATCH", f"/Users/{u['id']}", DEACTIVATE)[0] for u in users[6:8]]
    removal = {
        "schemas": [PATCH],
        "Operations": [
            {"op": "remove", "path": f'members[value eq "{u["id"]}"]'} for u in users[8:10]
        ],
    }
    statuses.append(idp.call("PATCH", f"/Groups/{group['id']}", removal)[0])
    assert statuses == [204, 204, 204] + [202] * 6

    login(page, live_server, "approver")
    page.goto(f"{live_server.url}/quarantines/")
    page.get_by_role("link", name="Review…").click()
    page.wait_for_url(re.compile(r"/quarantines/[0-9a-f-]+/$"))
    decision = page.get_by_role("region", name=re.compile("Allow these changes"))
    expect(decision.get_by_role("heading", name="Deletions")).to_be_visible()
    expect(decision.locator('[data-kind="deletion"] .badge')).to_have_text("3")
    expect(decision.locator('[data-kind="deactivation"] .badge')).to_have_text("2")
    expect(decision.locator('[data-kind="member_removal"] .badge')).to_have_text("1")
    screenshot("breaker-decision")
    decision.get_by_role("link", name="Allow only the deletions (3)…").click()
    expect(page.get_by_role("heading", name="Allow the deletions of entra-mixed?")).to_be_visible()
    screenshot("breaker-decision-confirm")
    page.get_by_role("button", name="Release: apply 3, discard 3").click()
    expect(page.get_by_text("3 operations approved, 3 discarded")).to_be_visible()
    screenshot("breaker-decision-done")

    assert [idp.call("GET", f"/Users/{u['id']}")[0] for u in users[:6]] == [404] * 6
    assert [idp.call("GET", f"/Users/{u['id']}")[1]["active"] for u in users[6:8]] == [True, True]
    members = idp.call("GET", f"/Groups/{group['id']}")[1]["members"]
    assert len(members) == 4  # the held removal of two members was discarded


def test_a_scheduled_deletion_is_shown_and_restored(live_server, page, screenshot):
    CircuitBreaker.objects.all().delete()
    CircuitBreaker.objects.create(deletion_delay_days=14)
    idp = Idp(live_server, name="okta-leavers")
    user = idp.create_user("leaving@example.com", active=True, displayName="Leaving Person")
    assert idp.call("DELETE", f"/Users/{user['id']}")[0] == 204
    assert idp.call("GET", f"/Users/{user['id']}")[0] == 404

    login(page, live_server, "administrator")
    page.goto(f"{live_server.url}/policies/circuit-breaker/")
    expect(page.get_by_role("link", name="leaving@example.com")).to_be_visible()
    screenshot("circuit-breaker-standing")
    page.get_by_role("link", name="leaving@example.com").click()
    expect(page.locator("#scheduled-deletion")).to_contain_text("deleted for good on")
    screenshot("user-scheduled-deletion")
    page.get_by_role("button", name="Restore (cancel the deletion)").click()
    expect(page.get_by_text("restored; it stays deactivated")).to_be_visible()
    assert page.locator("#scheduled-deletion").count() == 0
    status, body = idp.call("GET", f"/Users/{user['id']}")
    assert (status, body["active"]) == (200, False)


def test_mass_rollback_preview_and_confirm(live_server, page, screenshot):
    idp = Idp(live_server, name="okta-mass")
    users = [idp.create_user(f"mass{i}@example.com", active=True) for i in range(3)]
    for user in users:
        idp.call("PATCH", f"/Users/{user['id']}", DEACTIVATE)

    login(page, live_server, "approver")
    page.goto(f"{live_server.url}/rollback/")
    page.get_by_label("SCIM client").select_option(label="okta-mass")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("heading", name=re.compile("Preview"))).to_be_visible()
    screenshot("mass-rollback-preview")
    page.get_by_role("button", name="Roll back 6 change sets").click()
    # More change sets than a request undoes: a rollback job, run in-process here.
    expect(page.get_by_text("Every change set was rolled back")).to_be_visible()
    screenshot("rollback-job-done")
    assert all(idp.call("GET", f"/Users/{u['id']}")[0] == 404 for u in users)
