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
import uuid
from contextlib import contextmanager

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Lower
from django.utils import timezone

from provisioning.access import authorization
from provisioning.access.models import ScimClient
from provisioning.audit.services import record_change
from provisioning.scim import resources
from provisioning.scim.errors import NotFound, PreconditionFailed, Uniqueness
from provisioning.scim.filters import matches, membership_q
from provisioning.scim.patch import PatchOperation, apply_patch
from provisioning.scim.schema import GROUP_SCHEMA, USER_SCHEMA

from .changes import Change, MemberPlan, MemberRef, member_q, parse_id, resolve_members
from .models import Group, Membership, User, UserEmail

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
    return resource


@contextmanager
def _uniqueness_as_409(field: str):
    """A uniqueness race lost at the database becomes a 409 without database text."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        raise Uniqueness(f"A resource with this {field} already exists") from None


def _commit(change: Change) -> None:
    """Apply one planned change. Nothing is written before the change is fully planned."""
    # Before the no-op shortcut: a refused write is refused even if it would change nothing.
    authorization.authorize_change(change)
    if change.is_noop:
        return
    if change.action == "delete":
        change.resource.delete()
    elif change.resource_type == "User":
        _apply_user(change)
    else:
        _apply_group(change)
    record_change(change)


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


@transaction.atomic
def user_create(*, document: dict, client: ScimClient | None) -> User:
    """Create a user from a SCIM document (``userName`` unique case-insensitively)."""
    # Refuse before validating, so a client without the permission learns nothing.
    authorization.require(client, "User", "create")
    after = _normalised_user(resources.clean_document(USER_SCHEMA, document))
    now = timezone.now()
    user = User(created=now, last_modified=now, source=client)
    _commit(Change("create", user, client, after=after, request={"document": document}))
    return user


@transaction.atomic
def user_replace(
    *, user_id, document: dict, client: ScimClient | None, if_match: str | None = None
) -> User:
    """PUT: replace every writable attribute with the document's values."""
    user = _lock(User, user_id, client, "replace")
    _check_version(user, if_match)
    after = _normalised_user(resources.clean_document(USER_SCHEMA, document))
    before = resources.user_editable_document(user)
    _commit(Change("replace", user, client, before, after, request={"document": document}))
    return user


@transaction.atomic
def user_patch(
    *,
    user_id,
    operations: list[PatchOperation],
    client: ScimClient | None,
    if_match: str | None = None,
) -> User:
    """PATCH: all operations or none (the engine works on a copy of the document)."""
    user = _lock(User, user_id, client, "patch")
    _check_version(user, if_match)
    before = resources.user_editable_document(user)
    outcome = apply_patch(before, operations, USER_SCHEMA)
    after = _normalised_user(resources.clean_document(USER_SCHEMA, outcome.document))
    _commit(Change("patch", user, client, before, after, request=_patch_request(operations)))
    return user


@transaction.atomic
def user_delete(*, user_id, client: ScimClient | None, if_match: str | None = None) -> None:
    user = _lock(User, user_id, client, "delete")
    _check_version(user, if_match)
    before = resources.user_editable_document(user)
    _commit(Change("delete", user, client, before=before))


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


@transaction.atomic
def group_create(*, document: dict, client: ScimClient | None) -> Group:
    # Refuse before validating, so a client without the permission learns nothing.
    authorization.require(client, "Group", "create")
    cleaned = resources.clean_document(GROUP_SCHEMA, document)
    now = timezone.now()
    group = Group(created=now, last_modified=now, source=client)
    plan = MemberPlan(group)
    plan.add(resolve_members(group, cleaned.get("members", [])))
    after = _normalised_group(cleaned)
    _commit(_group_change("create", group, client, None, after, plan, {"document": document}))
    return group


@transaction.atomic
def group_replace(
    *, group_id, document: dict, client: ScimClient | None, if_match: str | None = None
) -> Group:
    """PUT: the document's attributes and exactly its members (reads every member id)."""
    group = _lock(Group, group_id, client, "replace")
    _check_version(group, if_match)
    cleaned = resources.clean_document(GROUP_SCHEMA, document)
    plan = MemberPlan(group)
    plan.replace(resolve_members(group, cleaned.get("members", [])))
    before = resources.group_editable_document(group)
    after = _normalised_group(cleaned)
    _commit(_group_change("replace", group, client, before, after, plan, {"document": document}))
    return group


@transaction.atomic
def group_patch(
    *,
    group_id,
    operations: list[PatchOperation],
    client: ScimClient | None,
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
    _commit(_group_change("patch", group, client, before, after, plan, request))
    return group


@transaction.atomic
def group_delete(*, group_id, client: ScimClient | None, if_match: str | None = None) -> None:
    group = _lock(Group, group_id, client, "delete")
    _check_version(group, if_match)
    _commit(Change("delete", group, client, before=resources.group_editable_document(group)))
