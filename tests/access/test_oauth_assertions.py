"""JWT client assertions at the token endpoint: private_key_jwt (RFC 7523 §2.2) with a
registered JWKS document or a JWKS URL, and federated assertions from a trusted
issuer (keys through OpenID discovery), both served by a local HTTP server.

RFC 7523 §3 checks: iss, sub, aud (the token endpoint), exp, nbf, iat with a small
clock skew, and jti replay."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from joserfc import jwt as jose_jwt
from joserfc.jwk import OctKey

from provisioning.access.models import AccessToken, AuthMethod, ClientKey, ScimClient
from provisioning.access.oauth_credentials import (
    client_key_add,
    client_key_revoke,
    federation_add,
    federation_revoke,
    scim_client_set_auth_methods,
)
from tests.access.oauth_helpers import (
    ENDPOINT,
    ISSUER,
    JWT_BEARER,
    assertion,
    assertion_params,
    client_assertion,
    ec_key,
    jwks,
    rsa_key,
    token_request,
)

pytestmark = pytest.mark.django_db


def assert_refused(response, error: str = "invalid_client"):
    assert response.status_code == (401 if error == "invalid_client" else 400), response.content
    assert response["Cache-Control"] == "no-store"
    assert response.json()["error"] == error
    if error == "invalid_client":
        assert "WWW-Authenticate" in response


def granted(response) -> str:
    assert response.status_code == 200, response.content
    token = response.json()["access_token"]
    listed = Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert listed.status_code == 200
    return token


@pytest.fixture
def key():
    return rsa_key("k1")


@pytest.fixture
def jwt_client(oauth_client, key):
    """The OAuth client with a registered JWKS document holding ``key``."""
    client, _secret = oauth_client
    client_key_add(client=client, jwks=jwks(key))
    return client


# --- private_key_jwt with a JWKS document --------------------------------------------------


def test_private_key_jwt_obtains_a_token(jwt_client, key):
    granted(token_request(assertion_params(client_assertion(jwt_client, key))))
    token = AccessToken.objects.get()
    assert token.auth_method == "private_key_jwt"
    assert token.credential == f"key:{ClientKey.objects.get().pk}"
    assert ClientKey.objects.get().last_used_at is not None


def test_client_id_parameter_may_name_the_client(jwt_client, key):
    signed = client_assertion(jwt_client, key)
    granted(token_request(assertion_params(signed, client_id=jwt_client.pk)))


def test_client_id_parameter_naming_another_client_is_refused(jwt_client, key):
    other = ScimClient.objects.create(name="other", role=jwt_client.role)
    assert_refused(token_request(assertion_params(client_assertion(jwt_client, key), client_id=other.pk)))


def test_ec_keys_work(oauth_client):
    client, _secret = oauth_client
    key = ec_key("e1")
    client_key_add(client=client, jwks=jwks(key))
    granted(token_request(assertion_params(client_assertion(client, key, alg="ES256"))))


def test_replayed_assertion_is_refused(jwt_client, key):
    """RFC 7523 §3 item 7: a jti is used once."""
    signed = client_assertion(jwt_client, key)
    granted(token_request(assertion_params(signed)))
    assert_refused(token_request(assertion_params(signed)))
    # The same jti in another assertion is the same assertion.
    again = client_assertion(jwt_client, key, jti=jose_jwt.decode(signed, key).claims["jti"])
    assert_refused(token_request(assertion_params(again)))


def test_assertion_without_jti_is_used_once(jwt_client, key):
    signed = client_assertion(jwt_client, key, jti=None)
    granted(token_request(assertion_params(signed)))
    assert_refused(token_request(assertion_params(signed)))


def test_wrong_audience_is_refused(jwt_client, key):
    assert_refused(
        token_request(assertion_params(client_assertion(jwt_client, key, aud="https://elsewhere.example/token")))
    )
    # The issuer identifier is an acceptable audience too (RFC 7523 §3 item 3), in a list.
    granted(token_request(assertion_params(client_assertion(jwt_client, key, aud=["x", ISSUER]))))


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "someone-else"},
        {"sub": "someone-else"},
        {"aud": None},
        {"exp": None},
        {"exp": "tomorrow"},
    ],
    ids=["iss", "sub", "no-aud", "no-exp", "exp-not-a-number"],
)
def test_wrong_or_missing_claims_are_refused(jwt_client, key, claims):
    base = {"iss": str(jwt_client.pk), "sub": str(jwt_client.pk)}
    assert_refused(token_request(assertion_params(assertion(key, **{**base, **claims}), client_id=jwt_client.pk)))


def test_clock_skew_is_tolerated_up_to_the_setting(jwt_client, key, settings):
    settings.SCIMGATE_OAUTH_CLOCK_SKEW = 60
    now = int(time.time())
    # Expired 30 s ago, not before 30 s from now, issued 30 s ahead: within the skew.
    granted(token_request(assertion_params(client_assertion(jwt_client, key, exp=now - 30))))
    granted(token_request(assertion_params(client_assertion(jwt_client, key, nbf=now + 30, iat=now + 30))))
    # Beyond it: refused.
    assert_refused(token_request(assertion_params(client_assertion(jwt_client, key, exp=now - 90))))
    assert_refused(token_request(assertion_params(client_assertion(jwt_client, key, nbf=now + 90))))
    assert_refused(token_request(assertion_params(client_assertion(jwt_client, key, iat=now + 90))))


def test_assertion_valid_for_more_than_a_day_is_refused(jwt_client, key):
    far = int(time.time()) + 2 * 86400
    assert_refused(token_request(assertion_params(client_assertion(jwt_client, key, exp=far))))


def test_signature_by_another_key_with_the_same_kid_is_refused(jwt_client):
    impostor = rsa_key("k1")
    assert_refused(token_request(assertion_params(client_assertion(jwt_client, impostor))))


def test_alg_none_and_symmetric_algorithms_are_refused(jwt_client, key):
    claims = {"iss": str(jwt_client.pk), "sub": str(jwt_client.pk), "aud": ENDPOINT, "exp": int(time.time()) + 60}
    import base64
    import json

    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    unsigned = f"{b64({'alg': 'none'})}.{b64(claims)}.sig"
    assert_refused(token_request(assertion_params(unsigned)))
    # HS256 keyed with the public key's bytes (the algorithm-confusion attack).
    secret = OctKey.import_key(json.dumps(key.as_dict(private=False)).encode())
    hs = jose_jwt.encode({"alg": "HS256", "kid": "k1"}, claims, secret, algorithms=["HS256"])
    assert_refused(token_request(assertion_params(hs)))
    assert_refused(token_request(assertion_params("not.a.jwt")))
    assert_refused(token_request(assertion_params("garbage")))


def test_wrong_assertion_type_is_refused(jwt_client, key):
    params = assertion_params(client_assertion(jwt_client, key))
    params["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
    assert_refused(token_request(params))


def test_revoked_or_expired_keys_and_disallowed_method_are_refused(jwt_client, key):
    entry = ClientKey.objects.get()
    scim_client_set_auth_methods(client=jwt_client, methods=[AuthMethod.CLIENT_SECRET])
    assert_refused(token_request(assertion_params(client_assertion(jwt_client, key))))
    scim_client_set_auth_methods(client=jwt_client, methods=[AuthMethod.PRIVATE_KEY_JWT])
    ClientKey.objects.filter(pk=entry.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_refused(token_request(assertion_params(client_assertion(jwt_client, key))))
    ClientKey.objects.filter(pk=entry.pk).update(expires_at=None)
    client_key_revoke(key=entry)
    assert_refused(token_request(assertion_params(client_assertion(jwt_client, key))))
    jwt_client.refresh_from_db()
    assert jwt_client.oauth_failures == 3


def test_jwks_validation(oauth_client):
    client, _secret = oauth_client
    for bad, message in (
        ({"keys": []}, "no keys"),
        ([], "JSON object"),
        ({"keys": [rsa_key().as_dict(private=True)]}, "private"),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "symmetric"),
        ({"keys": [rsa_key(None).as_dict(), rsa_key(None).as_dict()]}, "kid"),
        ({"keys": [{"kty": "RSA", "n": "x"}]}, "usable"),
    ):
        with pytest.raises(ValidationError, match=message):
            client_key_add(client=client, jwks=bad)
    with pytest.raises(ValidationError):
        client_key_add(client=client, jwks_uri="ftp://keys.example/jwks")
    assert not ClientKey.objects.exists()


# --- private_key_jwt with a JWKS URL --------------------------------------------------------


def test_jwks_url_is_fetched_cached_and_refreshed_once_on_unknown_kid(
    oauth_client, key_server, settings
):
    client, _secret = oauth_client
    first, rotated = rsa_key("old"), rsa_key("new")
    key_server.documents["/client/jwks"] = jwks(first)
    client_key_add(client=client, jwks_uri=f"{key_server.url}/client/jwks")
    granted(token_request(assertion_params(client_assertion(client, first))))
    granted(token_request(assertion_params(client_assertion(client, first))))
    assert key_server.hits["/client/jwks"] == 1  # cached
    # The client rotates its key: the unknown kid makes the server fetch once more.
    key_server.documents["/client/jwks"] = jwks(rotated)
    granted(token_request(assertion_params(client_assertion(client, rotated))))
    assert key_server.hits["/client/jwks"] == 2
    # A kid the document does not hold: within the refresh interval of that refresh the
    # URL is not fetched again (made-up kids cannot make the server hammer the IdP)...
    stranger = rsa_key("stranger")
    assert_refused(token_request(assertion_params(client_assertion(client, stranger))))
    assert key_server.hits["/client/jwks"] == 2
    # ... and otherwise it is fetched exactly once more, then the assertion is refused.
    settings.SCIMGATE_OAUTH_KEYS_REFRESH_SECONDS = 0
    assert_refused(token_request(assertion_params(client_assertion(client, stranger))))
    assert key_server.hits["/client/jwks"] == 3


def test_unreachable_jwks_url_is_invalid_client(oauth_client, key_server):
    client, _secret = oauth_client
    client_key_add(client=client, jwks_uri=f"{key_server.url}/missing")
    assert_refused(token_request(assertion_params(client_assertion(client, rsa_key()))))


# --- Federated assertions ----------------------------------------------------------------------


@pytest.fixture
def idp_key():
    return rsa_key("idp-1")


@pytest.fixture
def issuer(key_server, idp_key):
    return key_server.publish_issuer("/tenant-a/v2.0", jwks(idp_key))


@pytest.fixture
def federated_client(oauth_client, issuer):
    client, _secret = oauth_client
    federation_add(client=client, issuer=issuer, subject="app-1")
    return client


def federated_params(signed: str, client_id=None) -> dict:
    return assertion_params(signed, client_id=client_id)


def test_federated_client_assertion_obtains_a_token(federated_client, issuer, idp_key, key_server):
    signed = assertion(idp_key, iss=issuer, sub="app-1")
    granted(token_request(federated_params(signed, client_id=federated_client.pk)))
    token = AccessToken.objects.get()
    assert token.client == federated_client
    assert token.auth_method == "federation"
    assert key_server.hits["/tenant-a/v2.0/.well-known/openid-configuration"] == 1
    # Without client_id: the trusted issuer and subject name the client.
    granted(token_request(federated_params(assertion(idp_key, iss=issuer, sub="app-1"))))
    assert key_server.hits["/tenant-a/v2.0/keys"] == 1


def test_jwt_bearer_grant_with_a_federated_assertion(federated_client, issuer, idp_key):
    """RFC 7523 §2.1: the assertion is the grant; an invalid one is invalid_grant."""
    signed = assertion(idp_key, iss=issuer, sub="app-1")
    granted(token_request({"grant_type": JWT_BEARER, "assertion": signed}))
    replayed = token_request({"grant_type": JWT_BEARER, "assertion": signed})
    assert_refused(replayed, "invalid_grant")
    expired = assertion(idp_key, iss=issuer, sub="app-1", exp=int(time.time()) - 3600)
    assert_refused(token_request({"grant_type": JWT_BEARER, "assertion": expired}), "invalid_grant")
    untrusted = assertion(idp_key, iss=issuer, sub="app-2")
    assert_refused(token_request({"grant_type": JWT_BEARER, "assertion": untrusted}), "invalid_grant")
    assert_refused(token_request({"grant_type": JWT_BEARER, "assertion": "x.y"}), "invalid_grant")
    assert_refused(token_request({"grant_type": JWT_BEARER}), "invalid_request")


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "app-2"},
        {"aud": "https://elsewhere.example/oauth/token"},
        {"exp": int(time.time()) - 3600},
    ],
    ids=["subject", "audience", "expired"],
)
def test_federated_claims_are_checked(federated_client, issuer, idp_key, claims):
    signed = assertion(idp_key, **{"iss": issuer, "sub": "app-1", **claims})
    assert_refused(token_request(federated_params(signed, client_id=federated_client.pk)))


def test_registered_audience_replaces_the_token_endpoint(oauth_client, issuer, idp_key):
    client, _secret = oauth_client
    federation_add(client=client, issuer=issuer, subject="app-1", audience="api://scimgate")
    assert_refused(token_request(federated_params(assertion(idp_key, iss=issuer, sub="app-1"))))
    granted(
        token_request(
            federated_params(assertion(idp_key, iss=issuer, sub="app-1", aud="api://scimgate"))
        )
    )


def test_issuer_key_rotation_refreshes_discovery_once(federated_client, issuer, idp_key, key_server):
    granted(token_request(federated_params(assertion(idp_key, iss=issuer, sub="app-1"))))
    rotated = rsa_key("idp-2")
    key_server.documents["/tenant-a/v2.0/keys"] = jwks(rotated)
    granted(token_request(federated_params(assertion(rotated, iss=issuer, sub="app-1"))))
    assert key_server.hits["/tenant-a/v2.0/keys"] == 2
    unknown = rsa_key("idp-unknown")
    assert_refused(token_request(federated_params(assertion(unknown, iss=issuer, sub="app-1"))))
    assert key_server.hits["/tenant-a/v2.0/keys"] == 2  # refreshed moments ago: not again


def test_unknown_kid_refreshes_once_then_refuses(federated_client, issuer, key_server):
    unknown = rsa_key("idp-unknown")
    assert_refused(token_request(federated_params(assertion(unknown, iss=issuer, sub="app-1"))))
    # The first fetch, then exactly one refresh.
    assert key_server.hits["/tenant-a/v2.0/keys"] == 2
    assert key_server.hits["/tenant-a/v2.0/.well-known/openid-configuration"] == 2


def test_discovery_naming_another_issuer_is_refused(oauth_client, key_server, idp_key):
    client, _secret = oauth_client
    issuer = key_server.publish_issuer("/tenant-b", jwks(idp_key))
    key_server.documents["/tenant-b/.well-known/openid-configuration"]["issuer"] = "https://evil.example"
    federation_add(client=client, issuer=issuer, subject="app-1")
    assert_refused(token_request(federated_params(assertion(idp_key, iss=issuer, sub="app-1"))))


def test_revoked_federation_and_disallowed_method_are_refused(federated_client, issuer, idp_key):
    scim_client_set_auth_methods(client=federated_client, methods=[AuthMethod.CLIENT_SECRET])
    assert_refused(
        token_request(federated_params(assertion(idp_key, iss=issuer, sub="app-1"), client_id=federated_client.pk))
    )
    scim_client_set_auth_methods(client=federated_client, methods=[AuthMethod.FEDERATION])
    federation_revoke(federation=federated_client.federations.get())
    assert_refused(
        token_request(federated_params(assertion(idp_key, iss=issuer, sub="app-1"), client_id=federated_client.pk))
    )


def test_issuer_must_be_https_unless_allowed(oauth_client, settings):
    client, _secret = oauth_client
    settings.SCIMGATE_OAUTH_ALLOW_HTTP = False
    with pytest.raises(ValidationError, match="https"):
        federation_add(client=client, issuer="http://idp.example", subject="s")
    with pytest.raises(ValidationError, match="subject"):
        federation_add(client=client, issuer="https://idp.example", subject=" ")
