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


PASSWORD = "a long and unusual passphrase"


def totp_code(secret: str, *, offset: int = 0) -> str:
    """The authenticator app's code for ``secret`` now (RFC 6238, 30 s, 6 digits)."""
    import time

    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 + offset))


def enrol_totp(user) -> str:
    """Give ``user`` an authenticator app and recovery codes; returns the TOTP secret."""
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    RecoveryCodes.activate(user)
    return secret


def age_session(client, **seconds_ago: float) -> None:
    """Move the session's clocks back: signed_in, seen, authenticated (seconds ago)."""
    import time

    from console.signin import session as keys

    names = {
        "signed_in": keys.SIGNED_IN_AT,
        "seen": keys.SEEN_AT,
        "authenticated": keys.AUTHENTICATED_AT,
    }
    stored = client.session
    for name, ago in seconds_ago.items():
        stored[names[name]] = time.time() - ago
    stored.save()
