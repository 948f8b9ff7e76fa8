"""Functions that change the directory. Every write runs in one transaction.

The SCIM layer and the console both call these, so every path that changes a
user or group is validated, versioned, authorized, policed and audited the
same way. Each service plans a ``Change`` (documents before and after, exact
membership delta) and hands it to ``_commit``, the one place where a planned
change is checked and applied. Documents are SCIM-shaped: the directory is a
SCIM directory.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from contextlib import contextmanager

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from provisioning.access import authorization
from provisioning.access.models import ScimClient
from provisioning.audit.change_sets import record_change, remember_loaded
from provisioning.oversight import policy
from provisioning.oversight.models import Action
from provisioning.oversight.reviews import flag_change_set
from provisioning.oversight.services import hold_operation
from provisioning.scim import resources
from provisioning.scim.errors import NotFound, PreconditionFailed, Uniqueness
from provisioning.scim.filters import matches, membership_q
from provisioning.scim.patch import PatchOperation, apply_patch
from provisioning.scim.schema import GROUP_SCHEMA, USER_SCHEMA

from .changes import (
    Change,
    MemberPlan,
    MemberRef,
    existing_members,
    member_q,
    parse_id,
    resolve_members,
)
from .models import Group, Membership, ResourceCount, User, UserEmail

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


def _lock(model, resource_id, client: ScimClient | None, operation: str) -> User | Group:
    """Lock the resource ``client`` may ``operation``; refusals come before any lookup.

    Checking the operation first means a client without the permission learns
    nothing about the id; scoping the lookup makes a foreign resource of an
    ownership-limited client a 404, before its version can be compared.
    """
    authorization.require(client, model.__name__, operation)
    pk = parse_id(resource_id)
    queryset = authorization.scope_queryset(client, model.__name__, model.objects.all())
    resource = queryset.select_for_update().filter(pk=pk).first() if pk else None
    if resource is None:
        raise NotFound(f"{model.__name__} {resource_id} not found")
    remember_loaded(resource)
    return resource


@contextmanager
def _uniqueness_as_409(field: str):
    """A uniqueness race lost at the database becomes a 409 without database text.

    No savepoint of its own: every caller runs inside ``_write``'s atomic block, which
    the 409 leaves at once, rolling the whole write back (nothing runs in between).
    """
    try:
        yield
    except IntegrityError:
        raise Uniqueness(f"A resource with this {field} already exists") from None


def _commit(change: Change, operator=None) -> None:
    """Authorize, police, apply and record one planned change.

    Nothing is written before the change is fully planned. A held change raises
    ``Held``; ``_write`` turns that into a stored pending operation.
    """
    change.operator = operator
    # Before the no-op shortcut: a refused write is refused even if it would change nothing.
    authorization.authorize_change(change)
    if change.is_noop:
        return
    decision = policy.evaluate(change)
    if decision.action == Action.HOLD:
        raise policy.Held(change, decision)
    if change.action == "delete":
        change.resource.delete()
    elif change.resource_type == "User":
        _apply_user(change)
    else:
        _apply_group(change)
    if change.client is not None:
        policy.record_destructive(change.client, decision.destructive_weight)
    record = record_change(change)
    if decision.action == Action.FLAG and record is not None:
        flag_change_set(record.change_set, decision.reasons)


def _write(service):
    """One transaction per directory write; a write policy holds becomes a pending operation.

    The held write's transaction rolls back (nothing was applied), then the pending
    operation is stored in a transaction of its own and ``OperationHeld`` is raised
    for the caller to answer (SCIM: 202 Accepted).
    """

    @functools.wraps(service)
    def wrapper(*args, **kwargs):
        try:
            with transaction.atomic():
                return service(*args, **kwargs)
        except policy.Held as held:
            with transaction.atomic():
                pending = hold_operation(held.change, held.decision)
            raise policy.OperationHeld(pending) from None

    return wrapper


# --- Users --------------------------------------------------------------------


def _normalised_user(document: dict) -> dict:
    """A cleaned document as it will be stored, so before/after compare like with like."""
    return resources.user_editable_document(User(**resources.user_fields(document)))


def _ensure_user_name_free(user_name: str, exclude: uuid.UUID) -> None:
    taken = User.objects.annotate(l=Lower("user_name")).filter(l=user_name.lower())
    if taken.exclude(pk=exclude).exists():
        raise Uniqueness(f"userName '{user_name}' is already taken")


def _sync_emails(user: User) -> None:
    UserEmail.objects.filter(user=user).delete()
    UserEmail.objects.bulk_create(
        UserEmail(
            user=user,
            value=email["value"][:320],
            type=str(email.get("type", ""))[:64],
            primary=email.get("primary") is True,
        )
        for email in user.attributes.get("emails", [])
        if isinstance(email.get("value"), str)
    )


def _apply_user(change: Change) -> None:
    user: User = change.resource
    fields = resources.user_fields(change.after)
    if change.before is None or fields["user_name"].lower() != user.user_name.lower():
        _ensure_user_name_free(fields["user_name"], exclude=user.pk)
    emails_changed = change.before is None or (
        change.before.get("emails") != change.after.get("emails")
    )
    for name, value in fields.items():
        setattr(user, name, value)
    creating = change.action == "create"
    if not creating:
        user.version += 1
        user.last_modified = timezone.now()
    with _uniqueness_as_409("userName"):
        user.save(force_insert=creating)
    if emails_changed:
        _sync_emails(user)


@_write
def user_create(*, document: dict, client: ScimClient | None, operator=None) -> User:
    """Create a user from a SCIM document (``userName`` unique case-insensitively)."""
    # Refuse before validating, so a client without the permission learns nothing.
    authorization.require(client, "User", "create")
    after = _normalised_user(resources.clean_document(USER_SCHEMA, document))
    now = timezone.now()
    user = User(created=now, last_modified=now, source=client)
    _commit(Change("create", user, client, after=after, request={"document": document}), operator)
    return user


@_write
def user_replace(
    *,
    user_id,
    document: dict,
    client: ScimClient | None,
    operator=None,
    if_match: str | None = None,
) -> User:
    """PUT: replace every writable attribute with the document's values."""
    user = _lock(User, user_id, client, "replace")
    _check_version(user, if_match)
    after = _normalised_user(resources.clean_document(USER_SCHEMA, document))
    before = resources.user_editable_document(user)
    _commit(
        Change("replace", user, client, before, after, request={"document": document}), operator
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
) -> User:
    """PATCH: all operations or none (the engine works on a copy of the document)."""
    user = _lock(User, user_id, client, "patch")
    _check_version(user, if_match)
    before = resources.user_editable_document(user)
    outcome = apply_patch(before, operations, USER_SCHEMA)
    after = _normalised_user(resources.clean_document(USER_SCHEMA, outcome.document))
    _commit(
        Change("patch", user, client, before, after, request=_patch_request(operations)), operator
    )
    return user


@_write
def user_delete(
    *, user_id, client: ScimClient | None, operator=None, if_match: str | None = None
) -> None:
    user = _lock(User, user_id, client, "delete")
    _check_version(user, if_match)
    before = resources.user_editable_document(user)
    _commit(Change("delete", user, client, before=before), operator)


# --- Groups -------------------------------------------------------------------


def _normalised_group(document: dict) -> dict:
    return resources.group_editable_document(Group(**resources.group_fields(document)))


def _ensure_display_name_free(display_name: str, exclude: uuid.UUID) -> None:
    taken = Group.objects.annotate(l=Lower("display_name")).filter(l=display_name.lower())
    if taken.exclude(pk=exclude).exists():
        raise Uniqueness(f"A group named '{display_name}' already exists")


def _apply_group(change: Change) -> None:
    group: Group = change.resource
    fields = resources.group_fields(change.after)
    if change.before is None or fields["display_name"].lower() != group.display_name.lower():
        _ensure_display_name_free(fields["display_name"], exclude=group.pk)
    for name, value in fields.items():
        setattr(group, name, value)
    creating = change.action == "create"
    if not creating:
        group.version += 1
        group.last_modified = timezone.now()
    with _uniqueness_as_409("displayName"):
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
def group_create(*, document: dict, client: ScimClient | None, operator=None) -> Group:
    # Refuse before validating, so a client without the permission learns nothing.
    authorization.require(client, "Group", "create")
    cleaned = resources.clean_document(GROUP_SCHEMA, document)
    now = timezone.now()
    group = Group(created=now, last_modified=now, source=client)
    plan = MemberPlan(group)
    plan.add(resolve_members(group, cleaned.get("members", [])))
    after = _normalised_group(cleaned)
    _commit(
        _group_change("create", group, client, None, after, plan, {"document": document}), operator
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
) -> Group:
    """PUT: the document's attributes and exactly its members (reads every member id)."""
    group = _lock(Group, group_id, client, "replace")
    _check_version(group, if_match)
    cleaned = resources.clean_document(GROUP_SCHEMA, document)
    plan = MemberPlan(group)
    plan.replace(resolve_members(group, cleaned.get("members", [])))
    before = resources.group_editable_document(group)
    after = _normalised_group(cleaned)
    _commit(
        _group_change("replace", group, client, before, after, plan, {"document": document}),
        operator,
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
) -> Group:
    """PATCH a group. Member operations read only the members they name; never the rest."""
    group = _lock(Group, group_id, client, "patch")
    _check_version(group, if_match)
    before = resources.group_editable_document(group)
    outcome = apply_patch(before, operations, GROUP_SCHEMA)
    plan = MemberPlan(group)
    for op in outcome.member_ops:
        if op.kind == "add":
            plan.add(resolve_members(group, op.members))
        elif op.kind == "replace":
            plan.replace(resolve_members(group, op.members))
        elif op.filter is not None:
            node = op.filter
            plan.remove_matching(
                membership_q(node),
                lambda ref, node=node: matches(node, _member_entry(ref), _MEMBERS),
            )
        else:
            plan.remove(parse_id(m.get("value")) for m in op.members)
    after = _normalised_group(resources.clean_document(GROUP_SCHEMA, outcome.document))
    request = _patch_request(operations)
    _commit(_group_change("patch", group, client, before, after, plan, request), operator)
    return group


@_write
def group_delete(
    *, group_id, client: ScimClient | None, operator=None, if_match: str | None = None
) -> None:
    group = _lock(Group, group_id, client, "delete")
    _check_version(group, if_match)
    _commit(
        Change("delete", group, client, before=resources.group_editable_document(group)), operator
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
def resource_restore(*, resource_type: str, snapshot: dict, operator=None) -> User | Group:
    """Recreate a deleted user or group from its audit snapshot: same id, attributes, memberships.

    Members and parent groups that no longer exist are skipped. Each parent group
    gets its own recorded change, so the audit trail shows every membership restored.
    """
    model = User if resource_type == "User" else Group
    pk = parse_id(snapshot["id"])
    if model.objects.filter(pk=pk).exists():
        raise Uniqueness(f"{resource_type} {pk} exists again; it cannot be restored")
    created = parse_datetime(snapshot["created"])
    now = timezone.now()
    resource = model(
        pk=pk, created=created or now, last_modified=now, source_id=snapshot.get("source")
    )
    document = snapshot.get("document") or {}
    request = {"restore": str(pk)}
    if resource_type == "User":
        change = Change("create", resource, None, after=_normalised_user(document), request=request)
    else:
        plan = MemberPlan(resource)
        plan.add(_existing_refs(snapshot.get("members", [])))
        change = _group_change(
            "create", resource, None, None, _normalised_group(document), plan, request
        )
    _commit(change, operator)
    for parent in Group.objects.select_for_update().filter(
        pk__in=[parse_id(m.get("value")) for m in snapshot.get("memberOf", [])]
    ):
        display = next(
            (
                m.get("memberDisplay")
                for m in snapshot["memberOf"]
                if m.get("value") == str(parent.pk)
            ),
            None,
        )
        plan = MemberPlan(parent)
        plan.add([MemberRef(pk, resource_type == "Group", display)])
        before = resources.group_editable_document(parent)
        _commit(_group_change("patch", parent, None, before, before, plan, request), operator)
    return resource


@_write
def resource_revert(
    *,
    resource_type: str,
    resource_id,
    document: dict,
    members_add: list[dict] = (),
    members_remove: list[dict] = (),
    operator=None,
) -> User | Group:
    """Put a resource's writable attributes back to ``document`` and invert a membership delta."""
    model = User if resource_type == "User" else Group
    resource = _lock(model, resource_id, None, "replace")
    if resource_type == "User":
        before = resources.user_editable_document(resource)
        change = Change("replace", resource, None, before, _normalised_user(document))
    else:
        plan = MemberPlan(resource)
        plan.remove(parse_id(m.get("value")) for m in members_remove)
        plan.add(_existing_refs(list(members_add)))
        before = resources.group_editable_document(resource)
        change = _group_change(
            "replace", resource, None, before, _normalised_group(document), plan, {}
        )
    change.request = {"revert": str(resource.pk)}
    _commit(change, operator)
    return resource


def resource_counts_refresh() -> None:
    """Recount users and groups into their counters (after a bulk load that bypassed
    triggers). Creates the counter rows if missing."""
    for model in (User, Group):
        ResourceCount.objects.update_or_create(
            resource_type=model.__name__, defaults={"total": model.objects.count()}
        )
