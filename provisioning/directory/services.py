"""Functions that change the directory. Every write runs in one transaction.

The SCIM layer and the console both call these, so every path that changes a
user or group is validated, versioned and (later) audited and policed the same
way. Documents are SCIM-shaped: the directory is a SCIM directory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Lower
from django.utils import timezone

from provisioning.access.models import ScimClient
from provisioning.scim import resources
from provisioning.scim.errors import (
    InvalidValue,
    NotFound,
    PreconditionFailed,
    Uniqueness,
)
from provisioning.scim.patch import MemberOp, PatchOperation, apply_patch
from provisioning.scim.schema import GROUP_SCHEMA, USER_SCHEMA

from .models import Group, Membership, User, UserEmail


def _parse_id(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


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


def _lock(model, resource_id) -> User | Group:
    pk = _parse_id(resource_id)
    resource = model.objects.select_for_update().filter(pk=pk).first() if pk else None
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


def _save(resource, *, creating: bool) -> None:
    with _uniqueness_as_409("userName" if isinstance(resource, User) else "displayName"):
        resource.save(force_insert=creating)


# --- Users --------------------------------------------------------------------


def _ensure_user_name_free(user_name: str, exclude: uuid.UUID | None = None) -> None:
    taken = User.objects.annotate(l=Lower("user_name")).filter(l=user_name.lower())
    if exclude:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise Uniqueness(f"userName '{user_name}' is already taken")


def _sync_emails(user: User) -> None:
    UserEmail.objects.filter(user=user).delete()
    rows = [
        UserEmail(
            user=user,
            value=email["value"][:320],
            type=str(email.get("type", ""))[:64],
            primary=email.get("primary") is True,
        )
        for email in user.attributes.get("emails", [])
        if isinstance(email.get("value"), str)
    ]
    UserEmail.objects.bulk_create(rows)


def _apply_user_document(user: User, document: dict) -> bool:
    """Write a cleaned document into ``user``; True if anything changed."""
    fields = resources.user_fields(document)
    changed = any(getattr(user, name) != value for name, value in fields.items())
    if not changed:
        return False
    if fields["user_name"].lower() != (user.user_name or "").lower():
        _ensure_user_name_free(fields["user_name"], exclude=user.pk)
    emails_changed = user.attributes.get("emails") != fields["attributes"].get("emails")
    for name, value in fields.items():
        setattr(user, name, value)
    user.last_modified = timezone.now()
    if user.version and not user._state.adding:
        user.version += 1
    _save(user, creating=user._state.adding)
    if emails_changed:
        _sync_emails(user)
    return True


@transaction.atomic
def user_create(*, document: dict, client: ScimClient | None) -> User:
    """Create a user from a SCIM document (``userName`` unique case-insensitively)."""
    cleaned = resources.clean_document(USER_SCHEMA, document)
    fields = resources.user_fields(cleaned)
    _ensure_user_name_free(fields["user_name"])
    now = timezone.now()
    user = User(created=now, last_modified=now, source=client)
    _apply_user_document(user, cleaned)
    return user


@transaction.atomic
def user_replace(
    *, user_id, document: dict, client: ScimClient | None, if_match: str | None = None
) -> User:
    """PUT: replace every writable attribute with the document's values."""
    user = _lock(User, user_id)
    _check_version(user, if_match)
    _apply_user_document(user, resources.clean_document(USER_SCHEMA, document))
    return user


@transaction.atomic
def user_patch(
    *,
    user_id,
    operations: list[PatchOperation],
    client: ScimClient | None,
    if_match: str | None = None,
) -> User:
    """PATCH: apply all operations or none (the engine works on a copy)."""
    user = _lock(User, user_id)
    _check_version(user, if_match)
    outcome = apply_patch(resources.user_editable_document(user), operations, USER_SCHEMA)
    if outcome.changed:
        cleaned = resources.clean_document(USER_SCHEMA, outcome.document)
        _apply_user_document(user, cleaned)
    return user


@transaction.atomic
def user_delete(*, user_id, client: ScimClient | None, if_match: str | None = None) -> None:
    user = _lock(User, user_id)
    _check_version(user, if_match)
    user.delete()


# --- Groups -------------------------------------------------------------------


@dataclass(frozen=True)
class MemberRef:
    id: uuid.UUID
    is_group: bool
    display: str | None


def _ensure_display_name_free(display_name: str, exclude: uuid.UUID | None = None) -> None:
    taken = Group.objects.annotate(l=Lower("display_name")).filter(l=display_name.lower())
    if exclude:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise Uniqueness(f"A group named '{display_name}' already exists")


def _resolve_members(group: Group, members: Iterable[dict]) -> list[MemberRef]:
    """Turn member entries into references, checking every id exists (two queries)."""
    wanted: dict[uuid.UUID, dict] = {}
    for entry in members:
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), str):
            raise InvalidValue("Each member needs a string 'value'")
        member_id = _parse_id(entry["value"])
        if member_id is None:
            raise InvalidValue(f"Member '{entry['value']}' does not exist")
        if member_id == group.pk:
            raise InvalidValue("A group cannot be a member of itself")
        wanted[member_id] = entry
    if not wanted:
        return []
    user_ids = set(User.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    group_ids = set(
        Group.objects.filter(pk__in=set(wanted) - user_ids).values_list("pk", flat=True)
    )
    missing = set(wanted) - user_ids - group_ids
    if missing:
        listed = ", ".join(sorted(str(m) for m in missing)[:5])
        raise InvalidValue(f"Members do not exist: {listed}")
    return [
        MemberRef(member_id, member_id in group_ids, _display(entry))
        for member_id, entry in wanted.items()
    ]


def _display(entry: dict) -> str | None:
    display = entry.get("display")
    return display[:255] if isinstance(display, str) and display else None


def _add_members(group: Group, refs: list[MemberRef]) -> None:
    rows = [
        Membership(
            group=group,
            user_id=None if ref.is_group else ref.id,
            member_group_id=ref.id if ref.is_group else None,
            display=ref.display,
        )
        for ref in refs
    ]
    # Adding an existing member is not an error; only the display it was sent with changes.
    Membership.objects.bulk_create(rows, ignore_conflicts=True)
    _refresh_display(group, [ref for ref in refs if ref.display is not None])


def _refresh_display(group: Group, refs: list[MemberRef], chunk: int = 500) -> None:
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
        Membership.objects.filter(group=group).filter(_members_q(part)).update(
            display=Case(*whens, default=F("display"))
        )


def _members_q(refs: Iterable[MemberRef]) -> Q:
    ids = [ref.id for ref in refs]
    return Q(user_id__in=ids) | Q(member_group_id__in=ids)


def _apply_member_op(group: Group, op: MemberOp) -> None:
    memberships = Membership.objects.filter(group=group)
    if op.kind == "add":
        _add_members(group, _resolve_members(group, op.members))
    elif op.kind == "remove":
        if op.filter is not None:
            from provisioning.scim.filters import membership_q

            memberships.filter(membership_q(op.filter)).delete()
        else:
            ids = [_parse_id(m.get("value")) for m in op.members if isinstance(m, dict)]
            ids = [i for i in ids if i]
            memberships.filter(Q(user_id__in=ids) | Q(member_group_id__in=ids)).delete()
    elif op.kind == "replace":
        refs = _resolve_members(group, op.members)
        memberships.exclude(_members_q(refs)).delete()
        _add_members(group, refs)
    else:  # pragma: no cover - the engine only produces the three kinds
        raise ValueError(op.kind)


def _apply_group_document(group: Group, document: dict) -> bool:
    fields = resources.group_fields(document)
    changed = any(getattr(group, name) != value for name, value in fields.items())
    if not changed:
        return False
    if fields["display_name"].lower() != (group.display_name or "").lower():
        _ensure_display_name_free(fields["display_name"], exclude=group.pk)
    for name, value in fields.items():
        setattr(group, name, value)
    return True


def _touch(group: Group) -> None:
    """Bump version and lastModified with one UPDATE (members changed or attributes did)."""
    group.last_modified = timezone.now()
    Group.objects.filter(pk=group.pk).update(
        version=F("version") + 1,
        last_modified=group.last_modified,
        display_name=group.display_name,
        external_id=group.external_id,
        attributes=group.attributes,
    )
    group.version += 1


@transaction.atomic
def group_create(*, document: dict, client: ScimClient | None) -> Group:
    cleaned = resources.clean_document(GROUP_SCHEMA, document)
    fields = resources.group_fields(cleaned)
    _ensure_display_name_free(fields["display_name"])
    now = timezone.now()
    group = Group(created=now, last_modified=now, source=client, **fields)
    _save(group, creating=True)
    _add_members(group, _resolve_members(group, cleaned.get("members", [])))
    return group


@transaction.atomic
def group_replace(
    *, group_id, document: dict, client: ScimClient | None, if_match: str | None = None
) -> Group:
    group = _lock(Group, group_id)
    _check_version(group, if_match)
    cleaned = resources.clean_document(GROUP_SCHEMA, document)
    _apply_group_document(group, cleaned)
    _apply_member_op(group, MemberOp(kind="replace", members=cleaned.get("members", [])))
    _save_group(group)
    return group


def _save_group(group: Group) -> None:
    with _uniqueness_as_409("displayName"):
        _touch(group)


@transaction.atomic
def group_patch(
    *,
    group_id,
    operations: list[PatchOperation],
    client: ScimClient | None,
    if_match: str | None = None,
) -> Group:
    """PATCH a group. Member operations become set-based SQL; members are never loaded."""
    group = _lock(Group, group_id)
    _check_version(group, if_match)
    outcome = apply_patch(resources.group_editable_document(group), operations, GROUP_SCHEMA)
    if not outcome.changed:
        return group
    _apply_group_document(group, resources.clean_document(GROUP_SCHEMA, outcome.document))
    for op in outcome.member_ops:
        _apply_member_op(group, op)
    _save_group(group)
    return group


@transaction.atomic
def group_delete(*, group_id, client: ScimClient | None, if_match: str | None = None) -> None:
    group = _lock(Group, group_id)
    _check_version(group, if_match)
    group.delete()
