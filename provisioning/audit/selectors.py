"""Reads over the audit trail: search and streamed export, for the console and the API.

Free text is ``ILIKE '%text%'`` over ``search_text``: on PostgreSQL a trigram
GIN index on ``UPPER(search_text)`` serves it (migration 0003: Django renders
``icontains`` as ``UPPER(col) LIKE UPPER(...)``), on SQLite it is a scan. Exports
iterate with ``.iterator(chunk_size=...)`` — a server-side cursor on
PostgreSQL — and yield lines, so memory stays constant for any row count.
"""

from __future__ import annotations

import csv
import json
import unicodedata
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Exists, OuterRef, QuerySet

from .models import AuditEntry, ChangeRecord, ChangeSet, RequestLog

_ACTIONS = {"create": 0, "update": 1, "delete": 2, "access": 3}
_RESOURCE_MODELS = {"user": ("directory", "user"), "group": ("directory", "group")}


def _pk(value: Any) -> Any:
    return getattr(value, "pk", value)


def _content_type(resource_type: str) -> ContentType | None:
    """'User', 'Group' or an 'app_label.model' label."""
    key = resource_type.lower()
    app_label, model = _RESOURCE_MODELS.get(key) or (key.split(".", 1) + [""])[:2]
    return ContentType.objects.filter(app_label=app_label, model=model).first()


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
