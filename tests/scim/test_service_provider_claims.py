"""Every claim ServiceProviderConfig makes (RFC 7644 §5) is checked against a request that
exercises it, with the figures read from the document itself, not from settings.

``test_every_claim_has_a_check`` fails when a claim is added without a check here.
"""

from __future__ import annotations

import json
import time
from unittest import mock

import pytest
from django.test import override_settings

from .conftest import GROUP_SCHEMA, USER_SCHEMA

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
CHECKED = {
    "schemas",
    "patch",
    "bulk",
    "filter",
    "changePassword",
    "sort",
    "etag",
    "authenticationSchemes",
    "meta",
    "documentationUri",
    "pagination",
    "securityEvents",
}


@pytest.fixture
def config(scim) -> dict:
    return scim.read("/ServiceProviderConfig")


def test_every_claim_has_a_check(config):
    assert set(config) <= CHECKED, f"unchecked claims: {set(config) - CHECKED}"


def test_patch_claim(scim, config):
    assert config["patch"] == {"supported": True}
    user = scim.create_user("patched")
    body = scim.ok(
        scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "T"})
    )
    assert body["title"] == "T"


def _bulk(operations: list) -> dict:
    return {"schemas": [BULK_REQUEST], "Operations": operations}


def _delete(n: int) -> list:
    return [{"method": "DELETE", "path": f"/Groups/missing-{i}"} for i in range(n)]


def test_bulk_claim_max_operations(scim, config):
    bulk = config["bulk"]
    assert bulk["supported"] is True
    limit = bulk["maxOperations"]
    accepted = scim.ok(scim.post("/Bulk", _bulk(_delete(limit))))
    assert len(accepted["Operations"]) == limit
    scim.assert_error(scim.post("/Bulk", _bulk(_delete(limit + 1))), 413)


def test_bulk_claim_max_payload_size(scim, config):
    limit = config["bulk"]["maxPayloadSize"]
    operation = {
        "method": "POST",
        "path": "/Groups",
        "bulkId": "g",
        "data": {"schemas": [GROUP_SCHEMA], "displayName": "padded"},
    }
    body = _bulk([operation])
    overhead = len(json.dumps(body).encode())
    body["padding"] = "x" * (limit - overhead - len(', "padding": ""'))
    assert len(json.dumps(body).encode()) == limit
    assert scim.post("/Bulk", body).status_code == 200
    body["padding"] += "x"
    scim.assert_error(scim.post("/Bulk", body), 413)


def test_filter_claim_max_results(scim, settings):
    settings.SCIM = {**settings.SCIM, "MAX_RESULTS": 3}
    config = scim.read("/ServiceProviderConfig")
    assert config["filter"]["supported"] is True
    limit = config["filter"]["maxResults"]
    assert limit == 3
    for n in range(limit + 1):
        scim.create_user(f"filtered-{n}", title="Guide")
    page = scim.search("/Users", filter='title eq "guide"', count=100)
    assert page["totalResults"] == limit + 1
    assert page["itemsPerPage"] == len(page["Resources"]) == limit


def test_sort_claim(scim, config):
    assert config["sort"] == {"supported": True}
    for name in ("charlie", "alpha", "bravo"):
        scim.create_user(name)
    page = scim.search("/Users", sortBy="userName", sortOrder="descending")
    assert [u["userName"] for u in page["Resources"]] == ["charlie", "bravo", "alpha"]


def test_etag_claim(scim, config):
    assert config["etag"] == {"supported": True}
    user = scim.create_user("tagged")
    response = scim.get(f"/Users/{user['id']}")
    assert response["ETag"] == user["meta"]["version"]
    assert scim.get(f"/Users/{user['id']}", HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    stale = scim.patch_ops(
        f"/Users/{user['id']}",
        {"op": "replace", "path": "title", "value": "x"},
        HTTP_IF_MATCH='W/"999"',
    )
    scim.assert_error(stale, 412)


def test_change_password_claim(scim, config):
    """Not supported: this server keeps no credentials. A password an IdP sends (Okta and
    Entra do when password sync is on) is neither stored, returned nor counted as a change."""
    assert config["changePassword"] == {"supported": False}
    user = scim.create_user("secretive", password="first-Secret1")
    assert "password" not in user
    response = scim.patch_ops(
        f"/Users/{user['id']}", {"op": "replace", "path": "password", "value": "second-Secret2"}
    )
    body = scim.ok(response)
    assert "password" not in body
    assert body["meta"]["version"] == user["meta"]["version"]


def test_authentication_scheme_claim(scim, anonymous_scim, config):
    [scheme] = config["authenticationSchemes"]
    assert scheme["type"] == "oauthbearertoken" and scheme["primary"] is True
    assert scim.get("/Users").status_code == 200
    refused = anonymous_scim.get("/Users")
    anonymous_scim.assert_error(refused, 401)
    assert refused["WWW-Authenticate"].startswith("Bearer")


def test_meta_and_schemas(scim, config):
    assert config["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
    assert config["meta"]["resourceType"] == "ServiceProviderConfig"
    assert scim.read(config["meta"]["location"]) == config


def test_documentation_uri_claim(scim):
    assert "documentationUri" not in scim.read("/ServiceProviderConfig")
    with override_settings(SCIM={**_scim_settings(), "DOCUMENTATION_URI": "https://docs.example"}):
        assert scim.read("/ServiceProviderConfig")["documentationUri"] == "https://docs.example"


def _scim_settings() -> dict:
    from django.conf import settings

    return dict(settings.SCIM)


def test_create_claims_match_required_attributes(scim):
    """The /Schemas ``required`` flags are what a create enforces."""
    for schema_urn, path, body in (
        (USER_SCHEMA, "/Users", {"schemas": [USER_SCHEMA]}),
        (GROUP_SCHEMA, "/Groups", {"schemas": [GROUP_SCHEMA]}),
    ):
        schema = scim.read(f"/Schemas/{schema_urn}")
        required = [a["name"] for a in schema["attributes"] if a["required"]]
        assert required
        scim.assert_error(scim.post(path, body), 400)


def test_pagination_claim(scim, settings):
    """RFC 9865 §4: both methods, index the default, the page sizes and the cursor timeout."""
    settings.SCIM = {**settings.SCIM, "DEFAULT_COUNT": 2, "MAX_RESULTS": 3}
    pagination = scim.read("/ServiceProviderConfig")["pagination"]
    assert pagination["cursor"] is True and pagination["index"] is True
    assert pagination["defaultPaginationMethod"] == "index"
    assert (pagination["defaultPageSize"], pagination["maxPageSize"]) == (2, 3)
    for n in range(4):
        scim.create_user(f"paged-{n}")
    # Without cursor or startIndex: index paging, defaultPageSize items.
    default = scim.search("/Users")
    assert default["startIndex"] == 1 and default["itemsPerPage"] == 2
    assert "nextCursor" not in default
    # Cursor paging on request; a count above maxPageSize is invalidCount (RFC 9865 §2.1).
    first = scim.search("/Users", cursor="")
    assert first["itemsPerPage"] == 2 and "nextCursor" in first
    scim.assert_error(scim.get("/Users", params={"cursor": "", "count": 4}), 400, "invalidCount")
    # cursorTimeout: a cursor older than it is expiredCursor.
    settings.SCIM = {**settings.SCIM, "CURSOR_TIMEOUT": pagination["cursorTimeout"]}
    later = time.time() + pagination["cursorTimeout"] + 5
    with mock.patch("time.time", return_value=later):
        expired = scim.get("/Users", params={"cursor": first["nextCursor"]})
    scim.assert_error(expired, 400, "expiredCursor")


def test_security_events_claim(scim):
    """RFC 9967 §4: absent until an event stream is registered (not configured); then
    ``asyncRequest: "request"``: a held write is completed asynchronously when the client
    asks with ``Prefer: respond-async`` (202, ``Set-Txn``) and a stream is bound to it
    (someone hears the completion), and only then."""
    from provisioning.access.models import ScimClient
    from provisioning.events.models import EventStream
    from provisioning.oversight.models import PolicyRule

    assert "securityEvents" not in scim.read("/ServiceProviderConfig")
    stream = EventStream.objects.create(method="poll", name="claims")
    claim = scim.read("/ServiceProviderConfig")["securityEvents"]
    assert claim["asyncRequest"] == "request"
    assert "urn:ietf:params:scim:event:misc:asyncresp" in claim["eventUris"]
    PolicyRule.objects.create(name="hold deletes", kind="delete_user", action="hold")
    first, second = scim.create_user("claim-a"), scim.create_user("claim-b")
    unbound = scim.delete(f"/Users/{first['id']}", HTTP_PREFER="respond-async")
    assert unbound.status_code == 202 and "Set-Txn" not in unbound
    stream.client = ScimClient.objects.get(name__startswith="test-provisioner-")
    stream.save()
    asked = scim.delete(f"/Users/{first['id']}", HTTP_PREFER="respond-async")
    assert asked.status_code == 202 and asked["Preference-Applied"] == "respond-async"
    assert asked["Set-Txn"] and asked.content == b""
    unasked = scim.delete(f"/Users/{second['id']}")
    assert unasked.status_code == 202 and "Set-Txn" not in unasked
