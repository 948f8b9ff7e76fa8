"""SCIM clients, roles, the audit log and the request log in a real browser.

The token is read from the page and used against the live SCIM API. Each page
visited is saved as a 1280x800 screenshot in tests/screenshots/.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import pytest

from provisioning.access.models import Role
from provisioning.access.operators import operator_create
from provisioning.access.roles import ensure_builtin_roles
from provisioning.audit.models import RequestLog

from .test_console import PASSWORD, XSS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def make_operator(role: str) -> None:
    ensure_builtin_roles()  # a transactional test starts from an empty database
    operator_create(username=f"{role}-op", role=role, password=PASSWORD)


def login(page, live_server, role: str, *, create: bool = True) -> None:
    if create:
        make_operator(role)
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(f"{role}-op")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/")


def scim(live_server, token: str, method: str, path: str, body: dict | None = None):
    """A SCIM call over HTTP to the live server: (status, parsed body)."""
    request = urllib.request.Request(
        f"{live_server.url}/scim/v2{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the live test server
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def create_client_in_browser(page, live_server, name: str, role: str = "provisioner") -> str:
    page.get_by_role("navigation", name="Console").get_by_role("link", name="SCIM clients").click()
    page.wait_for_url(f"{live_server.url}/clients/")
    page.get_by_role("link", name="New SCIM client").click()
    page.wait_for_url(f"{live_server.url}/clients/new/")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Role").select_option(label=f"{role} (built-in)")
    return page


def test_token_created_in_the_browser_works_against_scim(live_server, page, screenshot):
    login(page, live_server, "administrator")
    create_client_in_browser(page, live_server, "Okta production")
    screenshot("client-new")
    page.get_by_role("button", name="Create client and token").click()
    page.wait_for_selector("#token-value")
    assert page.get_by_role("heading", name="SCIM client Okta production created").is_visible()
    token = page.locator("#token-value").input_value()
    assert re.fullmatch(r"scg_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43,}", token)
    assert page.locator("#base-url").input_value() == f"{live_server.url}/scim/v2"
    page.get_by_role("button", name="Copy token").click()
    page.get_by_text("Token copied to the clipboard.").wait_for()
    screenshot("client-token")

    # The token from the page works against the SCIM API.
    status, body = scim(live_server, token, "GET", "/Users")
    assert status == 200 and body["totalResults"] == 0
    status, created = scim(
        live_server,
        token,
        "POST",
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "ana@example.com"},
    )
    assert status == 201
    assert (
        scim(
            live_server,
            token,
            "POST",
            "/Users",
            {"schemas": [USER_SCHEMA], "userName": "ana@example.com"},
        )[0]
        == 409
    )

    # Done: the detail page shows the token's prefix only, and the requests just made.
    page.get_by_role("link", name=re.compile("Done")).click()
    page.wait_for_url(re.compile(r"/clients/[0-9a-f-]{36}/$"))
    assert token not in page.content()
    prefix = token.split("_")[1]
    tokens = page.get_by_role("region", name=re.compile("^Tokens"))
    assert tokens.get_by_text(f"{prefix}…").is_visible()
    recent = page.get_by_role("region", name=re.compile("^Recent requests"))
    assert recent.locator("tbody tr").count() == 3
    errors = page.get_by_role("region", name=re.compile("^Recent errors"))
    assert errors.get_by_text("409").is_visible()
    screenshot("client-detail")

    # Rotate: a new token, shown once; the old one keeps working.
    page.get_by_role("button", name="Issue new token").click()
    page.wait_for_selector("#token-value")
    new_token = page.locator("#token-value").input_value()
    assert new_token != token
    screenshot("client-token-rotated")
    assert scim(live_server, new_token, "GET", "/Users")[0] == 200
    assert scim(live_server, token, "GET", "/Users")[0] == 200

    # Revoke the old one, after a confirmation step.
    page.get_by_role("link", name=re.compile("Done")).click()
    page.wait_for_url(re.compile(r"/clients/[0-9a-f-]{36}/$"))
    row = page.locator("tbody tr").filter(has_text=f"{prefix}…")
    row.get_by_role("link", name="Revoke…").click()
    page.wait_for_url(re.compile(r"/revoke/confirm/$"))
    screenshot("token-revoke-confirm")
    page.get_by_role("button", name="Revoke token").click()
    page.wait_for_url(re.compile(r"/clients/[0-9a-f-]{36}/$"))
    assert page.get_by_role("status").get_by_text(re.compile("revoked")).is_visible()
    assert scim(live_server, token, "GET", "/Users")[0] == 401
    assert scim(live_server, new_token, "GET", "/Users")[0] == 200

    # Change the role: read-only may no longer create.
    page.get_by_label("Role of this client").select_option(label="read-only (built-in)")
    page.get_by_role("button", name="Assign role").click()
    page.wait_for_url(re.compile(r"/clients/[0-9a-f-]{36}/$"))
    status, _ = scim(
        live_server,
        new_token,
        "POST",
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "ben@example.com"},
    )
    assert status == 403
    screenshot("client-detail-after")

    page.get_by_role("navigation", name="Console").get_by_role("link", name="SCIM clients").click()
    page.wait_for_url(f"{live_server.url}/clients/")
    assert page.get_by_role("cell", name="Okta production").is_visible()
    screenshot("clients")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Dashboard").click()
    page.wait_for_url(f"{live_server.url}/")
    assert (
        page.get_by_role("region", name=re.compile("SCIM client health"))
        .get_by_text("403")
        .is_visible()
    )
    screenshot("dashboard-client-health")
    assert created["userName"] == "ana@example.com"


def test_roles_matrix_editor(live_server, page, screenshot):
    login(page, live_server, "administrator")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Roles").click()
    page.wait_for_url(f"{live_server.url}/roles/")
    screenshot("roles")
    page.get_by_role("link", name="New role").click()
    page.get_by_label("Name").fill("helpdesk")
    page.get_by_label("Description").fill("Reads everything, fixes users, never deactivates")
    for permission in ("User read", "User patch", "Group read"):
        page.get_by_label(permission, exact=True).check()
    page.get_by_label("Attributes it may not change").fill("active\nbogus-attribute")
    page.get_by_label("Only resources this client created").check()
    screenshot("role-new")
    page.get_by_role("button", name="Create role").click()
    # The service rejects the unknown attribute; the ticked matrix survives.
    assert page.get_by_text("Unknown attribute “bogus-attribute”.").is_visible()
    assert page.get_by_label("User patch", exact=True).is_checked()
    screenshot("role-new-error")
    page.get_by_label("Attributes it may not change").fill("active")
    page.get_by_role("button", name="Create role").click()
    page.wait_for_url(re.compile(r"/roles/\d+/$"))
    assert page.get_by_role("heading", name="helpdesk", level=1).is_visible()
    role = Role.objects.get(name="helpdesk")
    assert role.permissions == ["User:read", "User:patch", "Group:read"]
    assert role.forbidden_attributes == ["active"] and role.own_resources_only
    screenshot("role-detail")

    page.get_by_role("link", name="Delete…").click()
    page.wait_for_url(re.compile(r"/delete/confirm/$"))
    screenshot("role-delete-confirm")
    page.get_by_role("button", name="Delete role").click()
    page.wait_for_url(f"{live_server.url}/roles/")
    assert not Role.objects.filter(name="helpdesk").exists()

    page.goto(f"{live_server.url}/roles/{Role.objects.get(name='read-only').pk}/edit/")
    assert page.get_by_label("User delete", exact=True).is_disabled()
    screenshot("role-edit-builtin")


def test_audit_log_free_text_search_and_change_set(live_server, page, screenshot):
    from provisioning.access.clients import scim_client_create

    # Every write from this thread happens before the traffic: the server writes each
    # request-log row after sending its response, and SQLite's shared in-memory test
    # database refuses a second concurrent writer.
    make_operator("viewer")
    _client, token = scim_client_create(name="entra-prod", role="provisioner")
    ids = {}
    for login_name, title in (
        ("ana.silva", "Engineer"),
        ("ben.okafor", "Analyst"),
        ("chloe.martin", "Analyst"),
    ):
        status, body = scim(
            live_server,
            token,
            "POST",
            "/Users",
            {
                "schemas": [USER_SCHEMA],
                "userName": f"{login_name}@example.com",
                "title": title,
                "displayName": login_name,
            },
        )
        assert status == 201
        ids[login_name] = body["id"]
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "title", "value": "Principal Engineer"}],
    }
    assert scim(live_server, token, "PATCH", f"/Users/{ids['ana.silva']}", patch)[0] == 200
    xss = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "displayName", "value": XSS}],
    }
    assert scim(live_server, token, "PATCH", f"/Users/{ids['ben.okafor']}", xss)[0] == 200
    status, group = scim(
        live_server,
        token,
        "POST",
        "/Groups",
        {
            "displayName": "Engineering",
            "members": [{"value": ids["ana.silva"]}, {"value": ids["ben.okafor"]}],
        },
    )
    assert status == 201
    scim(live_server, "scg_AbCdEfGh_" + "x" * 43, "GET", "/Users")

    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    login(page, live_server, "viewer", create=False)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Audit log").click()
    page.wait_for_url(f"{live_server.url}/audit/")
    rows = page.locator("#results tbody tr")
    assert rows.count() >= 6
    screenshot("audit-log")

    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Search").press_sequentially("Principal", delay=40)
    page.wait_for_url(re.compile(r"q=Principal"))
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length === 1")
    assert "ana.silva@example.com" in rows.first.inner_text()
    assert page.evaluate("window.__sameDocument") is True
    screenshot("audit-log-search")
    # The export link follows the filter; a viewer has none.
    assert page.get_by_role("link", name="Export CSV").count() == 0

    rows.first.get_by_role("link", name=re.compile(r"^Change set")).click()
    page.wait_for_url(re.compile(r"/audit/changesets/\d+/$"))
    assert page.get_by_role("heading", name=re.compile(r"^Change set \d+$")).is_visible()
    diff = page.locator("table.diff").first
    assert "Principal Engineer" in diff.inner_text() and "Engineer" in diff.inner_text()
    screenshot("change-set")

    # The group's creation: a membership delta with links to the members.
    page.goto(f"{live_server.url}/groups/{group['id']}/")
    history = page.get_by_role("region", name=re.compile("^History"))
    assert "+2 members" in history.inner_text()
    history.get_by_role("link", name=re.compile(r"^#\d+")).first.click()
    page.wait_for_url(re.compile(r"/audit/changesets/\d+/$"))
    assert page.get_by_text("Members added").is_visible()
    assert page.get_by_role("link", name="ana.silva").first.is_visible()
    screenshot("change-set-members")

    page.goto(f"{live_server.url}/users/{ids['ben.okafor']}/")
    page.get_by_role("region", name=re.compile("^History")).scroll_into_view_if_needed()
    screenshot("user-detail-history")
    page.get_by_role("region", name=re.compile("^History")).get_by_role(
        "link", name=re.compile(r"^#\d+")
    ).first.click()
    page.wait_for_url(re.compile(r"/audit/changesets/\d+/$"))
    assert page.locator("table.diff").first.get_by_text(XSS).is_visible()
    screenshot("change-set-untrusted")

    # Each request's log row is written after its response went out: wait for the last.
    deadline = time.monotonic() + 10
    while RequestLog.objects.count() < 7 and time.monotonic() < deadline:
        time.sleep(0.05)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Request log").click()
    page.wait_for_url(f"{live_server.url}/requests/")
    assert page.locator("#results tbody tr").count() == 7
    screenshot("request-log")
    page.get_by_label("Status").select_option("4")
    page.wait_for_url(re.compile(r"status=4"))
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length === 1")
    assert "AbCdEfGh…" in page.locator("#results tbody tr").first.inner_text()
    screenshot("request-log-4xx")
    page.get_by_label("Status").select_option("")
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length === 7")
    page.locator("#results tbody tr").filter(has_text="PATCH").first.get_by_role(
        "link"
    ).first.click()
    page.wait_for_url(re.compile(r"/requests/\d+/$"))
    assert page.get_by_role("region", name=re.compile("^Request body")).is_visible()
    screenshot("request-detail")

    assert dialogs == []
    assert page.locator("main [onerror]").count() == 0
