"""What the server keeps of a request carrying a secret: the request log (and the console
page showing it), change sets, held operations. Each of the reported spellings."""

from __future__ import annotations

import json

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from provisioning.audit.change_sets import change_set_create
from provisioning.audit.middleware import _describe
from provisioning.audit.models import ChangeSet, RequestLog
from provisioning.directory.models import User
from provisioning.oversight import services as oversight
from provisioning.oversight.models import PendingOperation, PolicyRule
from tests.factories import OperatorFactory
from tests.scim.conftest import PATCH_SCHEMA

pytestmark = pytest.mark.django_db

SECRET = "Not-For-Storage-2718"
BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def _patch(*operations):
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


def _everything_kept() -> str:
    rows = [
        *RequestLog.objects.values_list("query", "request_body", "response_body"),
        *ChangeSet.objects.values_list("request", flat=True),
        *PendingOperation.objects.values_list("request", "before", "proposed"),
        *User.objects.values_list("attributes", flat=True),
    ]
    return json.dumps(rows, default=str)


def test_patch_with_capitalised_path_and_value_keeps_no_password(scim):
    user = scim.create_user("ana")
    response = scim.patch_ops(
        f"/Users/{user['id']}",
        {"op": "add", "path": "title", "value": "Engineer"},
        {"op": "Replace", "Path": "password", "Value": SECRET},
    )
    assert scim.ok(response)["title"] == "Engineer"

    assert SECRET not in _everything_kept()
    row = RequestLog.objects.get(method="PATCH")
    assert json.loads(row.request_body)["Operations"][1]["Value"] == "[REDACTED]"
    # The title change made a change set; its request is the redacted PATCH.
    change_set = ChangeSet.objects.get(correlation_id=row.correlation_id)
    assert change_set.request["body"]["Operations"][1] == {
        "op": "Replace",
        "Path": "password",
        "Value": "[REDACTED]",
    }
    # And a viewer looking at the request log sees no password.
    viewer = Client()
    viewer.force_login(OperatorFactory(role="viewer"))
    page = viewer.get(reverse("console:request_detail", args=[row.pk]))
    assert page.status_code == 200
    assert SECRET not in page.content.decode() and "[REDACTED]" in page.content.decode()


def test_bulk_with_capitalised_value_keeps_no_password(scim):
    user = scim.create_user("bo")
    body = {
        "schemas": [BULK_SCHEMA],
        "Operations": [
            {
                "method": "PATCH",
                "path": f"/Users/{user['id']}",
                "data": _patch(
                    {"op": "replace", "path": "title", "value": "Lead"},
                    {"op": "replace", "path": "password", "VALUE": SECRET},
                ),
            }
        ],
    }
    assert scim.ok(scim.post("/Bulk", body))["Operations"][0]["status"] == "200"
    assert SECRET not in _everything_kept()
    bulk_set = ChangeSet.objects.get(source="bulk")
    assert bulk_set.request["body"]["Operations"][1]["VALUE"] == "[REDACTED]"


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (f"password: {SECRET}", "text/plain"),
        (f"userName=cy&password1={SECRET}", "application/x-www-form-urlencoded"),
        (f'{{"userName": "cy", "password1": "{SECRET}"', "application/scim+json"),
        (f'{{"userName": "cy", "password": "{SECRET}",}}', "application/scim+json"),
    ],
)
def test_non_json_and_invalid_bodies_keep_no_secret(scim, raw, content_type):
    response = scim.post("/Users", raw=raw, content_type=content_type)
    assert response.status_code in (400, 415)
    row = RequestLog.objects.get(method="POST")
    assert SECRET not in row.request_body
    assert row.request_size == len(raw.encode())
    if content_type != "application/x-www-form-urlencoded":
        assert row.request_body.startswith(
            f"[unparsed body: {len(raw.encode())} bytes, {content_type}]"
        )


def test_a_held_write_keeps_no_password_and_applies_as_sent(scim):
    PolicyRule.objects.create(
        name="hold titles",
        kind=PolicyRule.Kind.ATTRIBUTE_CHANGE,
        action="hold",
        attributes=["title"],
    )
    user = scim.create_user("dee")
    response = scim.patch_ops(
        f"/Users/{user['id']}",
        {"op": "replace", "path": "title", "value": "Held title"},
        {
            "OP": "REPLACE",
            "PATH": "urn:ietf:params:scim:schemas:core:2.0:User:password",
            "VALUE": SECRET,
        },
        {"op": "replace", "value": {"Password": SECRET}},
    )
    assert response.status_code == 202
    pending = PendingOperation.objects.get()
    assert [op["value"] for op in pending.request["operations"]] == [
        "Held title",
        "[REDACTED]",
        {"Password": "[REDACTED]"},
    ]
    assert SECRET not in _everything_kept()

    # The directory drops ``password`` (RFC 7643 §4.1.1: writeOnly; not a credential
    # store), so the redacted request applies exactly as the one sent would have.
    approver = OperatorFactory(role="approver")
    oversight.pending_approve(pending_id=pending.pk, operator=approver)
    oversight.pending_apply(pending.pk)
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.APPLIED, pending.result_detail
    assert scim.read(f"/Users/{user['id']}")["title"] == "Held title"
    assert "password" not in json.dumps(User.objects.get(pk=user["id"]).attributes).lower()
    assert SECRET not in _everything_kept()


def test_a_change_set_never_keeps_a_secret_whoever_opened_it(scim):
    """The change set writer redacts too: a scope opened with an unredacted request."""
    change_set = change_set_create(
        correlation_id="00000000-0000-0000-0000-000000000001",
        source="console",
        request={"body": {"Operations": [{"op": "Replace", "Path": "password", "Value": SECRET}]}},
    )
    change_set.refresh_from_db()
    assert SECRET not in json.dumps(change_set.request)


def test_a_change_set_describes_an_unparsed_body_by_size_type_and_shape():
    raw = f'{{"userName": "x", "password": "{SECRET}",}}'.encode()
    request = RequestFactory().post(
        "/scim/v2/Users?Password=x", raw, content_type="application/json"
    )
    document = _describe(request, raw)
    assert document["query"] == "Password=[REDACTED]"
    assert document["body_size"] == len(raw)
    assert document["body"] == (
        f'[unparsed body: {len(raw)} bytes, application/json] {{"userName": "*", "password": "*",}}'
    )
