"""The events recorder: every applied directory change announces itself in the outbox, in
the transaction that applies it.

It is one more recorder on the write pipeline (``directory.pipeline``), after audit,
review flags and the destructive-operation count, so whatever path a change takes (a SCIM
request, a Bulk operation, a console action, an approved or released operation, a
rollback, a restore) it yields its events, and a change that is held, refused, a no-op or
rolled back yields none.

One change gives one RFC 9967 provisioning event (``prov:create``, ``prov:put`` for a
replace, ``prov:patch``, ``prov:delete``), plus ``prov:activate`` or ``prov:deactivate``
when it flips a user's ``active``. Payloads (``Event.payload``; ``claims`` picks the
notice or full form per stream):

- ``version``: the resource's ETag after the change, as the SCIM API answers it;
- ``attributes``: the attribute paths the change created, changed or removed;
- ``members``: for a group whose membership changed, ``{"added": [ids], "removed": [ids]}``
  (an extension member of the payload: the delta, never the whole group);
- ``data``, only when a stream that hears the event wants full payloads: the resource as
  the SCIM API renders it (users; a created group, whose members are all added by the
  change) or, for a group replaced or patched, a PatchOp of exactly what changed (RFC 9967
  Figure 6), so its cost follows the change, never the group's size. Values of attributes
  that are never returned are left out, as the SCIM API leaves them out.
"""

from __future__ import annotations

from django.conf import settings

from provisioning.access import config_cache
from provisioning.directory import selectors
from provisioning.directory.changes import Change, MemberRef
from provisioning.directory.pipeline import Write
from provisioning.ids import time_ordered_uuid
from provisioning.scim import resources
from provisioning.scim.schema import GROUP_SCHEMA, USER_SCHEMA

from . import claims, outbox
from .models import Event, EventKind, EventStream

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

_KINDS = {
    "create": EventKind.CREATE,
    "replace": EventKind.PUT,
    "patch": EventKind.PATCH,
    "delete": EventKind.DELETE,
}


def events_recorder(write: Write) -> None:
    """The pipeline recorder: store the change's events and their deliveries."""
    revision = config_cache.revision_noted(write.notes, write.change.client)
    candidates = outbox.streams(revision=revision)
    outbox.publish(change_events(write, candidates), candidates)


def change_events(write: Write, candidates: list[EventStream]) -> list[Event]:
    """The events of one applied change, in the order a receiver should apply them."""
    change = write.change
    resource = change.resource
    document = change.after if change.after is not None else change.before or {}
    common = {
        "txn": transaction_id(write),
        "resource_type": change.resource_type,
        "resource_id": change.resource_id,
        "sub_id": claims.subject(
            change.resource_type, change.resource_id, document.get("externalId")
        ),
        "client": change.client,
    }
    kind = _KINDS[change.action]
    if kind == EventKind.DELETE:
        return [Event(kind=kind, payload={}, **common)]
    payload: dict = {"version": resource.etag, "attributes": changed_attributes(change)}
    delta = member_delta(change)
    if delta:
        payload["members"] = delta
    event = Event(kind=kind, payload=payload, **common)
    if outbox.wants_full(candidates, event):
        payload["data"] = full_data(change)
    events = [event]
    flip = active_flip(change)
    if flip is not None:
        events.append(Event(kind=flip, payload={"version": resource.etag}, **common))
    return events


def transaction_id(write: Write) -> str:
    """RFC 9967 ``txn``: the change set the audit trail recorded the change in (every
    change of one request, Bulk operation or console action shares it), else a fresh id."""
    record = write.record
    if record is not None and record.change_set_id is not None:
        return str(record.change_set_id)
    return time_ordered_uuid().hex


def changed_attributes(change: Change) -> list[str]:
    """Attribute paths (RFC 7644 §3.5.2 ``path``; extension attributes URN-qualified) the
    change created, changed or removed. A create lists ``id`` too (the server assigned
    it, RFC 9967 Figure 5); a group whose members were only renamed lists ``members``."""
    names = set(change.changed_attributes)
    if change.action == "create":
        names.add("id")
    if change.members_redisplayed:
        names.add("members")
    return sorted(names)


def member_delta(change: Change) -> dict | None:
    if not (change.members_added or change.members_removed):
        return None
    return {
        "added": [str(ref.id) for ref in change.members_added],
        "removed": [str(ref.id) for ref in change.members_removed],
    }


def active_flip(change: Change) -> EventKind | None:
    """``prov:deactivate`` when an update makes a user inactive, ``prov:activate`` when it
    makes an inactive one active. Only ``false`` deactivates (an absent ``active`` is an
    active user); a create or delete flips nothing."""
    if change.resource_type != "User" or change.action not in ("replace", "patch"):
        return None
    was_active = (change.before or {}).get("active") is not False
    is_active = (change.after or {}).get("active") is not False
    if was_active and not is_active:
        return EventKind.DEACTIVATE
    if is_active and not was_active:
        return EventKind.ACTIVATE
    return None


def base_url() -> str:
    """The base of ``meta.location`` and ``$ref`` in ``data``: ``SCIM_BASE_URL`` when set,
    else nothing, leaving them relative to the SCIM base like ``sub_id.uri`` (whichever
    request, task or console action made the change)."""
    return settings.SCIM_BASE_URL


def full_data(change: Change) -> dict:
    """``data`` of a full-mode create, put or patch event (see the module docstring)."""
    resource, base = change.resource, base_url()
    if change.resource_type == "User":
        groups = []
        if change.action != "create":  # a user being created is in no group yet
            rows = selectors.groups_of_users([resource.pk]).get(resource.pk, ())
            groups = resources.group_entries(rows, base)
        document = resources.user_document(resource, base, groups)
        return resources.project(USER_SCHEMA, document, [], [])
    if change.action == "create":
        members = [_member(ref, base) for ref in change.members_added]
        document = resources.group_document(resource, base, members)
        return resources.project(GROUP_SCHEMA, document, [], [])
    return group_patch_op(change, base)


def group_patch_op(change: Change, base: str) -> dict:
    """A PatchOp that takes a group from its state before the change to its state after:
    ``replace``/``remove`` of each changed attribute, then the member delta."""
    rendered = resources.project(
        GROUP_SCHEMA, resources.group_document(change.resource, base), [], []
    )
    hidden = GROUP_SCHEMA.view.hidden
    operations = []
    for path in sorted(change.changed_attributes - {"members"}):
        urn, _, name = path.rpartition(":") if path.startswith("urn:") else ("", "", path)
        if urn and name in hidden.get(urn, ()):
            continue  # never returned: the notice names it, data never shows it
        holder = rendered.get(urn) if urn else rendered
        if isinstance(holder, dict) and name in holder:
            operations.append({"op": "replace", "path": path, "value": holder[name]})
        else:
            operations.append({"op": "remove", "path": path})
    added = [*change.members_added, *change.members_redisplayed]
    if added:
        operations.append(
            {"op": "add", "path": "members", "value": [_member(ref, base) for ref in added]}
        )
    operations += [
        {"op": "remove", "path": f'members[value eq "{ref.id}"]'} for ref in change.members_removed
    ]
    return {"schemas": [PATCH_OP], "Operations": operations}


def _member(ref: MemberRef, base: str) -> dict:
    return resources.member_entry(ref.id, ref.is_group, ref.display, base)
