"""The SCIM request log: every request, secrets never stored, writing never fails a request."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from provisioning.audit import selectors
from provisioning.audit.models import RequestLog
from tests.scim.conftest import USER_SCHEMA

pytestmark = pytest.mark.django_db

FAKE_TOKEN = "scg_AbCdEfGh_" + "x" * 43


def test_bad_token_is_logged_with_its_prefix_and_401(anonymous_scim):
    resp = anonymous_scim.get("/Users", HTTP_AUTHORIZATION=f"Bearer {FAKE_TOKEN}")
    assert resp.status_code == 401
    [row] = RequestLog.objects.all()
    assert (row.status, row.token_prefix, row.scim_client_id) == (401, "AbCdEfGh", None)
    assert (row.method, row.path) == ("GET", "/scim/v2/Users")
    assert list(selectors.request_logs(status_class="4xx", token_prefix="AbCdEfGh")) == [row]


def test_successful_request_records_client_status_latency_and_bodies(scim):
    user = scim.create_user("logged")
    row = RequestLog.objects.get(method="POST")
    assert row.scim_client is not None and row.status == 201 and row.latency_ms > 0
    # Stored as sent (the body names no secret, so it is not re-serialised).
    assert json.loads(row.request_body)["userName"] == "logged"
    assert user["id"] in row.response_body
    assert row.request_size >= len(row.request_body.encode()) and not row.request_truncated
    scim.search("/Users", filter='userName eq "logged"')
    get_row = RequestLog.objects.get(method="GET")
    assert "filter=userName" in get_row.query
    assert list(selectors.request_logs(client=row.scim_client, method="get", path="/Users")) == [get_row]


def test_large_bodies_are_truncated_with_their_size(scim, settings):
    settings.SCIMGATE_REQUEST_LOG_MAX_BODY = 100
    scim.create_user("big", addresses=[{"formatted": "x" * 500}])
    row = RequestLog.objects.get(method="POST")
    assert len(row.request_body.encode()) == 100 and row.request_size > 500
    assert row.request_truncated and row.response_truncated


def test_no_secret_reaches_any_column_of_any_table(scim):
    password = "Pa55word-Never-Stored-91"
    body = {"schemas": [USER_SCHEMA], "userName": "secretive", "password": password}
    scim.ok(scim.post("/Users", body), 201)
    user_id = scim.search("/Users", filter='userName eq "secretive"')["Resources"][0]["id"]
    scim.patch_ops(f"/Users/{user_id}", {"op": "replace", "path": "password", "value": password})
    scim.patch_ops(f"/Users/{user_id}", {"op": "replace", "value": {"PassWord": password}})
    scim.get("/Users", params={"access_token": scim.token})
    scim.get("/Users", HTTP_AUTHORIZATION=f"Bearer {FAKE_TOKEN}")
    assert RequestLog.objects.count() == 6

    # scg_<prefix>_<secret>: the prefix has no underscore, the secret may have some.
    secrets = [password, scim.token.split("_", 2)[2], FAKE_TOKEN.split("_", 2)[2]]
    assert all(len(secret) >= 20 for secret in secrets)
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = connection.introspection.get_table_description(cursor, table)
            for column in columns:
                name = connection.ops.quote_name(column.name)
                for secret in secrets:
                    cursor.execute(
                        f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)} "
                        f"WHERE CAST({name} AS TEXT) LIKE %s",
                        [f"%{secret}%"],
                    )
                    if cursor.fetchone()[0]:
                        found.append((table, column.name, secret[:6]))
    assert found == []
    assert "[REDACTED]" in RequestLog.objects.get(method="POST").request_body


def test_a_failing_log_write_does_not_fail_the_request(scim, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("log table gone")

    monkeypatch.setattr("provisioning.audit.request_log.RequestLog", broken)
    assert scim.create_user("unlogged")["userName"] == "unlogged"
    assert "Could not write the SCIM request log" in caplog.text


def test_the_log_is_written_after_the_answer_unless_the_connection_is_shared():
    """The row is written as the response closes, once its bytes went out; where one
    connection serves several threads (a live test server on in-memory SQLite), before
    the answer leaves, so that the client's next request never commits on the
    connection while this one still writes on it."""
    from django.core.signals import request_finished
    from django.db import close_old_connections
    from django.http import HttpResponse
    from django.test import RequestFactory

    from provisioning.audit.middleware import AuditMiddleware

    middleware = AuditMiddleware(lambda request: HttpResponse(status=404))

    def call():
        return middleware(RequestFactory().get("/scim/v2/Users/missing"))

    def close(response):
        # As the test client does: the test's connection stays open.
        request_finished.disconnect(close_old_connections)
        try:
            response.close()
        finally:
            request_finished.connect(close_old_connections)

    response = call()
    assert not RequestLog.objects.exists()
    close(response)
    assert RequestLog.objects.get().status == 404

    connection.inc_thread_sharing()
    try:
        response = call()
        assert RequestLog.objects.count() == 2  # before the response is closed
        close(response)
    finally:
        connection.dec_thread_sharing()
    assert RequestLog.objects.count() == 2  # and once only


def test_disabled_request_log_writes_nothing(scim, settings):
    settings.SCIMGATE_REQUEST_LOG_ENABLED = False
    scim.create_user("quiet")
    assert not RequestLog.objects.exists()


def test_retention_command_prunes_only_old_request_log_rows(scim, settings):
    settings.REQUEST_LOG_RETENTION_DAYS = 30
    scim.create_user("kept")
    scim.search("/Users")
    old = RequestLog.objects.get(method="GET")
    RequestLog.objects.filter(pk=old.pk).update(timestamp=timezone.now() - timedelta(days=31))
    call_command("prunerequestlog")
    assert list(RequestLog.objects.values_list("method", flat=True)) == ["POST"]
    from provisioning.audit.models import AuditEntry, ChangeSet

    assert ChangeSet.objects.exists() and AuditEntry.objects.exists()  # never pruned


@pytest.mark.parametrize(
    "raw",
    [
        # A key spelled with JSON escapes, a body in UTF-16, a token in free text, a PATCH
        # naming the password by path, a form-encoded body.
        b'{"userName": "x", "p\\u0061ssword": "Hidden-Secret-123456"}',
        '{"userName": "x", "password": "Hidden-Secret-123456"}'.encode("utf-16"),
        b'{"note": "use scg_AbCdEfGh_Hidden-Secret-123456"}',
        b'{"Operations": [{"op": "replace", "path": "password", "value": "Hidden-Secret-123456"}]}',
        b"userName=x&password=Hidden-Secret-123456",
    ],
)
def test_logged_bodies_never_hold_a_secret_however_it_is_spelled(raw):
    from provisioning.audit.redaction import redact_body_text

    stored = redact_body_text(raw)
    assert "Hidden-Secret-123456" not in stored
    assert "REDACTED" in stored


def test_a_body_without_secrets_is_logged_exactly_as_sent():
    from provisioning.audit.redaction import redact_body_text

    raw = '{"userName": "zoë@example.com",\n "active": true}'.encode()
    assert redact_body_text(raw) == raw.decode()
    assert redact_body_text(b"") == ""


@pytest.mark.django_db(transaction=True)
def test_request_log_commits_asynchronously_and_nothing_else_does(on_postgres, scim):
    """The row is written with synchronous_commit off for its own transaction only: the
    connection (and every audit write after it) commits synchronously again."""
    scim.create_user("durable")
    [row] = RequestLog.objects.filter(method="POST")
    assert row.status == 201 and row.pk is not None
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


def test_a_rendered_response_is_not_parsed_again_but_still_checked_for_secrets(scim, monkeypatch):
    """A response body from the JSON renderer is valid JSON by construction: the log keeps
    it as sent without parsing it to prove it (a 100-user page is 100 KB). The check for
    secrets is the same as for any body: a rendered token is still redacted."""
    from provisioning.audit import redaction

    scim.create_user("rendered")
    parsed: list[bytes] = []
    real = redaction._parse_json

    def recording(raw):
        parsed.append(raw)
        return real(raw)

    monkeypatch.setattr(redaction, "_parse_json", recording)
    found = scim.search("/Users", filter='userName eq "rendered"')
    row = RequestLog.objects.filter(method="GET").latest("pk")
    assert json.loads(row.response_body) == found
    assert parsed == []
    # A request body is parsed: a client's bytes prove nothing. Its rendered answer is not.
    user_id = found["Resources"][0]["id"]
    scim.patch_ops(f"/Users/{user_id}", {"op": "replace", "path": "title", "value": "t"})
    assert parsed and all(b'"Operations"' in raw for raw in parsed)
    # A rendered body that could hold a secret is redacted as before.
    stored = redaction.redact_body_text(b'{"note": "scg_AbCdEfGh_Hidden-Secret-123456"}', rendered_json=True)
    assert "Hidden-Secret-123456" not in stored and "REDACTED" in stored


def test_the_request_log_row_turns_synchronous_commit_off_in_its_own_statement(on_postgres):
    """One prepared statement sets ``synchronous_commit`` for its transaction (in its FROM
    clause) and inserts the row; inside a transaction (here, the test's) the setting stays
    until that transaction ends, as ``SET LOCAL`` would."""
    from provisioning.audit.request_log import request_log_write

    def setting() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            return cursor.fetchone()[0]

    assert setting() == "on"
    row = request_log_write(
        correlation_id="6f1c1c9e-3d1f-4c55-9a43-1d1b8c0f2a11", method="GET", path="/scim/v2/Users",
        query="", status=200, latency_ms=1.5, remote_addr="2001:db8::1", request_body="",
        request_size=0, response_body="é" * 10, response_size=20, token_prefix="AbCdEfGh",
        scim_client_id=None,
    )
    assert setting() == "off"
    stored = RequestLog.objects.get(pk=row.pk)
    assert (stored.remote_addr, stored.response_body, stored.status) == ("2001:db8::1", "é" * 10, 200)


# --- A long response is checked over the part that is kept --------------------------


def _rendered(document) -> bytes:
    from rest_framework.renderers import JSONRenderer

    return JSONRenderer().render(document)


def _old_way(raw: bytes, limit: int) -> tuple[str, bool]:
    """What the log kept before the head alone was checked: the whole body redacted,
    then cut."""
    from provisioning.audit.redaction import redact_body_text, truncate

    text = redact_body_text(raw, "application/scim+json", rendered_json=True)
    stored = truncate(text, limit)
    return stored, len(stored) < len(text)


def test_a_long_list_page_is_stored_as_its_head_when_nothing_there_is_secret():
    from provisioning.audit.middleware import _stored_body

    # Multi-byte characters everywhere, so that the cut falls inside one of them.
    page = {"Resources": [{"userName": f"jürgen-{i}", "title": "Überführung"} for i in range(400)]}
    raw = _rendered(page)
    for limit in (1000, 1001, 1002, 4096):
        stored, truncated, escaped = _stored_body(raw, "application/scim+json", limit, rendered_json=True)
        assert (stored, truncated) == _old_way(raw, limit)
        assert len(stored.encode()) <= limit and raw.startswith(stored.encode())
        assert truncated and not escaped


def test_a_secret_name_beyond_the_cut_leaves_the_head_as_it_is_and_its_value_unstored():
    from provisioning.audit.middleware import _stored_body

    page = {"Resources": [{"userName": f"user-{i}"} for i in range(200)], "password": "Hidden-4471"}
    raw = _rendered(page)
    stored, truncated, _escaped = _stored_body(raw, "application/scim+json", 1000, rendered_json=True)
    assert truncated and raw.startswith(stored.encode()) and "Hidden-4471" not in stored


def test_a_secret_name_inside_the_kept_part_is_redacted_as_before():
    from provisioning.audit.middleware import _stored_body

    page = {"password": "Hidden-4471", "Resources": [{"userName": f"user-{i}"} for i in range(200)]}
    raw = _rendered(page)
    stored, truncated, _escaped = _stored_body(raw, "application/scim+json", 1000, rendered_json=True)
    assert (stored, truncated) == _old_way(raw, 1000)
    assert "Hidden-4471" not in stored and "[REDACTED]" in stored


def test_a_request_body_is_redacted_whole_whatever_its_length():
    """Only this server's own JSON takes the shortcut: a client's body is parsed whole
    (it may not be JSON at all)."""
    from provisioning.audit.middleware import _stored_body

    body = json.dumps({"pad": "x" * 2000, "password": "Hidden-4471"}).encode()
    stored, truncated, _escaped = _stored_body(body, "application/scim+json", 3000)
    assert not truncated and json.loads(stored)["password"] == "[REDACTED]"


def test_long_bodies_are_stored_with_lz4_on_postgresql(scim, on_postgres):
    """audit 0010: the bodies' columns compress with LZ4 (about five times faster to store
    than pglz for the 64 KiB kept of a list page)."""
    scim.create_user("lz", addresses=[{"formatted": f"{i} Long Street Name, Town"} for i in range(90)])
    row = RequestLog.objects.get(method="POST")
    assert len(row.request_body) > 3000
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_column_compression(request_body), pg_column_compression(response_body) "
            "FROM audit_requestlog WHERE id = %s",
            [row.pk],
        )
        assert cursor.fetchone() == ("lz4", "lz4")
