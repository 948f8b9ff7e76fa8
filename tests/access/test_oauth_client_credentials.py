"""The token endpoint with client secrets (RFC 6749 §4.4 client credentials, §2.3.1
client_secret_basic / client_secret_post), its errors (§5.2), the metadata (RFC 8414),
and access tokens authenticating SCIM requests like static tokens."""

from __future__ import annotations

import base64
import logging
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from provisioning.access.models import AccessToken, AuthMethod, ClientSecret, ScimClient
from provisioning.access.oauth_credentials import (
    access_tokens_revoke,
    client_secret_issue,
    client_secret_revoke,
    scim_client_create_oauth,
    scim_client_set_auth_methods,
    scim_client_set_oauth_settings,
)
from provisioning.access.token_check import scim_token_authenticate
from provisioning.audit.models import RequestLog
from tests.access.oauth_helpers import basic, obtain_token, token_request
from tests.factories import ScimClientFactory

pytestmark = pytest.mark.django_db

USERS = "/scim/v2/Users"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


def scim_get(token: str, path: str = USERS, **extra):
    return Client().get(path, HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


def assert_error(response, status: int, error: str):
    """RFC 6749 §5.2: JSON body with ``error``, never cached."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response.json()["error"] == error
    if error == "invalid_client":
        assert response["WWW-Authenticate"].startswith("Basic ")


# --- Metadata -----------------------------------------------------------------------------


def test_metadata_names_the_token_endpoint_grants_and_methods():
    response = Client().get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    document = response.json()
    # RFC 8414 §2: issuer, token_endpoint, and what the endpoint supports.
    assert document["issuer"] == "http://testserver"
    assert document["token_endpoint"] == "http://testserver/oauth/token"
    assert "client_credentials" in document["grant_types_supported"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    }
    assert "RS256" in document["token_endpoint_auth_signing_alg_values_supported"]
    assert "none" not in document["token_endpoint_auth_signing_alg_values_supported"]
    assert not any(a.startswith("HS") for a in document["token_endpoint_auth_signing_alg_values_supported"])


def test_metadata_issuer_from_settings(settings):
    settings.SCIMGATE_OAUTH_ISSUER = "https://scim.example.com"
    document = Client().get("/.well-known/oauth-authorization-server").json()
    assert document["issuer"] == "https://scim.example.com"
    assert document["token_endpoint"] == "https://scim.example.com/oauth/token"


# --- Successful token requests ------------------------------------------------------------


def test_client_secret_basic_issues_a_bearer_token_that_reads_users(oauth_client):
    client, secret = oauth_client
    response = token_request({"grant_type": "client_credentials"}, auth=basic(client.pk, secret))
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"].startswith("scgat_")
    listed = scim_get(body["access_token"])
    assert listed.status_code == 200, listed.content
    assert listed.json()["totalResults"] == 0


def test_client_secret_post_and_scope(oauth_client):
    client, secret = oauth_client
    response = token_request(
        {
            "grant_type": "client_credentials",
            "client_id": str(client.pk),
            "client_secret": secret,
            "scope": "scim",
        }
    )
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "scim"


def test_basic_credentials_are_form_decoded(oauth_client):
    """RFC 6749 §2.3.1: id and secret are form-urlencoded before base64."""
    client, secret = oauth_client
    header = "Basic " + base64.b64encode(f"{quote(str(client.pk))}:{quote(secret)}".encode()).decode()
    assert token_request({"grant_type": "client_credentials"}, auth=header).status_code == 200


def test_several_secrets_work_at_once_for_rotation(oauth_client):
    client, first = oauth_client
    _second, second = client_secret_issue(client=client)
    assert obtain_token(client.pk, first)
    assert obtain_token(client.pk, second)
    client_secret_revoke(secret=ClientSecret.objects.get(prefix=first.split("_")[1]))
    assert token_request({"grant_type": "client_credentials"}, auth=basic(client.pk, first)).status_code == 401
    assert obtain_token(client.pk, second)


def test_secret_and_token_are_stored_only_as_digests(oauth_client):
    client, secret = oauth_client
    token = obtain_token(client.pk, secret)
    stored = ClientSecret.objects.get(client=client)
    assert secret not in (stored.prefix, stored.digest)
    assert stored.prefix in secret
    row = AccessToken.objects.get(client=client)
    assert token not in (row.prefix, row.digest)
    assert row.auth_method == "client_secret_basic"
    assert row.credential == f"secret:{stored.prefix}"


def test_token_lifetime_is_configurable_from_one_to_six_hours(oauth_client):
    client, secret = oauth_client
    scim_client_set_oauth_settings(client=client, access_token_lifetime=6 * 3600)
    response = token_request({"grant_type": "client_credentials"}, auth=basic(client.pk, secret))
    assert response.json()["expires_in"] == 21600
    token = AccessToken.objects.get(client=client)
    assert token.expires_at - token.created_at == pytest.approx(timedelta(hours=6), abs=timedelta(seconds=5))
    for wrong in (3599, 6 * 3600 + 1):
        with pytest.raises(ValidationError):
            scim_client_set_oauth_settings(client=client, access_token_lifetime=wrong)


def test_secret_expiry_defaults_to_a_year_and_is_at_most_three(oauth_client):
    client, _secret = oauth_client
    stored = ClientSecret.objects.get(client=client)
    assert stored.expires_at - stored.created_at == pytest.approx(timedelta(days=365), abs=timedelta(seconds=5))
    now = timezone.now()
    client_secret_issue(client=client, expires_at=now + timedelta(days=3 * 365))
    with pytest.raises(ValidationError, match="three years"):
        client_secret_issue(client=client, expires_at=now + timedelta(days=3 * 365 + 2))
    with pytest.raises(ValidationError, match="future"):
        client_secret_issue(client=client, expires_at=now - timedelta(seconds=1))


# --- RFC 6749 §5.2 errors ----------------------------------------------------------------------


def test_wrong_secret_is_invalid_client_401_counted_and_logged_without_the_secret(
    oauth_client, caplog
):
    client, secret = oauth_client
    wrong = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    with caplog.at_level(logging.INFO):
        response = token_request({"grant_type": "client_credentials"}, auth=basic(client.pk, wrong))
        again = token_request(
            {"grant_type": "client_credentials", "client_id": str(client.pk), "client_secret": wrong}
        )
    assert_error(response, 401, "invalid_client")
    assert_error(again, 401, "invalid_client")
    client.refresh_from_db()
    assert client.oauth_failures == 2
    assert client.oauth_last_failure_at is not None
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert str(client.pk) in logged
    assert wrong not in logged and secret not in logged


def test_swapped_basic_credentials_never_log_the_secret(oauth_client, caplog):
    """A client that sends its secret as the Basic user name (swapped fields): the
    claimed "client id" is not a UUID, so it is not logged at all."""
    client, secret = oauth_client
    with caplog.at_level(logging.INFO):
        response = token_request({"grant_type": "client_credentials"}, auth=basic(secret, client.pk))
    assert_error(response, 401, "invalid_client")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert secret not in logged
    assert secret.split("_", 2)[2] not in logged  # nor its secret part (which may hold "_")
    assert "(not a client id)" in logged


@pytest.mark.parametrize(
    "claimed", ["x\nOAuth access token issued to client evil", "../../etc", "A" * 100]
)
def test_claimed_ids_other_than_uuids_are_not_logged(db, caplog, claimed):
    with caplog.at_level(logging.INFO):
        token_request(
            {"grant_type": "client_credentials", "client_id": claimed, "client_secret": "scgcs_x"}
        )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert claimed not in logged and "(not a client id)" in logged


@pytest.mark.parametrize(
    "client_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid", ""]
)
def test_unknown_client_is_invalid_client(oauth_client, client_id):
    _client, secret = oauth_client
    response = token_request({"grant_type": "client_credentials"}, auth=basic(client_id, secret))
    assert_error(response, 401, "invalid_client")


def test_no_client_authentication_is_invalid_client(oauth_client):
    assert_error(token_request({"grant_type": "client_credentials"}), 401, "invalid_client")
    assert_error(
        token_request({"grant_type": "client_credentials"}, auth="Bearer something"),
        401,
        "invalid_client",
    )
    assert_error(
        token_request({"grant_type": "client_credentials"}, auth="Basic !!notbase64"),
        401,
        "invalid_client",
    )


def test_expired_and_revoked_secrets_are_invalid_client(oauth_client):
    client, secret = oauth_client
    stored = ClientSecret.objects.get(client=client)
    ClientSecret.objects.filter(pk=stored.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = token_request({"grant_type": "client_credentials"}, auth=basic(client.pk, secret))
    assert_error(response, 401, "invalid_client")
    assert "expired" in response.json()["error_description"]
    ClientSecret.objects.filter(pk=stored.pk).update(expires_at=timezone.now() + timedelta(days=1))
    client_secret_revoke(secret=stored)
    response = token_request({"grant_type": "client_credentials"}, auth=basic(client.pk, secret))
    assert_error(response, 401, "invalid_client")
    assert "revoked" in response.json()["error_description"]


def test_grant_type_errors(oauth_client):
    client, secret = oauth_client
    auth = basic(client.pk, secret)
    assert_error(token_request({}, auth=auth), 400, "invalid_request")
    assert_error(token_request({"grant_type": "password"}, auth=auth), 400, "unsupported_grant_type")
    assert_error(
        token_request({"grant_type": "authorization_code", "code": "x"}, auth=auth),
        400,
        "unsupported_grant_type",
    )


def test_scope_other_than_scim_is_invalid_scope(oauth_client):
    client, secret = oauth_client
    response = token_request(
        {"grant_type": "client_credentials", "scope": "scim admin"}, auth=basic(client.pk, secret)
    )
    assert_error(response, 400, "invalid_scope")
    assert not AccessToken.objects.exists()


def test_malformed_requests_are_invalid_request(oauth_client):
    client, secret = oauth_client
    auth = basic(client.pk, secret)
    # RFC 6749 §3.2: parameters sent more than once.
    repeated = token_request(raw="grant_type=client_credentials&grant_type=client_credentials", auth=auth)
    assert_error(repeated, 400, "invalid_request")
    # §2.3: one authentication method per request.
    two_methods = token_request(
        {"grant_type": "client_credentials", "client_id": str(client.pk), "client_secret": secret},
        auth=auth,
    )
    assert_error(two_methods, 400, "invalid_request")
    # client_secret without client_id.
    assert_error(
        token_request({"grant_type": "client_credentials", "client_secret": secret}),
        400,
        "invalid_request",
    )
    # Parameters must be form-encoded (§3.2, Appendix B).
    as_json = token_request(
        raw='{"grant_type": "client_credentials"}', auth=auth, content_type="application/json"
    )
    assert_error(as_json, 400, "invalid_request")
    get = Client().get("/oauth/token", HTTP_AUTHORIZATION=auth)
    assert get.status_code == 405
    assert get["Cache-Control"] == "no-store"


# --- Allowed methods, networks ------------------------------------------------------------------


def test_methods_not_allowed_are_refused(oauth_client):
    client, secret = oauth_client
    token = obtain_token(client.pk, secret)
    assert client.auth_methods == [AuthMethod.CLIENT_SECRET]
    scim_client_set_auth_methods(client=client, methods=[AuthMethod.STATIC_TOKEN])
    response = token_request({"grant_type": "client_credentials"}, auth=basic(client.pk, secret))
    assert_error(response, 401, "invalid_client")
    # An access token obtained with a method switched off stops working too.
    assert scim_get(token).status_code == 401


def test_static_tokens_refused_when_the_client_no_longer_allows_them():
    client = ScimClientFactory(name="okta")
    assert scim_get(client.raw_token).status_code == 200
    _secret, raw_secret = client_secret_issue(client=client)
    scim_client_set_auth_methods(client=client, methods=[AuthMethod.CLIENT_SECRET])
    assert scim_get(client.raw_token).status_code == 401
    assert scim_get(obtain_token(client.pk, raw_secret)).status_code == 200


def test_unknown_method_is_refused(oauth_client):
    client, _secret = oauth_client
    with pytest.raises(ValidationError):
        scim_client_set_auth_methods(client=client, methods=["password"])


def test_allowed_networks_bind_token_requests_and_access_tokens(oauth_client):
    client, secret = oauth_client
    scim_client_set_oauth_settings(client=client, allowed_networks=["10.0.0.0/8"])
    outside = token_request({"grant_type": "client_credentials"}, auth=basic(client.pk, secret))
    assert_error(outside, 401, "invalid_client")
    inside = token_request(
        {"grant_type": "client_credentials"}, auth=basic(client.pk, secret), REMOTE_ADDR="10.1.2.3"
    )
    assert inside.status_code == 200
    token = inside.json()["access_token"]
    assert scim_get(token, REMOTE_ADDR="10.1.2.3").status_code == 200
    refused = scim_get(token, REMOTE_ADDR="192.0.2.1")
    assert refused.status_code == 401
    assert "network" in refused.json()["detail"]


# --- Access tokens on SCIM -----------------------------------------------------------------------


def test_expired_and_revoked_access_tokens_are_refused(oauth_client):
    client, secret = oauth_client
    token = obtain_token(client.pk, secret)
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = scim_get(token)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    token = obtain_token(client.pk, secret)
    assert access_tokens_revoke(client=client) == 1
    response = scim_get(token)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_tampered_access_token_is_refused(oauth_client):
    client, secret = oauth_client
    token = obtain_token(client.pk, secret)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert scim_get(tampered).status_code == 401
    # A static-token spelling of the same prefix and secret is another token.
    assert scim_get(token.replace("scgat_", "scg_", 1)).status_code == 401


@pytest.mark.parametrize("role", ["provisioner", "read-only", "no-delete", "users-only"])
def test_access_token_carries_the_clients_role(role):
    client, secret = scim_client_create_oauth(name=f"c-{role}", role=role)
    token = obtain_token(client.pk, secret)
    http = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    created = http.post(
        USERS,
        {"schemas": [USER_SCHEMA], "userName": f"u-{role}"},
        content_type="application/scim+json",
    )
    reads_users = client.role.allows("User", "read")
    assert http.get(USERS).status_code == (200 if reads_users else 403)
    creates = client.role.allows("User", "create")
    assert created.status_code == (201 if creates else 403), created.content
    groups = http.get("/scim/v2/Groups")
    assert groups.status_code == (200 if client.role.allows("Group", "read") else 403)


def test_request_log_names_the_access_token_never_the_token(oauth_client):
    client, secret = oauth_client
    token = obtain_token(client.pk, secret)
    assert scim_get(token).status_code == 200
    row = RequestLog.objects.get()
    prefix = token.split("_")[1]
    assert row.scim_client_id == client.pk
    assert row.token_prefix == f"oauth:{prefix}"
    assert token not in row.token_prefix + row.query + row.request_body + row.response_body


def test_access_token_records_last_use_on_token_and_client(oauth_client):
    client, secret = oauth_client
    token = obtain_token(client.pk, secret)
    assert ClientSecret.objects.get(client=client).last_used_at is not None
    scim_get(token, REMOTE_ADDR="198.51.100.7")
    row = AccessToken.objects.get()
    assert row.last_used_at is not None
    assert row.last_used_address == "198.51.100.7"
    assert ScimClient.objects.get(pk=client.pk).last_used_at is not None
    verified = scim_token_authenticate(token)
    assert verified.client == client


def test_scim_rate_limit_applies_to_access_tokens(oauth_client, settings):
    settings.SCIM_RATE_LIMIT = "2/min"
    client, secret = oauth_client
    token = obtain_token(client.pk, secret)
    statuses = [scim_get(token).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


# --- Token endpoint rate limits -------------------------------------------------------------------


def test_failed_authentications_are_limited_per_client_id_and_address(oauth_client, settings):
    """Failures per claimed client id and address: beyond the rate, even the right
    secret waits (429, RFC 6585 §4) at that address; successes are not counted."""
    settings.OAUTH_TOKEN_RATE_LIMIT_CLIENT = "3/min"
    client, secret = oauth_client
    auth = basic(client.pk, secret)
    statuses = [token_request({"grant_type": "client_credentials"}, auth=auth).status_code for _ in range(5)]
    assert statuses == [200] * 5
    wrong = basic(client.pk, "nope")
    statuses = [token_request({"grant_type": "client_credentials"}, auth=wrong).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    limited = token_request({"grant_type": "client_credentials"}, auth=auth)
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 61
    assert limited["Cache-Control"] == "no-store"
    # RFC 6749 §5.2 has no rate-limit code: invalid_request, saying when to retry.
    assert limited.json() == {
        "error": "invalid_request",
        "error_description": f"Too many requests; retry after {limited['Retry-After']} seconds",
    }
    # Another client at the same address is not held back.
    other, other_secret = scim_client_create_oauth(name="other", role="read-only")
    assert token_request({"grant_type": "client_credentials"}, auth=basic(other.pk, other_secret)).status_code == 200


def test_a_third_party_cannot_lock_a_client_out(oauth_client, settings):
    """Wrong secrets for a client id sent from elsewhere do not hold back the client
    itself at its own address."""
    settings.OAUTH_TOKEN_RATE_LIMIT_CLIENT = "3/min"
    client, secret = oauth_client
    for _ in range(30):
        token_request({"grant_type": "client_credentials"}, auth=basic(client.pk, "wrong"), REMOTE_ADDR="198.51.100.7")
    assert (
        token_request({"grant_type": "client_credentials"}, auth=basic(client.pk, "wrong"), REMOTE_ADDR="198.51.100.7")
        .status_code == 429
    )
    response = token_request({"grant_type": "client_credentials"}, auth=basic(client.pk, secret), REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200


def test_token_endpoint_is_limited_per_address(oauth_client, settings):
    settings.OAUTH_TOKEN_RATE_LIMIT_ADDRESS = "3/min"
    client, secret = oauth_client
    wrong = basic(client.pk, "nope")
    statuses = [
        token_request({"grant_type": "client_credentials"}, auth=wrong).status_code for _ in range(3)
    ]
    assert statuses == [401, 401, 401]
    # The right secret from the same address now waits too; another address does not.
    auth = basic(client.pk, secret)
    assert token_request({"grant_type": "client_credentials"}, auth=auth).status_code == 429
    assert (
        token_request({"grant_type": "client_credentials"}, auth=auth, REMOTE_ADDR="192.0.2.9").status_code
        == 200
    )


def test_expired_access_tokens_are_pruned_when_a_new_one_is_issued(oauth_client):
    client, secret = oauth_client
    obtain_token(client.pk, secret)
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(days=2))
    obtain_token(client.pk, secret)
    assert AccessToken.objects.count() == 1
