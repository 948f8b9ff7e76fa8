"""The management API's endpoints for a SCIM client's OAuth 2.0 credentials: the panel
for viewers; secrets, keys, federated issuers, settings and access-token revocation for
administrators, validated by the console's forms and services, audited with source
"api", and effective at the token endpoint (RFC 6749 §4.4, RFC 7523 §2.1 and §2.2).
Who may call each endpoint is walked in test_config_endpoints (``endpoints``)."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from console.api.models import IdempotencyRecord
from provisioning.access.models import (
    AccessToken,
    AuthMethod,
    ClientKey,
    ClientSecret,
    FederatedIssuer,
    ScimClient,
)
from provisioning.access.oauth_credentials import (
    client_key_add,
    client_secret_issue,
    federation_add,
    scim_client_set_oauth_settings,
)
from provisioning.audit.models import AuditEntry, ChangeSet
from tests.access.oauth_helpers import (
    JWT_BEARER,
    KeyServer,
    assertion,
    assertion_params,
    basic,
    client_assertion,
    jwks,
    obtain_token,
    rsa_key,
    token_request,
)
from tests.factories import OperatorFactory, ScimClientFactory
from tests.signin.conftest import age_session

from .test_config_endpoints import CLIENTS, api_change_sets, assert_error, etag, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def idp(db) -> ScimClient:
    return ScimClientFactory(name="entra-prod")


def oauth(idp: ScimClient) -> str:
    return f"{CLIENTS}/{idp.pk}/oauth"


def secret_works(idp: ScimClient, raw: str) -> bool:
    response = token_request({"grant_type": "client_credentials"}, auth=basic(idp.pk, raw))
    assert response.status_code in (200, 401), response.content
    return response.status_code == 200


def entries_of(change_set: ChangeSet, model: str):
    return AuditEntry.objects.filter(change_set=change_set, content_type__model=model)


@pytest.fixture
def key_server(settings):
    """A local HTTP server for OpenID discovery documents and JWKS; http URLs allowed."""
    settings.SCIMGATE_OAUTH_ALLOW_HTTP = True
    server = KeyServer()
    yield server
    server.close()


# --- Reading ----------------------------------------------------------------------------------------


def test_the_panel_lists_credentials_by_prefix_never_a_secret(viewer_api, idp):
    secret, raw = client_secret_issue(client=idp)
    obtain_token(idp.pk, raw)
    client_key_add(client=idp, jwks=jwks(rsa_key("k-1")))
    federation_add(client=idp, issuer="https://login.example.com/t/v2.0", subject="app-1")
    response = viewer_api.get(oauth(idp))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["client_id"] == str(idp.pk) and body["client"]["name"] == "entra-prod"
    assert body["token_endpoint"] == "http://testserver/oauth/token"
    assert body["scim_base_url"] == "http://testserver/scim/v2"
    assert body["settings"]["auth_methods"] == [
        "static_token",
        "client_secret",
        "private_key_jwt",
        "federation",
    ]
    assert body["settings"]["access_token_lifetime"] == 3600
    assert body["active_access_tokens"] == 1
    [listed] = body["secrets"]
    assert listed["prefix"] == secret.prefix and listed["state"] == "active"
    assert listed["last_used_at"] is not None
    [key] = body["keys"]
    assert key["key_ids"] == ["k-1"] and key["jwks_uri"] == ""
    assert "d" not in key["jwks"]["keys"][0]  # public members only
    [federation] = body["federations"]
    assert (federation["subject"], federation["audience"]) == ("app-1", "")
    text = response.content.decode()
    assert raw not in text and secret.digest not in text and "digest" not in text
    again = viewer_api.get(oauth(idp), HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert_error(
        viewer_api.get(f"{CLIENTS}/00000000-0000-0000-0000-000000000000/oauth"), 404, "not_found"
    )


def test_the_settings_have_an_etag_token_requests_do_not_change(viewer_api, idp):
    _secret, raw = client_secret_issue(client=idp)
    before = etag(viewer_api, f"{oauth(idp)}/settings")
    panel = etag(viewer_api, oauth(idp))
    obtain_token(idp.pk, raw)
    # The panel changed (a token, a last use); the settings did not.
    assert etag(viewer_api, oauth(idp)) != panel
    assert etag(viewer_api, f"{oauth(idp)}/settings") == before
    body = viewer_api.get(f"{oauth(idp)}/settings").json()
    assert body == {
        "client": {"id": str(idp.pk), "name": "entra-prod"},
        "auth_methods": ["static_token", "client_secret"],
        "access_token_lifetime": 3600,
        "allowed_networks": [],
    }


# --- Client secrets ---------------------------------------------------------------------------------


def test_a_secret_is_shown_once_stored_hashed_and_works(admin_api, idp, caplog):
    with caplog.at_level(logging.DEBUG):
        response = post(admin_api, f"{oauth(idp)}/secrets", {"lifetime": 730}, key="s1")
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    raw = body["raw_secret"]
    secret = ClientSecret.objects.get(client=idp)
    assert raw.startswith(f"scgcs_{secret.prefix}_") and body["secret"]["prefix"] == secret.prefix
    assert secret.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert round((secret.expires_at - secret.created_at) / timedelta(days=1)) == 730
    assert body["oauth"]["secrets"] == [body["secret"]]
    assert AuthMethod.CLIENT_SECRET in body["oauth"]["settings"]["auth_methods"]
    assert secret_works(idp, raw)
    # Never again: not in the panel, the client's detail, the audit trail, the logs,
    # and not kept for a replay: the same Idempotency-Key issues another secret.
    assert raw not in admin_api.get(oauth(idp)).content.decode()
    assert raw not in admin_api.get(f"{CLIENTS}/{idp.pk}").content.decode()
    change_set = api_change_sets("oauth_secret.issue").get()
    assert change_set.operator == admin_api.user and change_set.source == "api"
    assert change_set.request["api"]["lifetime_days"] == 730
    assert entries_of(change_set, "clientsecret").count() == 1
    assert entries_of(change_set, "scimclient").count() == 1  # client_secret allowed
    stored = [
        change_set.request,
        *entries_of(change_set, "clientsecret").values_list("changes", flat=True),
    ]
    assert all(raw not in str(value) and secret.digest not in str(value) for value in stored)
    assert raw not in caplog.text
    assert not IdempotencyRecord.objects.exists()
    second = post(admin_api, f"{oauth(idp)}/secrets", {"lifetime": 730}, key="s1")
    assert second.status_code == 201 and "Idempotent-Replayed" not in second
    assert second.json()["raw_secret"] != raw and ClientSecret.objects.count() == 2


def test_a_secret_lasts_a_year_unless_asked_and_only_the_consoles_lifetimes(admin_api, idp):
    response = post(admin_api, f"{oauth(idp)}/secrets")
    assert response.status_code == 201
    secret = ClientSecret.objects.get()
    assert round((secret.expires_at - timezone.now()) / timedelta(days=1)) == 365
    for lifetime in (10, 3650, "forever", None):
        bad = post(admin_api, f"{oauth(idp)}/secrets", {"lifetime": lifetime})
        assert list(assert_error(bad, 400, "invalid")["fields"]) == ["lifetime"], lifetime
    assert ClientSecret.objects.count() == 1
    assert_error(
        post(admin_api, f"{CLIENTS}/00000000-0000-0000-0000-000000000000/oauth/secrets"),
        404,
        "not_found",
    )


def test_revoking_a_secret_refuses_it_at_the_token_endpoint(admin_api, idp):
    raw = post(admin_api, f"{oauth(idp)}/secrets").json()["raw_secret"]
    secret = ClientSecret.objects.get()
    assert secret_works(idp, raw)
    path = f"{oauth(idp)}/secrets/{secret.pk}/revoke"
    response = post(admin_api, path, key="r1")
    assert response.status_code == 200, response.content
    assert response.json()["secrets"][0]["state"] == "revoked"
    assert not secret_works(idp, raw)
    assert post(admin_api, path, key="r1")["Idempotent-Replayed"] == "true"
    secret.refresh_from_db()
    first = secret.revoked_at
    assert post(admin_api, path).status_code == 200
    secret.refresh_from_db()
    assert secret.revoked_at == first
    change_set = api_change_sets("oauth_secret.revoke").get()
    assert change_set.request["api"]["prefix"] == secret.prefix
    before, after = entries_of(change_set, "clientsecret").get().changes["revoked_at"]
    assert before is None and after
    other = ScimClientFactory(name="other")
    assert_error(
        post(admin_api, f"{CLIENTS}/{other.pk}/oauth/secrets/{secret.pk}/revoke"), 404, "not_found"
    )
    assert_error(post(admin_api, f"{oauth(idp)}/secrets/999999/revoke"), 404, "not_found")


# --- Keys (private_key_jwt) ---------------------------------------------------------------------------


def test_registered_keys_authenticate_until_revoked(admin_api, idp):
    key = rsa_key("api-key")
    response = post(admin_api, f"{oauth(idp)}/keys", {"jwks": jwks(key)}, key="k1")
    assert response.status_code == 201, response.content
    body = response.json()
    entry = ClientKey.objects.get(client=idp)
    assert body["key"]["id"] == entry.pk and body["key"]["key_ids"] == ["api-key"]
    assert "private_key_jwt" in body["oauth"]["settings"]["auth_methods"]
    replay = post(admin_api, f"{oauth(idp)}/keys", {"jwks": jwks(key)}, key="k1")
    assert replay["Idempotent-Replayed"] == "true" and replay.json() == body
    assert ClientKey.objects.count() == 1
    granted = token_request(assertion_params(client_assertion(idp, key)))
    assert granted.status_code == 200, granted.content
    change_set = api_change_sets("oauth_key.add").get()
    assert entries_of(change_set, "clientkey").count() == 1

    path = f"{oauth(idp)}/keys/{entry.pk}/revoke"
    revoked = post(admin_api, path)
    assert revoked.status_code == 200 and revoked.json()["keys"][0]["state"] == "revoked"
    refused = token_request(assertion_params(client_assertion(idp, key)))
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert post(admin_api, path).status_code == 200
    assert api_change_sets("oauth_key.revoke").count() == 1
    assert_error(post(admin_api, f"{oauth(idp)}/keys/999999/revoke"), 404, "not_found")


def test_keys_are_validated_as_in_the_console(admin_api, idp, settings):
    key = rsa_key("k")
    path = f"{oauth(idp)}/keys"
    private = assert_error(
        post(admin_api, path, {"jwks": {"keys": [key.as_dict(private=True)]}}), 400, "invalid"
    )
    assert "private" in " ".join(private["fields"]["jwks"])
    for document in ({"keys": []}, {"not": "keys"}, {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}):
        assert (
            "jwks"
            in assert_error(post(admin_api, path, {"jwks": document}), 400, "invalid")["fields"]
        )
    assert "jwks" in assert_error(post(admin_api, path, {"jwks": [1]}), 400, "invalid")["fields"]
    # One of the two, as the console's form says.
    for body in (
        {},
        {"jwks": jwks(key), "jwks_uri": "https://idp.example.com/jwks"},
        {"jwks": None, "jwks_uri": ""},
    ):
        refused = assert_error(post(admin_api, path, body), 400, "invalid")
        assert "one of the two" in refused["detail"] and refused["fields"] == {}
    assert (
        "jwks_uri"
        in assert_error(post(admin_api, path, {"jwks_uri": "not a url"}), 400, "invalid")["fields"]
    )
    settings.SCIMGATE_OAUTH_ALLOW_HTTP = False
    plain = assert_error(
        post(admin_api, path, {"jwks_uri": "http://idp.example.com/jwks"}), 400, "invalid"
    )
    assert "https" in " ".join(plain["fields"]["jwks_uri"])
    assert not ClientKey.objects.exists() and not api_change_sets("oauth_key.add").exists()
    idp.refresh_from_db()
    assert "private_key_jwt" not in idp.auth_methods


def test_a_jwks_url_is_registered(admin_api, idp):
    response = post(
        admin_api, f"{oauth(idp)}/keys", {"jwks_uri": "https://idp.example.com/jwks.json"}
    )
    assert response.status_code == 201, response.content
    assert response.json()["key"] | {"created_at": None} == {
        "id": ClientKey.objects.get().pk,
        "jwks": None,
        "jwks_uri": "https://idp.example.com/jwks.json",
        "key_ids": [],
        "state": "active",
        "created_at": None,
        "expires_at": None,
        "revoked_at": None,
        "last_used_at": None,
    }


# --- Federated issuers --------------------------------------------------------------------------------


def test_a_trusted_issuer_authenticates_until_revoked(admin_api, idp, key_server):
    idp_key = rsa_key("idp-1")
    issuer = key_server.publish_issuer("/tenant/v2.0", jwks(idp_key))
    path = f"{oauth(idp)}/federations"
    response = post(admin_api, path, {"issuer": issuer, "subject": "app-1"}, key="f1")
    assert response.status_code == 201, response.content
    federation = FederatedIssuer.objects.get(client=idp)
    body = response.json()
    assert body["federation"]["id"] == federation.pk and body["federation"]["audience"] == ""
    assert "federation" in body["oauth"]["settings"]["auth_methods"]
    assert (
        post(admin_api, path, {"issuer": issuer, "subject": "app-1"}, key="f1")[
            "Idempotent-Replayed"
        ]
        == "true"
    )
    grant = {"grant_type": JWT_BEARER, "assertion": assertion(idp_key, iss=issuer, sub="app-1")}
    assert token_request(grant).status_code == 200
    change_set = api_change_sets("oauth_federation.add").get()
    assert change_set.request["api"]["issuer"] == issuer
    assert entries_of(change_set, "federatedissuer").count() == 1

    revoked = post(admin_api, f"{path}/{federation.pk}/revoke")
    assert revoked.status_code == 200 and revoked.json()["federations"][0]["state"] == "revoked"
    grant = {"grant_type": JWT_BEARER, "assertion": assertion(idp_key, iss=issuer, sub="app-1")}
    refused = token_request(grant)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert api_change_sets("oauth_federation.revoke").count() == 1
    assert_error(post(admin_api, f"{path}/999999/revoke"), 404, "not_found")


def test_issuers_are_validated_as_in_the_console(admin_api, idp):
    path = f"{oauth(idp)}/federations"
    good = {"issuer": "https://login.example.com/t/v2.0", "subject": "app-1"}
    assert post(admin_api, path, good).status_code == 201
    duplicate = assert_error(post(admin_api, path, good), 400, "invalid")
    assert "already trusted" in " ".join(duplicate["fields"]["subject"])
    cases = [
        ({"subject": "s"}, "issuer"),
        ({"issuer": "ftp://login.example.com", "subject": "s"}, "issuer"),
        ({"issuer": "https://login.example.com/x"}, "subject"),
        ({"issuer": "https://login.example.com/x", "subject": "   "}, "subject"),
        ({"issuer": "https://login.example.com/x", "subject": "s" * 513}, "subject"),
        (
            {"issuer": "https://login.example.com/x", "subject": "s", "audience": "a" * 2049},
            "audience",
        ),
    ]
    for body, field in cases:
        assert field in assert_error(post(admin_api, path, body), 400, "invalid")["fields"], body
    assert FederatedIssuer.objects.count() == 1


# --- Settings -------------------------------------------------------------------------------------------


def test_changing_the_settings_needs_if_match_and_is_one_change_set(admin_api, idp):
    path = f"{oauth(idp)}/settings"
    change = {
        "auth_methods": ["client_secret"],
        "access_token_lifetime": 7200,
        "allowed_networks": ["10.0.0.1/8"],
    }
    assert_error(post(admin_api, f"{path}/change", change), 428, "precondition_required")
    assert_error(
        post(admin_api, f"{path}/change", change, etag='"stale"'), 412, "precondition_failed"
    )
    current = etag(admin_api, path)
    response = post(admin_api, f"{path}/change", change, etag=current, key="c1")
    assert response.status_code == 200, response.content
    assert response.json() | {"client": None} == {
        "client": None,
        "auth_methods": ["client_secret"],
        "access_token_lifetime": 7200,
        "allowed_networks": ["10.0.0.0/8"],
    }
    assert response["ETag"] == etag(admin_api, path) != current
    assert (
        post(admin_api, f"{path}/change", change, etag=current, key="c1")["Idempotent-Replayed"]
        == "true"
    )
    # The old ETag is stale now.
    assert_error(
        post(admin_api, f"{path}/change", change, etag=current), 412, "precondition_failed"
    )
    change_set = api_change_sets("oauth_settings.change").get()
    assert change_set.request["api"]["fields"] == sorted(change)
    # Both services' writes (methods, then lifetime and networks) in this one change set.
    # The lifetime is named like a token but is none: its change is in the trail.
    changed = {name for entry in entries_of(change_set, "scimclient") for name in entry.changes}
    assert {"auth_methods", "oauth_allowed_networks", "access_token_lifetime"} <= changed
    lifetime = next(
        e.changes["access_token_lifetime"]
        for e in entries_of(change_set, "scimclient")
        if "access_token_lifetime" in e.changes
    )
    assert [str(v) for v in lifetime] == ["3600", "7200"]
    assert entries_of(change_set, "scimclient").count() == 2

    # Only the fields sent change.
    response = post(
        admin_api, f"{path}/change", {"access_token_lifetime": 10800}, etag=etag(admin_api, path)
    )
    body = response.json()
    assert body["access_token_lifetime"] == 10800
    assert body["auth_methods"] == ["client_secret"] and body["allowed_networks"] == ["10.0.0.0/8"]


def test_settings_are_validated_by_the_consoles_form(admin_api, idp):
    path = f"{oauth(idp)}/settings"
    cases = [
        ({"access_token_lifetime": 5400}, "access_token_lifetime"),
        ({"access_token_lifetime": 30 * 3600}, "access_token_lifetime"),
        ({"auth_methods": ["magic_link"]}, "auth_methods"),
        ({"allowed_networks": ["nope"]}, "allowed_networks"),
        ({"allowed_networks": ["10.0.0.0/8\n192.0.2.0/24"]}, "allowed_networks"),
    ]
    for body, field in cases:
        refused = assert_error(post(admin_api, f"{path}/change", body, etag="*"), 400, "invalid")
        assert list(refused["fields"]) == [field], body
    idp.refresh_from_db()
    assert idp.auth_methods == ["static_token"] and idp.access_token_lifetime == 3600
    assert (
        idp.oauth_allowed_networks == [] and not api_change_sets("oauth_settings.change").exists()
    )


def test_a_lifetime_the_form_does_not_offer_stays_unless_sent(admin_api, idp):
    scim_client_set_oauth_settings(client=idp, access_token_lifetime=5400)
    path = f"{oauth(idp)}/settings/change"
    response = post(admin_api, path, {"allowed_networks": ["192.0.2.0/24"]}, etag="*")
    assert response.status_code == 200, response.content
    idp.refresh_from_db()
    assert idp.access_token_lifetime == 5400 and idp.oauth_allowed_networks == ["192.0.2.0/24"]


def test_the_settings_take_effect_at_the_token_endpoint(admin_api, idp):
    raw = post(admin_api, f"{oauth(idp)}/secrets").json()["raw_secret"]
    path = f"{oauth(idp)}/settings/change"
    assert post(admin_api, path, {"access_token_lifetime": 7200}, etag="*").status_code == 200
    granted = token_request({"grant_type": "client_credentials"}, auth=basic(idp.pk, raw))
    assert granted.json()["expires_in"] == 7200
    access = granted.json()["access_token"]
    # Switching the method off refuses the secret and the token it obtained, at once.
    assert post(admin_api, path, {"auth_methods": ["static_token"]}, etag="*").status_code == 200
    assert not secret_works(idp, raw)
    assert Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 401
    # Networks: the test client (127.0.0.1) is outside 192.0.2.0/24.
    change = {"auth_methods": ["client_secret"], "allowed_networks": ["192.0.2.0/24"]}
    assert post(admin_api, path, change, etag="*").status_code == 200
    assert not secret_works(idp, raw)
    assert post(admin_api, path, {"allowed_networks": []}, etag="*").status_code == 200
    assert secret_works(idp, raw)


# --- Access tokens --------------------------------------------------------------------------------------


def test_revoking_all_access_tokens_refuses_them_for_scim(admin_api, idp):
    _secret, raw = client_secret_issue(client=idp)
    tokens = [obtain_token(idp.pk, raw), obtain_token(idp.pk, raw)]
    path = f"{oauth(idp)}/access-tokens/revoke"
    response = post(admin_api, path, key="a1")
    assert response.status_code == 200, response.content
    assert response.json()["revoked"] == 2 and response.json()["oauth"]["active_access_tokens"] == 0
    for token in tokens:
        assert (
            Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
        )
    assert post(admin_api, path, key="a1").json()["revoked"] == 2  # the replayed answer
    change_set = api_change_sets("oauth_access_tokens.revoke").get()
    assert entries_of(change_set, "scimclient").get().changes == {
        "oauth_access_revoked": ["0", "2"]
    }
    # Nothing left to revoke: nothing recorded. The secret still obtains new tokens.
    assert post(admin_api, path).json()["revoked"] == 0
    assert api_change_sets("oauth_access_tokens.revoke").count() == 1
    assert AccessToken.objects.filter(revoked_at__isnull=True).count() == 0
    assert obtain_token(idp.pk, raw)


# --- Sessions ---------------------------------------------------------------------------------------------


@override_settings(SCIMGATE_STEP_UP_MINUTES=15)
def test_a_session_revokes_without_step_up(idp):
    """Revoking only takes access away: the console asks no recent sign-in for it."""
    _secret, raw = client_secret_issue(client=idp)
    obtain_token(idp.pk, raw)
    session = APIClient()
    session.force_login(OperatorFactory(role="administrator"))
    age_session(session, authenticated=20 * 60)
    secret = ClientSecret.objects.get()
    assert post(session, f"{oauth(idp)}/access-tokens/revoke").json()["revoked"] == 1
    assert post(session, f"{oauth(idp)}/secrets/{secret.pk}/revoke").status_code == 200
    assert not secret_works(idp, raw)
    assert ChangeSet.objects.filter(source="api", request__authenticated_by="session").count() == 2
