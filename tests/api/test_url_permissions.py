"""Every management API URL checks the operator's role on the server, as the console's
URL walk (tests/console/test_url_permissions.py) does for its pages.

The URLs are read from the API's URL configuration, not listed by hand: an endpoint
added later without the right ``required_role`` fails here. Each method a view answers
is called anonymously (401, with a Bearer challenge), with a token of an operator
without a console role and of every role below the one it needs (403, and nothing
recorded), and with a token of the role it needs (neither 401 nor 403: the ids in the
URL name nothing, so 404 or a validation error is expected).
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from django.urls import URLPattern
from django.urls.resolvers import RegexPattern, RoutePattern
from rest_framework.test import APIClient

from console.api import urls as api_urls
from console.api.base import ApiView
from provisioning.access.builtin import OPERATOR_ROLES
from provisioning.audit.models import ChangeSet
from tests.factories import OperatorFactory

from .conftest import token_client

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
_CONVERTER = re.compile(r"<(?:(?P<kind>\w+):)?(?P<name>\w+)>")
# Fixed values: every test process collects the same ids (pytest-xdist compares them).
_SAMPLE = {
    "uuid": lambda: "7c9f1f0e-5b7a-4c1e-9a57-0d6f2b9e4a11",
    "int": lambda: "987654",
    "str": lambda: "x",
    "path": lambda: "x",
}


def _url(pattern) -> str:
    if isinstance(pattern, RoutePattern):
        route = _CONVERTER.sub(lambda m: _SAMPLE[m["kind"] or "str"](), str(pattern))
    else:
        assert isinstance(pattern, RegexPattern), pattern
        # The id routes: ``(?P<name>-?[0-9]+)``.
        route = re.sub(r"\(\?P<\w+>[^)]*\)", "987654", str(pattern)).lstrip("^").rstrip("$")
    return "/api/" + route


def api_endpoints() -> list[tuple[str, str, str]]:
    """(url, method, role it needs) for every API view and method it answers."""
    found = []
    for entry in api_urls.urlpatterns:
        assert isinstance(entry, URLPattern), entry
        view_class = getattr(entry.callback, "view_class", None) or getattr(entry.callback, "cls", None)
        if view_class is None or not issubclass(view_class, ApiView):
            continue
        for method in METHODS:
            if not hasattr(view_class, method):
                continue
            view = view_class()
            view.request = SimpleNamespace(method=method.upper())
            found.append((_url(entry.pattern), method, view.required_role))
    return found


ENDPOINTS = api_endpoints()


# What the console asks for the same action: reading is for any operator, exporting the
# audit trail and deciding (pending operations, reviews, rollbacks, quarantines) for
# approvers, changing the configuration for administrators.
APPROVER_READS = ("/api/v1/audit-log/export.", "/api/v1/rollbacks/preview")  # the mass-rollback page
APPROVER_WRITES = ("/api/v1/pending-operations", "/api/v1/reviews", "/api/v1/rollbacks", "/api/v1/quarantines")


def console_role(url: str, method: str) -> str:
    if method == "get":
        if url.endswith("/circuit-breaker") and "/scim-clients/" in url:
            return "administrator"  # the console's page of a client's own breaker settings
        return "approver" if url.startswith(APPROVER_READS) else "viewer"
    return "approver" if url.startswith(APPROVER_WRITES) else "administrator"


def test_each_endpoint_needs_the_role_the_console_needs():
    wrong = [(m, u, r) for u, m, r in ENDPOINTS if r != console_role(u, m)]
    assert wrong == []


def test_the_walk_covers_every_api_view():
    views = [
        e for e in api_urls.urlpatterns
        if issubclass(getattr(e.callback, "view_class", None) or getattr(e.callback, "cls", object), ApiView)
    ]
    assert len({url for url, _m, _r in ENDPOINTS}) == len(views) > 60
    assert {role for _u, _m, role in ENDPOINTS} == set(OPERATOR_ROLES)


def _call(client, method: str, url: str):
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, {}, format="json")


@pytest.mark.parametrize("url,method,role", ENDPOINTS, ids=[f"{m.upper()} {u}" for u, m, _r in ENDPOINTS])
def test_each_endpoint_refuses_anonymous_callers_and_lower_roles(url, method, role):
    anonymous = _call(APIClient(), method, url)
    assert anonymous.status_code == 401, anonymous.content
    assert anonymous["WWW-Authenticate"].startswith("Bearer")

    needed = OPERATOR_ROLES.index(role)
    for lower in (None, *OPERATOR_ROLES[:needed]):
        client = token_client(OperatorFactory(role=lower))
        response = _call(client, method, url)
        assert response.status_code == 403, (lower, response.content)
        # The error body in the answer's format (the schema's is YAML unless JSON is asked).
        assert b"permission_denied" in response.content
    # Nothing was done through the API (the tokens created above are audited, as made,
    # in change sets of their own source).
    assert not ChangeSet.objects.filter(source="api").exists()

    allowed = _call(token_client(OperatorFactory(role=role)), method, url)
    assert allowed.status_code not in (401, 403), allowed.content
