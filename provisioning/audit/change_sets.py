"""Change sets and change records: what one unit of change did to the directory.

``change_set_create`` inserts a unit's change set (the scope in ``context`` calls it,
through the plug point the audit app connects at startup, at the unit's first recorded
change); ``record_change`` adds one change record per applied directory change, with
before/after snapshots and membership deltas: the one durable record of a directory change
(django-auditlog keeps no entry of its own for directory resources). The
receiver ``capture_relations`` keeps what a delete's record needs before CASCADE
removes it.

Everything here runs inside the caller's transaction, so the trail commits or rolls
back with the change it describes.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connections, router
from django.db.models import Model

from provisioning.scim.resources import isoformat, mask_hidden

from . import context, deltas
from .models import ChangeRecord, ChangeSet
from .redaction import redact

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from provisioning.access.models import ScimClient
    from provisioning.directory.changes import Change, MemberRef

# Attributes of a relation snapshot, stashed on a resource about to be deleted.
_RELATIONS_ATTR = "_audit_relations"


def change_set_create(**arguments: Any) -> ChangeSet:
    """Insert a change set. Called by ``ChangeSetScope`` at a unit's first recorded change
    when that change is not a directory change (whose record is inserted with it)."""
    change_set = change_set_build(**arguments)
    change_set.save()
    return change_set


def change_set_build(
    *,
    correlation_id: uuid.UUID,
    source: str,
    operator: AbstractBaseUser | None = None,
    client: ScimClient | None = None,
    request: dict | None = None,
    remote_addr: str | None = None,
) -> ChangeSet:
    """A change set, not yet inserted."""
    if operator is not None:
        actor_repr = operator.get_username()
    elif client is not None:
        actor_repr = client.name
    else:
        actor_repr = ""
    return ChangeSet(
        correlation_id=correlation_id,
        source=source,
        operator=operator,
        scim_client=client,
        actor_repr=actor_repr[:255],
        remote_addr=normalise_ip(remote_addr),
        # Whoever opened the scope, no secret is kept forever (callers redact already:
        # redacting again is a no-op, and a caller that forgot is covered).
        request=redact(request) if request is not None else None,
    )


def record_change(change: Change) -> ChangeRecord | None:
    """Record an applied directory change in the current unit's change set.

    Called by ``directory.services._commit`` after the change is applied, in
    its transaction. Outside any scope (a command, a script) the change gets
    a change set of its own. Returns None only when the benchmarking switch
    ``SCIMGATE_AUDIT_ENABLED`` is off (``make bench`` measures the trail's cost).
    """
    if not settings.SCIMGATE_AUDIT_ENABLED:
        return None
    scope = context.current_scope()
    if scope is None:
        with context.change_set_scope(client=change.client, source=ChangeSet.Source.SYSTEM) as own:
            return _record(own, change)
    return _record(scope, change)


def _record(scope: context.ChangeSetScope, change: Change) -> ChangeRecord:
    change_set = scope.change_set
    first = change_set is None
    if first:
        change_set = change_set_build(**scope.change_set_arguments())
    resource = change.resource
    relations = getattr(resource, _RELATIONS_ATTR, None) or {}
    # Django clears the primary key of a deleted instance; pre_delete kept it.
    resource_id = relations.pop("id", None) or resource.pk
    before, after = record_snapshots(change, relations, resource_id=resource_id)
    document = change.after if change.after is not None else change.before or {}
    name = document.get("userName") or document.get("displayName") or ""
    record = ChangeRecord(
        change_set=change_set,
        action=change.action,
        resource_type=change.resource_type,
        resource_id=resource_id,
        resource_name=str(name)[:255],
        before=before,
        after=after,
        changed_attributes=sorted(change.changed_attributes),
        members_added=[member_json(ref) for ref in change.members_added],
        members_removed=[member_json(ref) for ref in change.members_removed],
    )
    record.search_text = record_search_text(record, change)
    if first:
        insert_together(change_set, record)
        scope.bind(change_set)
    else:
        record.save()
    return record


def insert_together(change_set: ChangeSet, record: ChangeRecord) -> None:
    """Insert a new change set and its first record: one statement on PostgreSQL (a
    data-modifying CTE), two elsewhere. Both hashes are computed first; the record's
    covers the change set's hash, not the id the database assigns (``hash_version`` 2)."""
    connection = connections[router.db_for_write(ChangeRecord)]
    if connection.vendor != "postgresql":
        change_set.save(using=connection.alias)
        record.change_set = change_set
        record.save(using=connection.alias)
        return
    set_texts = change_set.normalise_for_hash()
    record_texts = record.normalise_for_hash()
    change_set.content_hash = change_set.compute_hash(set_texts)
    record.content_hash = record.compute_hash(record_texts)
    set_columns, set_holders, set_values = insert_columns(connection, change_set, texts=set_texts)
    record_columns, record_holders, record_values = insert_columns(
        connection, record, skip="change_set_id", texts=record_texts
    )
    quote = connection.ops.quote_name
    # Names are the models' own, quoted; every value is a parameter.
    sql = (
        f"WITH cs AS (INSERT INTO {quote(ChangeSet._meta.db_table)} ({set_columns}) "  # noqa: S608
        f"VALUES ({set_holders}) RETURNING {quote('id')}) "
        f"INSERT INTO {quote(ChangeRecord._meta.db_table)} ({quote('change_set_id')}, {record_columns}) "
        f"VALUES ((SELECT {quote('id')} FROM cs), {record_holders}) "
        f"RETURNING {quote('id')}, {quote('change_set_id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*set_values, *record_values])
        record_id, change_set_id = cursor.fetchone()
    change_set.pk, record.pk = change_set_id, record_id
    record.change_set = change_set
    for row in (change_set, record):
        row._state.adding, row._state.db = False, connection.alias


def insert_columns(
    connection, row: Model, *, skip: str = "", texts: dict[str, str] | None = None
) -> tuple[str, str, list]:
    """The quoted columns of a PostgreSQL INSERT of ``row`` (all but its id and ``skip``),
    their placeholders and their values, prepared as Django prepares them; a JSON field
    whose canonical text ``texts`` holds is sent as that text, cast to ``jsonb``."""
    texts = texts or {}
    fields = [
        f for f in row._meta.concrete_fields if not f.primary_key and f.attname != skip
    ]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    holders = ", ".join("%s::jsonb" if f.attname in texts else "%s" for f in fields)
    values = [
        texts[f.attname] if f.attname in texts else f.get_db_prep_save(getattr(row, f.attname), connection)
        for f in fields
    ]
    return columns, holders, values


def record_snapshots(
    change: Change, relations: dict | None = None, *, resource_id=None
) -> tuple[dict | None, dict | None]:
    """A change record's before and after snapshots.

    A create keeps the whole resource it created, a delete everything a restore needs;
    an update keeps only the attributes it changed (``deltas``), so a change to one
    attribute of a large resource stays small.
    """
    resource = change.resource
    if change.action == "delete":
        return snapshot(resource, change.before, relations, resource_id=resource_id), None
    if change.before is None:
        return None, snapshot(resource, change.after)
    # The resource already carries its new version; the one replaced is one less.
    before = snapshot(resource, None, version=resource.version - 1)
    before.pop("lastModified")
    after = snapshot(resource, None)
    old, new = deltas.update_snapshots(change.before, change.after or {})
    return before | old, after | new


def member_json(ref: MemberRef) -> dict:
    """A membership delta entry as a change record stores it: value, type, display."""
    entry = {"value": str(ref.id), "type": "Group" if ref.is_group else "User"}
    if ref.display:
        entry["display"] = ref.display
    return entry


def snapshot(
    resource: Model,
    document: dict | None,
    relations: dict | None = None,
    *,
    version: int | None = None,
    resource_id=None,
) -> dict:
    """The resource as stored: id, meta, source client, writable document and (for deletes) relations."""
    data = {
        "id": str(resource_id or resource.pk),
        "created": isoformat(resource.created),
        "lastModified": isoformat(resource.last_modified),
        "version": resource.version if version is None else version,
        "source": str(resource.source_id) if resource.source_id else None,
        "document": document or {},
    }
    if relations:
        data.update(relations)
    return data


def capture_relations(sender, instance, **kwargs) -> None:
    """``pre_delete`` on directory User and Group: keep what a restore needs before CASCADE removes it.

    For a user: the groups it belongs to. For a group: every member and every
    group it belongs to. Stored on the instance; ``record_change`` reads it.
    """
    from provisioning.directory.models import Group, Membership

    member_of = [
        {"value": str(group_id), "display": group_name, "memberDisplay": display}
        for group_id, group_name, display in Membership.objects.filter(
            **({"user": instance} if sender.__name__ == "User" else {"member_group": instance})
        )
        .order_by("id")
        .values_list("group_id", "group__display_name", "display")
        .iterator(chunk_size=5000)
    ]
    relations: dict[str, Any] = {"id": instance.pk, "memberOf": member_of}
    if sender is Group:
        relations["members"] = [
            {
                "value": str(user_id or group_id),
                "type": "Group" if group_id else "User",
                **({"display": display} if display else {}),
            }
            for user_id, group_id, display in Membership.objects.filter(group=instance)
            .order_by("id")
            .values_list("user_id", "member_group_id", "display")
            .iterator(chunk_size=5000)
        ]
    setattr(instance, _RELATIONS_ATTR, relations)


def record_search_text(record: ChangeRecord, change: Change) -> str:
    """The text the audit search matches for a change record (synthetic loads write it too)."""
    parts = [record.resource_type, str(record.resource_id), record.resource_name]
    # The names of the attributes it changed, as an audit entry's search text has them.
    parts += sorted(change.changed_attributes)
    # Values never returned (registered extension attributes) are not searchable either.
    kind = record.resource_type
    before = mask_hidden(kind, change.before or {})
    after = mask_hidden(kind, change.after or {})
    if deltas.is_partial(record.after):
        # The values the update changed (of a list, the values added and removed).
        for kept in (record.before, record.after):
            flatten_values(mask_hidden(kind, kept["document"]), parts)
    else:
        for key in sorted(change.changed_attributes - {"members"}):
            name = key.rsplit(":", 1)[-1]
            for document in (before, after):
                urn = key.rsplit(":", 1)[0] if key.startswith("urn:") else None
                value = (document.get(urn) or {}).get(name) if urn else document.get(key)
                flatten_values(value, parts)
    if change.action in ("create", "delete"):
        flatten_values(after or before, parts)
    for ref in (*change.members_added, *change.members_removed):
        parts.append(str(ref.id))
        if ref.display:
            parts.append(ref.display)
    return search_text(parts)


def flatten_values(value: Any, out: list[str]) -> None:
    """Append every scalar in ``value`` (nested dicts and lists) to ``out`` as text."""
    if isinstance(value, dict):
        for item in value.values():
            flatten_values(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            flatten_values(item, out)
    elif value is not None and value != "":
        out.append(str(value))


def search_text(parts: Iterable[str]) -> str:
    """The ``search_text`` column of a change record or audit entry from its parts.

    Deduplicated, bounded: the column feeds a trigram index, not a document store.
    """
    seen = dict.fromkeys(p for p in parts if p)
    return " ".join(seen)[:20000]


def normalise_ip(value: str | None) -> str | None:
    """An IP address as stored (``ipaddress`` canonical form), or None when not an address."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None
