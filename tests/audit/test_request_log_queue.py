"""On PostgreSQL, request-log rows are queued in the process and written by one thread in
multi-row INSERTs (SCIMGATE_REQUEST_LOG_FLUSH_SECONDS): every request still has its row,
redacted as before; a batch the database refuses is written row by row with the
single-row fallbacks; a queue that cannot drain is bounded."""

from __future__ import annotations

import time
import uuid

import pytest
from django.db import DataError, connection, transaction

from provisioning.audit import request_log
from provisioning.audit.models import RequestLog
from provisioning.audit.request_log import RowQueue, request_log_write
from tests.scim.conftest import USER_SCHEMA

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def postgresql_and_queued(settings):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the request log is queued there only")
    settings.SCIMGATE_REQUEST_LOG_FLUSH_SECONDS = 0.05
    yield
    request_log.queue.stop()


def fields(**overrides) -> dict:
    return {
        "correlation_id": uuid.uuid4(),
        "method": "GET",
        "path": "/scim/v2/Users",
        "status": 200,
        "latency_ms": 1.5,
        "remote_addr": "127.0.0.1",
        "request_body": "",
        "response_body": '{"totalResults": 0}',
        **overrides,
    }


def wait_for_rows(count: int, timeout: float = 5.0) -> list[RequestLog]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(RequestLog.objects.order_by("id"))
        if len(rows) >= count:
            return rows
        time.sleep(0.02)
    return list(RequestLog.objects.order_by("id"))


def test_every_request_has_its_row_written_by_the_writer_thread(scim):
    body = {"schemas": [USER_SCHEMA], "userName": "queued@example.com", "password": "hunter2-secret"}
    created = scim.post("/Users", body)
    assert created.status_code == 201
    for _ in range(5):
        assert scim.get(f"/Users/{created.json()['id']}").status_code == 200
    # Written by the thread within the flush interval, without anyone flushing.
    rows = wait_for_rows(6)
    assert [(r.method, r.status) for r in rows] == [("POST", 201)] + [("GET", 200)] * 5
    assert "hunter2-secret" not in rows[0].request_body and "queued@example.com" in rows[0].request_body
    assert rows[0].token_prefix and scim.token.split("_")[1] == rows[0].token_prefix
    assert request_log.queue.waiting() == 0


def test_inside_a_transaction_or_with_no_interval_a_row_is_written_at_once(settings):
    with transaction.atomic():
        assert request_log_write(**fields(path="/scim/v2/in-a-transaction")).pk is not None
    settings.SCIMGATE_REQUEST_LOG_FLUSH_SECONDS = 0
    assert request_log_write(**fields(path="/scim/v2/no-interval")).pk is not None
    assert set(RequestLog.objects.values_list("path", flat=True)) == {
        "/scim/v2/in-a-transaction",
        "/scim/v2/no-interval",
    }


@pytest.fixture
def own_queue():
    """A queue of the test's own; its writer thread (and connection) ends with the test."""
    queue = RowQueue()
    yield queue
    queue.stop()


def test_a_refused_batch_is_written_row_by_row_with_the_fallbacks(monkeypatch, caplog, own_queue):
    queue = own_queue

    def refuse_batch(rows):
        raise DataError("refused")

    real_insert = request_log._insert

    def refuse_one(row):
        if "refused-body" in row.request_body:
            raise DataError("value refused")
        real_insert(row)

    monkeypatch.setattr(request_log, "_insert_rows", refuse_batch)
    monkeypatch.setattr(request_log, "_insert", refuse_one)
    for name in ("a", "b"):
        queue.add(request_log.RequestLog(**request_log._storable(fields(path=f"/scim/v2/{name}"))), fields())
    bad = fields(path="/scim/v2/bad", request_body="refused-body")
    queue.add(request_log.RequestLog(**request_log._storable(bad)), bad)
    assert queue.flush() == 3
    stored = {r.path: r for r in RequestLog.objects.all()}
    assert set(stored) == {"/scim/v2/a", "/scim/v2/b", "/scim/v2/bad"}
    # The row the database refused is kept without its bodies, flagged.
    assert stored["/scim/v2/bad"].request_body == "" and stored["/scim/v2/bad"].escaped
    assert "writing its rows one by one" in caplog.text


def test_a_queue_that_cannot_drain_is_bounded_and_says_so(caplog, settings, own_queue):
    settings.SCIMGATE_REQUEST_LOG_FLUSH_SECONDS = 60  # the writer sleeps through the test
    queue = own_queue
    queue.MAX_WAITING = 3
    for n in range(5):
        row_fields = fields(path=f"/scim/v2/{n}")
        queue.add(request_log.RequestLog(**request_log._storable(row_fields)), row_fields)
    assert queue.waiting() == 3 and queue.dropped == 2
    assert "cannot keep up: 1 rows dropped" in caplog.text
    assert queue.flush() == 3
    assert sorted(RequestLog.objects.values_list("path", flat=True)) == [
        "/scim/v2/0",
        "/scim/v2/1",
        "/scim/v2/2",
    ]


def test_many_rows_go_in_batches(monkeypatch, settings, own_queue):
    settings.SCIMGATE_REQUEST_LOG_FLUSH_SECONDS = 60
    batches: list[int] = []
    real = request_log._insert_rows
    monkeypatch.setattr(request_log, "_insert_rows", lambda rows: (batches.append(len(rows)), real(rows)))
    queue = own_queue
    for n in range(RowQueue.BATCH + 5):
        row_fields = fields(path=f"/scim/v2/{n}")
        queue.add(request_log.RequestLog(**request_log._storable(row_fields)), row_fields)
    # A full batch wakes the writer at once; what is left goes at the next flush.
    deadline = time.monotonic() + 5
    while not batches and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.flush()
    assert batches == [RowQueue.BATCH, 5]
    assert RequestLog.objects.count() == RowQueue.BATCH + 5


def test_a_forked_child_starts_with_an_empty_queue(settings, own_queue):
    settings.SCIMGATE_REQUEST_LOG_FLUSH_SECONDS = 60
    queue = own_queue
    queue.add(request_log.RequestLog(**request_log._storable(fields())), fields())
    queue.reset()
    assert queue.waiting() == 0 and queue.flush() == 0
