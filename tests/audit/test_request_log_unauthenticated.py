"""Requests without valid credentials: logged with a small prefix of their bodies only,
and limited per client address (429 with Retry-After, RFC 6585 §4)."""

from __future__ import annotations

import json

import pytest

from provisioning.audit.models import RequestLog
from tests.scim.conftest import USER_SCHEMA

pytestmark = pytest.mark.django_db

FAKE_TOKEN = "scg_AbCdEfGh_" + "x" * 43
BIG = {"schemas": [USER_SCHEMA], "userName": "big", "title": "x" * 1_500_000}


def test_an_unauthenticated_body_keeps_only_a_prefix(anonymous_scim):
    response = anonymous_scim.post("/Users", BIG)
    anonymous_scim.assert_error(response, 401)
    [row] = RequestLog.objects.all()
    assert row.scim_client_id is None
    assert row.request_size == len(json.dumps(BIG)) and row.request_truncated
    assert 0 < len(row.request_body.encode()) <= 1024
    assert row.request_body.startswith('{"schemas"')


def test_a_rejected_token_keeps_only_a_prefix_too(anonymous_scim, settings):
    settings.SCIMGATE_REQUEST_LOG_UNAUTHENTICATED_MAX_BODY = 100
    anonymous_scim.assert_error(
        anonymous_scim.post("/Users", BIG, HTTP_AUTHORIZATION=f"Bearer {FAKE_TOKEN}"), 401
    )
    row = RequestLog.objects.get()
    assert (row.token_prefix, len(row.request_body.encode())) == ("AbCdEfGh", 100)


def test_an_authenticated_body_keeps_the_full_allowance(scim, settings):
    settings.SCIMGATE_REQUEST_LOG_MAX_BODY = 4096
    scim.create_user("allowed", title="x" * 3000)
    row = RequestLog.objects.get(method="POST")
    assert not row.request_truncated and '"title"' in row.request_body


@pytest.fixture
def limit(settings):
    settings.SCIM_UNAUTHENTICATED_RATE_LIMIT = "3/min"


def test_requests_without_credentials_are_limited_per_address(limit, anonymous_scim, scim):
    # No token, a rejected token, the public discovery documents: all count.
    anonymous_scim.assert_error(anonymous_scim.get("/Users"), 401)
    anonymous_scim.assert_error(
        anonymous_scim.get("/Users", HTTP_AUTHORIZATION=f"Bearer {FAKE_TOKEN}"), 401
    )
    assert anonymous_scim.get("/ServiceProviderConfig").status_code == 200
    for attempt in (
        anonymous_scim.get("/Users"),
        anonymous_scim.get("/Users", HTTP_AUTHORIZATION=f"Bearer {FAKE_TOKEN}"),
        anonymous_scim.post("/Users", BIG),
        anonymous_scim.get("/Schemas"),
    ):
        anonymous_scim.assert_error(attempt, 429)
        assert 0 < int(attempt["Retry-After"]) <= 61
    # Every one of them is in the request log.
    assert list(RequestLog.objects.order_by("id").values_list("status", flat=True)) == [
        401, 401, 200, 429, 429, 429, 429,
    ]
    # A client with a valid token at the same address is not held back.
    scim.ok(scim.get("/Users"))
    anonymous_scim.assert_error(anonymous_scim.get("/Users", REMOTE_ADDR="192.0.2.1"), 401)


def test_other_addresses_have_their_own_count(limit, anonymous_scim):
    for _ in range(3):
        anonymous_scim.get("/Users", REMOTE_ADDR="192.0.2.1")
    anonymous_scim.assert_error(anonymous_scim.get("/Users", REMOTE_ADDR="192.0.2.1"), 429)
    anonymous_scim.assert_error(anonymous_scim.get("/Users", REMOTE_ADDR="192.0.2.2"), 401)


def test_no_limit_when_unset(settings, anonymous_scim):
    settings.SCIM_UNAUTHENTICATED_RATE_LIMIT = None
    for _ in range(65):
        anonymous_scim.assert_error(anonymous_scim.get("/Users"), 401)
