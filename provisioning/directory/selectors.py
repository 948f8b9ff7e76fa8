"""Functions that read the directory, shaped so that pages cost a constant number of queries."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Q, QuerySet

from .models import Group, Membership, User


def page(queryset: QuerySet, *, order: list, offset: int, limit: int) -> tuple[int, list]:
    """One COUNT and one LIMIT/OFFSET query; ``order`` always ends in the primary key."""
    total = queryset.count()
    if limit <= 0 or offset >= total:
        return total, []
    return total, list(queryset.order_by(*order, "pk")[offset : offset + limit])


def users(q: Q | None = None) -> QuerySet[User]:
    return User.objects.filter(q) if q is not None else User.objects.all()


def groups(q: Q | None = None) -> QuerySet[Group]:
    return Group.objects.filter(q) if q is not None else Group.objects.all()


def user_get(user_id: uuid.UUID) -> User | None:
    return User.objects.filter(pk=user_id).first()


def group_get(group_id: uuid.UUID) -> Group | None:
    return Group.objects.filter(pk=group_id).first()


# Nesting depth bounds the walk up to indirect groups, whatever the data holds.
MAX_NESTING = 10


def groups_of_users(user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[tuple]]:
    """Direct and indirect groups of each user: {user_id: [(group_id, displayName, type)]}.

    One query for direct memberships, then one per nesting level for all users at once.
    """
    user_ids = list(user_ids)
    result: dict[uuid.UUID, list[tuple]] = defaultdict(list)
    if not user_ids:
        return result
    direct = Membership.objects.filter(user_id__in=user_ids).values_list(
        "user_id", "group_id", "group__display_name"
    )
    reach: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    names: dict[uuid.UUID, str] = {}
    for user_id, group_id, name in direct:
        result[user_id].append((group_id, name, "direct"))
        reach[user_id].add(group_id)
        names[group_id] = name
    frontier = {g for groups_ in reach.values() for g in groups_}
    parents_of: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    seen = set(frontier)
    for _ in range(MAX_NESTING):
        if not frontier:
            break
        rows = Membership.objects.filter(member_group_id__in=frontier).values_list(
            "member_group_id", "group_id", "group__display_name"
        )
        frontier = set()
        for child, parent, name in rows:
            parents_of[child].add(parent)
            names[parent] = name
            if parent not in seen:
                seen.add(parent)
                frontier.add(parent)
    for user_id, direct_groups in reach.items():
        indirect: set[uuid.UUID] = set()
        stack = list(direct_groups)
        while stack:
            for parent in parents_of.get(stack.pop(), ()):
                if parent not in direct_groups and parent not in indirect:
                    indirect.add(parent)
                    stack.append(parent)
        result[user_id].extend((g, names[g], "indirect") for g in sorted(indirect, key=str))
    return result


def members_of_groups(group_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[tuple]]:
    """{group_id: [(member_id, is_group, display)]} in one query, in insertion order."""
    result: dict[uuid.UUID, list[tuple]] = defaultdict(list)
    rows = (
        Membership.objects.filter(group_id__in=list(group_ids))
        .order_by("group_id", "id")
        .values_list("group_id", "user_id", "member_group_id", "display")
        .iterator(chunk_size=5000)
    )
    for group_id, user_id, member_group_id, display in rows:
        result[group_id].append((user_id or member_group_id, member_group_id is not None, display))
    return result
