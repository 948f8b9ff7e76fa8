"""A local OpenID Provider per test, and scimgate pointed at it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from .oidc_provider import Provider

GROUPS = {
    "viewer": "scimgate-viewers",
    "approver": "scimgate-approvers",
    "administrator": "scimgate-administrators",
}


@pytest.fixture
def idp():
    provider = Provider().start()
    yield provider
    provider.stop()


@pytest.fixture
def sso(idp, settings):
    for name, value in idp.settings().items():
        setattr(settings, name, value)
    return idp


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def start(client, *, next_url: str = "") -> str:
    """Press "Sign in with ..." on the sign-in page: the authorization request URL."""
    response = client.post("/login/sso/", {"next": next_url} if next_url else {})
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def at_idp(authorization_url: str) -> str:
    """The identity provider's answer to the browser: the redirect back to scimgate."""
    answer = requests.get(authorization_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def back(client, callback_url: str):
    parts = urlsplit(callback_url)
    return client.get(parts.path, query_of(callback_url))


def sign_in(client, *, next_url: str = ""):
    """The whole redirect flow; scimgate's answer to the callback."""
    return back(client, at_idp(start(client, next_url=next_url)))
