"""Flagged changes, review and rollback through the SCIM endpoints."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from provisioning.audit.models import ChangeSet
from provisioning.directory.models import Membership, User
from provisioning.oversight import reviews
from provisioning.oversight.models import Review, Rollback

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
DEACTIVATE = {
    "schemas": [PATCH],
    "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
}
pytestmark = pytest.mark.django_db


def last_change_set() -> ChangeSet:
    return ChangeSet.objects.order_by("-id").first()


def test_a_flagged_deactivation_is_applied_and_its_rollback_reactivates(scim, hold_rule, operators):
    hold_rule("deactivate_user", action="flag")
    user = scim.create_user(
        "flagged@x.example",
        active=True,
        name={"givenName": "Fla", "familyName": "Gged"},
        emails=[{"value": "flagged@x.example", "type": "work", "primary": True}],
    )
    original = scim.read(f"/Users/{user['id']}")

    assert scim.patch(f"/Users/{user['id']}", DEACTIVATE).status_code == 200
    assert scim.read(f"/Users/{user['id']}")["active"] is False
    review = Review.objects.get()
    assert review.status == Review.Status.OPEN
    assert "deactivate" in " ".join(review.reasons).lower()

    rollback = reviews.change_set_rollback(
        change_set_id=review.change_set_id, operator=operators["alice"]
    )

    restored = scim.read(f"/Users/{user['id']}")
    assert restored["active"] is True
    for key in ("userName", "name", "emails", "externalId", "displayName"):
        assert restored.get(key) == original.get(key)
    review.refresh_from_db()
    assert review.status == Review.Status.ROLLED_BACK
    assert Rollback.objects.get().rollback == rollback
    assert rollback.operator == operators["alice"]
    assert rollback.records.get().action == "replace"


def test_rolling_back_a_delete_restores_id_attributes_and_memberships(scim, operators):
    user = scim.create_user(
        "gone@x.example",
        externalId="ext-9",
        title="Engineer",
        emails=[{"value": "gone@x.example", "type": "work"}],
        **{
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "77",
                "department": "R&D",
            }
        },
    )
    group = scim.create_group("Team", members=[{"value": user["id"], "display": "Gone"}])
    before = scim.read(f"/Users/{user['id']}")
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    assert scim.get(f"/Users/{user['id']}").status_code == 404

    reviews.change_set_rollback(change_set_id=last_change_set().pk, operator=operators["alice"])

    after = scim.read(f"/Users/{user['id']}")
    assert after["id"] == before["id"]
    assert {k: v for k, v in after.items() if k not in ("meta", "groups")} == {
        k: v for k, v in before.items() if k not in ("meta", "groups")
    }
    assert after["meta"]["created"] == before["meta"]["created"]
    assert [g["value"] for g in after["groups"]] == [group["id"]]
    assert Membership.objects.get(group_id=group["id"], user_id=user["id"]).display == "Gone"


def test_rolling_back_a_group_delete_restores_its_members(scim, operators):
    members = [scim.create_user(f"m{i}@x.example") for i in range(3)]
    parent = scim.create_group("Parent")
    group = scim.create_group("Child", members=[{"value": m["id"]} for m in members])
    scim.patch(
        f"/Groups/{parent['id']}",
        {
            "schemas": [PATCH],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": group["id"]}]}],
        },
    )
    scim.delete(f"/Groups/{group['id']}")

    reviews.change_set_rollback(change_set_id=last_change_set().pk, operator=operators["alice"])

    restored = scim.read(f"/Groups/{group['id']}")
    assert sorted(m["value"] for m in restored["members"]) == sorted(m["id"] for m in members)
    assert group["id"] in [m["value"] for m in scim.read(f"/Groups/{parent['id']}")["members"]]


def test_membership_deltas_are_inverted(scim, operators):
    a, b = scim.create_user("a@x.example"), scim.create_user("b@x.example")
    group = scim.create_group("Delta", members=[{"value": a["id"]}])
    body = {
        "schemas": [PATCH],
        "Operations": [
            {"op": "remove", "path": f'members[value eq "{a["id"]}"]'},
            {"op": "add", "path": "members", "value": [{"value": b["id"]}]},
        ],
    }
    scim.patch(f"/Groups/{group['id']}", body)

    reviews.change_set_rollback(change_set_id=last_change_set().pk, operator=operators["alice"])

    assert [m["value"] for m in scim.read(f"/Groups/{group['id']}")["members"]] == [a["id"]]


def test_a_conflict_needs_force(scim, operators):
    user = scim.create_user("c@x.example", active=True)
    scim.patch(f"/Users/{user['id']}", DEACTIVATE)
    deactivation = last_change_set()
    rename = {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Later"}],
    }
    scim.patch(f"/Users/{user['id']}", rename)

    preview = reviews.rollback_preview([deactivation.pk])
    assert preview[0].conflict and not preview[0].blocked
    with pytest.raises(ValidationError, match="force"):
        reviews.change_set_rollback(change_set_id=deactivation.pk, operator=operators["alice"])
    assert scim.read(f"/Users/{user['id']}")["active"] is False

    reviews.change_set_rollback(
        change_set_id=deactivation.pk, operator=operators["alice"], force=True
    )
    current = scim.read(f"/Users/{user['id']}")
    assert current["active"] is True
    assert Rollback.objects.get().forced is True


def test_illegal_transitions(scim, hold_rule, operators):
    hold_rule("deactivate_user", action="flag")
    user = scim.create_user("t@x.example", active=True)
    scim.patch(f"/Users/{user['id']}", DEACTIVATE)
    review = Review.objects.get()

    reviews.review_accept(review_id=review.pk, operator=operators["alice"])
    with pytest.raises(ValidationError):
        reviews.review_accept(review_id=review.pk, operator=operators["bob"])
    reviews.change_set_rollback(change_set_id=review.change_set_id, operator=operators["bob"])
    with pytest.raises(ValidationError, match="already been rolled back"):
        reviews.change_set_rollback(change_set_id=review.change_set_id, operator=operators["bob"])


def test_an_operator_cannot_roll_back_their_own_change(operators, db):
    from provisioning.audit.context import change_set_scope
    from provisioning.directory import services

    with change_set_scope(operator=operators["alice"], source="console"):
        user = services.user_create(
            document={"userName": "mine@x.example"}, client=None, operator=operators["alice"]
        )
    mine = ChangeSet.objects.get(operator=operators["alice"])
    with pytest.raises(PermissionDenied):
        reviews.change_set_rollback(change_set_id=mine.pk, operator=operators["alice"])
    reviews.change_set_rollback(change_set_id=mine.pk, operator=operators["bob"])
    assert not User.objects.filter(pk=user.pk).exists()


def test_mass_rollback_of_one_client_in_a_time_range(scim, other_scim, operators, breaker):
    ours = [scim.create_user(f"mass{i}@x.example", active=True) for i in range(4)]
    theirs = other_scim.create_user("theirs@x.example", active=True)
    started = timezone.now()
    for user in ours:
        scim.patch(f"/Users/{user['id']}", DEACTIVATE)
    other_scim.patch(f"/Users/{theirs['id']}", DEACTIVATE)
    client = ChangeSet.objects.order_by("-id")[1].scim_client

    ids = reviews.client_change_sets(
        client=client, since=started, until=timezone.now() + timedelta(seconds=1)
    )
    preview = reviews.rollback_preview(ids)
    assert len(preview) == 4 and not any(step.conflict for step in preview)

    reviews.change_sets_rollback(change_set_ids=ids, operator=operators["alice"])

    assert User.objects.filter(pk__in=[u["id"] for u in ours], active=True).count() == 4
    assert scim.read(f"/Users/{theirs['id']}")["active"] is False


def test_the_preview_of_several_change_sets_follows_their_sequence(scim, operators):
    started = timezone.now()
    user = scim.create_user("seq@x.example", active=True)
    scim.patch(f"/Users/{user['id']}", DEACTIVATE)
    client = last_change_set().scim_client
    ids = reviews.client_change_sets(
        client=client, since=started, until=timezone.now() + timedelta(seconds=1)
    )

    steps = reviews.rollback_preview(ids)

    assert [s.record.action for s in steps] == ["patch", "create"]
    assert not any(step.conflict for step in steps)
    reviews.change_sets_rollback(change_set_ids=ids, operator=operators["alice"])
    assert not User.objects.filter(pk=user["id"]).exists()
