"""Every /scim/v2/ request has its request-log row, whatever it carried: bytes that are
not UTF-8, NUL, lone surrogates, absurd sizes. What no column can hold is stored as
backslash escapes and the row is flagged ``escaped``. Both databases."""

from __future__ import annotations

import logging
import re

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from provisioning.audit.models import RequestLog
from provisioning.audit.request_log import request_log_write, storable_text
from tests.factories import OperatorFactory
from tests.scim.conftest import SCIM_JSON, USER_SCHEMA

pytestmark = pytest.mark.django_db

NOT_LOGGED = "Could not write the SCIM request log"


def send(scim, method: str, path: str, raw: bytes = b"", **meta):
    return scim.http.generic(
        method,
        f"/scim/v2{path}",
        data=raw,
        content_type=SCIM_JSON,
        HTTP_AUTHORIZATION=f"Bearer {scim.token}",
        **meta,
    )


UNPARSED = "[unparsed body: 19 bytes, application/scim+json] "


@pytest.mark.parametrize(
    "method,path,raw,stored_body,stored_path",
    [
        # A lone surrogate escape in JSON: a string Python holds but UTF-8 cannot encode.
        ("GET", "/Users", b'{"userName": "\\ud800"}', '{"userName":"\\ud800"}', "/scim/v2/Users"),
        ("POST", "/Users", b'{"userName": "\\udfff"}', '{"userName":"\\udfff"}', "/scim/v2/Users"),
        # NUL in the path (PostgreSQL refuses it in text).
        ("GET", "/Users/%00", b"", "", "/scim/v2/Users/\\x00"),
        # A raw NUL byte, bytes that are not UTF-8: bodies that cannot be parsed, kept
        # masked by redaction.
        ("GET", "/Users", b'{"userName": "a\x00b"}', UNPARSED + '{"userName": "*"}', "/scim/v2/Users"),
        ("POST", "/Users", b'{"userName": "ca\xe9"}', UNPARSED + '{"userName": "*"}', "/scim/v2/Users"),
    ],
)
def test_a_request_that_cannot_be_stored_as_sent_is_logged_escaped(
    scim, caplog, method, path, raw, stored_body, stored_path
):
    response = send(scim, method, path, raw)
    [row] = RequestLog.objects.all()
    assert NOT_LOGGED not in caplog.text
    assert (row.method, row.path, row.status) == (method, stored_path, response.status_code)
    assert row.request_body == stored_body
    assert row.request_size == len(raw)
    assert row.escaped
    assert row.scim_client_id is not None


def test_a_get_with_such_a_body_that_answers_with_data_leaves_its_trace(scim):
    scim.create_user("traced")
    response = send(scim, "GET", "/Users", b'{"x": "\\ud800", "y": "\x00"}')
    assert response.status_code == 200 and b"traced" in response.content
    row = RequestLog.objects.get(method="GET")
    assert row.escaped and "traced" in row.response_body


@pytest.mark.parametrize(
    "length,stored",
    [
        # Beyond PostgreSQL's integer and SQLite's 64-bit integer: the column's maximum.
        ("99999999999999", 2**31 - 1),
        ("9" * 30, 2**31 - 1),
        ("9" * 5000, 2**31 - 1),  # more digits than int() parses
        # Not a number at all.
        ("abc", 0),
        ("²", 0),
    ],
)
def test_an_absurd_content_length_is_logged_clamped(scim, caplog, length, stored):
    response = send(scim, "POST", "/Users", b"", CONTENT_LENGTH=length)
    assert response.status_code in (400, 413)
    [row] = RequestLog.objects.all()
    assert NOT_LOGGED not in caplog.text
    assert (row.status, row.request_size) == (response.status_code, stored)


def test_ordinary_requests_are_not_flagged(scim):
    # Non-ASCII text, a surrogate pair spelled as JSON escapes, an escaped backslash.
    raw = (
        f'{{"schemas": ["{USER_SCHEMA}"], "userName": "zoë@example.com", '
        '"displayName": "\\ud83d\\ude00 \\\\ud800"}'
    ).encode()
    assert scim.ok(scim.post("/Users", raw=raw), 201)["displayName"] == "\U0001f600 \\ud800"
    row = RequestLog.objects.get()
    assert not row.escaped and "zoë@example.com" in row.request_body


def test_the_writer_escapes_clamps_and_cuts_whatever_it_is_given(caplog):
    row = request_log_write(
        method="G\x00ET-TOO-LONG-A-METHOD",
        path="/scim/v2/" + "\ud800" * 3000,
        query="filter=\x00",
        status=10**9,
        latency_ms=1.0,
        remote_addr="not an address",
        token_prefix="\x00" * 40,
        request_body="\udcff",
        request_size=-5,
        response_body="",
        response_size=10**30,
    )
    assert NOT_LOGGED not in caplog.text
    row = RequestLog.objects.get(pk=row.pk)
    assert row.method == "G\\x00ET-TO"
    assert row.path.startswith("/scim/v2/\\ud800") and len(row.path) == 2048
    assert (row.query, row.request_body, row.token_prefix) == ("filter=\\x00", "\\udcff", "\\x00" * 4)
    assert (row.status, row.request_size, row.response_size) == (32767, 0, 2**31 - 1)
    assert row.remote_addr is None and row.escaped


def test_a_row_the_database_still_refuses_is_written_without_its_bodies(monkeypatch, caplog):
    """Should some content still be refused, the request is logged all the same."""
    from provisioning.audit import request_log

    real = request_log._insert_now
    attempts = []

    def refuse_bodies(connection, row):
        attempts.append(row.request_body)
        if row.request_body:
            from django.db import DataError

            raise DataError("refused")
        real(connection, row)

    monkeypatch.setattr(request_log, "_insert_now", refuse_bodies)
    with caplog.at_level(logging.ERROR):
        row = request_log_write(
            method="POST", path="/scim/v2/Users", status=201, latency_ms=1.0,
            request_body="{}", request_size=2, response_body="{}", response_size=2,
        )
    assert attempts == ["{}", ""]
    row = RequestLog.objects.get(pk=row.pk)
    assert (row.path, row.status, row.request_body, row.escaped) == ("/scim/v2/Users", 201, "", True)
    assert row.request_truncated and row.response_truncated
    assert "writing it without bodies" in caplog.text


def test_storable_text():
    assert storable_text("plain ü") == ("plain ü", False)
    assert storable_text("a\x00b\ud800c\udfff") == ("a\\x00b\\ud800c\\udfff", True)


# What a text column cannot hold: NUL and every surrogate code point (UTF-8 has none).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


# Any text, with NUL and surrogate code points (lone or as pairs) among its characters.
_TEXT = st.lists(
    st.one_of(st.characters(), st.just("\x00"), st.integers(0xD800, 0xDFFF).map(chr))
).map("".join)


@given(_TEXT)
def test_storable_text_escapes_exactly_what_no_column_holds(text):
    stored, escaped = storable_text(text)
    assert escaped is bool(_UNSTORABLE.search(text))
    assert not _UNSTORABLE.search(stored)
    stored.encode()  # every database's text column takes it
    if not escaped:
        assert stored is text
    else:
        assert stored == _UNSTORABLE.sub(
            lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text
        )


def test_console_detail_says_the_row_was_escaped(scim):
    send(scim, "GET", "/Users/%00")
    send(scim, "GET", "/Users")
    escaped, plain = RequestLog.objects.order_by("id")
    viewer = Client()
    viewer.force_login(OperatorFactory(role="viewer"))
    page = viewer.get(reverse("console:request_detail", args=[escaped.pk]))
    assert page.status_code == 200
    assert b"stored as backslash escapes" in page.content
    assert b"/scim/v2/Users/\\x00" in page.content
    page = viewer.get(reverse("console:request_detail", args=[plain.pk]))
    assert b"stored as backslash escapes" not in page.content
