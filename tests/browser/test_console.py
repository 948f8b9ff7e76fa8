"""The console in a real browser: login, live search, detail pages, roles, escaping.

Each page visited is saved as a 1280x800 screenshot in tests/screenshots/.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from provisioning.access.clients import scim_client_create
from provisioning.access.operators import operator_create
from provisioning.directory import services
from provisioning.scim.schema import ENTERPRISE_USER, USER

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

XSS = "<img src=x onerror=alert(1)>"
PASSWORD = "correct-horse-battery-staple-42"


def directory():
    """A small directory as an IdP would push it, through the directory services."""
    idp, _ = scim_client_create(name="entra-prod", role="provisioner")
    people = [
        ("ana.silva", "Ana", "Silva", "Engineering", True),
        ("ben.okafor", "Ben", "Okafor", "Engineering", True),
        ("chloe.martin", "Chloé", "Martin", "Finance", False),
        ("dev.patel", "Dev", "Patel", "Finance", True),
    ]
    users = {}
    for login, given, family, department, active in people:
        users[login] = services.user_create(
            client=idp,
            document={
                "schemas": [USER, ENTERPRISE_USER],
                "userName": f"{login}@example.com",
                "externalId": f"ext-{login}",
                "displayName": f"{given} {family}",
                "name": {"givenName": given, "familyName": family},
                "title": "Engineer" if department == "Engineering" else "Analyst",
                "emails": [{"value": f"{login}@example.com", "type": "work", "primary": True}],
                "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
                "active": active,
                ENTERPRISE_USER: {"employeeNumber": login[:3].upper(), "department": department},
            },
        )
    users["xss"] = services.user_create(
        client=idp,
        document={"schemas": [USER], "userName": "mallory@example.com", "displayName": XSS},
    )
    engineering = services.group_create(
        client=idp,
        document={
            "displayName": "Engineering",
            "members": [{"value": str(users[n].pk)} for n in ("ana.silva", "ben.okafor")],
        },
    )
    services.group_create(
        client=idp,
        document={
            "displayName": "All staff",
            "members": [{"value": str(engineering.pk), "type": "Group"}]
            + [{"value": str(users[n].pk)} for n in ("chloe.martin", "dev.patel")],
        },
    )
    return users, engineering


def login(page, live_server, role: str) -> None:
    operator_create(username=f"{role}-op", role=role, password=PASSWORD)
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(f"{role}-op")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/")


def test_login_page_and_dashboard(live_server, page, screenshot):
    directory()
    page.goto(f"{live_server.url}/users/")
    page.wait_for_url(re.compile(r"/login/\?next=/users/"))
    assert page.get_by_role("heading", name="Sign in to scimgate").is_visible()
    screenshot("login")

    login(page, live_server, "viewer")
    assert page.get_by_role("heading", name="Dashboard").is_visible()

    def stat(label: str) -> str:
        return page.locator(".stat").filter(has=page.get_by_text(label, exact=True)).locator("dd")

    assert stat("Users").inner_text() == "5"
    assert stat("Deactivated users").inner_text() == "1"
    assert stat("Groups").inner_text() == "2"
    assert page.get_by_role("img", name="Users created and modified per day").is_visible()
    assert page.get_by_role("cell", name="entra-prod").is_visible()
    assert page.locator(".operator").get_by_text("viewer", exact=True).is_visible()
    screenshot("dashboard")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login/"))


def test_live_search_updates_results_without_reload(live_server, page, screenshot):
    directory()
    login(page, live_server, "viewer")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Users").click()
    page.wait_for_url(f"{live_server.url}/users/")
    rows = page.locator("#results tbody tr")
    assert rows.count() == 5
    screenshot("users")

    # A marker on window survives htmx swaps but not a page load.
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Search").press_sequentially("okaf", delay=40)
    page.wait_for_url(re.compile(r"q=okaf"))
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length === 1")
    assert rows.first.get_by_role("link").inner_text() == "ben.okafor@example.com"
    assert page.evaluate("window.__sameDocument") is True
    screenshot("users-search")

    page.get_by_label("Search").fill("")
    page.get_by_label("Status").select_option("no")
    page.wait_for_url(re.compile(r"active=no"))
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length === 1")
    assert "chloe.martin@example.com" in rows.first.inner_text()

    page.get_by_label("Status").select_option("")
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length === 5")
    page.get_by_role("link", name=re.compile(r"^userName")).click()
    page.wait_for_url(re.compile(r"sort=-userName"))
    page.wait_for_function(
        "() => document.querySelector('#results tbody tr a').textContent === 'mallory@example.com'"
    )
    assert page.evaluate("window.__sameDocument") is True
    # The sort survives a new search.
    page.get_by_label("Search").press_sequentially("example", delay=20)
    page.wait_for_url(re.compile(r"q=example.*sort=-userName|sort=-userName.*q=example"))


def test_user_detail_attributes_groups_and_json(live_server, page, screenshot):
    users, _ = directory()
    login(page, live_server, "viewer")
    page.goto(f"{live_server.url}/users/?q=ana")
    page.get_by_role("link", name="ana.silva@example.com").click()
    page.wait_for_url(re.compile(r"/users/[0-9a-f-]{36}/$"))
    assert page.get_by_role("heading", name="Ana Silva", level=1).is_visible()
    attributes = page.get_by_role("region", name="Attributes", exact=True)
    assert "ext-ana.silva" in attributes.inner_text()
    assert "Engineer" in attributes.inner_text()
    enterprise = page.get_by_role("region", name="Enterprise extension")
    assert "Engineering" in enterprise.inner_text()
    groups = page.get_by_role("region", name=re.compile("^Groups"))
    assert groups.get_by_role("link", name="Engineering").is_visible()
    assert groups.get_by_role("link", name="All staff").is_visible()
    assert "indirect" in groups.inner_text()
    # A viewer gets no action buttons.
    assert page.get_by_role("link", name=re.compile("Deactivate")).count() == 0
    assert page.get_by_role("button", name=re.compile("activate")).count() == 0
    screenshot("user-detail")

    page.get_by_text("Show the raw SCIM JSON").click()
    assert '"userName": "ana.silva@example.com"' in page.locator("pre.json").inner_text()
    page.locator("pre.json").scroll_into_view_if_needed()
    screenshot("user-detail-json")

    groups.get_by_role("link", name="Engineering").click()
    page.wait_for_url(re.compile(r"/groups/[0-9a-f-]{36}/$"))
    assert page.get_by_role("heading", name="Engineering", level=1).is_visible()
    members = page.locator("#members")
    assert members.get_by_role("link", name="Ana Silva").is_visible()
    nesting = page.get_by_role("region", name="Nested groups")
    assert nesting.get_by_role("link", name="All staff").is_visible()
    screenshot("group-detail")

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Groups").click()
    page.wait_for_url(f"{live_server.url}/groups/")
    assert page.locator("#results tbody tr").count() == 2
    screenshot("groups")


def test_approver_deactivates_with_confirmation(live_server, page, screenshot):
    users, _ = directory()
    login(page, live_server, "approver")
    ben = users["ben.okafor"]
    page.goto(f"{live_server.url}{reverse('console:user_detail', args=[ben.pk])}")
    page.get_by_role("link", name="Deactivate…").click()
    page.wait_for_url(re.compile(r"/deactivate/confirm/$"))
    assert page.get_by_role("heading", name="Deactivate Ben Okafor?").is_visible()
    screenshot("user-deactivate-confirm")

    page.get_by_role("button", name="Deactivate user").click()
    page.wait_for_url(re.compile(r"/users/[0-9a-f-]{36}/$"))
    assert (
        page.get_by_role("status").get_by_text("ben.okafor@example.com deactivated.").is_visible()
    )
    assert page.locator(".page-header .badge").inner_text() == "Deactivated"
    screenshot("user-detail-deactivated")
    page.get_by_role("button", name="Reactivate").click()
    page.wait_for_url(re.compile(r"/users/[0-9a-f-]{36}/$"))
    assert page.get_by_text("ben.okafor@example.com reactivated.").is_visible()
    ben.refresh_from_db()
    assert ben.active is True and ben.version == 3


def test_untrusted_display_name_is_text(live_server, page, screenshot):
    users, _ = directory()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    login(page, live_server, "viewer")

    page.goto(f"{live_server.url}/users/")
    page.get_by_label("Search").press_sequentially("mallory", delay=20)
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length === 1")
    assert page.locator("#results").get_by_text(XSS).is_visible()
    page.get_by_role("link", name="mallory@example.com").click()
    page.wait_for_url(re.compile(r"/users/[0-9a-f-]{36}/$"))
    assert page.get_by_role("heading", name=XSS, level=1).is_visible()
    screenshot("user-detail-untrusted")
    page.get_by_text("Show the raw SCIM JSON").click()
    page.wait_for_timeout(200)

    assert dialogs == []
    assert page.locator("img").count() == 0
    assert page.locator("main [onerror]").count() == 0


def test_pages_and_sorting_swap_the_results_in_place(live_server, page, screenshot):
    from django.utils import timezone

    from provisioning.directory.models import User

    now = timezone.now()
    User.objects.bulk_create(
        User(
            user_name=f"u{i:03d}@example.com",
            display_name=f"User {i:03d}",
            created=now,
            last_modified=now,
        )
        for i in range(120)
    )
    login(page, live_server, "viewer")
    page.goto(f"{live_server.url}/users/")
    assert page.get_by_role("status").inner_text() == "120 users"
    page.evaluate("window.__sameDocument = true")
    top = page.get_by_role("navigation", name="Users pages, top")
    top.get_by_role("link", name="Next →").click()
    page.wait_for_url(re.compile(r"after="))
    page.wait_for_function(
        "() => document.querySelector('#results tbody tr a').textContent === 'u050@example.com'"
    )
    screenshot("users-page-2")
    page.get_by_role("navigation", name="Users pages, bottom").get_by_role(
        "link", name="Next →"
    ).click()
    page.wait_for_function(
        "() => document.querySelector('#results tbody tr a').textContent === 'u100@example.com'"
    )
    assert page.locator("#results tbody tr").count() == 20
    page.get_by_role("navigation", name="Users pages, top").get_by_role(
        "link", name="← Previous"
    ).click()
    page.wait_for_function(
        "() => document.querySelector('#results tbody tr a').textContent === 'u050@example.com'"
    )
    assert page.evaluate("window.__sameDocument") is True
    # Back restores the earlier page from htmx's history.
    page.go_back()
    page.wait_for_function(
        "() => document.querySelector('#results tbody tr a').textContent === 'u100@example.com'"
    )
    # Keyboard: the skip link is the first stop and moves focus to the content.
    page.goto(f"{live_server.url}/users/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
