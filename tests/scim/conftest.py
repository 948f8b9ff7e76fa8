"""Fixtures for driving the SCIM endpoints through HTTP, as an IdP would.

``scim`` is bound to a freshly created provisioner client, ``readonly_scim`` to a
read-only one. Paths are relative to ``/scim/v2`` (``scim.get("/Users")``); an
absolute ``meta.location`` works too. Query parameters go in ``params`` so
filters are URL-encoded the way an IdP encodes them.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlencode, urlparse

import pytest
from django.http import HttpResponse
from django.test import Client

BASE = "/scim/v2"
SCIM_JSON = "application/scim+json"

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"

# Text that must never reach an IdP in an error ``detail``.
LEAK_MARKERS = (
    "Traceback",
    'File "',
    "SELECT ",
    "INSERT INTO",
    "UPDATE ",
    "DELETE FROM",
    "IntegrityError",
    "UNIQUE constraint",
    "duplicate key value",
    "django.db",
    "sqlite",
    "psycopg",
)


def _materialised(response):
    """A streamed response (a full group GET) read to the end, as an IdP reads it, into an
    ordinary response; ``streamed`` tells tests it arrived in chunks."""
    body = b"".join(response.streaming_content)  # the test client closes it when exhausted
    plain = HttpResponse(body, status=response.status_code)
    for header, value in response.items():
        plain[header] = value
    for name in ("wsgi_request", "request", "client", "resolver_match"):
        if hasattr(response, name):
            setattr(plain, name, getattr(response, name))
    plain.streamed = True
    return plain


class ScimApi:
    """A SCIM client speaking to the Django test server with one bearer token."""

    def __init__(self, token: str | None):
        self.token = token
        self.http = Client()

    # -- requests -------------------------------------------------------------

    def url(self, path: str, params: dict | None = None) -> str:
        if "://" in path:  # an absolute meta.location / Location header
            parsed = urlparse(path)
            path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        elif not path.startswith(BASE):
            path = BASE + path
        if params:
            path += ("&" if "?" in path else "?") + urlencode(params)
        return path

    def request(
        self,
        method: str,
        path: str,
        body=None,
        *,
        params: dict | None = None,
        raw: bytes | str | None = None,
        content_type: str = SCIM_JSON,
        **headers,
    ):
        if self.token is not None:
            headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {self.token}")
        data = raw if raw is not None else ("" if body is None else json.dumps(body))
        response = self.http.generic(
            method, self.url(path, params), data=data, content_type=content_type, **headers
        )
        return _materialised(response) if response.streaming else response

    def get(self, path, body=None, **kw):
        return self.request("GET", path, body, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body, **kw)

    def delete(self, path, body=None, **kw):
        return self.request("DELETE", path, body, **kw)

    # -- responses ------------------------------------------------------------

    @staticmethod
    def json(resp) -> dict:
        """The SCIM body of a response; asserts the SCIM media type."""
        assert resp["Content-Type"].startswith(SCIM_JSON), (
            f"Content-Type {resp['Content-Type']!r}, body {resp.content[:300]!r}"
        )
        return json.loads(resp.content)

    def ok(self, resp, status: int = 200) -> dict:
        assert resp.status_code == status, f"{resp.status_code}: {resp.content[:600]!r}"
        return self.json(resp)

    def assert_error(self, resp, status: int, scim_type: str | tuple[str, ...] | None = None):
        """A SCIM Error body (RFC 7644 §3.12) with ``status`` as a string and no leaked internals."""
        assert resp.status_code == status, f"{resp.status_code}: {resp.content[:600]!r}"
        body = self.json(resp)
        assert body["schemas"] == [ERROR_SCHEMA]
        assert body["status"] == str(status)
        detail = body.get("detail") or ""
        assert isinstance(detail, str)
        for marker in LEAK_MARKERS:
            assert marker.lower() not in detail.lower(), f"detail leaks {marker!r}: {detail!r}"
        if scim_type is not None:
            expected = (scim_type,) if isinstance(scim_type, str) else scim_type
            assert body.get("scimType") in expected, body
        return body

    # -- shortcuts ------------------------------------------------------------

    def create_user(self, user_name: str | None = None, **attrs) -> dict:
        body = {"schemas": [USER_SCHEMA], "userName": user_name or f"user-{uuid.uuid4().hex[:10]}"}
        body.update(attrs)
        return self.ok(self.post("/Users", body), 201)

    def create_group(self, display_name: str | None = None, **attrs) -> dict:
        body = {
            "schemas": [GROUP_SCHEMA],
            "displayName": display_name or f"group-{uuid.uuid4().hex[:10]}",
        }
        body.update(attrs)
        return self.ok(self.post("/Groups", body), 201)

    def read(self, path: str, **kw) -> dict:
        return self.ok(self.get(path, **kw))

    def search(self, path: str, **params) -> dict:
        """GET a list endpoint; asserts a well-formed ListResponse."""
        body = self.ok(self.get(path, params=params))
        assert body["schemas"] == [LIST_SCHEMA]
        assert isinstance(body["totalResults"], int)
        return body

    def patch_ops(self, path: str, *operations: dict, **kw):
        return self.patch(path, {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}, **kw)


def _client_token(role: str) -> str:
    from provisioning.access.clients import scim_client_create

    _client, token = scim_client_create(name=f"test-{role}-{uuid.uuid4().hex[:8]}", role=role)
    return token


@pytest.fixture
def scim(db) -> ScimApi:
    return ScimApi(_client_token("provisioner"))


@pytest.fixture
def readonly_scim(db) -> ScimApi:
    return ScimApi(_client_token("read-only"))


@pytest.fixture
def anonymous_scim(db) -> ScimApi:
    """No Authorization header unless a test passes one."""
    return ScimApi(None)
