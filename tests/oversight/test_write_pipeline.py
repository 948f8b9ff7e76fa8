"""The write pipeline closes the oversight holes: every write meets the gates, approvals
pass only the holds they were approved for, nesting counts, cycles and renames are checked,
the breaker is exact under concurrency and held writes are idempotent."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, connections
from django.utils import timezone

from provisioning.access.clients import scim_client_create
from provisioning.access.roles import scim_role_create
from provisioning.audit.models import ChangeSet
from provisioning.directory import pipeline
from provisioning.directory.models import Group, Membership, User
from provisioning.oversight import reviews, services
from provisioning.oversight.models import (
    CircuitBreaker,
    PendingOperation,
    PolicyRule,
    Quarantine,
)
from tests.scim.conftest import ERROR_SCHEMA, ScimApi

BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"

pytestmark = pytest.mark.django_db

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
DEACTIVATE = {
    "schemas": [PATCH],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}


def add_members(*ids) -> dict:
    return {
        "schemas": [PATCH],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": str(i)} for i in ids]}],
    }


def change_set_of(resource_id, action: str) -> ChangeSet:
    return ChangeSet.objects.filter(records__resource_id=resource_id, records__action=action).get()


# --- rollback meets the rules --------------------------------------------------------


def test_rolling_back_a_create_whose_delete_is_held_becomes_a_pending_operation(
    scim, hold_rule, operators, decide
):
    hold_rule("delete_user")
    user = scim.create_user("held-create@x.example")
    # The IdP's own delete is held...
    assert scim.delete(f"/Users/{user['id']}").status_code == 202
    created = change_set_of(user["id"], "create")

    # ...and so is the same delete reached by rolling back the create.
    rollback = reviews.change_set_rollback(change_set_id=created.pk, operator=operators["alice"])

    assert User.objects.filter(pk=user["id"]).exists()
    [held] = rollback.held_operations
    assert held.action == "delete" and held.operator == operators["alice"]
    assert held.status == PendingOperation.Status.PENDING
    assert not rollback.records.exists()

    # Four eyes: the operator who asked for the rollback cannot approve its hold.
    with pytest.raises(PermissionDenied):
        services.pending_approve(pending_id=held.pk, operator=operators["alice"])
    decide(services.pending_approve, pending_id=held.pk, operator=operators["bob"])
    held.refresh_from_db()
    assert held.status == PendingOperation.Status.APPLIED
    assert not User.objects.filter(pk=user["id"]).exists()


def test_a_rollback_re_adding_a_member_to_a_privileged_group_is_held(scim, hold_rule, operators):
    user = scim.create_user("admin-again@x.example")
    group = scim.create_group("IT Admins", members=[{"value": user["id"]}])
    Group.objects.filter(pk=group["id"]).update(privileged=True)
    removal = {
        "schemas": [PATCH],
        "Operations": [{"op": "remove", "path": f'members[value eq "{user["id"]}"]'}],
    }
    assert scim.patch(f"/Groups/{group['id']}", removal).status_code == 204
    rule = hold_rule("privileged_membership")
    removed = ChangeSet.objects.order_by("-id").first()

    rollback = reviews.change_set_rollback(change_set_id=removed.pk, operator=operators["alice"])

    assert not Membership.objects.filter(group_id=group["id"], user_id=user["id"]).exists()
    [held] = rollback.held_operations
    assert held.resource_id == uuid.UUID(group["id"]) and held.members_added[0]["id"] == user["id"]
    assert held.hold_keys == [f"rule:{rule.pk}"]


def test_restoring_a_deleted_user_holds_only_its_privileged_membership(scim, hold_rule, operators):
    user = scim.create_user("restored@x.example")
    plain = scim.create_group("Staff", members=[{"value": user["id"]}])
    admins = scim.create_group("IT Admins", members=[{"value": user["id"]}])
    Group.objects.filter(pk=admins["id"]).update(privileged=True)
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    hold_rule("privileged_membership")

    rollback = reviews.change_set_rollback(
        change_set_id=change_set_of(user["id"], "delete").pk, operator=operators["alice"]
    )

    assert User.objects.filter(pk=user["id"]).exists()
    assert Membership.objects.filter(group_id=plain["id"], user_id=user["id"]).exists()
    assert not Membership.objects.filter(group_id=admins["id"], user_id=user["id"]).exists()
    [held] = rollback.held_operations
    assert (held.resource_id, held.action) == (uuid.UUID(admins["id"]), "patch")


# --- nesting -------------------------------------------------------------------------


@pytest.fixture
def nested(scim):
    """IT Admins (privileged) contains Helpdesk."""
    helpdesk = scim.create_group("Helpdesk")
    admins = scim.create_group("IT Admins", members=[{"value": helpdesk["id"]}])
    Group.objects.filter(pk=admins["id"]).update(privileged=True)
    return admins, helpdesk


def test_adding_a_user_to_a_group_nested_in_a_privileged_group_is_held(scim, nested, hold_rule):
    admins, helpdesk = nested
    hold_rule("privileged_membership")
    user = scim.create_user("nested@x.example")

    response = scim.patch(f"/Groups/{helpdesk['id']}", add_members(user["id"]))

    assert response.status_code == 202
    assert not Membership.objects.filter(group_id=helpdesk["id"], user_id=user["id"]).exists()
    assert "IT Admins" not in {
        g["display"] for g in scim.read(f"/Users/{user['id']}").get("groups", [])
    }


def test_nesting_deeper_still_counts(scim, nested, hold_rule):
    admins, helpdesk = nested
    tier2 = scim.create_group("Tier 2")
    assert scim.patch(f"/Groups/{helpdesk['id']}", add_members(tier2["id"])).status_code == 204
    hold_rule("privileged_membership")
    user = scim.create_user("deep@x.example")
    assert scim.patch(f"/Groups/{tier2['id']}", add_members(user["id"])).status_code == 202


@pytest.mark.parametrize("depth", [0, 2])
def test_a_membership_cycle_is_refused(scim, nested, depth):
    admins, helpdesk = nested
    inner = helpdesk
    for level in range(depth):
        group = scim.create_group(f"level-{level}")
        assert scim.patch(f"/Groups/{inner['id']}", add_members(group["id"])).status_code == 204
        inner = group

    response = scim.patch(f"/Groups/{inner['id']}", add_members(admins["id"]))

    body = scim.assert_error(response, 400)
    assert body["scimType"] == "invalidValue" and "cycle" in body["detail"]
    assert not Membership.objects.filter(
        group_id=inner["id"], member_group_id=admins["id"]
    ).exists()


def test_a_group_cannot_contain_itself_through_put(scim):
    group = scim.create_group("Selfish")
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Selfish",
        "members": [{"value": group["id"]}],
    }
    scim.assert_error(scim.put(f"/Groups/{group['id']}", body), 400)


def test_a_cycle_in_bulk_is_a_400_result(scim, nested):
    admins, helpdesk = nested
    response = scim.post(
        "/Bulk",
        {
            "schemas": [BULK_SCHEMA],
            "Operations": [
                {
                    "method": "PATCH",
                    "path": f"/Groups/{helpdesk['id']}",
                    "data": add_members(admins["id"]),
                }
            ],
        },
    )
    [result] = response.json()["Operations"]
    assert result["status"] == "400"
    assert result["response"]["schemas"] == [ERROR_SCHEMA]
    assert result["response"]["scimType"] == "invalidValue"


def test_a_rollback_that_would_make_a_cycle_is_refused(scim, operators):
    outer = scim.create_group("Outer")
    inner = scim.create_group("Inner")
    assert scim.patch(f"/Groups/{outer['id']}", add_members(inner["id"])).status_code == 204
    removal = {
        "schemas": [PATCH],
        "Operations": [{"op": "remove", "path": f'members[value eq "{inner["id"]}"]'}],
    }
    assert scim.patch(f"/Groups/{outer['id']}", removal).status_code == 204
    removed = ChangeSet.objects.order_by("-id").first()
    # Now Inner contains Outer; putting Inner back into Outer would make a cycle.
    assert scim.patch(f"/Groups/{inner['id']}", add_members(outer["id"])).status_code == 204

    with pytest.raises(ValidationError, match="cycle"):
        reviews.change_set_rollback(
            change_set_id=removed.pk, operator=operators["alice"], force=True
        )
    assert not Membership.objects.filter(group_id=outer["id"], member_group_id=inner["id"]).exists()


# --- protected names -------------------------------------------------------------------


@pytest.fixture
def guarded(db) -> ScimApi:
    role = scim_role_create(
        name="guarded",
        permissions=[
            f"{t}:{o}"
            for t in ("User", "Group")
            for o in ("read", "create", "replace", "patch", "delete")
        ],
        protected_group_names=["Helpdesk-*"],
    )
    _client, token = scim_client_create(name="guarded-idp", role=role)
    return ScimApi(token)


def test_creating_a_protected_group_with_members_names_it(guarded):
    user = guarded.create_user("m@x.example")
    response = guarded.post(
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Helpdesk-own",
            "members": [{"value": user["id"]}],
        },
    )
    body = guarded.assert_error(response, 403)
    assert "'Helpdesk-own'" in body["detail"]


def test_renaming_a_group_with_members_into_a_protected_name_is_refused(guarded):
    user = guarded.create_user("r@x.example")
    group = guarded.create_group("benign-x", members=[{"value": user["id"]}])
    rename = {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Helpdesk-admins"}],
    }

    body = guarded.assert_error(guarded.patch(f"/Groups/{group['id']}", rename), 403)

    assert "'benign-x'" in body["detail"] and "'Helpdesk-admins'" in body["detail"]
    assert Group.objects.get(pk=group["id"]).display_name == "benign-x"


def test_renaming_an_empty_group_is_checked_like_creating_it(guarded):
    group = guarded.create_group("benign-y")
    rename = {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Helpdesk-y"}],
    }
    assert (
        guarded.patch(f"/Groups/{group['id']}", rename).status_code == 204
    )  # as creating it empty is


def test_a_group_nested_in_a_protected_group_is_protected(guarded, scim):
    protected = scim.create_group("Helpdesk-core")
    nested = guarded.create_group("team-a")
    assert scim.patch(f"/Groups/{protected['id']}", add_members(nested["id"])).status_code == 204
    user = guarded.create_user("t@x.example")

    body = guarded.assert_error(
        guarded.patch(f"/Groups/{nested['id']}", add_members(user["id"])), 403
    )

    assert "'team-a'" in body["detail"] and "'Helpdesk-core'" in body["detail"]


# --- approvals pass only what they approved --------------------------------------------


def test_an_approved_operation_meeting_a_new_hold_is_held_again(scim, hold_rule, operators, decide):
    first_rule = hold_rule("delete_user")
    user = scim.create_user("twice@x.example")
    assert scim.delete(f"/Users/{user['id']}").status_code == 202
    pending = PendingOperation.objects.get()
    second_rule = PolicyRule.objects.create(name="second look", kind="delete_user", action="hold")

    decide(services.pending_approve, pending_id=pending.pk, operator=operators["alice"])

    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.REHELD
    again = PendingOperation.objects.get(status=PendingOperation.Status.PENDING)
    assert str(again.pk) in pending.result_detail
    assert sorted(again.hold_keys) == sorted(f"rule:{r.pk}" for r in (first_rule, second_rule))
    assert User.objects.filter(pk=user["id"]).exists()
    decide(services.pending_approve, pending_id=again.pk, operator=operators["bob"])
    assert not User.objects.filter(pk=user["id"]).exists()


# --- idempotent holds --------------------------------------------------------------------


def test_a_repeated_held_delete_answers_the_same_location(scim, hold_rule):
    hold_rule("delete_user")
    user = scim.create_user("retry@x.example")

    first = scim.delete(f"/Users/{user['id']}")
    second = scim.delete(f"/Users/{user['id']}")

    assert first.status_code == second.status_code == 202
    assert first["Location"] == second["Location"]
    assert PendingOperation.objects.count() == 1


def test_a_different_effect_is_a_new_pending_operation(scim, hold_rule, other_scim):
    hold_rule("deactivate_user")
    user = scim.create_user("diff@x.example", active=True)
    first = scim.patch(f"/Users/{user['id']}", DEACTIVATE)
    other = {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "value": {"active": False, "title": "x"}}],
    }
    second = scim.patch(f"/Users/{user['id']}", other)
    assert first.status_code == second.status_code == 202
    assert first["Location"] != second["Location"]


def test_a_decided_operation_does_not_absorb_a_new_request(scim, hold_rule, operators):
    hold_rule("delete_user")
    user = scim.create_user("again@x.example")
    first = scim.delete(f"/Users/{user['id']}")
    services.pending_reject(
        pending_id=PendingOperation.objects.get().pk, operator=operators["alice"], reason="no"
    )
    second = scim.delete(f"/Users/{user['id']}")
    assert second.status_code == 202 and second["Location"] != first["Location"]


# --- every write path reaches the gates ------------------------------------------------------


class Refused(Exception):
    pass


@pytest.fixture
def refuse_everything():
    """A gate ahead of all others that refuses every write and remembers what it saw."""
    from provisioning.scim.errors import Forbidden

    seen: list[tuple[str, str, str]] = []
    armed = {"on": False}

    def gate(write: pipeline.Write) -> None:
        if armed["on"]:
            seen.append((write.origin, write.change.resource_type, write.change.action))
            raise Forbidden("refused by the test gate")

    pipeline.register_gate("test-refuse-everything", gate, order=0)
    yield seen, armed
    pipeline.unregister("test-refuse-everything")


def test_every_write_path_reaches_the_gates(
    scim, hold_rule, operators, decide, refuse_everything, breaker
):
    from provisioning.directory import services as directory
    from provisioning.scim.errors import Forbidden

    seen, armed = refuse_everything
    user = scim.create_user("walk@x.example", active=True)
    group = scim.create_group("walkers")
    deleted = scim.create_user("deleted@x.example")
    assert scim.delete(f"/Users/{deleted['id']}").status_code == 204
    hold_rule("deactivate_user")
    assert scim.patch(f"/Users/{user['id']}", DEACTIVATE).status_code == 202
    pending = PendingOperation.objects.get()
    breaker.max_operations = 0
    breaker.save()
    other = scim.create_user("quarantined@x.example")
    # Established: deleting what the client created moments ago would be churn.
    User.objects.filter(pk=other["id"]).update(created=timezone.now() - timedelta(days=1))
    assert scim.delete(f"/Users/{other['id']}").status_code == 202
    quarantine = Quarantine.objects.get()
    created = change_set_of(user["id"], "create")
    deletion = change_set_of(deleted["id"], "delete")
    armed["on"] = True

    user_body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "walk@x.example",
    }
    # SCIM verbs
    assert scim.post("/Users", {**user_body, "userName": "new@x.example"}).status_code == 403
    assert scim.put(f"/Users/{user['id']}", user_body).status_code == 403
    assert scim.patch(f"/Groups/{group['id']}", add_members(user["id"])).status_code == 403
    assert scim.delete(f"/Groups/{group['id']}").status_code == 403
    # Bulk
    bulk = scim.post(
        "/Bulk",
        {
            "schemas": [BULK_SCHEMA],
            "Operations": [{"method": "DELETE", "path": f"/Groups/{group['id']}"}],
        },
    )
    assert bulk.json()["Operations"][0]["status"] == "403"
    # Console action
    with pytest.raises(Forbidden):
        directory.user_patch(
            user_id=user["id"], operations=[], client=None, operator=operators["alice"]
        )
    # Approval and release
    decide(services.pending_approve, pending_id=pending.pk, operator=operators["alice"])
    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.FAILED
    decide(services.quarantine_release, quarantine_id=quarantine.pk, operator=operators["alice"])
    assert (
        PendingOperation.objects.get(resource_id=other["id"]).status
        == PendingOperation.Status.FAILED
    )
    # Rollback (a delete of what was created) and restore (the rollback of a delete)
    with pytest.raises(ValidationError):
        reviews.change_set_rollback(change_set_id=created.pk, operator=operators["bob"], force=True)
    with pytest.raises(ValidationError):
        reviews.change_set_rollback(change_set_id=deletion.pk, operator=operators["bob"])

    origins = {origin for origin, _type, _action in seen}
    assert origins == {pipeline.SCIM, pipeline.CONSOLE, pipeline.APPROVAL, pipeline.ROLLBACK}
    assert ("rollback", "User", "create") in seen  # the restore
    assert ("rollback", "User", "delete") in seen
    assert User.objects.filter(pk=user["id"], active=True).exists()
    assert User.objects.filter(pk=other["id"]).exists()


# --- the circuit breaker under concurrency ------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deactivations_apply_exactly_the_limit():
    """16 connections send 120 deactivations of one client: exactly 50 are applied."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")
    CircuitBreaker.objects.update_or_create(
        pk=1, defaults={"max_operations": 50, "window_minutes": 10, "min_directory_size": 1000}
    )
    _client, token = scim_client_create(name="burst-idp", role="provisioner")
    setup = ScimApi(token)
    ids = [setup.create_user(f"c{i:03d}@x.example", active=True)["id"] for i in range(120)]
    # Established users: deactivating what the client created moments ago would be churn.
    User.objects.filter(pk__in=ids).update(created=timezone.now() - timedelta(days=1))
    statuses: list[int] = []
    lock = threading.Lock()

    def worker(chunk):
        api = ScimApi(token)
        try:
            for user_id in chunk:
                status = api.patch(f"/Users/{user_id}", DEACTIVATE).status_code
                with lock:
                    statuses.append(status)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(ids[n::16],)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(set(statuses)) == [200, 202]
    assert statuses.count(200) == 50
    assert User.objects.filter(pk__in=ids, active=False).count() == 50
    quarantine = Quarantine.objects.get(status=Quarantine.Status.ACTIVE)
    assert quarantine.reason.startswith("50 destructive operations applied")
    assert PendingOperation.objects.filter(status="pending").count() == 70
