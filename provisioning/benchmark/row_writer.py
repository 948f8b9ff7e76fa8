"""Bulk writing for the synthetic load: ``COPY`` on PostgreSQL, ``bulk_create`` elsewhere,
with the big audit tables' secondary indexes dropped and rebuilt around the load.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connections, models
from django.db.models import Model

from provisioning.audit.models import AuditEntry, ChangeRecord, ChangeSet, RequestLog


class RowWriter:
    """Bulk inserts: ``COPY`` on PostgreSQL, ``bulk_create`` elsewhere. No signals, no hooks."""

    # Tables whose secondary indexes are rebuilt after the load rather than maintained per row.
    REINDEXED = (AuditEntry, ChangeSet, ChangeRecord, RequestLog)

    def __init__(self, using: str = "default"):
        self.connection = connections[using]
        self.postgres = self.connection.vendor == "postgresql"
        self._dropped: list[str] = []

    def reserve_ids(self, model: type[Model], count: int) -> int:
        """The first of ``count`` consecutive primary keys reserved for new rows.

        PostgreSQL: taken from the table's sequence (the loader runs on a quiet database,
        so nothing else draws from it meanwhile). Elsewhere: after the largest id.
        """
        table = model._meta.db_table
        with self.connection.cursor() as cursor:
            if self.postgres:
                cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [table])
                first = cursor.fetchone()[0]
                if count > 1:
                    cursor.execute(
                        "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, first + count - 1]
                    )
                return first
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608 - table name from the model
            return cursor.fetchone()[0] + 1

    def insert(self, model: type[Model], objects: list[Model], *, with_pk: bool = True) -> None:
        if not objects:
            return
        fields = [
            f
            for f in model._meta.concrete_fields
            if with_pk or not f.primary_key
        ]
        if not self.postgres:
            model.objects.bulk_create(objects, batch_size=500)
            return
        columns = ", ".join(self.connection.ops.quote_name(f.column) for f in fields)
        sql = f"COPY {self.connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN"
        attnames = [f.attname for f in fields]
        # psycopg adapts str, int, bool, float, UUID, datetime and None itself; JSON needs
        # the backend's adapter (Field.get_db_prep_save for every cell would double the cost).
        adapters = [
            (i, f.encoder)
            for i, f in enumerate(fields)
            if isinstance(f, models.JSONField)
        ]
        adapt_json = self.connection.ops.adapt_json_value
        with self.connection.cursor() as cursor, cursor.cursor.copy(sql) as copy_:
            for obj in objects:
                row = [getattr(obj, name) for name in attnames]
                for i, encoder in adapters:
                    if row[i] is not None:
                        row[i] = adapt_json(row[i], encoder)
                copy_.write_row(row)

    def relax_constraints(self) -> None:
        """Foreign keys: the loader writes consistent rows by construction. As a superuser,
        skip the per-row checks for this transaction (``session_replication_role``); else
        check them row by row, since a deferred queue of millions of checks would hold
        memory until commit and block the index rebuild."""
        if not self.postgres:
            return
        with self.connection.cursor() as cursor:
            # Runs the checks already queued (the client row) and checks the rest at once.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            row = cursor.fetchone()
            if row and row[0]:
                cursor.execute("SET LOCAL session_replication_role = replica")

    def drop_indexes(self) -> None:
        """Drop the secondary (non-constraint) indexes of the big audit tables; remember them."""
        if not self.postgres:
            return
        tables = [model._meta.db_table for model in self.REINDEXED]
        with self.connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT i.indexname, i.indexdef FROM pg_indexes i
                WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s)
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
                """,
                [tables],
            )
            rows = cursor.fetchall()
            for name, definition in rows:
                cursor.execute(f"DROP INDEX {self.connection.ops.quote_name(name)}")
                self._dropped.append(definition)

    def rebuild_indexes(self) -> None:
        if not self._dropped:
            return
        with self.connection.cursor() as cursor:
            cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
            for definition in self._dropped:
                cursor.execute(definition)
        self._dropped = []

    def analyze(self, models: Iterable[type[Model]]) -> None:
        if not self.postgres:
            return
        # VACUUM as well, outside a transaction: it sets the visibility map, without which
        # every index-only scan (deep SCIM pages, capped counts) still visits the heap.
        command = "ANALYZE" if self.connection.in_atomic_block else "VACUUM (ANALYZE)"
        with self.connection.cursor() as cursor:
            for model in models:
                cursor.execute(f"{command} {self.connection.ops.quote_name(model._meta.db_table)}")
