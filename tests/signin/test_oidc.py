"""Single sign-on with OpenID Connect against a local OpenID Provider.

The provider (``oidc_provider.py``) runs on 127.0.0.1; scimgate discovers it, sends
the browser to its authorization endpoint, exchanges the code (with PKCE) and checks
the ID token. References: OpenID Connect Core 1.0 §3.1.2.1 (authorization request,
``nonce``, ``prompt``, ``max_age``), §3.1.3.7 (ID token validation), §5.3.2 (UserInfo
``sub``); RFC 7636 (PKCE); RFC 6749 §10.12 (``state`` against CSRF).
"""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.test import Client

from console.permissions import operator_role
from provisioning.audit.models import AuditEntry

from .conftest import GROUPS, at_idp, back, query_of, sign_in, start
from .oidc_provider import CLIENT_ID

pytestmark = pytest.mark.django_db
User = get_user_model()


def _events(**filters) -> list[str]:
    return [
        entry.changes["event"][1]
        for entry in AuditEntry.objects.filter(action=AuditEntry.Action.ACCESS, **filters).order_by(
            "id"
        )
    ]


def _as(idp, sub: str, *groups: str, **claims) -> None:
    idp.user.sub = sub
    idp.user.claims = {"groups": list(groups), **claims}


# --- the flow ---------------------------------------------------------------------------


def test_sign_in_end_to_end_creates_the_operator_with_the_role_from_claims(sso):
    _as(
        sso,
        "00u-ana",
        GROUPS["approver"],
        preferred_username="ana@example.com",
        email="ana@example.com",
    )
    client = Client()

    authorization_url = start(client, next_url="/pending/")
    params = query_of(authorization_url)
    assert authorization_url.startswith(f"{sso.issuer}/authorize?")
    assert params["response_type"] == "code"
    assert params["client_id"] == CLIENT_ID
    assert set(params["scope"].split()) >= {"openid", "profile", "email"}
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 16 and len(params["nonce"]) >= 32

    response = back(client, at_idp(authorization_url))
    assert response.status_code == 302 and response["Location"] == "/pending/"

    user = User.objects.get(username="ana@example.com")
    assert not user.has_usable_password()
    assert operator_role(user) == "approver"
    assert SocialAccount.objects.get(user=user).uid == "00u-ana"
    # The token request proved possession of the PKCE verifier behind the challenge.
    verifier = sso.token_requests[-1]["code_verifier"]
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert digest.decode() == params["code_challenge"]
    # Signed in: the console answers.
    assert client.get("/pending/").status_code == 200
    # Audited: the role from the claims and the sign-in, with method and subject.
    signed_in = (
        AuditEntry.objects.filter(action=AuditEntry.Action.ACCESS, actor=user).order_by("id").last()
    )
    assert signed_in.changes["event"][1] == "signed in"
    assert signed_in.changes["method"][1] == "oidc"
    assert signed_in.changes["idp_subject"][1] == "00u-ana"
    assert "role from identity provider" in _events(object_pk=str(user.pk))


def test_the_role_is_evaluated_again_at_every_sign_in(sso):
    _as(sso, "00u-ben", GROUPS["viewer"], preferred_username="ben")
    assert sign_in(Client()).status_code == 302
    ben = User.objects.get(username="ben")
    assert operator_role(ben) == "viewer"

    _as(sso, "00u-ben", GROUPS["viewer"], GROUPS["administrator"], preferred_username="ben")
    client = Client()
    assert sign_in(client).status_code == 302
    assert User.objects.filter(username__startswith="ben").count() == 1
    assert operator_role(User.objects.get(pk=ben.pk)) == "administrator"
    assert client.get("/policies/new/").status_code == 200
    entry = (
        AuditEntry.objects.filter(changes__event__1="role from identity provider")
        .order_by("id")
        .last()
    )
    assert entry.changes["role"][1] == "administrator"
    assert entry.changes["previous_role"][1] == "viewer"


def test_a_role_claim_as_a_single_string_and_a_nested_claim(sso, settings):
    settings.SCIMGATE_OIDC_ROLE_CLAIM = "realm_access.roles"
    settings.SCIMGATE_OIDC_ROLE_VALUES = {
        "viewer": [],
        "approver": ["approve"],
        "administrator": [],
    }
    _as(sso, "kc-1", preferred_username="kc", realm_access={"roles": ["approve", "other"]})
    assert sign_in(Client()).status_code == 302
    assert operator_role(User.objects.get(username="kc")) == "approver"

    settings.SCIMGATE_OIDC_ROLE_CLAIM = "roles"
    settings.SCIMGATE_OIDC_ROLE_VALUES = {
        "viewer": ["Console.Read"],
        "approver": [],
        "administrator": [],
    }
    _as(sso, "entra-1", preferred_username="entra", roles="Console.Read")
    assert sign_in(Client()).status_code == 302
    assert operator_role(User.objects.get(username="entra")) == "viewer"


def test_no_role_in_the_claims_no_sign_in_and_no_operator(sso):
    _as(sso, "00u-eve", "some-other-group", preferred_username="eve")
    client = Client()
    response = sign_in(client)
    assert response.status_code == 403
    assert "grants no console role" in response.content.decode()
    assert not User.objects.filter(username="eve").exists()
    assert client.get("/").status_code == 302  # not signed in
    assert "sign-in refused" in _events(object_repr="eve")


def test_role_removed_at_the_idp_ends_open_sessions(sso):
    _as(sso, "00u-dan", GROUPS["administrator"], preferred_username="dan")
    first = Client()
    assert sign_in(first).status_code == 302
    assert first.get("/").status_code == 200

    # The identity team takes dan out of every scimgate group; dan signs in elsewhere.
    _as(sso, "00u-dan", "unrelated", preferred_username="dan")
    second = Client()
    refused = sign_in(second)
    assert refused.status_code == 403
    dan = User.objects.get(username="dan")
    assert operator_role(dan) is None
    # The session opened before ends at its next request.
    answer = first.get("/")
    assert answer.status_code == 302 and answer["Location"].startswith("/login/")
    events = _events(object_pk=str(dan.pk))
    assert "role removed by identity provider" in events and "sign-in refused" in events


def test_a_local_account_with_the_same_name_is_never_taken_over(sso):
    local = User.objects.create_user(username="root", password="a long local passphrase")
    _as(
        sso,
        "00u-root",
        GROUPS["administrator"],
        preferred_username="root",
        email="root@example.com",
    )
    assert sign_in(Client()).status_code == 302
    created = SocialAccount.objects.get(uid="00u-root").user
    assert created.pk != local.pk and created.username == "root-2"
    assert operator_role(User.objects.get(pk=local.pk)) is None


# --- what the callback refuses ------------------------------------------------------------


def _refused(response, client) -> None:
    assert response.status_code in (401, 403), response.status_code
    assert client.get("/").status_code == 302, "must not be signed in"


def test_an_unknown_state_is_refused(sso):
    _as(sso, "00u-s", GROUPS["viewer"], preferred_username="s")
    client = Client()
    callback = at_idp(start(client))
    forged = callback.replace(f"state={query_of(callback)['state']}", "state=forged-state-value")
    _refused(back(client, forged), client)
    assert not User.objects.filter(username="s").exists()


def test_a_callback_in_another_browser_is_refused(sso):
    """Login CSRF: a code and state obtained by an attacker, replayed in a victim's browser."""
    _as(sso, "00u-attacker", GROUPS["administrator"], preferred_username="attacker")
    attacker = Client()
    callback = at_idp(start(attacker))
    victim = Client()
    victim.get("/login/")
    _refused(back(victim, callback), victim)


def test_a_state_is_used_once(sso):
    _as(sso, "00u-once", GROUPS["viewer"], preferred_username="once")
    client = Client()
    callback = at_idp(start(client))
    assert back(client, callback).status_code == 302
    client.post("/logout/")
    _refused(back(client, callback), client)


def test_a_wrong_nonce_is_refused(sso):
    _as(sso, "00u-n", GROUPS["viewer"], preferred_username="n")
    sso.id_token_claims = {"nonce": "a-nonce-from-another-sign-in"}
    client = Client()
    _refused(sign_in(client), client)
    assert not User.objects.filter(username="n").exists()
    failure = AuditEntry.objects.filter(changes__event__1="sign-in failed").order_by("id").last()
    assert "nonce" in failure.changes["reason"][1]


def test_a_missing_nonce_is_refused(sso):
    _as(sso, "00u-n2", GROUPS["viewer"], preferred_username="n2")
    sso.id_token_claims = {"nonce": None}
    client = Client()
    _refused(sign_in(client), client)


def test_a_code_injected_from_another_pkce_session_is_refused(sso):
    """RFC 7636 §1: a code issued for the attacker's challenge, injected into the victim's
    callback with the victim's state, fails at the token endpoint."""
    _as(sso, "00u-p", GROUPS["administrator"], preferred_username="p")
    attacker, victim = Client(), Client()
    attacker_callback = at_idp(start(attacker))
    victim_callback = at_idp(start(victim))
    injected = victim_callback.replace(
        f"code={query_of(victim_callback)['code']}", f"code={query_of(attacker_callback)['code']}"
    )
    _refused(back(victim, injected), victim)
    assert sso.token_answers[-1] == (
        400,
        {"error": "invalid_grant", "error_description": "PKCE verification failed"},
    )
    assert not User.objects.filter(username="p").exists()


@pytest.mark.parametrize(
    "claims, reason",
    [
        ({"iss": "https://evil.example"}, "issuer"),
        ({"aud": "another-client"}, "audience"),
        ({"aud": [CLIENT_ID, "another-client"], "azp": "another-client"}, "azp"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"iat": None}, "iat"),
    ],
    ids=["wrong-issuer", "wrong-audience", "wrong-azp", "expired", "no-iat"],
)
def test_id_token_checks(sso, claims, reason):
    _as(sso, f"00u-{reason}", GROUPS["viewer"], preferred_username=reason)
    sso.id_token_claims = claims
    client = Client()
    _refused(sign_in(client), client)
    assert not User.objects.filter(username=reason).exists()
    failure = AuditEntry.objects.filter(changes__event__1="sign-in failed").order_by("id").last()
    assert reason in failure.changes["reason"][1].lower()


def test_a_signature_by_a_key_the_jwks_does_not_publish_is_refused(sso):
    _as(sso, "00u-sig", GROUPS["viewer"], preferred_username="sig")
    sso.sign_with_stranger = True
    client = Client()
    _refused(sign_in(client), client)


def test_userinfo_for_another_subject_is_refused(sso):
    _as(sso, "00u-ui", GROUPS["viewer"], preferred_username="ui")
    sso.userinfo_claims = {"sub": "someone-else"}
    client = Client()
    _refused(sign_in(client), client)


def test_a_discovery_document_of_another_issuer_is_refused(sso):
    sso.discovery_issuer = "https://login.example.com"
    client = Client()
    response = client.post("/login/sso/")
    assert response.status_code == 401
    assert not sso.authorization_requests


def test_an_http_issuer_is_refused_outside_development(sso, settings):
    settings.SCIMGATE_OIDC_ALLOW_HTTP = False
    response = Client().post("/login/sso/")
    assert response.status_code == 401
    assert not sso.authorization_requests


def test_request_parameters_cannot_change_the_authorization_request(sso):
    client = Client()
    response = client.post("/login/sso/?auth_params=prompt%3Dnone%26nonce%3Dx&scope=offline_access")
    params = query_of(response["Location"])
    assert params.get("prompt") is None and params["nonce"] != "x"
    assert "offline_access" not in params["scope"]


def test_sign_in_is_a_post(sso):
    assert Client().get("/login/sso/").status_code == 405


def test_without_configuration_there_is_no_single_sign_on():
    client = Client()
    assert b"Sign in with" not in client.get("/login/").content
    assert client.post("/login/sso/").status_code == 404


def test_the_sign_in_page_offers_the_identity_provider(sso):
    page = Client().get("/login/").content.decode()
    assert "Sign in with Test IdP" in page


def test_the_callback_without_configuration_is_not_found():
    assert Client().get("/login/sso/callback/?code=x&state=y").status_code == 404


def test_the_callback_without_a_code_or_with_an_error_is_refused(sso):
    client = Client()
    authorization_url = start(client)
    state = query_of(authorization_url)["state"]
    response = client.get("/login/sso/callback/", {"state": state, "error": "access_denied"})
    assert response.status_code == 401
    assert client.get("/").status_code == 302
