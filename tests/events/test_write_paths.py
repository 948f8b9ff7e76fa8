"""Every path that changes the directory yields exactly its events, in the transaction of
the change: SCIM, Bulk, console actions, approvals, quarantine releases, rollbacks,
restores and rollback jobs. Held, refused and rolled-back writes yield none."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from provisioning.audit.models import ChangeSet
from provisioning.directory import pipeline
from provisioning.directory import services as directory
from provisioning.directory.models import User
from provisioning.events.models import Delivery, Event
from provisioning.oversight import reviews, rollback_jobs
from provisioning.oversight import services as oversight
from provisioning.oversight.models import PendingOperation, Quarantine
from provisioning.scim.patch import PatchOperation
from tests.factories import OperatorFactory
from tests.scim.conftest import GROUP_SCHEMA, USER_SCHEMA

from .conftest import delivered_to, events, kinds

pytestmark = pytest.mark.django_db

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
DEACTIVATE = {
    "schemas": [PATCH],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}


def last_change_set() -> ChangeSet:
    return ChangeSet.objects.order_by("-id").first()


def new_events(since: int) -> list[Event]:
    return list(Event.objects.filter(id__gt=since).order_by("id"))


def high_water() -> int:
    last = Event.objects.order_by("-id").first()
    return last.id if last else 0


# --- Bulk ------------------------------------------------------------------------------


def test_bulk_operations_each_yield_their_events_with_their_own_txn(scim, notice_stream):
    existing = scim.create_user("old@x.example", active=True)
    mark = high_water()
    response = scim.post(
        "/Bulk",
        {
            "schemas": [BULK],
            "Operations": [
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": "u1",
                    "data": {"schemas": [USER_SCHEMA], "userName": "bulk1@x.example"},
                },
                {
                    "method": "POST",
                    "path": "/Groups",
                    "bulkId": "g1",
                    "data": {
                        "schemas": [GROUP_SCHEMA],
                        "displayName": "BulkGroup",
                        "members": [{"value": "bulkId:u1"}],
                    },
                },
                {"method": "PATCH", "path": f"/Users/{existing['id']}", "data": DEACTIVATE},
                {"method": "DELETE", "path": f"/Users/{existing['id']}"},
            ],
        },
    )
    results = scim.ok(response)["Operations"]
    assert [r["status"] for r in results] == ["201", "201", "200", "204"]

    created = new_events(mark)
    user_id = results[0]["location"].rsplit("/", 1)[1]
    group_id = results[1]["location"].rsplit("/", 1)[1]
    assert [(e.kind, e.sub_id["uri"]) for e in created] == [
        ("create", f"/Users/{user_id}"),
        ("create", f"/Groups/{group_id}"),
        ("patch", f"/Users/{existing['id']}"),
        ("deactivate", f"/Users/{existing['id']}"),
        ("delete", f"/Users/{existing['id']}"),
    ]
    # Each operation is its own unit of change: its own change set, its own txn.
    txns = [e.txn for e in created]
    assert len({txns[0], txns[1], txns[2], txns[4]}) == 4 and txns[2] == txns[3]
    change_sets = ChangeSet.objects.filter(source="bulk").order_by("id")
    assert [str(cs.pk) for cs in change_sets] == [txns[0], txns[1], txns[2], txns[4]]
    assert created[1].payload["members"] == {"added": [user_id], "removed": []}
    assert created[2].payload["version"] == results[2]["version"]


def test_event_ids_are_time_ordered_and_txn_without_audit_too(scim, notice_stream, settings):
    """Each event's ``jti`` is a UUIDv7 (RFC 9562 §5.7), a later event's never sorting
    before an earlier one's by time; with the audit trail off (no change set to name),
    ``txn`` is a fresh UUIDv7 too (RFC 9967 leaves its form to the issuer)."""
    since = high_water()
    scim.ok(scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "jti-a"}), 201)
    settings.SCIMGATE_AUDIT_ENABLED = False
    scim.ok(scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "jti-b"}), 201)
    first, second = new_events(since)
    assert first.jti.version == second.jti.version == 7
    assert first.jti.int >> 80 <= second.jti.int >> 80
    assert first.txn == str(ChangeSet.objects.get(records__resource_name="jti-a").pk)
    assert uuid.UUID(hex=second.txn).version == 7


def test_bulk_stops_at_fail_on_errors_and_the_failed_operation_leaves_no_event(scim, notice_stream):
    scim.create_user("taken@x.example")
    mark = high_water()
    response = scim.post(
        "/Bulk",
        {
            "schemas": [BULK],
            "failOnErrors": 1,
            "Operations": [
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": "a",
                    "data": {"schemas": [USER_SCHEMA], "userName": "first@x.example"},
                },
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": "b",
                    "data": {"schemas": [USER_SCHEMA], "userName": "TAKEN@x.example"},
                },
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": "c",
                    "data": {"schemas": [USER_SCHEMA], "userName": "third@x.example"},
                },
            ],
        },
    )
    results = scim.ok(response)["Operations"]
    assert [r["status"] for r in results] == ["201", "409"]

    first = User.objects.get(user_name="first@x.example")
    assert [(e.kind, e.resource_id) for e in new_events(mark)] == [("create", first.pk)]
    assert not User.objects.filter(user_name="third@x.example").exists()


# --- Rolled back -----------------------------------------------------------------------


def test_a_write_whose_transaction_rolls_back_leaves_no_event(notice_stream):
    with pytest.raises(RuntimeError), transaction.atomic():
        directory.user_create(document={"userName": "ghost@x.example"}, client=None)
        assert len(events()) == 1  # written with the change, inside its transaction
        raise RuntimeError("a later step of the same transaction fails")

    assert not User.objects.filter(user_name="ghost@x.example").exists()
    assert events() == [] and not Delivery.objects.exists()


def test_a_failure_after_the_events_recorder_rolls_them_back(scim, notice_stream):
    user = scim.create_user("rb@x.example", active=True)

    def failing(write):
        raise RuntimeError("recorder failure")

    pipeline.register_recorder("test-failing", failing, order=900)
    try:
        scim.assert_error(scim.patch(f"/Users/{user['id']}", DEACTIVATE), 500)
    finally:
        pipeline.unregister("test-failing")

    assert User.objects.get(pk=user["id"]).active is True
    assert [e.kind for e in events()] == ["create"]
    assert [e.kind for e in delivered_to(notice_stream)] == ["create"]


# --- Held writes, approvals, quarantine ---------------------------------------------------


def test_a_held_write_yields_nothing_until_approved(
    scim, hold_rule, operators, decide, notice_stream
):
    hold_rule("deactivate_user")
    user = scim.create_user("held@x.example", active=True)
    response = scim.patch(f"/Users/{user['id']}", DEACTIVATE)
    assert response.status_code == 202
    assert [e.kind for e in events()] == ["create"]
    pending = PendingOperation.objects.get()

    decide(oversight.pending_approve, pending_id=pending.pk, operator=operators["alice"])

    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.APPLIED
    create, patch, deactivate = events()
    assert (patch.kind, deactivate.kind) == ("patch", "deactivate")
    applied = last_change_set()
    assert applied.request == {"pending_operation": str(pending.pk)}
    assert patch.txn == deactivate.txn == str(applied.pk)
    # The write is the IdP's: its client is the event's client.
    assert patch.client_id == pending.client_id == create.client_id
    assert patch.payload["version"] == 'W/"2"'


def test_a_rejected_write_yields_nothing(scim, hold_rule, operators, decide, notice_stream):
    hold_rule("delete_user")
    user = scim.create_user("rej@x.example")
    assert scim.delete(f"/Users/{user['id']}").status_code == 202
    decide(
        oversight.pending_reject,
        pending_id=PendingOperation.objects.get().pk,
        operator=operators["alice"],
        reason="no",
    )
    assert [e.kind for e in events()] == ["create"]


def test_releasing_a_quarantine_yields_the_released_writes_events(
    scim, breaker, operators, decide, notice_stream
):
    breaker.max_operations, breaker.max_percent = 2, 100
    breaker.save()
    users = [scim.create_user(f"q{i}@x.example", active=True) for i in range(4)]
    # Established users: deactivating what the client created a moment ago is churn.
    User.objects.filter(pk__in=[u["id"] for u in users]).update(
        created=timezone.now() - timedelta(days=1)
    )
    statuses = [scim.patch(f"/Users/{u['id']}", DEACTIVATE).status_code for u in users]
    assert statuses == [200, 200, 202, 202]
    mark = high_water()
    quarantine = Quarantine.objects.get(status=Quarantine.Status.ACTIVE)

    decide(oversight.quarantine_release, quarantine_id=quarantine.pk, operator=operators["alice"])

    released = new_events(mark)
    assert [(e.kind, e.sub_id["id"]) for e in released] == [
        (kind, u["id"]) for u in users[2:] for kind in ("patch", "deactivate")
    ]
    assert released[0].txn != released[2].txn  # each applied operation is its own unit


# --- Console -----------------------------------------------------------------------------


def test_console_deactivation_and_reactivation(scim, notice_stream):
    operator = OperatorFactory(role="approver")
    console = Client()
    console.force_login(operator)
    user = scim.create_user("con@x.example", active=True)
    mark = high_water()

    console.post(reverse("console:user_deactivate", args=[user["id"]]), {"version": 1})
    console.post(reverse("console:user_reactivate", args=[user["id"]]), {"version": 2})

    patch_off, deactivate, patch_on, activate = new_events(mark)
    assert [e.kind for e in (patch_off, deactivate, patch_on, activate)] == [
        "patch",
        "deactivate",
        "patch",
        "activate",
    ]
    assert patch_off.client is None and patch_off.payload["attributes"] == ["active"]
    change_sets = list(ChangeSet.objects.filter(operator=operator).order_by("id"))
    assert [cs.source for cs in change_sets] == ["console", "console"]
    assert (patch_off.txn, patch_on.txn) == (str(change_sets[0].pk), str(change_sets[1].pk))


# --- Rollback, restore, rollback jobs -------------------------------------------------------


def test_rolling_back_a_deactivation_announces_the_reactivation(scim, operators, notice_stream):
    user = scim.create_user("back@x.example", active=True, title="T")
    scim.ok(scim.patch(f"/Users/{user['id']}", DEACTIVATE))
    mark = high_water()

    rollback = reviews.change_set_rollback(
        change_set_id=last_change_set().pk, operator=operators["alice"]
    )

    put, activate = new_events(mark)
    assert (put.kind, activate.kind) == ("put", "activate")
    assert put.payload == {"version": 'W/"3"', "attributes": ["active"]}
    assert put.txn == activate.txn == str(rollback.pk)
    assert put.client is None


def test_rolling_back_a_delete_restores_with_create_and_group_patches(
    scim, operators, notice_stream, full_stream
):
    user = scim.create_user("rest@x.example", externalId="ext-r")
    groups = [scim.create_group(f"RG{i}", members=[{"value": user["id"]}]) for i in range(2)]
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    mark = high_water()

    rollback = reviews.change_set_rollback(
        change_set_id=last_change_set().pk, operator=operators["alice"]
    )

    restored = new_events(mark)
    assert [(e.kind, e.sub_id["uri"]) for e in restored] == [
        ("create", f"/Users/{user['id']}"),
        *[("patch", f"/Groups/{g['id']}") for g in groups],
    ]
    assert {e.txn for e in restored} == {str(rollback.pk)}
    assert restored[0].sub_id["externalId"] == "ext-r"
    for patch in restored[1:]:
        assert patch.payload["members"] == {"added": [user["id"]], "removed": []}
        assert patch.payload["attributes"] == ["members"]
        assert patch.payload["data"]["Operations"][0]["value"][0]["value"] == user["id"]


def test_rolling_back_a_create_announces_the_delete(scim, operators, notice_stream):
    group = scim.create_group("Undo")
    mark = high_water()
    reviews.change_set_rollback(change_set_id=last_change_set().pk, operator=operators["alice"])
    assert kinds(id__gt=mark) == [("delete", f"/Groups/{group['id']}")]


def test_a_rollback_job_announces_each_step(scim, operators, decide, notice_stream, monkeypatch):
    monkeypatch.setattr(rollback_jobs, "CHUNK", 2)
    users = [
        directory.user_create(
            document={"userName": f"job{i}@x.example", "active": True}, client=None
        )
        for i in range(3)
    ]
    ids = []
    for user in users:
        directory.user_patch(
            user_id=user.pk,
            operations=[PatchOperation(op="replace", path="active", value=False)],
            client=None,
        )
        ids.append(last_change_set().pk)
    mark = high_water()

    decide(rollback_jobs.rollback_job_create, change_set_ids=ids, operator=operators["alice"])

    assert User.objects.filter(active=True).count() == 3
    undone = new_events(mark)
    assert [(e.kind, e.resource_id) for e in undone] == [
        (kind, user.pk) for user in reversed(users) for kind in ("put", "activate")
    ]
