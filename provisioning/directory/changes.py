"""A write planned before it is applied.

Every service that changes a user or group first builds a ``Change``: the
resource's document before and after, and for groups the exact members added
and removed. Authorization, policy and audit all read the same ``Change``, so
what is checked is exactly what is applied and what is recorded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from django.db import connection
from django.db.models import Q

from provisioning.access.models import ScimClient
from provisioning.scim.errors import InvalidValue
from provisioning.scim.filters import Compare, Or

from .models import Group, Membership, User
from .selectors import any_of, group_ancestors

ChangeAction = Literal["create", "replace", "patch", "delete"]


@dataclass(frozen=True)
class MemberRef:
    id: uuid.UUID
    is_group: bool
    display: str | None = None


@dataclass
class Change:
    action: ChangeAction
    resource: User | Group
    client: ScimClient | None
    before: dict | None = None  # writable document before; None for a create
    after: dict | None = None  # writable document after; None for a delete
    members_added: list[MemberRef] = field(default_factory=list)
    members_removed: list[MemberRef] = field(default_factory=list)
    # Members sent again with a new ``display``: not a membership change.
    members_redisplayed: list[MemberRef] = field(default_factory=list)
    # What was asked, in a form that can be stored and applied again later (a held
    # operation): {"operations": [...]} for PATCH, {"document": {...}} for POST/PUT.
    request: dict = field(default_factory=dict)
    # The console operator who asked, for console actions (``client`` is then None).
    operator: object | None = None
    # Deactivate before delete: a user DELETE applied as a deactivation (``action`` is
    # "patch") whose hard delete is due at this time; policy sees the delete that was asked.
    schedule_deletion: datetime | None = None
    # A restore: the user's scheduled deletion is cancelled and it rejoins the directory.
    cancel_deletion: bool = False
    _enclosing: list | None = field(default=None, repr=False, compare=False)
    _not_from: dict = field(default_factory=dict, repr=False, compare=False)
    # The resource's id, kept here: Django clears the primary key of a deleted instance,
    # and recorders run after the delete.
    resource_id: uuid.UUID | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        self.resource_id = self.resource.pk

    @property
    def requested_action(self) -> str:
        """What was asked: "delete" for a deletion deferred as a deactivation."""
        return "delete" if self.schedule_deletion is not None else self.action

    @property
    def resource_type(self) -> str:
        return "User" if isinstance(self.resource, User) else "Group"

    @property
    def changed_attributes(self) -> set[str]:
        """Top-level attribute names whose value differs (extension attributes as ``urn:attr``)."""
        before, after = self.before or {}, self.after or {}
        names = set()
        for key in before.keys() | after.keys():
            if key.startswith("urn:") and isinstance(before.get(key) or after.get(key), dict):
                inner_before, inner_after = before.get(key) or {}, after.get(key) or {}
                names |= {
                    f"{key}:{name}"
                    for name in inner_before.keys() | inner_after.keys()
                    if inner_before.get(name) != inner_after.get(name)
                }
            elif before.get(key) != after.get(key):
                names.add(key)
        if self.members_added or self.members_removed:
            names.add("members")
        return names

    @property
    def renamed(self) -> bool:
        """A group whose displayName changes (case included)."""
        if self.before is None or self.after is None:
            return False
        return self.before.get("displayName") != self.after.get("displayName")

    @property
    def display_name(self) -> str:
        """The group's name as this change leaves it (the name it is created with, too)."""
        document = self.after if self.after is not None else self.before or {}
        return str(document.get("displayName") or getattr(self.resource, "display_name", ""))

    def enclosing_groups(self) -> list[Group]:
        """Groups that contain this group at any depth (one recursive query, then cached):
        adding a member here adds it to each of them."""
        if self.resource_type != "Group" or self.resource._state.adding:
            return []
        if self._enclosing is None:
            self._enclosing = group_ancestors([self.resource.pk])
        return self._enclosing

    def has_members(self) -> bool:
        """Whether the group has members once this change is applied."""
        if self.members_added:
            return True
        if self.resource._state.adding:
            return False
        removed = [ref.id for ref in self.members_removed]
        return Membership.objects.filter(group=self.resource).exclude(member_q(removed)).exists()

    def members_not_from(self, client: ScimClient) -> list[uuid.UUID]:
        """Ids among the members this change adds or removes that ``client`` did not create
        (read once per client: the cycle check and the access gate both ask)."""
        if client.pk not in self._not_from:
            self._not_from[client.pk] = self._members_not_from(client)
        return self._not_from[client.pk]

    def _members_not_from(self, client: ScimClient) -> list[uuid.UUID]:
        members = [*self.members_added, *self.members_removed]
        user_ids = {m.id for m in members if not m.is_group}
        group_ids = {m.id for m in members if m.is_group}
        owned = set()
        if user_ids:
            owned |= set(
                User.objects.filter(pk__in=user_ids, source=client).values_list("pk", flat=True)
            )
        if group_ids:
            owned |= set(
                Group.objects.filter(pk__in=group_ids, source=client).values_list("pk", flat=True)
            )
        return sorted((user_ids | group_ids) - owned, key=str)

    @property
    def is_noop(self) -> bool:
        return (
            self.action in ("replace", "patch")
            and self.before == self.after
            and not self.members_added
            and not self.members_removed
            and not self.members_redisplayed
            and self.schedule_deletion is None
            and not self.cancel_deletion
        )


def parse_id(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def member_q(ids) -> Q:
    ids = list(ids)
    return Q(user_id__in=ids) | Q(member_group_id__in=ids)


class MemberPlan:
    """The net membership delta of a sequence of member operations on one group.

    Reads only the memberships the operations name (or match, for a filter), so
    changing one member of a 100,000-member group reads one row; ``replace``
    necessarily reads every member id.
    """

    def __init__(self, group: Group):
        self.group = group
        self.added: dict[uuid.UUID, MemberRef] = {}
        self.removed: dict[uuid.UUID, MemberRef] = {}
        self.redisplayed: dict[uuid.UUID, MemberRef] = {}
        self._stored: dict[uuid.UUID, MemberRef | None] = {}  # None: not a member in the DB
        self._count: int | None = None

    def preload(self, ids, *, check=frozenset()) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        """Read the memberships of all these ids at once, so the operations that name them
        one by one read nothing more; and, in the same query, which of ``check`` name
        existing users and which existing groups (as ``existing_members`` answers)."""
        missing = self._missing(ids)
        return _lookup(
            exist=set(check) - {None}, group=self.group, named=missing, stored=self._stored
        )

    def member_count(self) -> int:
        """The members stored now (counted once)."""
        if self._count is None:
            self._count = (
                0 if self.group._state.adding else self._rows().count()
            )
        return self._count

    def _rows(self):
        """The group's stored memberships that exist for SCIM: those of a user awaiting
        its scheduled deletion are absent (neither removed again nor replaced away)."""
        return Membership.objects.filter(group=self.group).filter(Membership.LIVE)

    def _missing(self, ids) -> list[uuid.UUID]:
        """The ids among ``ids`` not looked up yet, from now on known as non-members
        unless a lookup finds their row."""
        missing = [i for i in dict.fromkeys(ids) if i is not None and i not in self._stored]
        self._stored.update(dict.fromkeys(missing))
        return [] if self.group._state.adding else missing

    def _load(self, ids) -> None:
        missing = self._missing(ids)
        if missing:
            _lookup(group=self.group, named=missing, stored=self._stored)

    def add(self, refs: list[MemberRef]) -> None:
        self._load([ref.id for ref in refs])
        for ref in refs:
            stored = self._stored[ref.id]
            if stored is None:  # not a member in the database: (re)added by this request
                self.added[ref.id] = ref
                continue
            self.removed.pop(ref.id, None)  # a stored member removed earlier and added back
            if ref.display is not None and ref.display != stored.display:
                self.redisplayed[ref.id] = ref

    def remove(self, ids) -> None:
        ids = [i for i in ids if i is not None]
        self._load(ids)
        for member_id in ids:
            if member_id in self.added:
                del self.added[member_id]
            elif self._stored[member_id] is not None:
                self.removed[member_id] = self._stored[member_id]
                self.redisplayed.pop(member_id, None)

    def remove_matching(self, condition: Q, pending_match) -> None:
        """Remove stored members matching ``condition`` and pending ones matching ``pending_match``."""
        ids = [ref.id for ref in self.added.values() if pending_match(ref)]
        if not self.group._state.adding:
            rows = self._rows().filter(condition)
            for user_id, member_group_id, display in rows.values_list(
                "user_id", "member_group_id", "display"
            ).iterator(chunk_size=5000):
                member_id = user_id or member_group_id
                self._stored[member_id] = MemberRef(member_id, member_group_id is not None, display)
                ids.append(member_id)
        self.remove(ids)

    def replace(self, refs: list[MemberRef]) -> None:
        current = [ref.id for ref in self.added.values()]
        if not self.group._state.adding:
            current += [
                u or g
                for u, g in self._rows()
                .exclude(member_q(self.removed))
                .values_list("user_id", "member_group_id")
                .iterator(chunk_size=5000)
            ]
        wanted = {ref.id for ref in refs}
        self.remove([i for i in current if i not in wanted])
        self.add(refs)


def resolve_members(
    group: Group, members, known: tuple[set[uuid.UUID], set[uuid.UUID]] | None = None
) -> list[MemberRef]:
    """Member entries as references; every id must name an existing user or group.

    Two queries, unless ``known`` already holds the (user ids, group ids) that exist
    among them (``existing_members``), as for a PATCH whose operations name members
    many times.
    """
    wanted: dict[uuid.UUID, dict] = {}
    for entry in members:
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), str):
            raise InvalidValue("Each member needs a string 'value'")
        member_id = parse_id(entry["value"])
        if member_id is None:
            raise InvalidValue(f"Member '{entry['value']}' does not exist")
        if member_id == group.pk:
            raise InvalidValue("A group cannot be a member of itself")
        wanted[member_id] = entry
    if not wanted:
        return []
    user_ids, group_ids = known if known is not None else existing_members(set(wanted))
    missing = set(wanted) - user_ids - group_ids
    if missing:
        listed = ", ".join(sorted(str(m) for m in missing)[:5])
        raise InvalidValue(f"Members do not exist: {listed}")
    return [
        MemberRef(member_id, member_id in group_ids, _display(entry))
        for member_id, entry in wanted.items()
    ]


def member_ids(node) -> set[uuid.UUID] | None:
    """The member ids a ``members`` filter of ``value eq`` comparisons (joined by ``or``)
    names, or None for any other filter. Ids are case-exact: only the canonical form
    this server issues names a member (as ``query.membership_q`` matches)."""
    if isinstance(node, Or):
        left, right = member_ids(node.left), member_ids(node.right)
        return None if left is None or right is None else left | right
    if not (
        isinstance(node, Compare)
        and node.path == "value"
        and node.op == "eq"
        and isinstance(node.value, str)
    ):
        return None
    member_id = parse_id(node.value)
    return {member_id} if member_id is not None and str(member_id) == node.value else set()


def existing_members(ids: set[uuid.UUID]) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """Which of ``ids`` name existing users and which existing groups (one query)."""
    return _lookup(exist=ids)


def _lookup(
    *,
    exist=frozenset(),
    group: Group | None = None,
    named=(),
    stored: dict | None = None,
) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """One statement (UNION ALL of what is asked): which of ``exist`` name users in the
    directory and which groups; and ``group``'s memberships of the ``named`` ids that
    exist for SCIM (``Membership.LIVE``), which go into ``stored`` (member id ->
    ``MemberRef``). Returns (user ids, group ids) among ``exist``.

    Written from the models' tables and columns rather than built as querysets: a PATCH
    that adds or removes one member ran three querysets through the ORM's compiler, a
    millisecond of Python for a statement the database answers in a tenth of that. Ids
    go in as one array parameter each on PostgreSQL (``selectors.any_of``), so every
    count of ids is one statement text, prepared once.
    """
    users: set[uuid.UUID] = set()
    groups: set[uuid.UUID] = set()
    exist = [i for i in exist if i is not None]
    named = [i for i in named if i is not None] if group is not None else []
    if not exist and not named:
        return users, groups
    quote = connection.ops.quote_name
    user_table, group_table = quote(User._meta.db_table), quote(Group._meta.db_table)
    user_pk, group_pk = quote(User._meta.pk.column), quote(Group._meta.pk.column)
    # A user awaiting its scheduled deletion is gone for SCIM (``User.objects``).
    deletion_due = quote(User._meta.get_field("deletion_due").column)
    id_field = User._meta.pk

    def prepare(ids: list) -> list:
        # Every value is a parameter, prepared as the ORM prepares a UUID for this database.
        return [id_field.get_db_prep_value(i, connection, prepared=False) for i in ids]

    parts: list[str] = []
    params: list = []
    if exist:
        values = prepare(exist)
        among_users, user_values = any_of(f"u.{user_pk}", values)
        among_groups, group_values = any_of(f"g.{group_pk}", values)
        # Table and column names come from the models; every value is a parameter.
        parts += [
            f"SELECT u.{user_pk}, NULL, NULL, 0 FROM {user_table} u "  # noqa: S608
            f"WHERE u.{deletion_due} IS NULL AND {among_users}",
            f"SELECT NULL, g.{group_pk}, NULL, 0 FROM {group_table} g WHERE {among_groups}",  # noqa: S608
        ]
        params += user_values + group_values
    if named:
        meta = Membership._meta
        group_column, user_column, member_group_column, display_column = (
            quote(meta.get_field(name).column) for name in ("group", "user", "member_group", "display")
        )
        values = prepare(named)
        by_user, user_values = any_of(f"m.{user_column}", values)
        by_group, group_values = any_of(f"m.{member_group_column}", values)
        # ``Membership.LIVE``: a group member, or a user not awaiting its deletion.
        parts.append(
            f"SELECT m.{user_column}, m.{member_group_column}, m.{display_column}, 1 "  # noqa: S608
            f"FROM {quote(meta.db_table)} m LEFT OUTER JOIN {user_table} mu "
            f"ON mu.{user_pk} = m.{user_column} "
            f"WHERE m.{group_column} = %s "
            f"AND (m.{user_column} IS NULL OR mu.{deletion_due} IS NULL) "
            f"AND ({by_user} OR {by_group})"
        )
        params += prepare([group.pk]) + user_values + group_values
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        rows = cursor.fetchall()
    as_id = id_field.to_python  # a UUID from what the driver returns (text on SQLite)
    for user_id, group_id, display, membership in rows:
        user_id = None if user_id is None else as_id(user_id)
        group_id = None if group_id is None else as_id(group_id)
        if membership:
            member_id = user_id or group_id
            stored[member_id] = MemberRef(member_id, group_id is not None, display)
        elif user_id is not None:
            users.add(user_id)
        else:
            groups.add(group_id)
    # An id that names a user names no group (as ``resolve_members`` reads it).
    return users, groups - users


def _display(entry: dict) -> str | None:
    display = entry.get("display")
    return display[:255] if isinstance(display, str) and display else None
