"""Assertions that are altered or malformed: a signature changed without the key does
not make a used assertion new, and anything unparsable is an RFC 6749 §5.2 error,
never a server error."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import urlencode

import pytest
from django.test import Client

from provisioning.access.oauth_assertions import AssertionRejected, _number, parse_jwt
from provisioning.access.oauth_credentials import client_key_add
from tests.access.oauth_helpers import (
    ASSERTION_TYPE,
    JWT_BEARER,
    assertion_params,
    client_assertion,
    ec_key,
    jwks,
    rsa_key,
    token_request,
)

pytestmark = pytest.mark.django_db

# The order of the P-256 group (FIPS 186-4 D.1.2.3).
N_P256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_ecdsa_signature_malleated_is_still_a_replay(oauth_client):
    """(r, n − s) is a second valid ECDSA signature of the same assertion: without a
    jti the assertion is identified by its signed part, so it is refused as a replay
    (RFC 7523 §3 item 7)."""
    client, _ = oauth_client
    key = ec_key("e1")
    client_key_add(client=client, jwks=jwks(key))
    signed = client_assertion(client, key, alg="ES256", jti=None)
    assert token_request(assertion_params(signed)).status_code == 200
    header, payload, signature = signed.split(".")
    raw = _unb64(signature)
    s = int.from_bytes(raw[32:], "big")
    forged = f"{header}.{payload}.{_b64(raw[:32] + (N_P256 - s).to_bytes(32, 'big'))}"
    assert forged != signed
    response = token_request(assertion_params(forged))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_signature_with_altered_padding_bits_is_still_a_replay(oauth_client):
    """The unused low bits of the last base64url character do not change the decoded
    signature; the altered text is the same assertion."""
    client, _ = oauth_client
    key = rsa_key("k1")
    client_key_add(client=client, jwks=jwks(key))
    signed = client_assertion(client, key, jti=None)
    assert token_request(assertion_params(signed)).status_code == 200
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    header, payload, signature = signed.split(".")
    altered = signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 1]
    assert _unb64(altered) == _unb64(signature)
    assert token_request(assertion_params(f"{header}.{payload}.{altered}")).status_code == 401


MALFORMED = [
    _b64(b"[" * 5000) + "." + _b64(b'{"a": 1}') + ".sig",  # RecursionError in json
    _b64(b'{"alg": "RS256"}') + "." + _b64(b"\xff\xfe") + ".sig",  # not UTF-8
    _b64(b'{"alg": "RS256"}') + "." + _b64(b'{"exp": 1e999}') + ".sig",  # Infinity
    "é.é.é",  # not ASCII
    _b64(b'{"alg": "RS256"}') + ".!!!!.sig",
    _b64(b"123") + "." + _b64(b"{}") + ".sig",
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_client_assertion_is_invalid_client(db, raw):
    """RFC 6749 §5.2: a client assertion that cannot be read fails client
    authentication (invalid_client, 401), not the server."""
    response = Client(raise_request_exception=False).post(
        "/oauth/token",
        urlencode(
            {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
             "client_assertion": raw}
        ),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 401, response.content
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_grant_assertion_is_invalid_grant(db, raw):
    """RFC 7523 §3.1 / RFC 6749 §5.2: an unreadable grant assertion is invalid_grant."""
    response = Client(raise_request_exception=False).post(
        "/oauth/token",
        urlencode({"grant_type": JWT_BEARER, "assertion": raw}),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("raw", MALFORMED)
def test_parse_jwt_rejects_rather_than_raises(raw):
    try:
        jwt = parse_jwt(raw)
    except AssertionRejected:
        return
    # What parses (Infinity is valid JSON to Python) is refused when its numbers are read.
    with pytest.raises(AssertionRejected):
        _number(jwt.claims, "exp", required=True)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_times_are_refused(value):
    with pytest.raises(AssertionRejected, match="finite"):
        _number({"exp": value}, "exp")


def test_nan_exp_does_not_pass_the_claim_checks(oauth_client):
    """NaN compares false with everything: exp = NaN would pass "expired?" and "too
    long?" alike. It is refused."""
    client, _ = oauth_client
    key = rsa_key("k1")
    client_key_add(client=client, jwks=jwks(key))
    now = int(time.time())
    claims = {"iss": str(client.pk), "sub": str(client.pk), "aud": "http://testserver/oauth/token",
              "iat": now, "jti": "nan-1"}
    from joserfc import jws

    header = {"alg": "RS256", "kid": "k1"}
    payload = json.dumps({**claims, "exp": float("nan")}).encode()  # "NaN", as Python writes it
    signed = jws.serialize_compact(header, payload, key)
    response = token_request(assertion_params(signed))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
