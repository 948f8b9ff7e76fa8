"""Every console URL checks the operator's role on the server.

The URLs are read from the URL configuration, not listed by hand: a view added
later without ``require_role`` fails here. Each URL is requested by an anonymous
user and by an operator of every role, as a plain request and as an htmx
request, with the method the view accepts.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.converters import (
    IntConverter,
    PathConverter,
    SlugConverter,
    StringConverter,
    UUIDConverter,
)
from django.urls.resolvers import RoutePattern

from provisioning.access.builtin import OPERATOR_ROLES
from tests.factories import OperatorFactory

pytestmark = pytest.mark.django_db

# Views every visitor may reach, by URL name (namespace included): signing in (password,
# the MFA step of a password sign-in, single sign-on and its callback) and out.
PUBLIC = {
    "console:login",
    "console:logout",
    "account_login",
    "account_logout",
    "account_inactive",
    "mfa_authenticate",
    "oidc_login",
    "oidc_callback",
}
# URL prefixes that are not the console: SCIM answers bearer tokens, the admin has its own
# checks, the OAuth token endpoint authenticates clients and its metadata is public, the
# event poll endpoint authenticates stream receivers by their bearer tokens, the management
# API checks roles in its own base view (tests/api/test_url_permissions.py walks its URLs).
NOT_CONSOLE = (
    "scim/v2/",
    "api/",
    "admin/",
    "oauth/",
    ".well-known/",
    "events/",
    settings.STATIC_URL.lstrip("/"),
)

# Re-authentication with a credential the operator may not have (a password, an MFA
# authenticator, a security key): allauth answers 403 to an operator without one, whatever
# their role. Their role check is the same require_role; tests/signin use them for real.
NEEDS_CREDENTIAL = {"account_reauthenticate", "mfa_reauthenticate", "mfa_reauthenticate_webauthn"}

DUMMY = {
    UUIDConverter: lambda: uuid.uuid4(),
    IntConverter: lambda: 999999,
    SlugConverter: lambda: "no-such-thing",
    StringConverter: lambda: "no-such-thing",
    PathConverter: lambda: "no/such/thing",
}


@dataclass
class ConsoleUrl:
    name: str
    path: str
    view: object

    @property
    def required_role(self) -> str | None:
        return getattr(self.view, "required_role", None)


def _fill(route: str, converters: dict) -> str:
    def replace(match: re.Match) -> str:
        converter = converters[match.group("name")]
        for kind, make in DUMMY.items():
            if isinstance(converter, kind):
                return converter.to_url(make())
        raise AssertionError(f"No dummy value for converter {type(converter).__name__}")

    return re.sub(r"<(?:(?P<type>[^>:]+):)?(?P<name>[^>]+)>", replace, route)


def _walk(patterns, prefix: str = "", namespace: str = ""):
    for entry in patterns:
        if (prefix + str(entry.pattern)).startswith(NOT_CONSOLE):
            continue
        if not isinstance(entry.pattern, RoutePattern):
            raise AssertionError(
                f"{prefix}{entry.pattern}: use path(), not re_path(), so this test can fill it in"
            )
        route = prefix + _fill(str(entry.pattern), entry.pattern.converters)
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}".strip(":") if entry.namespace else namespace
            yield from _walk(entry.url_patterns, route, inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if entry.name else f"{namespace}:<unnamed {route}>"
            yield ConsoleUrl(name.strip(":"), "/" + route, entry.callback)


def console_urls() -> list[ConsoleUrl]:
    return list(_walk(get_resolver().url_patterns))


CONSOLE_URLS = console_urls()


def test_the_walk_finds_the_console():
    names = {url.name for url in CONSOLE_URLS}
    assert {"console:home", "console:login", "console:logout"} <= names
    assert {"console:rollback_job_list", "console:rollback_job_detail"} <= names
    assert {"console:stream_list", "console:delivery_list", "console:stream_rotate"} <= names
    # Sign-in, MFA and step-up views join the walk.
    assert {"step_up", "mfa_index", "mfa_activate_totp", "mfa_add_webauthn"} <= names
    assert names >= PUBLIC
    assert not any(url.path.startswith("/scim/") for url in CONSOLE_URLS)


@pytest.mark.parametrize("url", CONSOLE_URLS, ids=lambda u: u.name)
def test_every_console_view_declares_a_role(url):
    if url.name in PUBLIC:
        assert url.required_role is None
        return
    assert url.required_role in OPERATOR_ROLES, (
        f"{url.name} ({url.path}) has no role check: decorate the view with "
        "console.permissions.require_role(...)"
    )


def _request(client: Client, path: str, *, htmx: bool):
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = client.get(path, **headers)
    if response.status_code == 405:
        response = client.post(path, **headers)
    return response


def _refused(url: ConsoleUrl, response) -> bool:
    """Whether the answer refuses the operator (sign-in or role), not merely asks for a
    credential a re-authentication view needs (NEEDS_CREDENTIAL)."""
    if url.name not in NEEDS_CREDENTIAL:
        return response.status_code in (302, 401, 403)
    if response.status_code == 302:
        return response["Location"].startswith(settings.LOGIN_URL)
    return response.status_code == 401


CHECKED = [u for u in CONSOLE_URLS if u.name not in PUBLIC and u.required_role in OPERATOR_ROLES]


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize("url", CHECKED, ids=lambda u: u.name)
def test_anonymous_is_sent_to_login(url, htmx):
    response = _request(Client(), url.path, htmx=htmx)
    if htmx:
        assert response.status_code == 401, (url.path, response.status_code)
        assert response["HX-Redirect"].startswith(settings.LOGIN_URL)
        assert response.content == b""
    else:
        assert response.status_code == 302, (url.path, response.status_code)
        assert response["Location"].startswith(settings.LOGIN_URL + "?next=")


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize("role", OPERATOR_ROLES)
@pytest.mark.parametrize("url", CHECKED, ids=lambda u: u.name)
def test_operators_are_checked_against_the_required_role(url, role, htmx):
    client = Client()
    client.force_login(OperatorFactory(role=role))
    response = _request(client, url.path, htmx=htmx)
    allowed = OPERATOR_ROLES.index(role) >= OPERATOR_ROLES.index(url.required_role)
    if allowed:
        # 404 for the dummy ids, 400 for an empty form are fine; refusals are not.
        assert not _refused(url, response), (url.path, role, response.status_code)
        assert response.status_code < 500
    else:
        assert response.status_code == 403, (url.path, role, response.status_code)


def test_an_authenticated_user_without_an_operator_role_is_refused():
    user = get_user_model().objects.create_user(username="nobody")
    client = Client()
    client.force_login(user)
    assert client.get("/").status_code == 403


def test_a_superuser_counts_as_administrator():
    admin = get_user_model().objects.create_superuser(username="root", password="x" * 16)
    client = Client()
    client.force_login(admin)
    for url in CHECKED:
        assert not _refused(url, _request(client, url.path, htmx=False)), url.path


# --- login and logout -----------------------------------------------------------------


PASSWORD = "a long and unusual passphrase"


@pytest.fixture
def viewer_account():
    return OperatorFactory(role="viewer", password=PASSWORD)


def test_login_then_logout(viewer_account):
    client = Client(enforce_csrf_checks=False)
    page = client.get("/login/")
    assert page.status_code == 200
    assert b'name="password"' in page.content
    response = client.post(
        "/login/?next=/", {"username": viewer_account.username, "password": PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get("/logout/").status_code == 405  # logging out needs a POST
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_login_is_throttled_after_repeated_failures(viewer_account):
    client = Client(REMOTE_ADDR="192.0.2.1")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post(
            "/login/", {"username": viewer_account.username, "password": "wrong"}
        )
        assert response.status_code == 200  # the form again, with an error
    response = client.post("/login/", {"username": viewer_account.username, "password": "wrong"})
    assert response.status_code == 429
    assert b"Too many failed sign-in attempts" in response.content
    # Now even the right password is refused.
    locked = client.post("/login/", {"username": viewer_account.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert not client.session.get("_auth_user_id")
    # Keyed by username and address: the same operator from elsewhere may still sign in.
    other = Client(REMOTE_ADDR="192.0.2.2")
    response = other.post("/login/", {"username": viewer_account.username, "password": PASSWORD})
    assert response.status_code == 302
