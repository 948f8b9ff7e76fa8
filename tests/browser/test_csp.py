"""The Content-Security-Policy in Chromium: every console page, the admin and the htmx
interactions run with no violation (the ``page`` fixture fails a test on any), and the
policy is really enforced (an injected inline script is refused and reported).

Every console URL pattern in ``console/urls.py`` that answers a GET with a page is
visited, so a new page is covered without being listed here. Screenshots land in
tests/screenshots/csp-*.png.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, reverse
from playwright.sync_api import expect

from console import urls as console_urls
from provisioning.access.clients import scim_client_create
from provisioning.access.models import ScimToken
from provisioning.access.operators import operator_create
from provisioning.access.roles import ensure_builtin_roles, scim_role_create
from provisioning.audit.models import ChangeRecord, RequestLog
from provisioning.directory import services
from provisioning.directory.extensions import extension_schema_save
from provisioning.events import streams
from provisioning.oversight.models import PendingOperation, PolicyRule, Quarantine, Review
from provisioning.oversight.rollback_jobs import rollback_job_create
from provisioning.oversight.services import pending_reject
from provisioning.scim.schema import USER

from .conftest import REPORT_CSP_VIOLATIONS, VIEWPORT, watch_csp

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple-42"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def scim(token: str, method: str, path: str, body: dict | None = None):
    """A SCIM request in this process (same database as the live server)."""
    return Client().generic(
        method,
        f"/scim/v2{path}",
        data=json.dumps(body) if body is not None else "",
        content_type="application/scim+json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def deactivate(token: str, user) -> None:
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert scim(token, "PATCH", f"/Users/{user.pk}", body).status_code == 200


@pytest.fixture
def console_data(db) -> dict:
    """One of everything a console page can show, as an IdP and operators make it."""
    ensure_builtin_roles()
    idp, token = scim_client_create(name="okta-prod", role="provisioner")
    PolicyRule.objects.update_or_create(
        name="Hold user deletions", defaults={"kind": "delete_user", "action": "hold", "enabled": True}
    )
    PolicyRule.objects.update_or_create(
        name="Flag deactivations", defaults={"kind": "deactivate_user", "action": "flag", "enabled": True}
    )
    people = {}
    for login in ("ana.silva", "ben.okafor", "chloe.martin", "dev.patel", "rolled.back"):
        people[login] = services.user_create(
            client=idp,
            document={
                "schemas": [USER],
                "userName": f"{login}@example.com",
                "displayName": login.replace(".", " ").title(),
                "emails": [{"value": f"{login}@example.com", "type": "work", "primary": True}],
            },
        )
    group = services.group_create(
        client=idp,
        document={
            "displayName": "Engineering",
            "members": [{"value": str(people[n].pk)} for n in ("ana.silva", "ben.okafor")],
        },
    )
    # Held deletions (pending operations) and flagged deactivations (reviews).
    assert scim(token, "DELETE", f"/Users/{people['ben.okafor'].pk}").status_code == 202
    assert scim(token, "DELETE", f"/Users/{people['dev.patel'].pk}").status_code == 202
    deactivate(token, people["chloe.martin"])
    deactivate(token, people["ana.silva"])
    assert scim(token, "GET", "/Users/not-an-id").status_code == 404  # a 4xx in the request log

    admin, _ = operator_create(username="admin-op", role="administrator", password=PASSWORD)
    admin.is_staff = admin.is_superuser = True
    admin.save()
    operator_create(username="second-op", role="administrator", password=PASSWORD)
    custom_role = scim_role_create(name="contractors", permissions=["User:read"])
    extension, _ = extension_schema_save(
        document={
            "id": "urn:example:params:scim:schemas:extension:acme:2.0:User",
            "attributes": [{"name": "costCenterCode", "type": "string"}],
        }
    )
    quarantined, _ = scim_client_create(name="noisy-idp", role="provisioner")
    Quarantine.objects.create(
        client=quarantined, started_at=people["ana.silva"].created, reason="circuit breaker test"
    )
    stream, _ = streams.create_stream(
        name="HR system", method="webhook", endpoint_url="https://hr.example.com/hooks"
    )
    test_event = streams.send_test_event(stream=stream)
    rolled = ChangeRecord.objects.get(resource_id=people["rolled.back"].pk, action="create")
    job = rollback_job_create(change_set_ids=[rolled.change_set_id], operator=admin)
    return {
        "token": token,
        "kwargs": {
            "user_id": people["ana.silva"].pk,
            "group_id": group.pk,
            "pending_id": PendingOperation.objects.get(resource_id=people["ben.okafor"].pk).pk,
            "review_id": Review.objects.order_by("pk").first().pk,
            "change_set_id": rolled.change_set_id,
            "job_id": job.pk,
            "quarantine_id": Quarantine.objects.get().pk,
            "rule_id": PolicyRule.objects.order_by("pk").first().pk,
            "client_id": idp.pk,
            "token_id": ScimToken.objects.filter(client=idp).first().pk,
            # OAuth credential actions are POST-only (not pages): any id reverses them.
            "secret_id": 1,
            "key_id": 1,
            "federation_id": 1,
            "role_id": custom_role.pk,
            "schema_id": extension.pk,
            "request_id": RequestLog.objects.order_by("pk").first().pk,
            "stream_id": stream.pk,
            "delivery_id": test_event.deliveries.get().pk,
            "event_id": test_event.pk,
        },
        "people": people,
    }


def login(page, live_server, username: str = "admin-op") -> None:
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/")


def console_pages(kwargs: dict) -> list[tuple[str, str]]:
    """(name, path) of every console URL pattern, with ids from ``kwargs``."""
    pages = []
    for pattern in console_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        names = list(pattern.pattern.converters)
        pages.append(
            (pattern.name, reverse(f"console:{pattern.name}", kwargs={n: kwargs[n] for n in names}))
        )
    return pages


def test_the_policy_is_sent_and_enforced(live_server, browser):
    response = Client().get("/login/")
    policy = response["Content-Security-Policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "object-src 'none'",
        "base-uri 'none'",
    ):
        assert directive in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    # Proof that the watcher sees violations: an inline script is refused and reported.
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    seen: list[str] = []
    watch_csp(page, seen)
    page.goto(f"{live_server.url}/login/")
    page.evaluate(
        """() => { const s = document.createElement("script");
                   s.textContent = "window.__ran = true"; document.head.appendChild(s); }"""
    )
    page.wait_for_timeout(100)
    assert page.evaluate("window.__ran === true") is False
    assert any("script-src" in line for line in seen), seen
    context.close()


def test_every_console_page_loads_without_a_csp_violation(
    live_server, page, screenshot, console_data
):
    page.goto(f"{live_server.url}/login/")
    screenshot("csp-login-page")
    login(page, live_server)
    http = Client()
    http.force_login(get_user_model().objects.get(username="admin-op"))
    visited = []
    kwargs = console_data["kwargs"]
    # Pages that need a query string to be a page (a bulk decision names its operations).
    queries = {"pending_bulk": f"?decision=approve&ids={kwargs['pending_id']}"}
    for name, path in console_pages(kwargs):
        path += queries.get(name, "")
        probe = http.get(path)
        if probe.status_code == 405 or probe.has_header("Content-Disposition"):
            continue  # POST-only actions and downloads are not pages
        assert probe.status_code in (200, 302), f"{name} {path}: {probe.status_code}"
        assert "Content-Security-Policy" in probe, name
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.ok, f"{name}: {response and response.status}"
        page.wait_for_load_state("load")
        screenshot(f"csp-{name}")
        visited.append(name)
    # Every kind of page: lists, details, forms, confirmations, the job page.
    for name in (
        "home", "user_list", "user_detail", "pending_bulk", "user_deactivate_confirm", "group_detail",
        "pending_list", "pending_detail", "review_list", "review_detail",
        "change_set_rollback", "mass_rollback", "rollback_job_detail", "quarantine_detail",
        "quarantine_release", "policy_edit", "circuit_breaker_edit", "client_create",
        "client_detail", "token_revoke_confirm", "role_edit", "role_delete_confirm",
        "audit_list", "change_set_detail", "request_list", "request_detail",
        "stream_list", "stream_create", "stream_detail", "stream_edit", "stream_delete_confirm",
        "delivery_list", "delivery_detail", "event_detail",
    ):
        assert name in visited, f"{name} was not visited"

    # Live search swaps results in with htmx.
    page.goto(f"{live_server.url}/users/")
    page.get_by_role("searchbox").first.fill("chloe")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    screenshot("csp-user-search")


def test_admin_pages_work_under_the_policy(live_server, page, screenshot, console_data):
    # The admin signs in through the console's sign-in page (MFA, single sign-on, axes).
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.wait_for_url(re.compile(r"/login/\?next="))
    page.get_by_label("Username").fill("admin-op")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/admin/")
    screenshot("csp-admin-index")
    page.goto(f"{live_server.url}/admin/access/role/")
    screenshot("csp-admin-roles")
    page.goto(f"{live_server.url}/admin/access/role/{console_data['kwargs']['role_id']}/change/")
    expect(page.locator("#role_form")).to_be_visible()
    screenshot("csp-admin-role")
    page.goto(f"{live_server.url}/admin/auth/user/")
    page.locator("#searchbar").fill("admin")
    page.locator("#searchbar").press("Enter")
    expect(page.locator("#result_list")).to_contain_text("admin-op")
    screenshot("csp-admin-users")
    # A change form with the admin's script-built widgets (the permission selector).
    page.locator("#result_list").get_by_role("link", name="admin-op").click()
    expect(page.locator("#id_user_permissions_from")).to_be_visible()
    page.locator("#id_user_permissions_input").fill("role")
    screenshot("csp-admin-user-change")


def test_token_copy_works_under_the_policy(live_server, page, screenshot, console_data):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    login(page, live_server)
    page.goto(f"{live_server.url}/clients/new/")
    page.get_by_label("Name").fill("workday")
    page.get_by_role("button", name="Create client and token").click()
    page.wait_for_selector("#token-value")
    token = page.locator("#token-value").input_value()
    assert token.startswith("scg_")
    page.get_by_role("button", name="Copy token").click()
    expect(page.locator(".copy-status")).to_have_text("Token copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == token
    page.get_by_role("button", name="Copy URL").click()
    expect(page.locator(".copy-status")).to_have_text("SCIM base URL copied to the clipboard.")
    screenshot("csp-token-copied")


def test_queue_rows_swap_in_place_under_the_policy(live_server, page, screenshot, console_data):
    # Another operator approved deletions: the approver here did not make these changes.
    login(page, live_server, "second-op")
    page.goto(f"{live_server.url}/pending/")
    page.evaluate("window.__sameDocument = true")
    people = console_data["people"]
    first, second = (
        PendingOperation.objects.get(resource_id=people[name].pk)
        for name in ("ben.okafor", "dev.patel")
    )
    row = page.locator(f"#pending-{first.pk}")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Approve").click()
    expect(page.locator(f"#pending-{first.pk}.decided")).to_be_visible()
    screenshot("csp-pending-approved-row")

    # A refused decision (rejected meanwhile by someone else) answers 4xx with the row:
    # console.js swaps it in rather than dropping it.
    other, _ = operator_create(username=f"third-{uuid.uuid4().hex[:6]}", role="approver", password=PASSWORD)
    pending_reject(pending_id=second.pk, operator=other, reason="not now")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"#pending-{second.pk}").get_by_role("button", name="Approve").click()
    expect(page.locator(f"#pending-{second.pk}.refused")).to_be_visible()
    screenshot("csp-pending-refused-row")
    assert page.evaluate("window.__sameDocument") is True

    page.goto(f"{live_server.url}/reviews/")
    page.evaluate("window.__sameDocument = true")
    review = Review.objects.order_by("pk").first()
    page.locator(f"#review-{review.pk}").get_by_role("button", name="Accept").click()
    expect(page.locator(f"#review-{review.pk}.decided")).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True
    screenshot("csp-review-accepted-row")
