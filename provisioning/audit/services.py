"""Functions that write the audit trail: change sets, change records, entry stamping, seals, retention.

Everything here runs inside the caller's transaction, so the trail commits
or rolls back with the change it describes.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from auditlog.diff import model_instance_diff
from auditlog.receivers import check_disable, log_update
from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Model
from django.utils import timezone

from provisioning.scim.resources import copy_json, isoformat

from . import context
from .models import AuditEntry, AuditSeal, ChangeRecord, ChangeSet, RequestLog, Sealed
from .redaction import is_secret_key

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from provisioning.access.models import ScimClient
    from provisioning.directory.changes import Change, MemberRef

logger = logging.getLogger(__name__)

# Attributes of a relation snapshot, stashed on a resource about to be deleted.
_RELATIONS_ATTR = "_audit_relations"


# --- Change sets and records ------------------------------------------------------


def change_set_create(
    *,
    correlation_id: uuid.UUID,
    source: str,
    operator: AbstractBaseUser | None = None,
    client: ScimClient | None = None,
    request: dict | None = None,
    remote_addr: str | None = None,
) -> ChangeSet:
    """Insert a change set. Called by ``ChangeSetScope`` at a unit's first recorded change."""
    if operator is not None:
        actor_repr = operator.get_username()
    elif client is not None:
        actor_repr = client.name
    else:
        actor_repr = ""
    return ChangeSet.objects.create(
        correlation_id=correlation_id,
        source=source,
        operator=operator,
        scim_client=client,
        actor_repr=actor_repr[:255],
        remote_addr=normalise_ip(remote_addr),
        request=request,
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
    change_set = scope.ensure_change_set()
    resource = change.resource
    relations = getattr(resource, _RELATIONS_ATTR, None) or {}
    # Django clears the primary key of a deleted instance; pre_delete kept it.
    resource_id = relations.pop("id", None) or resource.pk
    if change.action == "delete":
        before = snapshot(resource, change.before, relations, resource_id=resource_id)
        after = None
    else:
        before = None
        if change.before is not None:
            # The resource already carries its new version; the one replaced is one less.
            before = snapshot(resource, change.before, version=resource.version - 1)
            before.pop("lastModified")
        after = snapshot(resource, change.after)
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
    record.search_text = _record_search_text(record, change)
    record.save()
    return record


def member_json(ref: MemberRef) -> dict:
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


# The row as a directory service locked it, before the service changed it (see below).
_LOADED_ATTR = "_audit_loaded"


def remember_loaded(resource: Model) -> None:
    """Keep a copy of a directory row as it was just read (under its row lock), so the
    audit entry of its update is diffed against it instead of a second read of the row."""
    loaded = copy.copy(resource)
    loaded._state = copy.copy(resource._state)
    loaded.attributes = copy_json(resource.attributes)
    resource.__dict__[_LOADED_ATTR] = loaded


@check_disable
def log_directory_update(sender, instance, **kwargs) -> None:
    """``pre_save`` on directory User and Group in place of django-auditlog's ``log_update``:
    the same entry (auditlog's diff and manager), diffed against the row the service
    locked (``remember_loaded``) rather than re-read from the database; without such a
    copy (any other code path), auditlog's own receiver runs."""
    loaded = instance.__dict__.pop(_LOADED_ATTR, None)
    if loaded is None or instance._state.adding or instance.pk is None:
        log_update(sender, instance, **kwargs)
        return
    changes = model_instance_diff(
        loaded,
        instance,
        fields_to_check=kwargs.get("update_fields"),
        use_json_for_changes=settings.AUDITLOG_STORE_JSON_CHANGES,
    )
    if changes:
        AuditEntry.objects.log_create(instance, action=AuditEntry.Action.UPDATE, changes=changes)


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


def _flatten(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _flatten(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _flatten(item, out)
    elif value is not None and value != "":
        out.append(str(value))


def _record_search_text(record: ChangeRecord, change: Change) -> str:
    parts = [record.resource_type, str(record.resource_id), record.resource_name]
    before, after = change.before or {}, change.after or {}
    for key in sorted(change.changed_attributes - {"members"}):
        name = key.rsplit(":", 1)[-1]
        for document in (before, after):
            urn = key.rsplit(":", 1)[0] if key.startswith("urn:") else None
            _flatten((document.get(urn) or {}).get(name) if urn else document.get(key), parts)
    if change.action in ("create", "delete"):
        _flatten(after or before, parts)
    for ref in (*change.members_added, *change.members_removed):
        parts.append(str(ref.id))
        if ref.display:
            parts.append(ref.display)
    return _search_text(parts)


def _search_text(parts: Iterable[str]) -> str:
    # Deduplicated, bounded: the column feeds a trigram index, not a document store.
    seen = dict.fromkeys(p for p in parts if p)
    return " ".join(seen)[:20000]


# --- Audit entries (django-auditlog) -------------------------------------------------


def stamp_audit_entry(sender, instance: AuditEntry, **kwargs) -> None:
    """``pre_save`` on AuditEntry: attribution, change set, searchable text; secrets dropped.

    The actor is the operator or the SCIM client of the current scope; the
    change set is created lazily here when the first entry of a unit is written.
    """
    if not instance._state.adding:
        return
    attribution = context.actor_for_entry()
    if instance.actor_id is None and attribution.get("actor") is not None:
        instance.actor = attribution["actor"]
        instance.actor_email = getattr(attribution["actor"], "email", None) or None
    if instance.scim_client_id is None and attribution.get("scim_client") is not None:
        instance.scim_client = attribution["scim_client"]
    # Only the server's correlation id: auditlog could otherwise read a request header.
    instance.cid = attribution.get("cid")
    if instance.remote_addr is None:
        instance.remote_addr = normalise_ip(attribution.get("remote_addr"))
    scope = context.current_scope()
    if scope is not None and instance.change_set_id is None:
        instance.change_set = scope.ensure_change_set()
    if isinstance(instance.changes, dict):
        instance.changes = {k: v for k, v in instance.changes.items() if not is_secret_key(k)}
    instance.serialized_data = None
    parts = [instance.object_repr, str(instance.object_pk)]
    for key, values in (instance.changes or {}).items():
        parts.append(key)
        _flatten(values, parts)
    instance.search_text = _search_text(parts)


def normalise_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


# --- Sealing and verification ------------------------------------------------------

SEALED_STREAMS: dict[str, type[Sealed]] = {
    AuditSeal.Stream.ENTRIES: AuditEntry,
    AuditSeal.Stream.CHANGE_SETS: ChangeSet,
    AuditSeal.Stream.RECORDS: ChangeRecord,
}
GENESIS = "0" * 64


def batch_hash(previous: str, first_id: int, last_id: int, row_hashes: list[str]) -> str:
    """H(previous batch hash, id range, count, ordered row hashes)."""
    digest = hashlib.sha256()
    digest.update(f"{previous}|{first_id}|{last_id}|{len(row_hashes)}|".encode())
    for row_hash in row_hashes:
        digest.update(row_hash.encode())
        digest.update(b",")
    return digest.hexdigest()


def _time_field(model: type[Sealed]) -> str:
    return "timestamp" if model is AuditEntry else "created_at"


def audit_seal(*, batch_size: int = 5000, grace: timedelta | None = None) -> list[AuditSeal]:
    """Seal every row written more than ``grace`` ago into chained batches, per stream.

    Rows are hashed when written, so writers never wait on the seal; sealing
    only reads them. The grace period keeps rows of still-open transactions
    (which may hold lower ids) out of a batch.
    """
    if grace is None:
        grace = timedelta(seconds=settings.SCIMGATE_AUDIT_SEAL_GRACE_SECONDS)
    cutoff = timezone.now() - grace
    sealed: list[AuditSeal] = []
    for stream, model in SEALED_STREAMS.items():
        while True:
            try:
                seal = _seal_next_batch(stream, model, batch_size, cutoff)
            except IntegrityError:
                logger.info("Another sealer sealed %s first", stream)
                break
            if seal is None:
                break
            sealed.append(seal)
            # An external copy of each hash makes truncating the chain detectable too.
            logger.info("Sealed %s rows %s..%s: %s", stream, seal.first_id, seal.last_id, seal.batch_hash)
    return sealed


@transaction.atomic
def _seal_next_batch(stream: str, model: type[Sealed], batch_size: int, cutoff) -> AuditSeal | None:
    last = AuditSeal.objects.select_for_update().filter(stream=stream).order_by("-last_id").first()
    after_id = last.last_id if last else 0
    rows = list(
        model.objects.filter(pk__gt=after_id, **{f"{_time_field(model)}__lte": cutoff})
        .order_by("pk")
        .values_list("pk", "content_hash")[:batch_size]
    )
    if not rows:
        return None
    previous = last.batch_hash if last else GENESIS
    hashes = [row_hash for _pk, row_hash in rows]
    first_id, last_id = rows[0][0], rows[-1][0]
    return AuditSeal.objects.create(
        stream=stream,
        first_id=first_id,
        last_id=last_id,
        row_count=len(rows),
        previous_hash=previous,
        batch_hash=batch_hash(previous, first_id, last_id, hashes),
    )


@dataclass
class VerifyReport:
    checked: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def audit_verify(*, chunk_size: int = 2000) -> VerifyReport:
    """Recompute every row hash and every sealed batch; report modified, deleted or inserted rows.

    Reads in id order with a server-side cursor on PostgreSQL: memory stays
    constant however long the log is.
    """
    report = VerifyReport()
    for stream, model in SEALED_STREAMS.items():
        report.checked[stream] = _verify_stream(stream, model, report, chunk_size)
    return report


def _verify_stream(stream: str, model: type[Sealed], report: VerifyReport, chunk_size: int) -> int:
    seals = list(AuditSeal.objects.filter(stream=stream).order_by("last_id"))
    rows = model.objects.order_by("pk").iterator(chunk_size=chunk_size)
    previous, previous_last, checked = GENESIS, 0, 0
    pending = next(rows, None)
    for seal in seals:
        where = f"{stream} seal {seal.first_id}..{seal.last_id}"
        if seal.previous_hash != previous:
            report.problems.append(f"{where}: does not chain to the previous seal (seal altered or removed)")
        if seal.first_id <= previous_last:
            report.problems.append(f"{where}: overlaps the previous seal")
        hashes: list[str] = []
        while pending is not None and pending.pk <= seal.last_id:
            checked += 1
            if pending.pk < seal.first_id:
                report.problems.append(f"{stream} row {pending.pk}: inserted out of order before {where}")
            else:
                hashes.append(pending.content_hash)
            _check_row(stream, pending, report)
            pending = next(rows, None)
        if len(hashes) != seal.row_count:
            report.problems.append(
                f"{where}: {len(hashes)} rows present, {seal.row_count} sealed (rows deleted or inserted)"
            )
        if batch_hash(seal.previous_hash, seal.first_id, seal.last_id, hashes) != seal.batch_hash:
            report.problems.append(f"{where}: batch hash mismatch (rows changed, deleted or inserted)")
        previous, previous_last = seal.batch_hash, seal.last_id
    while pending is not None:  # written since the last seal: row hashes only
        checked += 1
        _check_row(stream, pending, report)
        pending = next(rows, None)
    return checked


def _check_row(stream: str, row: Sealed, report: VerifyReport) -> None:
    if row.compute_hash() != row.content_hash:
        report.problems.append(f"{stream} row {row.pk}: content modified (hash mismatch)")


# --- Request log -------------------------------------------------------------------


def request_log_write(**fields: Any) -> RequestLog | None:
    """Insert one request-log row. Never raises: logging must not fail a request.

    On PostgreSQL the row is committed asynchronously (``synchronous_commit = off`` for
    its own transaction only): the request waits for no disk flush for a debugging aid.
    A database crash can lose the last fraction of a second of request-log rows, never
    corrupt them; the audit trail commits with its change, synchronously, as before.
    """
    try:
        fields["remote_addr"] = normalise_ip(fields.get("remote_addr"))
        row = RequestLog(**fields)
        connection = transaction.get_connection()
        if connection.vendor == "postgresql":
            _insert_asynchronously(connection, row)
        else:
            _insert_retrying_locks(row)
        return row
    except Exception:  # noqa: BLE001 - any failure is logged and swallowed
        logger.exception("Could not write the SCIM request log")
        return None


def _insert_retrying_locks(row: RequestLog, attempts: int = 5) -> None:
    """SQLite: the row is written as the response closes, while the client's next request
    may already hold the write lock. The busy timeout waits for a file lock, but a
    shared-cache database (an in-memory one shared between threads) reports "table is
    locked" at once: retry that briefly."""
    for attempt in range(attempts):
        try:
            row.save(force_insert=True)
            return
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


_REQUEST_LOG_FIELDS = [f for f in RequestLog._meta.concrete_fields if not f.primary_key]
_request_log_inserts: dict[str, str] = {}


def _request_log_insert(connection) -> str:
    """The statement of ``_insert_asynchronously``, built once per backend."""
    if connection.vendor not in _request_log_inserts:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in _REQUEST_LOG_FIELDS)
        placeholders = ", ".join(["%s"] * len(_REQUEST_LOG_FIELDS))
        table, pk = quote(RequestLog._meta.db_table), quote(RequestLog._meta.pk.column)
        # Table and column names come from the model; every value is a parameter.
        insert = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING {pk}"  # noqa: S608
        _request_log_inserts[connection.vendor] = "SET LOCAL synchronous_commit TO OFF; " + insert
    return _request_log_inserts[connection.vendor]


def _insert_asynchronously(connection, row: RequestLog) -> None:
    """One round trip: ``SET LOCAL`` and the INSERT sent together run as one transaction
    (PostgreSQL's implicit transaction for a multi-statement query; inside an atomic
    block, as part of it). Values are parameters, adapted by each field."""
    params = [f.get_db_prep_save(f.pre_save(row, add=True), connection) for f in _REQUEST_LOG_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(_request_log_insert(connection), params)
        cursor.nextset()
        row.pk = cursor.fetchone()[0]
    row._state.adding = False
    row._state.db = connection.alias


def request_log_prune(*, older_than_days: int | None = None, batch_size: int = 5000) -> int:
    """Delete request-log rows older than the retention period, in batches. Returns rows deleted.

    The audit log and change sets are never pruned.
    """
    days = settings.REQUEST_LOG_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(
            RequestLog.objects.filter(timestamp__lt=cutoff).order_by("pk").values_list("pk", flat=True)[
                :batch_size
            ]
        )
        if not ids:
            return deleted
        deleted += RequestLog.objects.filter(pk__in=ids).delete()[0]
