"""Reads over the audit trail: search and streamed export, for the console and the API.

Free text is ``ILIKE '%text%'`` over ``search_text``: on PostgreSQL a trigram
GIN index on ``UPPER(search_text)`` serves it (migration 0003: Django renders
``icontains`` as ``UPPER(col) LIKE UPPER(...)``), on SQLite it is a scan. Exports
iterate with ``.iterator(chunk_size=...)`` — a server-side cursor on
PostgreSQL — and yield lines, so memory stays constant for any row count.
"""

from __future__ import annotations

import csv
import heapq
import json
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Exists, OuterRef, Q, QuerySet

from provisioning.scim.resources import HIDDEN_VALUE, mask_hidden
from provisioning.scim.schema import RESOURCE_SCHEMAS, refresh_extensions

from .models import AuditEntry, ChangeRecord, ChangeSet, RequestLog

_ACTIONS = {"create": 0, "update": 1, "delete": 2, "access": 3}
_RESOURCE_MODELS = {"user": ("directory", "user"), "group": ("directory", "group")}


def _pk(value: Any) -> Any:
    return getattr(value, "pk", value)


def _content_type(resource_type: str) -> ContentType | None:
    """'User', 'Group' or an 'app_label.model' label (from Django's cache of content types)."""
    key = resource_type.lower()
    app_label, model = _RESOURCE_MODELS.get(key) or (key.split(".", 1) + [""])[:2]
    try:
        return ContentType.objects.get_by_natural_key(app_label, model)
    except ContentType.DoesNotExist:
        return None


def _time_range(queryset: QuerySet, field: str, since: datetime | None, until: datetime | None) -> QuerySet:
    if since is not None:
        queryset = queryset.filter(**{f"{field}__gte": since})
    if until is not None:
        queryset = queryset.filter(**{f"{field}__lt": until})
    return queryset


def audit_entries(
    *,
    actor=None,
    client=None,
    resource_type: str | None = None,
    resource_id: str | uuid.UUID | None = None,
    resource_name: str | None = None,
    action: str | int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    text: str | None = None,
    change_set=None,
    correlation_id: str | uuid.UUID | None = None,
) -> QuerySet[AuditEntry]:
    """Audit entries, newest first, filtered by any combination of the arguments.

    ``actor`` is an operator (or its id), ``client`` a ScimClient (or its id);
    ``resource_name`` matches userName/displayName (the entry's object name)
    case-insensitively; ``text`` searches the changed values.
    """
    queryset = AuditEntry.objects.select_related("content_type", "actor", "scim_client")
    if actor is not None:
        queryset = queryset.filter(actor_id=_pk(actor))
    if client is not None:
        queryset = queryset.filter(scim_client_id=_pk(client))
    if resource_type:
        queryset = queryset.filter(content_type=_content_type(resource_type))
    if resource_id is not None:
        queryset = queryset.filter(object_pk=str(resource_id))
    if resource_name:
        queryset = queryset.filter(object_repr__iexact=resource_name)
    if action is not None:
        queryset = queryset.filter(action=_ACTIONS.get(str(action).lower(), action))
    if change_set is not None:
        queryset = queryset.filter(change_set_id=_pk(change_set))
    if correlation_id is not None:
        queryset = queryset.filter(cid=str(correlation_id))
    if text:
        queryset = queryset.filter(search_text__icontains=text)
    return _time_range(queryset, "timestamp", since, until).order_by("-timestamp", "-id")


def change_records(
    *,
    resource_type: str | None = None,
    resource_id: str | uuid.UUID | None = None,
    resource_name: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    text: str | None = None,
) -> QuerySet[ChangeRecord]:
    """Change records (one per resource a change set touched), oldest first: a resource's history."""
    queryset = ChangeRecord.objects.all()
    if resource_type:
        queryset = queryset.filter(resource_type__iexact=resource_type)
    if resource_id is not None:
        queryset = queryset.filter(resource_id=resource_id)
    if resource_name:
        queryset = queryset.filter(resource_name__iexact=resource_name)
    if action:
        queryset = queryset.filter(action=action)
    if text:
        queryset = queryset.filter(search_text__icontains=text)
    return _time_range(queryset, "created_at", since, until).order_by("id")


def change_sets(
    *,
    operator=None,
    client=None,
    source: str | None = None,
    resource_type: str | None = None,
    resource_id: str | uuid.UUID | None = None,
    resource_name: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    text: str | None = None,
    correlation_id: str | uuid.UUID | None = None,
) -> QuerySet[ChangeSet]:
    """Change sets, newest first; resource, action and text filters match any of their records."""
    queryset = ChangeSet.objects.select_related("operator", "scim_client")
    if operator is not None:
        queryset = queryset.filter(operator_id=_pk(operator))
    if client is not None:
        queryset = queryset.filter(scim_client_id=_pk(client))
    if source:
        queryset = queryset.filter(source=source)
    if correlation_id is not None:
        queryset = queryset.filter(correlation_id=correlation_id)
    record_filters = dict(
        resource_type=resource_type,
        resource_id=resource_id,
        resource_name=resource_name,
        action=action,
        text=text,
    )
    if any(value is not None and value != "" for value in record_filters.values()):
        # EXISTS, not a join: a change set touching many matching resources appears once.
        records = change_records(**record_filters).filter(change_set=OuterRef("pk"))
        queryset = queryset.filter(Exists(records.order_by()))
    return _time_range(queryset, "created_at", since, until).order_by("-created_at", "-id")


def request_logs(
    *,
    client=None,
    status_class: int | str | None = None,
    status: int | None = None,
    method: str | None = None,
    path: str | None = None,
    token_prefix: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[RequestLog]:
    """Request-log rows, newest first. ``status_class``: 4 or "4xx"; ``path``: a substring."""
    queryset = RequestLog.objects.select_related("scim_client")
    if client is not None:
        queryset = queryset.filter(scim_client_id=_pk(client))
    if status_class is not None:
        hundreds = int(str(status_class)[0])
        queryset = queryset.filter(status__gte=hundreds * 100, status__lt=hundreds * 100 + 100)
    if status is not None:
        queryset = queryset.filter(status=status)
    if method:
        queryset = queryset.filter(method=method.upper())
    if path:
        queryset = queryset.filter(path__icontains=path)
    if token_prefix:
        queryset = queryset.filter(token_prefix=token_prefix)
    return _time_range(queryset, "timestamp", since, until).order_by("-timestamp", "-id")


# --- Export ------------------------------------------------------------------------

AUDIT_EXPORT_COLUMNS = [
    ("id", "id"),
    ("timestamp", "timestamp"),
    ("action", "action"),
    ("app_label", "content_type__app_label"),
    ("model", "content_type__model"),
    ("object_pk", "object_pk"),
    ("object_repr", "object_repr"),
    ("actor", "actor__username"),
    ("scim_client", "scim_client__name"),
    ("scim_client_id", "scim_client_id"),
    ("change_set_id", "change_set_id"),
    ("correlation_id", "cid"),
    ("remote_addr", "remote_addr"),
    ("changes", "changes"),
    ("content_hash", "content_hash"),
]
CHANGE_SET_EXPORT_COLUMNS = [
    ("id", "id"),
    ("created_at", "created_at"),
    ("source", "source"),
    ("actor", "actor_repr"),
    ("operator_id", "operator_id"),
    ("scim_client_id", "scim_client_id"),
    ("correlation_id", "correlation_id"),
    ("remote_addr", "remote_addr"),
    ("request", "request"),
    ("content_hash", "content_hash"),
]
REQUEST_LOG_EXPORT_COLUMNS = [
    ("id", "id"),
    ("timestamp", "timestamp"),
    ("correlation_id", "correlation_id"),
    ("scim_client_id", "scim_client_id"),
    ("token_prefix", "token_prefix"),
    ("method", "method"),
    ("path", "path"),
    ("query", "query"),
    ("status", "status"),
    ("latency_ms", "latency_ms"),
    ("remote_addr", "remote_addr"),
    ("request_body", "request_body"),
    ("request_size", "request_size"),
    ("response_body", "response_body"),
    ("response_size", "response_size"),
]
EXPORT_COLUMNS = {
    AuditEntry: AUDIT_EXPORT_COLUMNS,
    ChangeSet: CHANGE_SET_EXPORT_COLUMNS,
    RequestLog: REQUEST_LOG_EXPORT_COLUMNS,
}


def _rows(queryset: QuerySet, columns: list[tuple[str, str]], chunk_size: int) -> Iterator[tuple]:
    # values_list: no model instances; iterator: a server-side cursor on PostgreSQL.
    return queryset.values_list(*[path for _name, path in columns]).iterator(chunk_size=chunk_size)


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True)
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


class _Line:
    """A file-like object that hands back what csv.writer writes, one line at a time."""

    def write(self, value: str) -> str:
        return value


def export_csv(queryset: QuerySet, *, chunk_size: int = 2000) -> Iterator[str]:
    """CSV lines (header first) for a filtered audit entry, change set or request-log queryset.

    Ready for ``StreamingHttpResponse(export_csv(qs), content_type="text/csv")``.
    """
    columns = EXPORT_COLUMNS[queryset.model]
    writer = csv.writer(_Line())
    yield writer.writerow([name for name, _path in columns])
    for row in _rows(queryset, columns, chunk_size):
        yield writer.writerow([_defuse(_cell(value)) for value in row])


def export_jsonl(queryset: QuerySet, *, chunk_size: int = 2000) -> Iterator[str]:
    """JSON Lines, one object per row, for the same querysets as ``export_csv``."""
    columns = EXPORT_COLUMNS[queryset.model]
    names = [name for name, _path in columns]
    for row in _rows(queryset, columns, chunk_size):
        yield json.dumps(dict(zip(names, row, strict=True)), cls=DjangoJSONEncoder) + "\n"


# OWASP "CSV Injection": a spreadsheet may read a cell starting with one of these as a
# formula. Tab and carriage return are on the list because spreadsheets drop them on
# import and read what follows; the full-width forms because some locales fold them.
_FORMULA_LEADS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")


def _first_visible(value: str) -> str:
    """The first character an import that trims blanks would see: whitespace (Unicode's
    too), control and format characters (zero-width space, byte-order mark) skipped."""
    for char in value:
        if not char.isspace() and unicodedata.category(char) not in ("Cc", "Cf"):
            return char
    return ""


def _defuse(value: Any) -> Any:
    """Text that a spreadsheet could take for a formula gets a leading ``'`` (OWASP's
    advice), so IdP-sent text is shown, never evaluated: text starting with ``= + - @``,
    tab, carriage return or line feed, or with one of ``= + - @`` after leading blanks.
    Other values are exported as they are."""
    if not isinstance(value, str) or not value:
        return value
    if value[0] in _FORMULA_LEADS or _first_visible(value) in _FORMULA_LEADS:
        return "'" + value
    return value


# --- The audit log: entries and change records, one timeline ------------------------

ENTRY, RECORD = "entry", "change_record"
# Order of rows written in the same millisecond: entries, then records, then by id.
_RANK = {ENTRY: 0, RECORD: 1}
_PREFIX = {ENTRY: "e", RECORD: "r"}
_RECORD_ACTIONS = {"create": ["create"], "update": ["replace", "patch"], "delete": ["delete"]}
# A change record's action as the log shows it, in auditlog's codes.
RECORD_ACTION_CODES = {"create": 0, "replace": 1, "patch": 1, "delete": 2}
_DIRECTORY_TYPES = {"user": "User", "group": "Group", "directory.user": "User", "directory.group": "Group"}
_MEMBERSHIP = "directory.membership"


@dataclass(frozen=True)
class LogRow:
    """One row of the audit log: an auditlog entry or a directory change record."""

    kind: str
    id: int
    timestamp: datetime
    entry: AuditEntry | None = None
    record: ChangeRecord | None = None

    @property
    def key(self) -> str:
        """The row's cursor: ``e<id>`` for an entry, ``r<id>`` for a change record."""
        return f"{_PREFIX[self.kind]}{self.id}"

    @property
    def order(self) -> tuple:
        return (self.timestamp, _RANK[self.kind], self.id)


@dataclass(frozen=True)
class LogPage:
    items: list[LogRow]
    next_after: str | None = None
    previous_before: str | None = None


def _row(item: AuditEntry | ChangeRecord) -> LogRow:
    if isinstance(item, AuditEntry):
        return LogRow(ENTRY, item.pk, item.timestamp, entry=item)
    return LogRow(RECORD, item.pk, item.created_at, record=item)


def parse_log_cursor(value: str | None) -> tuple[str, int] | None:
    """``("entry", 12)`` from ``e12``; None for anything else."""
    value = (value or "").strip()
    kinds = {prefix: kind for kind, prefix in _PREFIX.items()}
    if len(value) < 2 or value[0] not in kinds or not value[1:].isdecimal() or len(value) > 19:
        return None
    return kinds[value[0]], int(value[1:])


@dataclass
class AuditLog:
    """The audit log under a filter: auditlog entries (configuration, operators,
    decisions) and change records (the directory), newest first, as one timeline.

    Each side is read with its own indexes, ordered and limited in the database;
    a page merges at most ``size + 1`` rows of each.
    """

    entries: QuerySet[AuditEntry] | None
    records: QuerySet[ChangeRecord] | None

    def _arms(self) -> list[tuple[str, QuerySet, str]]:
        arms = []
        if self.entries is not None:
            arms.append((ENTRY, self.entries, "timestamp"))
        if self.records is not None:
            arms.append((RECORD, self.records, "created_at"))
        return arms

    def _cursor(self, value: str | None) -> tuple | None:
        parsed = parse_log_cursor(value)
        if parsed is None:
            return None
        kind, pk = parsed
        model, field = (AuditEntry, "timestamp") if kind == ENTRY else (ChangeRecord, "created_at")
        at = model.objects.filter(pk=pk).values_list(field, flat=True).first()
        return None if at is None else (at, _RANK[kind], pk)

    @staticmethod
    def _seek(kind: str, field: str, cursor: tuple, *, older: bool) -> Q:
        """Rows of one side strictly older (or newer) than ``cursor`` in (time, kind, id)."""
        at, rank, pk = cursor
        mine = _RANK[kind]
        if older:
            same = Q(pk__lt=pk) if mine == rank else Q() if mine < rank else Q(pk__in=[])
            return Q(**{f"{field}__lte": at}) & (Q(**{f"{field}__lt": at}) | (Q(**{field: at}) & same))
        same = Q(pk__gt=pk) if mine == rank else Q() if mine > rank else Q(pk__in=[])
        return Q(**{f"{field}__gte": at}) & (Q(**{f"{field}__gt": at}) | (Q(**{field: at}) & same))

    def _side(self, kind: str, queryset: QuerySet, field: str, cursor: tuple | None, *, older: bool, size: int):
        if cursor is not None:
            queryset = queryset.filter(self._seek(kind, field, cursor, older=older))
        order = [f"-{field}", "-pk"] if older else [field, "pk"]
        return [_row(item) for item in queryset.order_by(*order)[: size + 1]]

    def page(self, *, after: str | None = None, before: str | None = None, size: int = 50) -> LogPage:
        """One page, newest first, after (older than) or before (newer than) a row's cursor.
        A cursor whose row has gone restarts at the first page."""
        cursor = self._cursor(after if after else before)
        backwards = cursor is not None and not after
        older = not backwards
        rows: list[LogRow] = []
        for kind, queryset, field in self._arms():
            rows += self._side(kind, queryset, field, cursor, older=older, size=size)
        rows.sort(key=lambda row: row.order, reverse=older)
        more = len(rows) > size
        rows = rows[:size]
        if backwards:
            if not more:
                return self.page(size=size)
            rows.reverse()
            return LogPage(rows, next_after=rows[-1].key, previous_before=rows[0].key)
        return LogPage(
            rows,
            next_after=rows[-1].key if more and rows else None,
            previous_before=rows[0].key if cursor is not None and rows else None,
        )

    def count(self, cap: int) -> tuple[int, bool]:
        """``(count, capped)``: each side stops counting past ``cap``."""
        total = sum(
            queryset.select_related(None).order_by()[: cap + 1].count()
            for _kind, queryset, _field in self._arms()
        )
        return min(total, cap), total > cap

    def knows(self, cursor: str | None) -> bool:
        """Whether ``cursor`` names a row of the log (under any filter)."""
        return self._cursor(cursor) is not None

    def rows(self, *, chunk_size: int = 2000, newer_than: str | None = None) -> Iterator[LogRow]:
        """Every row, newest first, streamed (server-side cursors on PostgreSQL).

        With ``newer_than`` (a row's cursor): only the rows after it in the pages'
        (time, kind, id) order, oldest first, so that a reader who keeps the cursor of
        the last row it read asks next for exactly the rows written since. An unknown
        cursor is a ``ValueError`` (check with ``knows``): starting over would repeat rows.
        """
        if newer_than is None:
            streams = [
                (_row(item) for item in queryset.order_by(f"-{field}", "-pk").iterator(chunk_size=chunk_size))
                for _kind, queryset, field in self._arms()
            ]
            return heapq.merge(*streams, key=lambda row: row.order, reverse=True)
        cursor = self._cursor(newer_than)
        if cursor is None:
            raise ValueError(f"No row of the audit log has the cursor {newer_than!r}.")
        streams = [
            (
                _row(item)
                for item in queryset.filter(self._seek(kind, field, cursor, older=False))
                .order_by(field, "pk")
                .iterator(chunk_size=chunk_size)
            )
            for kind, queryset, field in self._arms()
        ]
        return heapq.merge(*streams, key=lambda row: row.order)


def audit_log(**filters: Any) -> AuditLog:
    """The audit log (``AuditLog``) filtered by any combination of ``audit_entries``'s
    arguments (actor, client, resource_type, resource_id, resource_name, action, since,
    until, text, change_set, correlation_id).

    Directory changes are their change records: ``actor``, ``client`` and the
    correlation id are their change set's; ``action`` ``update`` is a replace or a
    patch; ``resource_type`` ``directory.membership`` is a group change that added
    or removed members. Entries are ``audit_entries``'s.
    """
    return AuditLog(audit_entries(**filters).order_by(), _log_records(**filters))


# What a page of the log shows of a change record (the snapshots can be large: an export
# reads them, a page does not).
_LISTED_RECORD_FIELDS = (
    "id",
    "created_at",
    "action",
    "resource_type",
    "resource_id",
    "resource_name",
    "changed_attributes",
    "change_set__id",
    "change_set__correlation_id",
    "change_set__remote_addr",
    "change_set__operator__id",
    "change_set__operator__username",
    "change_set__scim_client__id",
    "change_set__scim_client__name",
)


def _log_records(
    *,
    actor=None,
    client=None,
    resource_type: str | None = None,
    resource_id: str | uuid.UUID | None = None,
    resource_name: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    text: str | None = None,
    change_set=None,
    correlation_id: str | uuid.UUID | None = None,
) -> QuerySet[ChangeRecord] | None:
    queryset = ChangeRecord.objects.select_related(
        "change_set", "change_set__operator", "change_set__scim_client"
    ).only(*_LISTED_RECORD_FIELDS)
    if resource_type:
        key = resource_type.lower()
        if key == _MEMBERSHIP:
            queryset = queryset.filter(resource_type="Group").exclude(members_added=[], members_removed=[])
        elif key in _DIRECTORY_TYPES:
            queryset = queryset.filter(resource_type=_DIRECTORY_TYPES[key])
        else:
            return None
    if action:
        actions = _RECORD_ACTIONS.get(str(action).lower())
        if actions is None:
            return None
        queryset = queryset.filter(action__in=actions) if len(actions) > 1 else queryset.filter(action=actions[0])
    if resource_id is not None:
        try:
            queryset = queryset.filter(resource_id=uuid.UUID(str(resource_id)))
        except ValueError:
            return None
    if actor is not None:
        queryset = queryset.filter(change_set__operator_id=_pk(actor))
    if client is not None:
        queryset = queryset.filter(change_set__scim_client_id=_pk(client))
    if resource_name:
        queryset = queryset.filter(resource_name__iexact=resource_name)
    if change_set is not None:
        queryset = queryset.filter(change_set_id=_pk(change_set))
    if correlation_id is not None:
        queryset = queryset.filter(change_set__correlation_id=correlation_id)
    if text:
        queryset = queryset.filter(search_text__icontains=text)
    return _time_range(queryset, "created_at", since, until)


def record_changes(record: ChangeRecord) -> dict:
    """A change record's ``{attribute: [old, new]}`` as an audit entry has it, with
    ``members: {added, removed}`` when members changed. Values never returned are masked
    (a change to one shows as a change, not as what it was), and so are the values of an
    extension schema no longer registered: whether they were ever returned is unknown."""
    kind = record.resource_type
    old = (record.before or {}).get("document") or {}
    new = (record.after or {}).get("document") or {}
    shown_old, shown_new = _shown(kind, old), _shown(kind, new)
    changes: dict[str, Any] = {
        key: [shown_old.get(key), shown_new.get(key)]
        for key in sorted(old.keys() | new.keys())
        if key != "schemas" and old.get(key) != new.get(key)
    }
    if record.members_added or record.members_removed:
        changes["members"] = {"added": record.members_added, "removed": record.members_removed}
    return changes


def _shown(resource_type: str, document: dict) -> dict:
    """``document`` as the audit log may show it (see ``record_changes``)."""
    document = mask_hidden(resource_type, document)
    schema = RESOURCE_SCHEMAS.get(resource_type)
    known = set(schema.extensions) if schema is not None else set()
    return {
        key: value if not key.startswith("urn:") or key in known else _hidden(value)
        for key, value in document.items()
    }


def _hidden(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: HIDDEN_VALUE for name in value}
    return HIDDEN_VALUE


# ``cursor`` is the row's place in the log (``e12``, ``r34``): the one to ask newer rows after.
LOG_EXPORT_COLUMNS = [name for name, _path in AUDIT_EXPORT_COLUMNS] + ["kind", "cursor"]


def _entry_cells(entry: AuditEntry) -> list:
    return [
        entry.pk,
        entry.timestamp,
        entry.action,
        entry.content_type.app_label,
        entry.content_type.model,
        entry.object_pk,
        entry.object_repr,
        entry.actor.get_username() if entry.actor is not None else None,
        entry.scim_client.name if entry.scim_client is not None else None,
        entry.scim_client_id,
        entry.change_set_id,
        entry.cid,
        entry.remote_addr,
        entry.changes,
        entry.content_hash,
        ENTRY,
        f"{_PREFIX[ENTRY]}{entry.pk}",
    ]


def _record_cells(record: ChangeRecord) -> list:
    change_set = record.change_set
    return [
        record.pk,
        record.created_at,
        RECORD_ACTION_CODES.get(record.action, 1),
        "directory",
        record.resource_type.lower(),
        str(record.resource_id),
        record.resource_name,
        change_set.operator.get_username() if change_set.operator is not None else None,
        change_set.scim_client.name if change_set.scim_client is not None else None,
        change_set.scim_client_id,
        record.change_set_id,
        str(change_set.correlation_id),
        change_set.remote_addr,
        record_changes(record),
        record.content_hash,
        RECORD,
        f"{_PREFIX[RECORD]}{record.pk}",
    ]


def _log_cells(log: AuditLog, chunk_size: int, newer_than: str | None = None) -> Iterator[list]:
    refresh_extensions()  # which values are never returned, as registered now
    # The export needs the snapshots the listing leaves out.
    full = AuditLog(
        log.entries,
        None
        if log.records is None
        else log.records.only(
            *_LISTED_RECORD_FIELDS, "before", "after", "members_added", "members_removed", "content_hash"
        ),
    )
    for row in full.rows(chunk_size=chunk_size, newer_than=newer_than):
        yield _entry_cells(row.entry) if row.entry is not None else _record_cells(row.record)


def export_log_csv(
    log: AuditLog, *, chunk_size: int = 2000, newer_than: str | None = None
) -> Iterator[str]:
    """The audit log as CSV lines (header first), newest first, in constant memory; with
    ``newer_than`` the rows after that cursor, oldest first (``AuditLog.rows``)."""
    writer = csv.writer(_Line())
    yield writer.writerow(LOG_EXPORT_COLUMNS)
    for cells in _log_cells(log, chunk_size, newer_than):
        yield writer.writerow([_defuse(_cell(value)) for value in cells])


def export_log_jsonl(
    log: AuditLog, *, chunk_size: int = 2000, newer_than: str | None = None
) -> Iterator[str]:
    """The audit log as JSON Lines, one object per row, newest first; with ``newer_than``
    the rows after that cursor, oldest first."""
    for cells in _log_cells(log, chunk_size, newer_than):
        yield json.dumps(dict(zip(LOG_EXPORT_COLUMNS, cells, strict=True)), cls=DjangoJSONEncoder) + "\n"
