"""The mass-change circuit breaker through the SCIM endpoints: churn does not count,
thresholds in both shapes (absolute and percentage) per client, and the decision on what
a tripped breaker holds."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from provisioning.directory.models import Group, Membership, User
from provisioning.oversight import services
from provisioning.oversight.models import (
    CircuitBreaker,
    DestructiveEvent,
    HeldKind,
    PendingOperation,
    Quarantine,
)
from provisioning.oversight.policy import breaker_for, breaker_standing
from tests.factories import ScimClientFactory
from tests.scim.conftest import ScimApi

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
DEACTIVATE = {
    "schemas": [PATCH],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}
pytestmark = pytest.mark.django_db


@pytest.fixture
def idp(db):
    client = ScimClientFactory(name="burst-idp")
    client.api = ScimApi(client.raw_token)
    return client


@pytest.fixture
def burst(idp, established, breaker):
    """60 deactivations of established users (of a 300-user directory) by one client."""
    users = established(300)[:60]
    statuses = [idp.api.patch(f"/Users/{u.pk}", DEACTIVATE).status_code for u in users]
    return users, statuses


def test_a_burst_of_60_deactivations_applies_50_and_holds_10(burst, other_scim):
    users, statuses = burst
    assert statuses == [200] * 50 + [202] * 10
    inactive = set(User.objects.filter(active=False).values_list("pk", flat=True))
    assert inactive == {u.pk for u in users[:50]}
    quarantine = Quarantine.objects.get(status=Quarantine.Status.ACTIVE)
    assert quarantine.operations.count() == 10
    assert quarantine.reason.startswith("50 destructive operations applied within 10 minutes")

    # Another client is unaffected, and non-destructive operations keep flowing.
    other = other_scim.create_user("other@x.example", active=True)
    assert other_scim.patch(f"/Users/{other['id']}", DEACTIVATE).status_code == 200


def test_sixty_deletions_of_established_users_trip_at_fifty_with_the_defaults(idp, established):
    """No breaker row changed: the defaults (50 in 10 minutes) hold the 51st deletion."""
    users = established(300)[:60]
    statuses = [idp.api.delete(f"/Users/{u.pk}").status_code for u in users]

    assert statuses == [204] * 50 + [202] * 10
    assert User.objects.count() == 250
    quarantine = Quarantine.objects.get(client=idp, status=Quarantine.Status.ACTIVE)
    assert quarantine.operations.filter(action="delete").count() == 10


def test_non_destructive_operations_flow_during_quarantine(burst, idp):
    users, _ = burst
    rename = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "x"}]}
    assert idp.api.patch(f"/Users/{users[55].pk}", rename).status_code == 200
    assert idp.api.post("/Users", {"userName": "fresh@x.example"}).status_code == 201


def test_releasing_applies_the_held_operations_in_order(burst, operators, decide):
    users, _ = burst
    quarantine = Quarantine.objects.get(status=Quarantine.Status.ACTIVE)

    decide(services.quarantine_release, quarantine_id=quarantine.pk, operator=operators["alice"])

    assert not User.objects.filter(pk__in=[u.pk for u in users], active=True).exists()
    applied = PendingOperation.objects.filter(status=PendingOperation.Status.APPLIED).order_by(
        "applied_at", "created_at"
    )
    assert [p.resource_id for p in applied] == [u.pk for u in users[50:]]
    quarantine.refresh_from_db()
    assert quarantine.status == Quarantine.Status.RELEASED


def test_releasing_a_subset_discards_the_rest(burst, operators, decide):
    users, _ = burst
    quarantine = Quarantine.objects.get(status=Quarantine.Status.ACTIVE)
    chosen = list(quarantine.operations.order_by("created_at").values_list("pk", flat=True)[:3])

    decide(
        services.quarantine_release,
        quarantine_id=quarantine.pk,
        operator=operators["alice"],
        pending_ids=chosen,
    )

    assert User.objects.filter(pk__in=[u.pk for u in users], active=True).count() == 7
    assert quarantine.operations.filter(status=PendingOperation.Status.DISCARDED).count() == 7


def test_discarding_leaves_the_users_active(burst, operators, idp, decide):
    users, _ = burst
    quarantine = Quarantine.objects.get(status=Quarantine.Status.ACTIVE)

    decide(services.quarantine_discard, quarantine_id=quarantine.pk, operator=operators["alice"])

    assert set(
        User.objects.filter(pk__in=[u.pk for u in users], active=True).values_list("pk", flat=True)
    ) == {u.pk for u in users[50:]}
    # The window starts afresh after an administrator decided.
    assert idp.api.patch(f"/Users/{users[55].pk}", DEACTIVATE).status_code == 200


# --- churn ------------------------------------------------------------------------------


def test_a_create_then_delete_burst_of_200_resources_trips_nothing(idp, established):
    """A test connection or an onboarding script: it creates users and groups, fills the
    groups, empties them, deactivates and deletes everything it made."""
    established(300)  # a directory around it, so the percentage has a base
    api = idp.api
    users = [api.create_user(f"fixture{i:03d}@x.example", active=True) for i in range(150)]
    groups = [api.create_group(f"fixture-group-{i:02d}") for i in range(50)]
    for n, group in enumerate(groups):
        members = [{"value": u["id"]} for u in users[n * 3 : n * 3 + 3]]
        response = api.patch_ops(
            f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": members}
        )
        assert response.status_code in (200, 204)
    statuses = []
    for n, group in enumerate(groups):
        for user in users[n * 3 : n * 3 + 3]:
            statuses.append(
                api.patch_ops(
                    f"/Groups/{group['id']}",
                    {"op": "remove", "path": f'members[value eq "{user["id"]}"]'},
                ).status_code
            )
    statuses += [api.patch(f"/Users/{u['id']}", DEACTIVATE).status_code for u in users]
    statuses += [api.delete(f"/Users/{u['id']}").status_code for u in users]
    statuses += [api.delete(f"/Groups/{g['id']}").status_code for g in groups]

    assert len(statuses) == 150 + 150 + 150 + 50
    assert set(statuses) <= {200, 204}, sorted(set(statuses))
    assert not Quarantine.objects.exists()
    assert not DestructiveEvent.objects.exists()
    assert not PendingOperation.objects.exists()


def test_destroying_what_is_older_than_the_churn_window_counts(idp, breaker):
    breaker.max_operations, breaker.churn_window_minutes = 1, 5
    breaker.save()
    old, fresh, third = (idp.api.create_user(f"c{i}@x.example", active=True) for i in range(3))
    User.objects.filter(pk__in=[old["id"], third["id"]]).update(
        created=timezone.now() - timedelta(minutes=6)
    )

    assert idp.api.delete(f"/Users/{fresh['id']}").status_code == 204  # churn
    assert idp.api.delete(f"/Users/{old['id']}").status_code == 204  # counted: 1 of 1
    assert idp.api.delete(f"/Users/{third['id']}").status_code == 202  # the 2nd trips


def test_a_churn_window_of_zero_turns_churn_off(idp, breaker):
    """0 is not "the breaker's window": destroying what the client just created counts."""
    breaker.max_operations, breaker.window_minutes, breaker.churn_window_minutes = 1, 10, 0
    breaker.save()
    assert breaker.churn_minutes == 0
    first, second = (idp.api.create_user(f"z{i}@x.example", active=True) for i in range(2))

    assert idp.api.delete(f"/Users/{first['id']}").status_code == 204  # counted: 1 of 1
    assert idp.api.delete(f"/Users/{second['id']}").status_code == 202  # the 2nd trips
    assert DestructiveEvent.objects.filter(client=idp).count() == 1


def test_destroying_what_another_client_created_counts(idp, other_scim, breaker):
    breaker.max_operations = 1
    breaker.save()
    first, second = (other_scim.create_user(f"o{i}@x.example") for i in range(2))

    assert idp.api.delete(f"/Users/{first['id']}").status_code == 204
    assert idp.api.delete(f"/Users/{second['id']}").status_code == 202


def test_removing_a_member_another_client_added_counts(idp, other_scim, breaker):
    """Provenance of a membership is who added it, not who created the group."""
    breaker.max_operations = 1
    breaker.save()
    group = idp.api.create_group("mixed")
    mine = [idp.api.create_user(f"m{i}@x.example")["id"] for i in range(2)]
    theirs = [idp.api.create_user(f"t{i}@x.example")["id"] for i in range(2)]
    add = {"op": "add", "path": "members"}
    idp.api.patch_ops(f"/Groups/{group['id']}", {**add, "value": [{"value": i} for i in mine]})
    other_scim.patch_ops(f"/Groups/{group['id']}", {**add, "value": [{"value": i} for i in theirs]})
    assert Membership.objects.filter(added_by__isnull=False).count() == 4

    remove_mine = {"op": "remove", "path": f'members[value eq "{mine[0]}" or value eq "{mine[1]}"]'}
    assert idp.api.patch_ops(f"/Groups/{group['id']}", remove_mine).status_code in (200, 204)
    assert not DestructiveEvent.objects.exists()
    remove = {"op": "remove", "path": f'members[value eq "{theirs[0]}"]'}
    assert idp.api.patch_ops(f"/Groups/{group['id']}", remove).status_code in (200, 204)
    remove = {"op": "remove", "path": f'members[value eq "{theirs[1]}"]'}
    assert idp.api.patch_ops(f"/Groups/{group['id']}", remove).status_code == 202


# --- thresholds in both shapes, per client ---------------------------------------------------


def test_the_percentage_trips_on_a_small_directory(idp, established):
    """Defaults: 20 % of the directory's users within an hour, from 100 users on. The
    directory shrinks as users are deleted: of 120 users, the 21st deletion would make
    21 of the 100 left, over 20 %; far below the absolute 50."""
    users = established(120)[:30]
    statuses = [idp.api.delete(f"/Users/{u.pk}").status_code for u in users]

    assert statuses == [204] * 20 + [202] * 10
    reason = Quarantine.objects.get(client=idp).reason
    assert "this one would make 21, over 20.00% of 100 users in the directory" in reason


def test_small_directories_are_not_tripped_by_the_percentage(idp, established, breaker):
    users = established(50)[:30]
    # 30 of 50 users is 60 %, but the directory is under the 100-user minimum.
    assert [idp.api.delete(f"/Users/{u.pk}").status_code for u in users] == [204] * 30


def test_a_percentage_of_the_clients_own_users(idp, established, breaker):
    """One client of several: 20 % of the 10 users it created, whatever the directory's size."""
    established(300)
    own = established(10, source=idp, prefix="own")
    CircuitBreaker.objects.create(
        client=idp, max_percent=20, percent_of="client", min_directory_size=5
    )
    statuses = [idp.api.delete(f"/Users/{u.pk}").status_code for u in own[:4]]
    assert statuses == [204, 204, 202, 202]
    assert "of 10 users the client created" in Quarantine.objects.get(client=idp).reason


def test_a_clients_own_thresholds_replace_the_defaults(idp, other_scim, established, breaker):
    users = established(300)
    CircuitBreaker.objects.create(client=idp, max_operations=3)
    mine = [idp.api.delete(f"/Users/{u.pk}").status_code for u in users[:5]]
    theirs = [other_scim.delete(f"/Users/{u.pk}").status_code for u in users[5:15]]
    assert mine == [204] * 3 + [202] * 2
    assert theirs == [204] * 10  # the defaults: 50


def test_standing_says_how_close_a_client_is(idp, established, breaker):
    users = established(300)
    for user in users[:25]:
        idp.api.delete(f"/Users/{user.pk}")
    standing = breaker_standing(idp, breaker_for(idp))
    assert (standing.counted, standing.base) == (25, 275)
    # 25 of 50 is half the count; 25 of 275 is 9.09 % of a 20 % limit.
    assert standing.closeness == 50


# --- "allow these deletions": the decision by kind ----------------------------------------


@pytest.fixture
def mixed_quarantine(idp, established, breaker):
    """A quarantine holding 2 deletions, 3 deactivations and 1 member removal."""
    breaker.max_operations = 1
    breaker.save()
    users = established(20)
    group = Group.objects.create(
        display_name="team", created=users[0].created, last_modified=users[0].created
    )
    Membership.objects.create(group=group, user=users[19])
    assert idp.api.delete(f"/Users/{users[0].pk}").status_code == 204  # 1 of 1
    for user in users[1:3]:
        assert idp.api.delete(f"/Users/{user.pk}").status_code == 202
    for user in users[3:6]:
        assert idp.api.patch(f"/Users/{user.pk}", DEACTIVATE).status_code == 202
    remove = {"op": "remove", "path": f'members[value eq "{users[19].pk}"]'}
    assert idp.api.patch_ops(f"/Groups/{group.pk}", remove).status_code == 202
    return Quarantine.objects.get(client=idp), users, group


def test_releasing_one_kind_applies_it_and_discards_the_rest(mixed_quarantine, operators, decide):
    quarantine, users, group = mixed_quarantine

    decide(
        services.quarantine_release,
        quarantine_id=quarantine.pk,
        operator=operators["alice"],
        kinds=[HeldKind.DELETION],
    )

    assert not User.objects.filter(pk__in=[users[1].pk, users[2].pk]).exists()
    assert User.objects.filter(pk__in=[u.pk for u in users[3:6]], active=True).count() == 3
    assert Membership.objects.filter(group=group, user=users[19]).exists()
    statuses = dict(
        quarantine.operations.values_list("action", "status").distinct().order_by("action")
    )
    assert statuses == {"delete": "applied", "patch": "discarded"}


def test_releasing_two_kinds(mixed_quarantine, operators, decide):
    quarantine, users, group = mixed_quarantine

    decide(
        services.quarantine_release,
        quarantine_id=quarantine.pk,
        operator=operators["alice"],
        kinds=[HeldKind.DEACTIVATION, HeldKind.MEMBER_REMOVAL],
    )

    assert User.objects.filter(pk__in=[u.pk for u in users[3:6]], active=False).count() == 3
    assert not Membership.objects.filter(group=group, user=users[19]).exists()
    assert User.objects.filter(pk__in=[users[1].pk, users[2].pk]).count() == 2


def test_an_unknown_kind_is_refused(mixed_quarantine, operators):
    from django.core.exceptions import ValidationError

    quarantine, *_ = mixed_quarantine
    with pytest.raises(ValidationError):
        services.quarantine_release(
            quarantine_id=quarantine.pk, operator=operators["alice"], kinds=["everything"]
        )
    quarantine.refresh_from_db()
    assert quarantine.status == Quarantine.Status.ACTIVE


def test_nobody_releases_an_operation_they_requested(mixed_quarantine, operators):
    quarantine, *_ = mixed_quarantine
    quarantine.operations.update(operator=operators["alice"])
    with pytest.raises(PermissionDenied):
        services.quarantine_release(quarantine_id=quarantine.pk, operator=operators["alice"])
    assert quarantine.operations.filter(status=PendingOperation.Status.PENDING).count() == 6


# --- exact under concurrency (PostgreSQL) ----------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deletions_of_established_users_apply_exactly_fifty(on_postgres, established):
    """8 connections delete 60 established users of one client: the defaults apply 50."""
    import threading

    from django.db import connections

    client = ScimClientFactory(name="racing-idp")
    users = established(300)[:60]
    ids = [str(u.pk) for u in users]
    statuses: list[int] = []
    lock = threading.Lock()

    def worker(chunk):
        api = ScimApi(client.raw_token)
        try:
            for user_id in chunk:
                status = api.delete(f"/Users/{user_id}").status_code
                with lock:
                    statuses.append(status)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(ids[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [202] * 10 + [204] * 50
    assert User.objects.filter(pk__in=ids).count() == 10
    quarantine = Quarantine.objects.get(client=client, status=Quarantine.Status.ACTIVE)
    assert quarantine.reason.startswith("50 destructive operations applied within 10 minutes")
    assert quarantine.operations.filter(status="pending").count() == 10


def test_releasing_an_operation_held_for_two_approvers_is_one_approval(burst, operators, decide):
    """An operation both a two-approver rule and the quarantine hold is not applied on one
    operator's release: the release records the approval; a second approver applies it."""
    users, _ = burst
    quarantine = Quarantine.objects.get(status=Quarantine.Status.ACTIVE)
    ops = list(quarantine.operations.order_by("created_at", "id"))
    PendingOperation.objects.filter(pk=ops[0].pk).update(two_approvers=True)

    decide(services.quarantine_release, quarantine_id=quarantine.pk, operator=operators["alice"])

    first = PendingOperation.objects.get(pk=ops[0].pk)
    assert first.status == PendingOperation.Status.PENDING
    assert list(first.approvals.values_list("operator__username", flat=True)) == ["alice"]
    assert User.objects.get(pk=users[50].pk).active
    assert not User.objects.filter(pk__in=[u.pk for u in users[51:]], active=True).exists()
    with pytest.raises(Exception, match="already approved"):
        decide(services.pending_approve, pending_id=first.pk, operator=operators["alice"])

    decide(services.pending_approve, pending_id=first.pk, operator=operators["bob"])
    first.refresh_from_db()
    assert first.status == PendingOperation.Status.APPLIED
    assert not User.objects.get(pk=users[50].pk).active
