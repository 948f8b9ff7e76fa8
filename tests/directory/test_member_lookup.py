"""The member lookups of a group write (``changes._lookup``): one statement that answers
what the ORM's querysets answered, on both databases."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from provisioning.directory.changes import MemberPlan, MemberRef, existing_members
from provisioning.directory.models import Group, Membership, User
from tests.factories import GroupFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    alice, bob, retired = UserFactory(), UserFactory(), UserFactory()
    User.with_retired.filter(pk=retired.pk).update(deletion_due=timezone.now() + timedelta(days=7))
    nested = GroupFactory()
    team = GroupFactory(members=[alice, retired, nested])
    Membership.objects.filter(group=team, user=alice).update(display="Alice")
    return {"alice": alice, "bob": bob, "retired": retired, "nested": nested, "team": team}


def _orm_existing(ids):
    """What the ORM answers: users in the directory, and groups, among ``ids``."""
    users = set(User.objects.filter(pk__in=ids).values_list("pk", flat=True))
    groups = set(Group.objects.filter(pk__in=ids).values_list("pk", flat=True))
    return users, groups - users


def _orm_memberships(group, ids) -> dict:
    rows = (
        Membership.objects.filter(group=group)
        .filter(Membership.LIVE)
        .filter(user_id__in=ids)
        .union(
            Membership.objects.filter(group=group)
            .filter(Membership.LIVE)
            .filter(member_group_id__in=ids)
        )
    )
    return {
        (m.user_id or m.member_group_id): MemberRef(
            m.user_id or m.member_group_id, m.member_group_id is not None, m.display
        )
        for m in rows
    }


def test_existing_members_answers_as_the_orm(world):
    ids = {world["alice"].pk, world["bob"].pk, world["retired"].pk, world["nested"].pk, uuid.uuid4()}
    # A user awaiting its deletion is gone for SCIM; an unknown id names nothing.
    assert existing_members(ids) == _orm_existing(ids)
    assert existing_members(ids) == ({world["alice"].pk, world["bob"].pk}, {world["nested"].pk})
    for one in ids:
        assert existing_members({one}) == _orm_existing({one})
    assert existing_members(set()) == (set(), set())


def test_preload_reads_the_live_memberships_of_the_named_ids(world):
    team = world["team"]
    named = [world["alice"].pk, world["bob"].pk, world["retired"].pk, world["nested"].pk]
    plan = MemberPlan(team)
    with CaptureQueriesContext(connection) as ctx:
        users, groups = plan.preload(named, check={world["bob"].pk, world["nested"].pk})
    assert len(ctx.captured_queries) == 1
    assert (users, groups) == ({world["bob"].pk}, {world["nested"].pk})
    stored = {k: v for k, v in plan._stored.items() if v is not None}
    assert stored == _orm_memberships(team, named)
    assert stored == {
        world["alice"].pk: MemberRef(world["alice"].pk, False, "Alice"),
        world["nested"].pk: MemberRef(world["nested"].pk, True, None),
    }
    # Looked up and not a member (bob), or not a member for SCIM (the retired user).
    assert plan._stored[world["bob"].pk] is None
    assert plan._stored[world["retired"].pk] is None
    # Asked again: nothing more is read.
    with CaptureQueriesContext(connection) as ctx:
        plan.add([MemberRef(world["bob"].pk, False, None)])
    assert ctx.captured_queries == []
    assert set(plan.added) == {world["bob"].pk}


def test_another_groups_memberships_are_not_read(world):
    other = GroupFactory(members=[world["bob"]])
    plan = MemberPlan(world["team"])
    plan.preload([world["bob"].pk])
    assert plan._stored == {world["bob"].pk: None}
    assert MemberPlan(other).preload([world["bob"].pk]) == (set(), set())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="array parameters: PostgreSQL")
def test_every_count_of_ids_is_one_statement_text(world):
    texts = []

    def record(execute, sql, params, many, context):
        texts.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        for count in (2, 3, 7, 40):
            ids = [uuid.uuid4() for _ in range(count)]
            MemberPlan(world["team"]).preload(ids, check=set(ids))
    assert len(texts) == 4
    assert len(set(texts)) == 1
    assert texts[0].count("= ANY(%s)") == 4
