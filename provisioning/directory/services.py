"""Functions that change the directory. Every write runs in one transaction.

The SCIM layer, the console and oversight (approvals, rollback, restore) all
call these, so every path that changes a user or group is validated and
versioned here and then passes the one write pipeline (``pipeline.commit``:
gates, apply, recorders). Each service plans a ``Change`` (documents before
and after, exact membership delta) first. Documents are SCIM-shaped: the
directory is a SCIM directory.

``WRITE_SERVICES`` is the one table of writes by resource type and action;
``perform`` runs an entry from a stored request (an approved pending operation).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import operator
from collections.abc import Callable
from contextlib import contextmanager

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from provisioning.access import authorization
from provisioning.access.models import ScimClient
from provisioning.scim import limits, resources
from provisioning.scim.errors import InvalidValue, NotFound, PreconditionFailed, Uniqueness
from provisioning.scim.filters import matches
from provisioning.scim.patch import PatchOperation, apply_patch
from provisioning.scim.schema import GROUP_SCHEMA, USER_SCHEMA, refresh_extensions

from . import pipeline, selectors
from .changes import (
    Change,
    MemberPlan,
    MemberRef,
    existing_members,
    member_ids,
    member_q,
    parse_id,
    resolve_members,
)
from .models import Group, Membership, ResourceCount, User, UserEmail
from .query import membership_q

_MEMBERS = GROUP_SCHEMA.core_attribute("members")


def _check_version(resource, if_match: str | None) -> None:
    """RFC 7644 §3.14: a stale ``If-Match`` must not overwrite a newer version."""
    if if_match is None:
        return
    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" in tags:
        return
    current = resource.etag
    if not any(tag in (current, current.removeprefix("W/")) for tag in tags):
        raise PreconditionFailed(f"Resource {resource.id} is at version {current}, not {if_match}")


def _lock(
    model, resource_id, client: ScimClient | None, operation: str, queryset=None
) -> User | Group:
    """Lock the resource ``client`` may ``operation``; refusals come before any lookup.

    Checking the operation first means a client without the permission learns
    nothing about the id; scoping the lookup makes a foreign resource of an
    ownership-limited client a 404, before its version can be compared. ``queryset``
    replaces the directory's own (users awaiting a scheduled deletion, for a restore).
    """
    authorization.require(client, model.__name__, operation)
    pk = parse_id(resource_id)
    if pk and queryset is None:
        # The first write of every PATCH, PUT and DELETE: compiled once (scoped_rows).
        rows = selectors.scoped_rows(
            client,
            model,
            ("lock", model.__name__),
            lambda value: Q(pk=value),
            pk,
            model._meta.pk,
            order=("pk",),
            for_update=True,
        )
        resource = rows[0] if rows else None
    else:
        queryset = authorization.scope_queryset(
            client, model.__name__, model.objects.all() if queryset is None else queryset
        )
        resource = queryset.select_for_update().filter(pk=pk).first() if pk else None
    if resource is None:
        raise NotFound(f"{model.__name__} {resource_id} not found")
    pipeline.loaded(resource)
    return resource


@contextmanager
def _uniqueness_as_409(detail: str):
    """A name taken at the database becomes a 409 without database text.

    The unique indexes (``userName`` among users in the directory, a group's
    ``displayName``, both compared case-insensitively) are the one check: no SELECT
    before the write, and no race between such a SELECT and the write. No savepoint of
    its own: every caller runs inside ``_write``'s atomic block, which the 409 leaves
    at once, rolling the whole write back (nothing runs in between).
    """
    try:
        yield
    except IntegrityError as error:
        if not _names_a_name_index(error):
            raise
        raise Uniqueness(detail) from None


# The unique indexes that are the userName and displayName checks.
_NAME_INDEXES = ("user_username_ci_unique", "group_display_name_ci_unique")


def _names_a_name_index(error: IntegrityError) -> bool:
    """Whether the violation is of a name's unique index (PostgreSQL names the constraint
    in its diagnostics, SQLite in its message); any other integrity error is not a 409."""
    cause = error.__cause__
    constraint = getattr(getattr(cause, "diag", None), "constraint_name", None)
    if constraint:
        return constraint in _NAME_INDEXES
    text = str(cause or error)
    return any(name in text for name in _NAME_INDEXES) or (
        "UNIQUE constraint failed" in text and ("user_name" in text or "display_name" in text)
    )


@dataclasses.dataclass(frozen=True)
class Via:
    """How a write reached the directory: who asked, through which door, with which approval."""

    operator: object | None = None
    origin: str | None = None
    approval: pipeline.Approval | None = None
    on_behalf_of: ScimClient | None = None
    # What the door knows about this one request that a plugged-in package reads from
    # ``Write.notes`` (the SCIM views: ``respond_async`` when the client sent
    # ``Prefer: respond-async``). Copied into each write, never shared between requests.
    notes: tuple[tuple[str, object], ...] = ()

    def write(self, change: Change) -> pipeline.Write:
        origin = self.origin
        if origin is None:
            if self.approval is not None:
                origin = pipeline.APPROVAL
            else:
                origin = pipeline.SCIM if change.client is not None else pipeline.CONSOLE
        return pipeline.Write(
            change,
            origin=origin,
            approval=self.approval,
            on_behalf_of=self.on_behalf_of,
            notes=dict(self.notes),
        )


def _commit(change: Change, via: Via) -> pipeline.Write:
    """Pass one planned change through the write pipeline (gates, apply, recorders).

    Nothing is written before the change is fully planned. A held change raises
    ``pipeline.Held``; ``_write`` turns that into a stored pending operation.
    """
    change.operator = via.operator
    write = via.write(change)
    if write.origin != pipeline.ROLLBACK:
        # A rollback puts back what was stored, whatever today's limits.
        limits.check_change(
            change.before,
            change.after,
            change.resource_type,
            members_changed=len(change.members_added) + len(change.members_removed),
        )
    if change.resource_type == "Group":
        _refuse_cycles(change)
    return pipeline.commit(write, _apply)


def _apply(change: Change) -> None:
    if change.action == "delete":
        change.resource.delete()
    elif change.resource_type == "User":
        _apply_user(change)
    else:
        _apply_group(change)


def _refuse_cycles(change: Change) -> None:
    """A group may not contain itself, directly or through nesting (400 ``invalidValue``).

    On PostgreSQL nesting changes take one transaction-scoped advisory lock, so two
    concurrent adds (A into B, B into A) cannot both pass the check.
    """
    added = {ref.id for ref in change.members_added if ref.is_group}
    if not added:
        return
    client = change.client
    if client is not None and client.role.own_resources_only and change.members_not_from(client):
        # The access gate refuses these like ids that do not exist; a cycle answer here
        # would name another client's group and confirm that it exists.
        return
    group = change.resource
    if group.pk in added:
        raise InvalidValue("A group cannot be a member of itself")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_NESTING_LOCK])
    if group._state.adding:
        return  # nothing contains a group that does not exist yet
    # The change's own list: the access gate and policy read it again (one query in all).
    ancestors = {g.pk: g for g in change.enclosing_groups()}
    looping = sorted(added & set(ancestors), key=str)
    if looping:
        name = ancestors[looping[0]].display_name
        raise InvalidValue(
            f"Adding group '{name}' to '{group.display_name}' would make a membership cycle: "
            f"'{group.display_name}' is already nested in '{name}'"
        )


# An arbitrary constant naming the advisory lock that serialises group nesting changes.
_NESTING_LOCK = 7_146_223_301


def _write(service):
    """One transaction per directory write; a write the pipeline holds becomes a pending operation.

    The held write's transaction rolls back (nothing was applied), then the pending
    operation is stored in a transaction of its own and ``OperationHeld`` is raised
    for the caller to answer (SCIM: 202 Accepted).
    """

    @functools.wraps(service)
    def wrapper(*args, **kwargs):
        # Registered extension schemas as they are now (Celery tasks, console actions and
        # approvals write without a SCIM request that would have refreshed them).
        refresh_extensions()
        try:
            # One budget of per-request limits (the Bulk request's, inside one).
            with limits.request_budget() as budget, transaction.atomic():
                budget.begin_write()
                return service(*args, **kwargs)
        except pipeline.Held as held:
            with transaction.atomic():
                pending = pipeline.store_hold(held)
            raise pipeline.OperationHeld(pending) from None

    return wrapper


def _via(operator, via: Via | None) -> Via:
    if via is None:
        return Via(operator=operator)
    return via if operator is None else dataclasses.replace(via, operator=operator)


# --- Users --------------------------------------------------------------------


def _normalised_user(document: dict) -> dict:
    """A cleaned document as it will be stored, so before/after compare like with like."""
    return resources.user_editable_document(User(**resources.user_fields(document)))


def _email_rows(attributes: dict | None) -> collections.Counter:
    """The ``UserEmail`` index rows a user's emails make: (value, type, primary), counted."""
    return collections.Counter(
        (email["value"][:320], str(email.get("type", ""))[:64], email.get("primary") is True)
        for email in (attributes or {}).get("emails", [])
        if isinstance(email.get("value"), str)
    )


def _sync_emails(user: User, before: dict | None) -> None:
    """Bring the user's email index rows from ``before``'s emails to its own.

    The stored rows are the rows of the stored document (every write of ``emails`` comes
    here), so the difference says what to write without reading them: nothing when the
    indexed values are unchanged, at most one DELETE and one INSERT otherwise.
    """
    stored = _email_rows(before)
    wanted = _email_rows(user.attributes)
    if stored == wanted:
        return
    # A DELETE by value removes every copy of it; those still wanted are inserted again.
    dropped = {row for row, count in stored.items() if wanted[row] < count}
    if dropped:
        UserEmail.objects.filter(user=user).filter(
            functools.reduce(
                operator.or_,
                (Q(value=value, type=kind, primary=primary) for value, kind, primary in dropped),
            )
        ).delete()
    kept = collections.Counter({row: n for row, n in stored.items() if row not in dropped})
    UserEmail.objects.bulk_create(
        UserEmail(user=user, value=value, type=kind, primary=primary)
        for value, kind, primary in (wanted - kept).elements()
    )


def _apply_user(change: Change) -> None:
    user: User = change.resource
    fields = resources.user_fields(change.after)
    for name, value in fields.items():
        setattr(user, name, value)
    if change.schedule_deletion is not None:
        user.deletion_due = change.schedule_deletion
    if change.cancel_deletion:
        # Back in the directory: the unique index refuses it if its userName was taken.
        user.deletion_due = None
    creating = change.action == "create"
    if not creating:
        user.version += 1
        user.last_modified = timezone.now()
    with _uniqueness_as_409(f"userName '{user.user_name}' is already taken"):
        user.save(force_insert=creating)
    if creating or change.before.get("emails") != change.after.get("emails"):
        _sync_emails(user, change.before)


@_write
def user_create(
    *, document: dict, client: ScimClient | None, operator=None, via: Via | None = None
) -> User:
    """Create a user from a SCIM document (``userName`` unique case-insensitively)."""
    # Refuse before validating, so a client without the permission learns nothing.
    authorization.require(client, "User", "create")
    limits.check_request_values(USER_SCHEMA, document)
    after = _normalised_user(resources.clean_document(USER_SCHEMA, document))
    now = timezone.now()
    user = User(created=now, last_modified=now, source=client)
    _commit(
        Change("create", user, client, after=after, request={"document": document}),
        _via(operator, via),
    )
    return user


@_write
def user_replace(
    *,
    user_id,
    document: dict,
    client: ScimClient | None,
    operator=None,
    if_match: str | None = None,
    via: Via | None = None,
) -> User:
    """PUT: replace every writable attribute with the document's values."""
    user = _lock(User, user_id, client, "replace")
    _check_version(user, if_match)
    before = resources.user_editable_document(user)
    limits.check_request_values(USER_SCHEMA, document, before)
    after = _normalised_user(resources.clean_document(USER_SCHEMA, document))
    _commit(
        Change("replace", user, client, before, after, request={"document": document}),
        _via(operator, via),
    )
    return user


@_write
def user_patch(
    *,
    user_id,
    operations: list[PatchOperation],
    client: ScimClient | None,
    operator=None,
    if_match: str | None = None,
    via: Via | None = None,
) -> User:
    """PATCH: all operations or none (the engine works on a copy of the document)."""
    user = _lock(User, user_id, client, "patch")
    _check_version(user, if_match)
    before = resources.user_editable_document(user)
    outcome = apply_patch(before, operations, USER_SCHEMA)
    after = _normalised_user(resources.clean_document(USER_SCHEMA, outcome.document))
    _commit(
        Change("patch", user, client, before, after, request=_patch_request(operations)),
        _via(operator, via),
    )
    return user


@_write
def user_delete(
    *,
    user_id,
    client: ScimClient | None,
    operator=None,
    if_match: str | None = None,
    via: Via | None = None,
) -> None:
    """DELETE a user. If policy defers the client's deletions (deactivate before delete),
    the user is deactivated instead and leaves the directory for SCIM; the hard delete
    follows when due (``user_delete_scheduled``) unless an operator restores it."""
    user = _lock(User, user_id, client, "delete")
    _check_version(user, if_match)
    before = resources.user_editable_document(user)
    due = pipeline.deletion_deferred_until(client)
    if due is None:
        change = Change("delete", user, client, before=before)
    else:
        after = _normalised_user({**before, "active": False})
        change = Change("patch", user, client, before, after, schedule_deletion=due)
    _commit(change, _via(operator, via))


@_write
def user_restore(*, user_id, operator=None, via: Via | None = None) -> User:
    """Cancel a scheduled deletion: the user rejoins the directory (SCIM finds it again)
    with its attributes and groups, still deactivated; reactivating it is a separate,
    deliberate step. Refused (409) if its userName has been taken meanwhile."""
    user = _lock(User, user_id, None, "replace", queryset=selectors.retired_users())
    before = resources.user_editable_document(user)
    change = Change(
        "patch", user, None, before, before, request={"restore": str(user.pk)}, cancel_deletion=True
    )
    _commit(change, _via(operator, via))
    return user


@_write
def user_delete_scheduled(*, user_id, now=None) -> bool:
    """Delete for good a user whose deferred deletion is due; False if it is not due any
    more (restored, already deleted). Idempotent: the row says what is left to do."""
    users = selectors.retired_users(due_by=now or timezone.now())
    user = users.select_for_update().filter(pk=user_id).first()
    if user is None:
        return False
    pipeline.loaded(user)
    before = resources.user_editable_document(user)
    _commit(Change("delete", user, None, before=before), Via(origin=pipeline.SCHEDULED))
    return True


# --- Groups -------------------------------------------------------------------


def _normalised_group(document: dict) -> dict:
    return resources.group_editable_document(Group(**resources.group_fields(document)))


def _apply_group(change: Change) -> None:
    group: Group = change.resource
    fields = resources.group_fields(change.after)
    for name, value in fields.items():
        setattr(group, name, value)
    creating = change.action == "create"
    if not creating:
        group.version += 1
        group.last_modified = timezone.now()
    with _uniqueness_as_409(f"A group named '{group.display_name}' already exists"):
        group.save(force_insert=creating)
    if change.members_removed:
        Membership.objects.filter(group=group).filter(
            member_q(ref.id for ref in change.members_removed)
        ).delete()
    Membership.objects.bulk_create(
        Membership(
            group=group,
            user_id=None if ref.is_group else ref.id,
            member_group_id=ref.id if ref.is_group else None,
            display=ref.display,
            added_by=change.client,
        )
        for ref in change.members_added
    )
    _redisplay(group, change.members_redisplayed)


def _redisplay(group: Group, refs: list[MemberRef], chunk: int = 500) -> None:
    """Store the ``display`` last sent for existing members: one UPDATE per 500 members."""
    for start in range(0, len(refs), chunk):
        part = refs[start : start + chunk]
        whens = [
            When(
                Q(member_group_id=ref.id) if ref.is_group else Q(user_id=ref.id),
                then=Value(ref.display),
            )
            for ref in part
        ]
        Membership.objects.filter(group=group).filter(member_q(r.id for r in part)).update(
            display=Case(*whens, default=F("display"))
        )


def _member_entry(ref: MemberRef) -> dict:
    entry = {"value": str(ref.id), "type": "Group" if ref.is_group else "User"}
    if ref.display:
        entry["display"] = ref.display
    return entry


def _group_change(action, group, client, before, after, plan: MemberPlan, request) -> Change:
    return Change(
        action,
        group,
        client,
        before,
        after,
        members_added=list(plan.added.values()),
        members_removed=list(plan.removed.values()),
        members_redisplayed=list(plan.redisplayed.values()),
        request=request,
    )


def _patch_request(operations: list[PatchOperation]) -> dict:
    return {"operations": [dataclasses.asdict(op) for op in operations]}


@_write
def group_create(
    *, document: dict, client: ScimClient | None, operator=None, via: Via | None = None
) -> Group:
    # Refuse before validating, so a client without the permission learns nothing.
    authorization.require(client, "Group", "create")
    limits.check_request_values(GROUP_SCHEMA, document)
    cleaned = resources.clean_document(GROUP_SCHEMA, document)
    now = timezone.now()
    group = Group(created=now, last_modified=now, source=client)
    plan = MemberPlan(group)
    plan.add(resolve_members(group, cleaned.get("members", [])))
    after = _normalised_group(cleaned)
    _commit(
        _group_change("create", group, client, None, after, plan, {"document": document}),
        _via(operator, via),
    )
    return group


@_write
def group_replace(
    *,
    group_id,
    document: dict,
    client: ScimClient | None,
    operator=None,
    if_match: str | None = None,
    via: Via | None = None,
) -> Group:
    """PUT: the document's attributes and exactly its members (reads every member id)."""
    group = _lock(Group, group_id, client, "replace")
    _check_version(group, if_match)
    before = resources.group_editable_document(group)
    limits.check_request_values(GROUP_SCHEMA, document, before)
    cleaned = resources.clean_document(GROUP_SCHEMA, document)
    plan = MemberPlan(group)
    plan.replace(resolve_members(group, cleaned.get("members", [])))
    after = _normalised_group(cleaned)
    _commit(
        _group_change("replace", group, client, before, after, plan, {"document": document}),
        _via(operator, via),
    )
    return group


@_write
def group_patch(
    *,
    group_id,
    operations: list[PatchOperation],
    client: ScimClient | None,
    operator=None,
    if_match: str | None = None,
    via: Via | None = None,
) -> Group:
    """PATCH a group. Member operations read only the members they name; never the rest."""
    group = _lock(Group, group_id, client, "patch")
    _check_version(group, if_match)
    before = resources.group_editable_document(group)
    outcome = apply_patch(before, operations, GROUP_SCHEMA)
    plan = MemberPlan(group)
    # Every member the operations name, and which of those they add exist: one query for
    # a thousand operations naming one member each, not several per operation.
    named = {parse_id(m.get("value")) for op in outcome.member_ops for m in op.members}
    filtered = {op.filter: member_ids(op.filter) for op in outcome.member_ops if op.filter}
    known = plan.preload(
        named.union(*(ids for ids in filtered.values() if ids)),
        check={
            parse_id(m.get("value"))
            for op in outcome.member_ops
            if op.kind != "remove"
            for m in op.members
        },
    )
    budget = limits.budget()
    for op in outcome.member_ops:
        if op.kind == "add":
            plan.add(resolve_members(group, op.members, known))
        elif op.kind == "replace":
            plan.replace(resolve_members(group, op.members, known))
        elif op.filter is not None and filtered[op.filter] is not None:
            plan.remove(filtered[op.filter])  # members[value eq "<id>"]: a lookup
        elif op.filter is not None:
            # Any other filter is evaluated by the database over the group's memberships.
            budget.count_work(plan.member_count() * limits.MEMBER_ROW)
            node = op.filter
            plan.remove_matching(
                membership_q(node),
                lambda ref, node=node: matches(node, _member_entry(ref), _MEMBERS),
            )
        else:
            plan.remove(parse_id(m.get("value")) for m in op.members)
    after = _normalised_group(resources.clean_document(GROUP_SCHEMA, outcome.document))
    request = _patch_request(operations)
    _commit(
        _group_change("patch", group, client, before, after, plan, request), _via(operator, via)
    )
    return group


@_write
def group_delete(
    *,
    group_id,
    client: ScimClient | None,
    operator=None,
    if_match: str | None = None,
    via: Via | None = None,
) -> None:
    group = _lock(Group, group_id, client, "delete")
    _check_version(group, if_match)
    _commit(
        Change("delete", group, client, before=resources.group_editable_document(group)),
        _via(operator, via),
    )


# --- Restoring and reverting (rollback) ---------------------------------------


def _existing_refs(entries: list[dict]) -> list[MemberRef]:
    """Member entries from a snapshot whose users or groups still exist (two queries)."""
    users, groups = existing_members({parse_id(e.get("value")) for e in entries} - {None})
    refs = []
    for entry in entries:
        member_id = parse_id(entry.get("value"))
        if member_id in users or member_id in groups:
            refs.append(MemberRef(member_id, member_id in groups, entry.get("display")))
    return refs


@_write
def resource_restore(
    *, resource_type: str, snapshot: dict, operator=None, via: Via | None = None
) -> tuple[User | Group, list]:
    """Recreate a deleted user or group from its audit snapshot: same id, attributes, memberships.

    Members and parent groups that no longer exist are skipped. Each parent group
    gets its own change through the pipeline, so the audit trail shows every
    membership restored and a parent whose new members policy holds (a privileged
    group) gets a pending operation instead while the rest is restored. Returns the
    resource and those pending operations.
    """
    model = User if resource_type == "User" else Group
    pk = parse_id(snapshot["id"])
    if model._base_manager.filter(pk=pk).exists():
        raise Uniqueness(f"{resource_type} {pk} exists again; it cannot be restored")
    created = parse_datetime(snapshot["created"])
    now = timezone.now()
    resource = model(
        pk=pk, created=created or now, last_modified=now, source_id=snapshot.get("source")
    )
    document = snapshot.get("document") or {}
    request = {"restore": str(pk)}
    via = _via(operator, via)
    if resource_type == "User":
        change = Change("create", resource, None, after=_normalised_user(document), request=request)
    else:
        plan = MemberPlan(resource)
        plan.add(_existing_refs(snapshot.get("members", [])))
        change = _group_change(
            "create", resource, None, None, _normalised_group(document), plan, request
        )
    _commit(change, via)
    held = []
    displays = {m.get("value"): m.get("memberDisplay") for m in snapshot.get("memberOf", [])}
    for parent in Group.objects.select_for_update().filter(
        pk__in=[parse_id(value) for value in displays]
    ):
        pipeline.loaded(parent)
        entry = {"value": str(pk), "type": resource_type}
        if displays.get(str(parent.pk)):
            entry["display"] = displays[str(parent.pk)]
        plan = MemberPlan(parent)
        plan.add([MemberRef(pk, resource_type == "Group", entry.get("display"))])
        before = resources.group_editable_document(parent)
        add = PatchOperation("add", "members", [entry])
        parent_change = _group_change(
            "patch", parent, None, before, before, plan, _patch_request([add])
        )
        pending = _commit_or_store_hold(parent_change, via)
        if pending is not None:
            held.append(pending)
    return resource, held


def _commit_or_store_hold(change: Change, via: Via):
    """Commit one change of a multi-change write; if it is held, store its pending
    operation (in the same transaction) and go on with the others. Returns the
    pending operation, or None when the change was applied."""
    try:
        with transaction.atomic():
            _commit(change, via)
    except pipeline.Held as held:
        return pipeline.store_hold(held)
    return None


@_write
def resource_revert(
    *,
    resource_type: str,
    resource_id,
    document: dict,
    members_add: list[dict] = (),
    members_remove: list[dict] = (),
    operator=None,
    if_match: str | None = None,
    via: Via | None = None,
) -> User | Group:
    """Put a resource's writable attributes back to ``document`` and invert a membership delta."""
    model = User if resource_type == "User" else Group
    resource = _lock(model, resource_id, None, "replace")
    _check_version(resource, if_match)
    request = {
        "revert": {
            "document": document,
            "members_add": list(members_add),
            "members_remove": list(members_remove),
        }
    }
    if resource_type == "User":
        before = resources.user_editable_document(resource)
        change = Change(
            "replace", resource, None, before, _normalised_user(document), request=request
        )
    else:
        plan = MemberPlan(resource)
        plan.remove(parse_id(m.get("value")) for m in members_remove)
        plan.add(_existing_refs(list(members_add)))
        before = resources.group_editable_document(resource)
        change = _group_change(
            "replace", resource, None, before, _normalised_group(document), plan, request
        )
    _commit(change, _via(operator, via))
    return resource


# --- The one table of writes ------------------------------------------------------

# (resource type, action) -> the service, and how a stored request (``Change.request``)
# becomes its arguments. SCIM views, Bulk and approved operations all go through it.
WRITE_SERVICES: dict[tuple[str, str], Callable] = {
    ("User", "create"): user_create,
    ("User", "replace"): user_replace,
    ("User", "patch"): user_patch,
    ("User", "delete"): user_delete,
    ("Group", "create"): group_create,
    ("Group", "replace"): group_replace,
    ("Group", "patch"): group_patch,
    ("Group", "delete"): group_delete,
}
_ID_KWARG = {"User": "user_id", "Group": "group_id"}


def perform(
    resource_type: str,
    action: str,
    *,
    resource_id=None,
    request: dict,
    client: ScimClient | None,
    operator=None,
    if_match: str | None = None,
    via: Via | None = None,
):
    """Run the write ``action`` on ``resource_type`` from a stored request: the
    ``Change.request`` of a write, as a pending operation keeps it.

    ``{"document": ...}`` for create/replace, ``{"operations": [...]}`` for patch (stored
    as dicts, or ``PatchOperation`` objects straight from a request),
    ``{}`` for delete, ``{"revert": {...}}`` for a rollback step that puts a resource back.
    """
    if resource_type not in _ID_KWARG:
        raise ValueError(f"Unknown resource type {resource_type!r}")
    common = {"operator": operator, "via": via}
    if "revert" in request:
        revert = request["revert"]
        return resource_revert(
            resource_type=resource_type,
            resource_id=resource_id,
            document=revert["document"],
            members_add=revert.get("members_add", []),
            members_remove=revert.get("members_remove", []),
            if_match=if_match,
            **common,
        )
    service = WRITE_SERVICES[(resource_type, action)]
    common["client"] = client
    if action == "create":
        return service(document=request["document"], **common)
    common[_ID_KWARG[resource_type]] = resource_id
    common["if_match"] = if_match
    if action == "replace":
        return service(document=request["document"], **common)
    if action == "patch":
        operations = [
            op if isinstance(op, PatchOperation) else PatchOperation(**op)
            for op in request["operations"]
        ]
        return service(operations=operations, **common)
    return service(**common)


def resource_counts_refresh() -> None:
    """Recount users and groups into their counters (after a bulk load that bypassed
    triggers). Creates the counter rows if missing."""
    for model in (User, Group):
        ResourceCount.objects.update_or_create(
            resource_type=model.__name__, defaults={"total": model.objects.count()}
        )
