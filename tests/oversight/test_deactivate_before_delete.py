"""Deactivate before delete: a SCIM DELETE of a user deactivates it, the hard delete follows
after the configured days unless an operator restores it, and SCIM treats the user as
deleted meanwhile (RFC 7644 §3.6: "MUST return a 404 (Not Found) error code for all
operations associated with the previously deleted resource" and "MUST omit the resource
from future query results")."""

from datetime import timedelta

import pytest
from django.utils import timezone

from provisioning.audit.models import ChangeRecord
from provisioning.directory import services as directory
from provisioning.directory.models import Membership, User
from provisioning.oversight import deletions, services
from provisioning.oversight.models import CircuitBreaker, PendingOperation, PolicyRule
from provisioning.oversight.tasks import delete_scheduled_users
from tests.factories import ScimClientFactory
from tests.scim.conftest import ScimApi

pytestmark = pytest.mark.django_db


@pytest.fixture
def deferring(breaker):
    breaker.deletion_delay_days = 30
    breaker.save()
    return breaker


@pytest.fixture
def idp(db):
    client = ScimClientFactory(name="deferring-idp")
    client.api = ScimApi(client.raw_token)
    return client


@pytest.fixture
def retired(idp, deferring):
    """A user in a group, deleted by its IdP: deactivated, its deletion scheduled."""
    user = idp.api.create_user("leaver@x.example", active=True, displayName="Leaver")
    group = idp.api.create_group("staff", members=[{"value": user["id"]}])
    assert idp.api.delete(f"/Users/{user['id']}").status_code == 204
    return user, group


def test_a_scim_delete_deactivates_and_schedules_the_hard_delete(retired):
    user, _group = retired
    row = User.with_retired.get(pk=user["id"])
    assert row.active is False
    assert row.retired
    expected = timezone.now() + timedelta(days=30)
    assert abs((row.deletion_due - expected).total_seconds()) < 60
    assert Membership.objects.filter(user=row).exists()  # kept for a restore


def test_scim_treats_the_user_as_deleted(retired, idp):
    user, group = retired
    api = idp.api
    api.assert_error(api.get(f"/Users/{user['id']}"), 404)
    api.assert_error(
        api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "x"}), 404
    )
    api.assert_error(api.delete(f"/Users/{user['id']}"), 404)
    listed = api.search("/Users", filter='userName eq "leaver@x.example"')
    assert listed["totalResults"] == 0
    assert api.search("/Users")["totalResults"] == 0
    members = api.read(f"/Groups/{group['id']}").get("members", [])
    assert members == []
    # The userName is free again: the IdP may create the person anew.
    again = api.create_user("leaver@x.example")
    assert again["id"] != user["id"]


def test_the_audit_trail_shows_both_steps(retired, idp):
    user, _group = retired
    deleted = deletions.scheduled_deletions_run(now=timezone.now() + timedelta(days=31))

    assert deleted == 1
    assert not User.with_retired.filter(pk=user["id"]).exists()
    records = list(
        ChangeRecord.objects.filter(resource_id=user["id"])
        .order_by("id")
        .values_list(
            "action", "changed_attributes", "change_set__scim_client", "change_set__source"
        )
    )
    assert records == [
        ("create", records[0][1], idp.pk, "scim"),
        ("patch", ["active"], idp.pk, "scim"),  # step 1: the deactivation, by the IdP
        ("delete", records[2][1], None, "system"),  # step 2: the scheduled hard delete
    ]
    # The hard delete's snapshot keeps what a restore needs, groups included.
    snapshot = ChangeRecord.objects.get(resource_id=user["id"], action="delete").before
    assert [m["display"] for m in snapshot["memberOf"]] == ["staff"]


def test_nothing_is_deleted_before_it_is_due(retired):
    user, _group = retired
    assert deletions.scheduled_deletions_run(now=timezone.now() + timedelta(days=29)) == 0
    assert User.with_retired.filter(pk=user["id"]).exists()


def test_restoring_cancels_the_deletion(retired, idp, operators):
    user, group = retired

    deletions.user_restore(user_id=user["id"], operator=operators["alice"])

    row = User.objects.get(pk=user["id"])
    assert row.deletion_due is None and row.active is False
    body = idp.api.read(f"/Users/{user['id']}")
    assert body["active"] is False
    assert [m["value"] for m in idp.api.read(f"/Groups/{group['id']}")["members"]] == [user["id"]]
    assert deletions.scheduled_deletions_run(now=timezone.now() + timedelta(days=31)) == 0
    assert User.objects.filter(pk=user["id"]).exists()
    restore = ChangeRecord.objects.filter(resource_id=user["id"]).latest("id")
    assert restore.change_set.operator == operators["alice"]


def test_a_restore_refuses_a_username_taken_meanwhile(retired, idp, operators):
    from provisioning.scim.errors import Uniqueness

    user, _group = retired
    idp.api.create_user("LEAVER@x.example")
    with pytest.raises(Uniqueness):
        deletions.user_restore(user_id=user["id"], operator=operators["alice"])
    assert User.with_retired.get(pk=user["id"]).retired


def test_a_hold_rule_on_deletions_holds_the_deferred_delete(idp, deferring, operators, decide):
    PolicyRule.objects.create(name="hold deletes", kind="delete_user", action="hold")
    user = idp.api.create_user("held@x.example", active=True)
    response = idp.api.delete(f"/Users/{user['id']}")
    assert response.status_code == 202
    pending = PendingOperation.objects.get()
    assert pending.action == "delete"
    assert User.objects.get(pk=user["id"]).active is True

    decide(services.pending_approve, pending_id=pending.pk, operator=operators["alice"])

    pending.refresh_from_db()
    assert pending.status == PendingOperation.Status.APPLIED
    assert User.with_retired.get(pk=user["id"]).retired


def test_a_deferred_delete_counts_as_a_deletion_for_the_breaker(idp, deferring, established):
    users = established(300)[:52]
    statuses = [idp.api.delete(f"/Users/{u.pk}").status_code for u in users]
    assert statuses == [204] * 50 + [202] * 2
    assert User.with_retired.filter(deletion_due__isnull=False).count() == 50


def test_a_client_with_its_own_setting_deletes_at_once(idp, breaker):
    CircuitBreaker.objects.create(client=idp, deletion_delay_days=0)
    breaker.deletion_delay_days = 30
    breaker.save()
    user = idp.api.create_user("gone@x.example")
    assert idp.api.delete(f"/Users/{user['id']}").status_code == 204
    assert not User.with_retired.filter(pk=user["id"]).exists()


def test_a_broker_outage_between_the_two_steps_loses_nothing(retired):
    """The row is the truth: the sweep sent while the broker is down is lost and nothing
    is deleted; the next sweep finds the user due and deletes it once; a further sweep
    finds nothing. (tests/oversight/test_celery_worker.py does this with a real worker.)"""
    from kombu.exceptions import OperationalError

    from provisioning.celery import app
    from tests.oversight.test_celery_worker import use_broker

    user, _group = retired
    User.with_retired.filter(pk=user["id"]).update(
        deletion_due=timezone.now() - timedelta(minutes=1)
    )
    before = (app.conf.broker_url, app.conf.broker_write_url, app.conf.task_always_eager)
    app.conf.task_always_eager = False
    use_broker(app, "redis://127.0.0.1:1/0")  # nothing listens there
    app.conf.broker_transport_options = {"max_retries": 1}
    try:
        with pytest.raises(OperationalError):
            delete_scheduled_users.apply_async(retry=False)
    finally:
        app.conf.broker_transport_options = {}
        use_broker(app, "")
        app.conf.broker_url, app.conf.broker_write_url, app.conf.task_always_eager = before
    assert User.with_retired.get(pk=user["id"]).retired

    assert delete_scheduled_users.delay().get() == 1
    assert delete_scheduled_users.delay().get() == 0
    assert ChangeRecord.objects.filter(resource_id=user["id"], action="delete").count() == 1


def test_a_rollback_of_the_hard_delete_restores_the_user(retired, operators):
    from provisioning.oversight import reviews

    user, group = retired
    deletions.scheduled_deletions_run(now=timezone.now() + timedelta(days=31))
    change_set = ChangeRecord.objects.get(resource_id=user["id"], action="delete").change_set

    reviews.change_set_rollback(change_set_id=change_set.pk, operator=operators["alice"])

    row = User.objects.get(pk=user["id"])
    assert row.user_name == "leaver@x.example" and row.deletion_due is None
    assert Membership.objects.filter(user=row, group_id=group["id"]).exists()


def test_console_and_rollback_deletes_are_not_deferred(deferring, operators):
    """Only a SCIM client's DELETE is deferred; an operator's rollback of a create deletes."""
    user = directory.user_create(document={"userName": "console@x.example"}, client=None)
    directory.user_delete(user_id=user.pk, client=None, operator=operators["alice"])
    assert not User.with_retired.filter(pk=user.pk).exists()


def test_a_group_put_without_the_retired_user_keeps_its_membership(retired, idp, operators):
    """The user is deleted for SCIM, so a PUT of the group without it changes nothing of
    its membership: a restore brings the group back."""
    user, group = retired
    replaced = idp.api.put(
        f"/Groups/{group['id']}",
        {"schemas": group["schemas"], "displayName": "staff", "members": []},
    )
    assert replaced.status_code == 200
    assert Membership.objects.filter(user_id=user["id"], group_id=group["id"]).exists()

    deletions.user_restore(user_id=user["id"], operator=operators["alice"])
    members = idp.api.read(f"/Groups/{group['id']}")["members"]
    assert [m["value"] for m in members] == [user["id"]]


def test_removing_the_retired_user_from_its_group_again_counts_nothing(retired, idp, breaker):
    """The IdP's follow-up removal of the deleted user's memberships is no destructive
    effect: the deletion counted once (RFC 7644 §3.6: the resource is deleted)."""
    user, group = retired
    from provisioning.oversight.models import DestructiveEvent

    counted = DestructiveEvent.objects.count()
    response = idp.api.patch_ops(
        f"/Groups/{group['id']}", {"op": "remove", "path": f'members[value eq "{user["id"]}"]'}
    )
    assert response.status_code in (200, 204)
    response = idp.api.patch_ops(f"/Groups/{group['id']}", {"op": "remove", "path": "members"})
    assert response.status_code in (200, 204)
    assert DestructiveEvent.objects.count() == counted
    assert Membership.objects.filter(user_id=user["id"], group_id=group["id"]).exists()


def test_group_filters_do_not_match_the_retired_user(retired, idp):
    user, group = retired
    found = idp.api.search("/Groups", filter=f'members.value eq "{user["id"]}"')
    assert found["totalResults"] == 0
    assert idp.api.search("/Groups", filter="members pr")["totalResults"] == 0


def test_group_member_counts_leave_out_the_retired_user(retired):
    from provisioning.directory import selectors

    _user, group = retired
    listed = selectors.group_listing().get(pk=group["id"])
    assert (listed.member_count, listed.group_count) == (0, 0)


def test_rolling_back_a_deferred_deletion_restores_the_user(retired, idp, operators):
    """The inverse of a scheduled deletion is a restore (through the pipeline, audited),
    not "It has been deleted since"."""
    from provisioning.oversight import reviews

    user, group = retired
    record = ChangeRecord.objects.filter(resource_id=user["id"]).latest("id")
    step = reviews.inverse_step(record)
    assert not step.blocked and not step.conflict, step.conflict
    assert "cancel its scheduled deletion" in step.description

    rollback = reviews.change_set_rollback(
        change_set_id=record.change_set_id, operator=operators["alice"]
    )

    row = User.objects.get(pk=user["id"])
    assert row.deletion_due is None and row.active is True
    assert [m["value"] for m in idp.api.read(f"/Groups/{group['id']}")["members"]] == [user["id"]]
    assert deletions.scheduled_deletions_run(now=timezone.now() + timedelta(days=31)) == 0
    assert rollback.records.filter(resource_id=user["id"]).count() == 2  # restore, revert


def test_an_earlier_change_of_a_user_awaiting_deletion_is_not_rolled_back_unseen(
    idp, deferring, operators
):
    from provisioning.oversight import reviews

    user = idp.api.create_user("titled@x.example", active=True)
    rename = {"op": "replace", "path": "title", "value": "Boss"}
    assert idp.api.patch_ops(f"/Users/{user['id']}", rename).status_code == 200
    titled = ChangeRecord.objects.filter(resource_id=user["id"]).latest("id")
    assert idp.api.delete(f"/Users/{user['id']}").status_code == 204

    step = reviews.inverse_step(titled)
    assert step.blocked and "restore it first" in step.conflict
