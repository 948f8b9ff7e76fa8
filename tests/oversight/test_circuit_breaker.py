"""The mass-change circuit breaker through the SCIM endpoints."""

import pytest

from provisioning.directory.models import User
from provisioning.oversight import services
from provisioning.oversight.models import PendingOperation, Quarantine

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
DEACTIVATE = {
    "schemas": [PATCH],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}
pytestmark = pytest.mark.django_db


@pytest.fixture
def burst(scim, breaker):
    users = [scim.create_user(f"burst{i:02d}@x.example", active=True) for i in range(60)]
    statuses = [scim.patch(f"/Users/{u['id']}", DEACTIVATE).status_code for u in users]
    return users, statuses


def test_a_burst_of_60_deactivations_applies_50_and_holds_10(burst, other_scim):
    users, statuses = burst
    assert statuses == [200] * 50 + [202] * 10
    active = set(User.objects.filter(active=True).values_list("user_name", flat=True))
    assert active == {u["userName"] for u in users[50:]}
    quarantine = Quarantine.objects.get(status=Quarantine.Status.ACTIVE)
    assert quarantine.operations.count() == 10
    assert "50" in quarantine.reason

    # Another client is unaffected, and non-destructive operations keep flowing.
    other = other_scim.create_user("other@x.example", active=True)
    assert other_scim.patch(f"/Users/{other['id']}", DEACTIVATE).status_code == 200


def test_non_destructive_operations_flow_during_quarantine(burst, scim):
    users, _ = burst
    rename = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "x"}]}
    assert scim.patch(f"/Users/{users[55]['id']}", rename).status_code == 200
    assert scim.post("/Users", {"userName": "fresh@x.example"}).status_code == 201


def test_releasing_applies_the_held_operations_in_order(burst, operators, decide):
    users, _ = burst
    quarantine = Quarantine.objects.get(status=Quarantine.Status.ACTIVE)

    decide(services.quarantine_release, quarantine_id=quarantine.pk, operator=operators["alice"])

    assert not User.objects.filter(active=True).exists()
    applied = PendingOperation.objects.filter(status=PendingOperation.Status.APPLIED).order_by(
        "applied_at", "created_at"
    )
    assert [str(p.resource_id) for p in applied] == [u["id"] for u in users[50:]]
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

    assert User.objects.filter(active=True).count() == 7
    assert quarantine.operations.filter(status=PendingOperation.Status.DISCARDED).count() == 7


def test_discarding_leaves_the_users_active(burst, operators, scim, decide):
    users, _ = burst
    quarantine = Quarantine.objects.get(status=Quarantine.Status.ACTIVE)

    decide(services.quarantine_discard, quarantine_id=quarantine.pk, operator=operators["alice"])

    assert set(User.objects.filter(active=True).values_list("user_name", flat=True)) == {
        u["userName"] for u in users[50:]
    }
    # The window starts afresh after an administrator decided.
    assert scim.patch(f"/Users/{users[55]['id']}", DEACTIVATE).status_code == 200


def test_small_directories_are_not_tripped_by_the_percentage(scim, breaker):
    breaker.max_operations = 1000
    breaker.save()
    users = [scim.create_user(f"small{i}@x.example", active=True) for i in range(5)]
    # 5 of 5 users is 100%, but the directory is under the 1,000-user minimum.
    assert [scim.patch(f"/Users/{u['id']}", DEACTIVATE).status_code for u in users] == [200] * 5
