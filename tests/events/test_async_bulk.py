"""Asynchronous Bulk requests (RFC 9967 §2.5.1.2): one completion per operation, each
``txn`` the Bulk request's ``Set-Txn`` suffixed with ``:<index>`` of the operation in
the request's ``Operations``."""

from __future__ import annotations

import uuid

import pytest

from provisioning.events.models import AsyncRequest, Event, EventKind
from provisioning.oversight import services
from provisioning.oversight.models import PendingOperation
from tests.events.asyncsupport import (
    ASYNC,
    ASYNCRESP,
    ERROR_SCHEMA,
    assert_async_202,
    completion,
    completions,
    patch_body,
)

pytestmark = pytest.mark.django_db

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def bulk(*operations: dict) -> dict:
    return {"schemas": [BULK], "Operations": list(operations)}


def payload(stream, txn: str) -> dict:
    return completion(stream, txn)["events"][ASYNCRESP]


def mixed_request(keep: dict, leave: dict) -> dict:
    """0: POST (applied), 1: DELETE (held), 2: PATCH deactivation (held), 3: PATCH of a
    user that does not exist (fails at once)."""
    return bulk(
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": "qwerty",
            "data": {"schemas": [USER], "userName": "bulk-new@x.example"},
        },
        {"method": "DELETE", "path": f"/Users/{leave['id']}"},
        {
            "method": "PATCH",
            "path": f"/Users/{keep['id']}",
            "bulkId": "p1",
            "data": patch_body({"op": "replace", "path": "active", "value": False}),
        },
        {
            "method": "PATCH",
            "path": f"/Users/{uuid.uuid4()}",
            "data": patch_body({"op": "replace", "path": "displayName", "value": "x"}),
        },
    )


def test_async_bulk_answers_202_and_completes_every_operation(
    idp, other_idp, hold_rule, operators, decide
):
    hold_rule("delete_user")
    hold_rule("deactivate_user")
    stream = idp.stream()
    elsewhere = other_idp.stream()
    keep = idp.api.create_user("keep@x.example", active=True)
    leave = idp.api.create_user("leave@x.example")

    response = idp.api.post("/Bulk", mixed_request(keep, leave), **ASYNC)

    # §2.5.1.1: no body; no Location, a Bulk request naming no resource of its own.
    txn = assert_async_202(response)
    assert "Location" not in response
    # What finished at once is completed now (§2.5.1.2: one completion per operation).
    created = payload(stream, f"{txn}:0")
    new_user = idp.api.read(f"/Users/{completion(stream, f'{txn}:0')['sub_id']['id']}")
    assert created == {
        "method": "POST",
        "bulkId": "qwerty",
        "version": new_user["meta"]["version"],
        "status": "201",
    }  # RFC 9967 Figure 16
    assert completion(stream, f"{txn}:0")["sub_id"]["uri"] == f"/Users/{new_user['id']}"
    missing = payload(stream, f"{txn}:3")
    assert missing["status"] == "404" and missing["response"]["schemas"] == [ERROR_SCHEMA]
    assert {e.txn for e in completions(stream)} == {f"{txn}:0", f"{txn}:3"}
    # The held ones each have their own async request, named by the operation's index.
    delete_op = PendingOperation.objects.get(action="delete")
    patch_op = PendingOperation.objects.get(action="patch")
    assert AsyncRequest.objects.get(pending_id=delete_op.pk).txn == f"{txn}:1"
    assert AsyncRequest.objects.get(pending_id=patch_op.pk).bulk_id == "p1"

    decide(services.pending_approve, pending_id=delete_op.pk, operator=operators["alice"])
    decide(
        services.pending_reject, pending_id=patch_op.pk, operator=operators["alice"], reason="no"
    )

    assert payload(stream, f"{txn}:1") == {"method": "DELETE", "status": "204"}
    rejected = payload(stream, f"{txn}:2")
    assert (rejected["method"], rejected["bulkId"], rejected["status"]) == ("PATCH", "p1", "403")
    assert sorted(e.txn for e in completions(stream)) == [f"{txn}:{i}" for i in range(4)]
    assert completions(elsewhere) == []
    status = idp.api.read(f"/PendingOperations/{patch_op.pk}")
    assert status["asyncRequests"][0]["txn"] == f"{txn}:2"
    assert status["asyncRequests"][0]["status"] == "403"


def test_bulk_without_a_bound_stream_answers_synchronously(idp, hold_rule):
    # The completions of the operations that finish at once would reach nobody: the
    # server gives the normal response, which RFC 9967 §2.5.1.1 allows.
    hold_rule("delete_user")
    hold_rule("deactivate_user")
    keep = idp.api.create_user("keep2@x.example", active=True)
    leave = idp.api.create_user("leave2@x.example")

    response = idp.api.post("/Bulk", mixed_request(keep, leave), **ASYNC)

    results = idp.api.ok(response)["Operations"]
    assert [r["status"] for r in results] == ["201", "202", "202", "404"]
    assert "Set-Txn" not in response and "Preference-Applied" not in response
    assert not AsyncRequest.objects.exists() and not Event.objects.filter(kind=EventKind.ASYNC_RESPONSE).exists()


def test_async_bulk_with_nothing_held_answers_synchronously(idp):
    stream = idp.stream()
    user = idp.api.create_user("plain@x.example")

    response = idp.api.post(
        "/Bulk",
        bulk(
            {
                "method": "PATCH",
                "path": f"/Users/{user['id']}",
                "data": patch_body({"op": "replace", "path": "displayName", "value": "P"}),
            }
        ),
        **ASYNC,
    )

    assert idp.api.ok(response)["Operations"][0]["status"] == "200"
    assert "Preference-Applied" not in response
    assert completions(stream) == []


def test_bulk_without_the_preference_is_unchanged(idp, hold_rule):
    hold_rule("delete_user")
    idp.stream()
    leave = idp.api.create_user("leave3@x.example")

    response = idp.api.post("/Bulk", bulk({"method": "DELETE", "path": f"/Users/{leave['id']}"}))

    [result] = idp.api.ok(response)["Operations"]
    assert result["status"] == "202" and "/PendingOperations/" in result["location"]
    assert not AsyncRequest.objects.exists()


def test_each_async_bulk_retrying_a_held_operation_gets_its_own_completion(
    idp, hold_rule, operators, decide
):
    hold_rule("delete_user")
    stream = idp.stream()
    leave = idp.api.create_user("leave4@x.example")
    other = idp.api.create_user("other4@x.example")
    delete = {"method": "DELETE", "path": f"/Users/{leave['id']}"}

    first = assert_async_202(idp.api.post("/Bulk", bulk(delete), **ASYNC))
    second = assert_async_202(
        idp.api.post(
            "/Bulk", bulk({"method": "DELETE", "path": f"/Users/{other['id']}"}, delete), **ASYNC
        )
    )

    held = PendingOperation.objects.get(resource_id=leave["id"])
    assert set(AsyncRequest.objects.filter(pending_id=held.pk).values_list("txn", flat=True)) == {
        f"{first}:0",
        f"{second}:1",
    }
    decide(services.pending_approve, pending_id=held.pk, operator=operators["alice"])

    assert payload(stream, f"{first}:0")["status"] == "204"
    assert payload(stream, f"{second}:1")["status"] == "204"
    assert not [e for e in completions(stream) if e.txn == f"{second}:0"]  # still held
