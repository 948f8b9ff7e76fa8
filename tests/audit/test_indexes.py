"""Every index on the audit, request-log and events-outbox tables serves a query the
product runs (issue 17; audit migration 0007 names the query of each, events migrations
0004 and 0005 say why ``txn`` and the resource have none). A new index must be added to
this list with its query, or the test fails: every insert pays for every index."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

# (columns) -> the query it serves; None stands for an expression (LOWER(name)).
EXPECTED = {
    "audit_changeset": {
        ("correlation_id",): "the request-log page's change sets of this request",
        ("scim_client_id", "created_at"): "rollback of a client's changes; the log's client filter",
        ("operator_id", "created_at"): "the audit log's operator filter",
    },
    "audit_changerecord": {
        ("change_set_id",): "change set page, rollback, reviews",
        ("action", "created_at"): "the audit log's action filter",
        ("created_at",): "the audit log's order and time range",
        (None,): "the audit log's userName/displayName filter (LOWER)",
        ("resource_id", "id"): "a resource's history; the log's resource filter",
    },
    "audit_auditentry": {
        ("change_set_id",): "change set page",
        ("timestamp",): "the audit log's order and time range",
        ("action", "timestamp"): "the audit log's action filter",
        ("actor_id", "timestamp"): "the audit log's operator filter",
        ("scim_client_id", "timestamp"): "the audit log's client filter",
        ("content_type_id", "object_pk", "timestamp"): "resource filter with a type; history",
        ("object_pk",): "resource filter without a type",
        (None,): "the audit log's name filter (LOWER)",
    },
    "audit_requestlog": {
        ("correlation_id",): "the change set page's request link",
        ("scim_client_id", "timestamp"): "the request log's client filter",
        ("method", "timestamp"): "the request log's method filter",
        ("status", "timestamp"): "the request log's status filter",
        ("timestamp",): "the request log's order and time range; retention",
    },
    "audit_retiredentry": {},
    # The events outbox, written in the change's transaction too (events migrations 0004
    # and 0005 dropped the indexes of ``txn`` and of the resource, which no query reads by).
    "events_event": {
        ("created_at",): "retention; a stream's replay from a time",
        ("client_id",): "a client's deletion (SET NULL)",
    },
}
# PostgreSQL only: the trigram indexes of free-text search (audit migration 0003).
TRIGRAM = {"audit_changerecord", "audit_auditentry"}


@pytest.mark.parametrize("table", sorted(EXPECTED))
def test_every_index_serves_a_known_query(table):
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    found = [
        tuple(spec["columns"]) or (None,)  # PostgreSQL names no column of an expression
        for spec in constraints.values()
        if spec["index"] and not spec["primary_key"] and not spec["unique"]
    ]
    expected = list(EXPECTED[table])
    if connection.vendor == "postgresql" and table in TRIGRAM:
        expected.append((None,))  # UPPER(search_text) gin_trgm_ops
    assert sorted(found, key=str) == sorted(expected, key=str)


def test_the_operator_index_holds_console_changes_and_serves_the_operator_filter(on_postgres):
    """A SCIM change set has no operator: ``changeset_operator_idx`` is partial (audit
    migration 0012), and the operator filter (``operator_id = %s``, which implies NOT
    NULL) is still served by it."""
    from provisioning.audit.models import ChangeSet
    from tests.factories import OperatorFactory

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'changeset_operator_idx'")
        [(definition,)] = cursor.fetchall()
    assert definition.endswith("WHERE (operator_id IS NOT NULL)")
    queryset = ChangeSet.objects.filter(operator_id=OperatorFactory().pk).order_by("-created_at")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: make the index the choice
        sql, params = queryset.query.sql_with_params()
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "changeset_operator_idx" in plan
