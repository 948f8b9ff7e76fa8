"""The trigger-kept user and group totals behind unfiltered SCIM lists."""


import pytest
from django.db import connection, transaction
from django.utils import timezone

from provisioning.directory import selectors
from provisioning.directory.models import Group, ResourceCount, User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def totals() -> tuple[int | None, int | None]:
    return selectors.resource_total(User), selectors.resource_total(Group)


def test_counters_follow_every_insert_and_delete():
    assert totals() == (User.objects.count(), Group.objects.count())
    users = UserFactory.create_bulk(7)
    now = timezone.now()
    Group.objects.create(display_name="counted", created=now, last_modified=now)
    assert totals() == (User.objects.count(), Group.objects.count())
    User.objects.filter(pk__in=[u.pk for u in users[:3]]).delete()
    with connection.cursor() as cursor:  # raw SQL is counted too
        cursor.execute("DELETE FROM directory_user WHERE id = %s", [users[3].pk.hex if connection.vendor == "sqlite" else users[3].pk])
    Group.objects.all().delete()
    assert totals() == (User.objects.count(), 0)
    assert User.objects.count() == 3


def test_a_rolled_back_write_leaves_the_counter_as_it_was():
    before = totals()
    with pytest.raises(RuntimeError), transaction.atomic():
        UserFactory.create_bulk(5)
        assert selectors.resource_total(User) == before[0] + 5
        raise RuntimeError("abort")
    assert totals() == before


def test_scim_totals_match_the_table_through_creates_and_deletes(scim):
    for i in range(4):
        scim.create_user(f"total-{i}")
    listed = scim.get("/Users", params={"count": 1}).json()
    assert listed["totalResults"] == User.objects.count() == 4 and listed["itemsPerPage"] == 1
    scim.delete(f"/Users/{listed['Resources'][0]['id']}")
    assert scim.get("/Users", params={"count": 1}).json()["totalResults"] == 3


def test_without_a_counter_row_the_total_is_counted(scim):
    UserFactory.create_bulk(5)
    ResourceCount.objects.all().delete()
    assert selectors.resource_total(User) is None
    assert scim.get("/Users", params={"count": 2}).json()["totalResults"] == 5


@pytest.mark.django_db(transaction=True)
def test_truncate_resets_the_counter_on_postgres(on_postgres):
    UserFactory.create_bulk(3)
    ResourceCount.objects.update_or_create(resource_type="User", defaults={"total": 3})
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE directory_user CASCADE")
    assert selectors.resource_total(User) == 0


def test_users_awaiting_deletion_are_subtracted_in_the_counters_own_query(scim):
    """Users whose SCIM deletion was deferred are rows, not members of the directory: the
    unfiltered total leaves them out, read with the counter in one statement."""
    from django.test.utils import CaptureQueriesContext

    users = UserFactory.create_bulk(5)
    User.with_retired.filter(pk__in=[u.pk for u in users[:2]]).update(deletion_due=timezone.now())
    assert selectors.resource_total(User) == 5
    with CaptureQueriesContext(connection) as queries:
        assert selectors.count(User.objects.all()) == 3
    assert len(queries) == 1
    assert scim.get("/Users", params={"count": 1}).json()["totalResults"] == 3
    User.with_retired.update(deletion_due=None)
    assert selectors.count(User.objects.all()) == 5
