"""The SCIM request log: one row per request, written so that it never fails or slows the
request, and pruned after the retention period (the audit trail itself is kept).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone

from .change_sets import normalise_ip
from .models import RequestLog

logger = logging.getLogger(__name__)


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
