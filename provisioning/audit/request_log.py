"""The SCIM request log: one row per request, written so that it never fails or slows the
request, and pruned after the retention period (the audit trail itself is kept).

Whatever a request carried, its row can be written: text no column of every database
can hold (NUL, which PostgreSQL refuses; lone surrogates, which are not UTF-8) is stored
as backslash escapes and the row flagged ``escaped``; numbers beyond a column (an
announced Content-Length of 10**20) are stored as the column's limit.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DataError, IntegrityError, OperationalError, models, transaction
from django.db.backends.base.operations import BaseDatabaseOperations
from django.utils import timezone

from .change_sets import normalise_ip
from .models import RequestLog

logger = logging.getLogger(__name__)


# Characters no text column of every database can hold.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def storable_text(text: str) -> tuple[str, bool]:
    """``text`` with NUL and lone surrogates as backslash escapes (``\\x00``, ``\\ud800``),
    and whether there were any."""
    if "\x00" not in text:
        # UTF-8 refuses every surrogate code point, which is what the expression matches
        # besides NUL: a body is checked at memory speed (a 64 KiB page in microseconds,
        # where the expression took a quarter of a millisecond).
        try:
            text.encode()
        except UnicodeEncodeError:
            pass
        else:
            return text, False
    return _UNSTORABLE.sub(_escape, text), True


def _integer_range(field: models.Field) -> tuple[int, int]:
    # The portable ranges (PostgreSQL's): SQLite would take more, and rows should read
    # the same on every database.
    return BaseDatabaseOperations.integer_field_ranges[field.get_internal_type()]


def _storable(fields: dict[str, Any]) -> dict[str, Any]:
    """The row's values as every database stores them: text escaped and cut to its
    column, integers clamped to theirs, the address normalised; ``escaped`` set when any
    text was escaped here or before (by the caller, for a body that was not UTF-8)."""
    values = dict(fields)
    escaped = bool(values.get("escaped"))
    for field in _REQUEST_LOG_FIELDS:
        value = values.get(field.attname)
        if isinstance(value, str) and isinstance(field, models.CharField | models.TextField):
            value, changed = storable_text(value)
            escaped |= changed
            if field.max_length is not None:
                value = value[: field.max_length]
        elif isinstance(field, models.IntegerField) and isinstance(value, int):
            low, high = _integer_range(field)
            value = min(max(value, low), high)
        else:
            continue
        values[field.attname] = value
    values["remote_addr"] = normalise_ip(values.get("remote_addr"))
    values["escaped"] = escaped
    return values


def request_log_write(**fields: Any) -> RequestLog | None:
    """Insert one request-log row. Never raises: logging must not fail a request.

    On PostgreSQL the row is committed asynchronously (``synchronous_commit = off`` for
    its own transaction only): the request waits for no disk flush for a debugging aid.
    A database crash can lose the last fraction of a second of request-log rows, never
    corrupt them; the audit trail commits with its change, synchronously, as before.

    Should the database still refuse the row's content, it is written again without its
    bodies and query, so that the request itself is never missing from the log.
    """
    try:
        row = RequestLog(**_storable(fields))
    except Exception:  # noqa: BLE001 - any failure is logged and swallowed
        logger.exception("Could not write the SCIM request log")
        return None
    try:
        _insert(row)
        return row
    except (DataError, IntegrityError, ValueError, OverflowError):
        logger.exception("Could not write the SCIM request log as sent; writing it without bodies")
    except Exception:  # noqa: BLE001 - any failure is logged and swallowed
        logger.exception("Could not write the SCIM request log")
        return None
    try:
        row = RequestLog(
            **_storable(
                {
                    **fields,
                    "query": "",
                    "request_body": "",
                    "response_body": "",
                    "request_truncated": bool(fields.get("request_body")),
                    "response_truncated": bool(fields.get("response_body")),
                    "escaped": True,
                }
            )
        )
        _insert(row)
        return row
    except Exception:  # noqa: BLE001 - any failure is logged and swallowed
        logger.exception("Could not write the SCIM request log")
        return None


def _insert(row: RequestLog) -> None:
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        # Inside a transaction (a test's, a command's) a refused row must not abort it.
        with transaction.atomic():
            _insert_now(connection, row)
    else:
        _insert_now(connection, row)


def _insert_now(connection, row: RequestLog) -> None:
    if connection.vendor == "postgresql":
        _insert_asynchronously(connection, row)
    else:
        _insert_retrying_locks(row)


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
    """The statement of ``_insert_asynchronously``, built once per backend.

    One statement: ``set_config('synchronous_commit', 'off', true)`` is evaluated in its
    FROM clause, before the row is inserted and the statement's transaction (its own in
    autocommit) commits. Being one statement, it is prepared like any other (server-side
    binding) instead of a client quoting every body into the SQL text. Each value is a
    parameter cast to its column's type (text for text columns, so that an overlong value
    is refused, not cut, by the column).
    """
    if connection.vendor not in _request_log_inserts:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in _REQUEST_LOG_FIELDS)
        values = ", ".join(
            "%s::text"
            if isinstance(f, models.CharField | models.TextField)
            else f"%s::{f.db_type(connection)}"
            for f in _REQUEST_LOG_FIELDS
        )
        table, pk = quote(RequestLog._meta.db_table), quote(RequestLog._meta.pk.column)
        # Table, column names and types come from the model; every value is a parameter.
        _request_log_inserts[connection.vendor] = (
            f"INSERT INTO {table} ({columns}) SELECT {values} "  # noqa: S608
            "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous "
            f"RETURNING {pk}"
        )
    return _request_log_inserts[connection.vendor]


def _insert_asynchronously(connection, row: RequestLog) -> None:
    """One round trip, one statement (see ``_request_log_insert``); inside an atomic block,
    part of it. Values are parameters, adapted by each field."""
    params = [f.get_db_prep_save(f.pre_save(row, add=True), connection) for f in _REQUEST_LOG_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(_request_log_insert(connection), params)
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
