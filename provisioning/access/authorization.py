"""What a SCIM client may do: the one place where roles are interpreted.

The SCIM layer calls ``require``/``scope_queryset`` for reads; the directory
services call ``require`` and ``scope_queryset`` while locking a resource (so
a refused or foreign resource is answered before its version or existence
can leak); ``authorize_change`` is the write pipeline's first gate (installed by
the directory app), so SCIM endpoints, Bulk operations and approved held
operations are all checked the same way.
Console actions carry no client and are governed by operator roles instead.

Ownership is answered with 404, not 403: a client limited to its own
resources must not learn that others exist. ``read_scope`` carries the same rule
into references: a user's ``groups`` and a group's ``members`` list only what the
client may read, and error messages name only those.
"""

from __future__ import annotations

import fnmatch
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from django.db.models import Q, QuerySet

from provisioning.scim.errors import Forbidden, InvalidValue, NotFound

from .models import OPERATIONS, RESOURCE_TYPES, ScimClient

if TYPE_CHECKING:
    from provisioning.directory.changes import Change

Q_ = TypeVar("Q_", bound=QuerySet)


def can(client: ScimClient | None, resource_type: str, operation: str) -> bool:
    """Whether ``client``'s role grants ``operation`` on ``resource_type``; no client: yes."""
    if resource_type not in RESOURCE_TYPES or operation not in OPERATIONS:
        raise ValueError(f"Unknown permission {resource_type}:{operation}")
    return client is None or client.role.allows(resource_type, operation)


def require(client: ScimClient | None, resource_type: str, operation: str) -> None:
    """Raise ``Forbidden`` naming the missing permission unless ``client`` may do this."""
    if not can(client, resource_type, operation):
        raise Forbidden(f"Role '{client.role.name}' lacks {resource_type}:{operation}")


def readable_types(client: ScimClient | None) -> list[str]:
    return [rt for rt in RESOURCE_TYPES if can(client, rt, "read")]


def own_resources_only(client: ScimClient | None) -> bool:
    """Whether ``client`` sees only the users and groups it created."""
    return client is not None and client.role.own_resources_only


def owned_by(source_id) -> Q:
    """The users or groups created by the client ``source_id``."""
    return Q(source_id=source_id)


def scope_queryset(client: ScimClient | None, resource_type: str, queryset: Q_) -> Q_:
    """Narrow a User or Group queryset to what ``client`` may see (its own, if so limited)."""
    if own_resources_only(client):
        return queryset.filter(owned_by(client.pk))
    return queryset


@dataclass(frozen=True)
class ReadScope:
    """Which users and groups a client may read: by resource type, and only the ones it
    created when its role is limited to its own (``source_id``; None: anyone's)."""

    users: bool = True
    groups: bool = True
    source_id: uuid.UUID | None = None

    @property
    def unrestricted(self) -> bool:
        return self.users and self.groups and self.source_id is None


EVERYTHING = ReadScope()


def read_scope(client: ScimClient | None) -> ReadScope:
    """What ``client`` may read; no client (the console, a command): everything."""
    if client is None:
        return EVERYTHING
    return ReadScope(
        users=can(client, "User", "read"),
        groups=can(client, "Group", "read"),
        source_id=client.pk if client.role.own_resources_only else None,
    )


def owns(client: ScimClient | None, resource) -> bool:
    if client is None or not client.role.own_resources_only:
        return True
    # A resource being created belongs to whoever creates it.
    return resource._state.adding or resource.source_id == client.pk


def protects(client: ScimClient | None, *, name: str | None, privileged: bool = False) -> bool:
    """Whether the client's role protects a group of this name (or a privileged group,
    if the role opts in)."""
    if client is None:
        return False
    if privileged and client.role.protect_privileged_groups:
        return True
    if not isinstance(name, str):
        return False
    patterns = [p.casefold() for p in client.role.protected_group_names if isinstance(p, str)]
    return any(fnmatch.fnmatchcase(name.casefold(), p) for p in patterns)


def forbidden_changes(client: ScimClient, changed: set[str]) -> list[str]:
    """Changed attribute names the role may not change, in canonical spelling.

    A forbidden extension URN covers every attribute of that extension.
    """
    forbidden = [f.casefold() for f in client.role.forbidden_attributes if isinstance(f, str)]
    return sorted(
        name
        for name in changed
        if any(name.casefold() == f or name.casefold().startswith(f + ":") for f in forbidden)
    )


def authorize_change(change: Change) -> None:
    """Refuse a planned write the client's role does not allow; nothing has been applied yet.

    Checked in order: the operation itself, ownership of the resource,
    attributes the role may not change (replace/patch), membership (members the
    client does not own are answered like members that do not exist, 400), then
    protected groups (403): changing the membership of a protected group or of any
    group nested in one at any depth, and renaming a group with members into or out
    of a protected name (checked like creating it with those members).
    """
    client = change.client
    if client is None:
        return
    role = client.role
    require(client, change.resource_type, change.action)
    if not owns(client, change.resource):
        raise NotFound(f"{change.resource_type} {change.resource.pk} not found")
    if change.action in ("replace", "patch"):
        refused = forbidden_changes(client, change.changed_attributes)
        if refused:
            listed = ", ".join(f"'{name}'" for name in refused)
            raise Forbidden(f"Role '{role.name}' may not change {listed}")
    members_change = bool(change.members_added or change.members_removed)
    if members_change and role.own_resources_only:
        foreign = change.members_not_from(client)
        if foreign:
            # The same answer as for an id that does not exist at all, so the
            # difference does not reveal that another client's resource exists; an id
            # is named only if the client sent it (an added member), never one that a
            # removal by filter or a replace found among the members.
            foreign_ids = set(foreign)
            sent = [ref.id for ref in change.members_added if ref.id in foreign_ids]
            raise InvalidValue(f"Members do not exist: {sent[0]}" if sent else "Members do not exist")
    if change.resource_type != "Group" or change.action == "delete":
        return
    name = change.display_name
    old = (change.before or {}).get("displayName", name)
    if members_change:
        for protected in dict.fromkeys([old, name]):
            if protects(client, name=protected, privileged=change.resource.privileged):
                raise Forbidden(
                    f"Role '{role.name}' may not change the membership of protected group "
                    f"'{protected}'"
                )
        reads_groups = can(client, "Group", "read")
        for outer in change.enclosing_groups():
            if protects(client, name=outer.display_name, privileged=outer.privileged):
                # An enclosing group the client may not read is not named.
                named = (
                    f"protected group '{outer.display_name}'"
                    if reads_groups and owns(client, outer)
                    else "a protected group"
                )
                raise Forbidden(
                    f"Role '{role.name}' may not change the membership of group '{name}': "
                    f"it is nested in {named}"
                )
    if change.renamed:
        into, out_of = protects(client, name=name), protects(client, name=old)
        if (into or out_of) and change.has_members():
            raise Forbidden(
                f"Role '{role.name}' may not rename group '{old}' to '{name}': "
                f"a group with members may not be renamed "
                + ("into" if into else "out of")
                + " a protected name"
            )
