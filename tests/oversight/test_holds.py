"""Held operations end to end through the SCIM endpoints: 202, approve, reject, conflicts."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from provisioning.access.operators import ensure_operator_groups
from provisioning.directory.models import User
from provisioning.oversight import services
from provisioning.oversight.models import PendingOperation

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
pytestmark = pytest.mark.django_db


def held(scim, response) -> PendingOperation:
    assert response.status_code == 202, response.content[:400]
    body = scim.json(response)
    pending = PendingOperation.objects.get(pk=body["id"])
    assert response["Location"] == body["meta"]["location"]
    assert body["status"] == "pending"
    return pending


def test_held_delete_answers_202_and_keeps_the_user(scim, hold_rule):
    hold_rule("delete_user")
    user = scim.create_user("held@x.example")

    pending = held(scim, scim.delete(f"/Users/{user['id']}"))

    assert User.objects.filter(pk=user["id"]).exists()
    assert scim.get(f"/Users/{user['id']}").status_code == 200
    assert pending.action == "delete" and pending.resource_label == "held@x.example"
    assert pending.base_version == 1
    # The IdP can look at what became of its request.
    status = scim.ok(scim.get(pending_location(scim, pending)))
    assert status["status"] == "pending"


def pending_location(scim, pending):
    return f"/PendingOperations/{pending.pk}"


def test_approving_applies_the_held_delete(scim, hold_rule, operators, decide):
    hold_rule("delete_user")
    user = scim.create_user("bye@x.example")
    pending = held(scim, scim.delete(f"/Users/{user['id']}"))

    decide(services.pending_approve, pending_id=pending.pk, operator=operators["alice"])

    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.APPLIED
    assert scim.get(f"/Users/{user['id']}").status_code == 404


def test_rejecting_keeps_the_user(scim, hold_rule, operators, decide):
    hold_rule("delete_user")
    user = scim.create_user("stay@x.example")
    pending = held(scim, scim.delete(f"/Users/{user['id']}"))

    decide(
        services.pending_reject,
        pending_id=pending.pk,
        operator=operators["alice"],
        reason="HR says no",
    )

    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.REJECTED
    assert pending.decision_reason == "HR says no"
    assert scim.get(f"/Users/{user['id']}").status_code == 200
    with pytest.raises(ValidationError):
        decide(services.pending_approve, pending_id=pending.pk, operator=operators["bob"])


def test_approving_after_the_user_changed_reports_a_conflict(scim, hold_rule, operators, decide):
    hold_rule("deactivate_user")
    user = scim.create_user("conflict@x.example", active=True)
    deactivate = {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    pending = held(scim, scim.patch(f"/Users/{user['id']}", deactivate))
    rename = {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "path": "displayName", "value": "New"}],
    }
    scim.ok(scim.patch(f"/Users/{user['id']}", rename))

    decide(services.pending_approve, pending_id=pending.pk, operator=operators["alice"])

    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.CONFLICT
    assert "changed" in pending.result_detail
    assert scim.read(f"/Users/{user['id']}")["active"] is True

    decide(services.pending_reapply, pending_id=pending.pk, operator=operators["bob"])
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.APPLIED
    current = scim.read(f"/Users/{user['id']}")
    assert current["active"] is False and current["displayName"] == "New"


def test_creates_are_flagged_not_held(scim, hold_rule):
    hold_rule("attribute_change", attributes=["userName"])
    created = scim.post("/Users", {"userName": "new@x.example"})
    assert created.status_code == 201
    assert not PendingOperation.objects.exists()


def test_two_approvers_and_four_eyes(scim, hold_rule, operators, decide):
    rule = hold_rule("delete_user", two_approvers=True)
    assert rule.two_approvers
    user = scim.create_user("two@x.example")
    pending = held(scim, scim.delete(f"/Users/{user['id']}"))

    decide(services.pending_approve, pending_id=pending.pk, operator=operators["alice"])
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.PENDING
    with pytest.raises(ValidationError):
        decide(services.pending_approve, pending_id=pending.pk, operator=operators["alice"])
    decide(services.pending_approve, pending_id=pending.pk, operator=operators["bob"])
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.APPLIED


def test_the_initiating_operator_cannot_approve(operators, hold_rule, db, decide):
    from provisioning.directory import services as directory
    from provisioning.directory.pipeline import OperationHeld

    hold_rule("delete_user", applies_to_console=True)
    user = directory.user_create(document={"userName": "console@x.example"}, client=None)
    with pytest.raises(OperationHeld) as raised:
        directory.user_delete(user_id=user.pk, client=None, operator=operators["alice"])
    pending = raised.value.pending
    with pytest.raises(PermissionDenied):
        decide(services.pending_approve, pending_id=pending.pk, operator=operators["alice"])
    decide(services.pending_approve, pending_id=pending.pk, operator=operators["bob"])
    assert not User.objects.filter(pk=user.pk).exists()


def test_expiry(scim, hold_rule):
    from datetime import timedelta

    from django.utils import timezone

    hold_rule("delete_user")
    user = scim.create_user("old@x.example")
    pending = held(scim, scim.delete(f"/Users/{user['id']}"))

    assert services.pending_expire_stale(now=timezone.now()) == 0
    assert services.pending_expire_stale(now=timezone.now() + timedelta(days=8)) == 1
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.EXPIRED


def test_decisions_are_audited_with_the_operator_and_approvers_notified(
    scim, hold_rule, operators, decide, mailoutbox, django_capture_on_commit_callbacks
):
    from provisioning.audit.models import AuditEntry

    operators["carol"].groups.add(ensure_operator_groups()["approver"])
    hold_rule("delete_user")
    user = scim.create_user("audited@x.example")
    with django_capture_on_commit_callbacks(execute=True):
        pending = held(scim, scim.delete(f"/Users/{user['id']}"))

    assert [m.to for m in mailoutbox] == [["carol@ops.example"]]
    assert str(pending.pk) in mailoutbox[0].body

    decide(services.pending_reject, pending_id=pending.pk, operator=operators["bob"], reason="no")

    entries = AuditEntry.objects.filter(object_pk=str(pending.pk))
    assert entries.filter(actor=operators["bob"]).exists()
    assert any("rejected" in str(entry.changes) for entry in entries)


def test_additions_to_a_privileged_group_are_held(scim, hold_rule):
    from provisioning.directory.models import Group, Membership

    hold_rule("privileged_membership")
    user = scim.create_user("climber@x.example")
    group = scim.create_group("Domain Admins")
    Group.objects.filter(pk=group["id"]).update(privileged=True)
    add = {
        "schemas": [PATCH],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": user["id"]}]}],
    }

    pending = held(scim, scim.patch(f"/Groups/{group['id']}", add))

    assert not Membership.objects.filter(group_id=group["id"]).exists()
    assert pending.members_added == [{"id": user["id"], "is_group": False, "display": None}]
