"""HTTP transport: chunked request bodies under gunicorn and Django's runserver, gunicorn's
limits (provisioning/gunicorn_conf.py) letting every request the application accepts
reach it, and a database that cannot be reached answered 503 with Retry-After.

The server tests start real processes on free ports, serving a SQLite database of
their own (migrated once per module), and speak to them with http.client.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import OperationalError, connections
from django.test import Client

from provisioning.scim.management.commands.runserver import MalformedChunks, read_chunked
from provisioning.wsgi import ChunkedBodies
from tests.factories import ScimClientFactory
from tests.scim.conftest import (
    ERROR_SCHEMA,
    LIST_SCHEMA,
    PATCH_SCHEMA,
    SCIM_JSON,
    USER_SCHEMA,
    ScimApi,
)

ROOT = Path(__file__).resolve().parents[1]
# The servers' upload limit (DATA_UPLOAD_MAX_MEMORY_SIZE), small enough to exceed cheaply.
LIMIT = 64 * 1024


# --- The request Django builds ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("charset", ["rot13", "hex", "base64", "zlib", "no-such-codec"])
def test_a_charset_that_is_not_a_text_encoding_is_ignored(charset):
    """``charset=rot13`` names a codec that does not decode bytes: Django would raise
    LookupError building the request (a 500 before any middleware). It is ignored, as an
    unknown charset is, and the request gets a SCIM answer and a request-log row."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from provisioning.audit.models import RequestLog
    from provisioning.wsgi import application

    answer: dict = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, dict(headers)

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/scim/v2/Users",
        "QUERY_STRING": "filter=userName%20eq%20%22a%22",
        "CONTENT_TYPE": f"application/scim+json; charset={charset}",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
    }
    # As Django's test client does: the test's connection stays open across the request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = application(environ, start_response)
        body = b"".join(response)
        response.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    assert answer["status"].startswith("401")
    assert json.loads(body)["status"] == "401"
    assert RequestLog.objects.filter(path="/scim/v2/Users", status=401).count() == 1


# --- The WSGI wrapper (gunicorn's side) ---------------------------------------------------


def wrapped(environ: dict) -> dict:
    """What the application behind ``ChunkedBodies`` sees: Content-Length and body."""
    seen: dict = {}

    def app(environ, start_response):
        seen["length"] = environ.get("CONTENT_LENGTH")
        seen["body"] = environ["wsgi.input"].read()
        return []

    ChunkedBodies(app)(environ, None)
    return seen


def chunked_environ(body: bytes, **extra) -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        **extra,
    }


def test_a_chunked_body_reaches_django_with_its_length(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    assert wrapped(chunked_environ(b'{"a": 1}')) == {"length": "8", "body": b'{"a": 1}'}
    assert wrapped(chunked_environ(b"")) == {"length": "0", "body": b""}


def test_a_chunked_body_over_the_limit_is_cut_one_byte_past_it(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    environ = chunked_environ(b"x" * 150 + b"y" * 200)
    wire = environ["wsgi.input"]
    assert wrapped(environ) == {"length": "101", "body": b"x" * 101}
    # As much again (the limit) was read off the connection and dropped, no more.
    assert wire.tell() == 201


def test_other_requests_pass_untouched(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    # A Content-Length: Django reads by it.
    assert wrapped(chunked_environ(b"abc", CONTENT_LENGTH="2"))["length"] == "2"
    # A server that does not say its input ends with the body: nothing can be read safely.
    environ = chunked_environ(b"abc")
    environ["wsgi.input_terminated"] = False
    assert wrapped(environ)["length"] is None
    # Not chunked.
    environ = chunked_environ(b"abc")
    del environ["HTTP_TRANSFER_ENCODING"]
    assert wrapped(environ)["length"] is None


# --- The chunked decoder (runserver's side) ----------------------------------------------


@pytest.mark.parametrize(
    "wire,body",
    [
        (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
        # Extensions are ignored, trailers dropped, hex in either case (RFC 9112 §7.1).
        (b"a;name=value\r\n0123456789\r\n0\r\nExpires: never\r\n\r\n", b"0123456789"),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"0\r\n\r\n", b""),
    ],
)
def test_read_chunked(wire, body):
    rfile = io.BytesIO(wire + b"NEXT")
    assert read_chunked(rfile, 100) == (body, True)
    assert rfile.read() == b"NEXT"  # the next request on the connection is left intact


@pytest.mark.parametrize(
    "wire",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",  # not hex
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"\r\nhello\r\n0\r\n\r\n",  # no size
        b"5\r\nhel",  # cut short
        b"5\r\nhelloX\r\n0\r\n\r\n",  # data longer than its size
        b"5\r\nhello\r\n",  # no last chunk
        b"1" * 5000 + b"\r\n",  # endless size line
    ],
)
def test_read_chunked_refuses_malformed_framing(wire):
    with pytest.raises(MalformedChunks):
        read_chunked(io.BytesIO(wire), 100)


def test_read_chunked_keeps_one_byte_past_the_limit():
    # A body up to twice the limit is read off the connection; only limit + 1 bytes kept.
    assert read_chunked(io.BytesIO(b"32\r\n" + b"x" * 50 + b"\r\n0\r\n\r\n"), 30) == (b"x" * 31, True)
    # Larger: reading stops; the connection is closed after the answer.
    body, complete = read_chunked(io.BytesIO(b"1000\r\n" + b"x" * 4096 + b"\r\n0\r\n\r\n"), 30)
    assert (body, complete) == (b"x" * 31, False)


# --- Real servers --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_environ(database_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "provisioning.settings",
        "DATABASE_URL": database_url,
        "DATA_UPLOAD_MAX_MEMORY_SIZE": str(LIMIT),
        "SCIM_BULK_MAX_PAYLOAD_SIZE": str(LIMIT),
        "SCIM_UNAUTHENTICATED_RATE_LIMIT": "",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }
    for name in ("CELERY_BROKER_URL", "CACHE_URL", "SCIMGATE_TRUSTED_PROXIES"):
        env.pop(name, None)  # tasks in-process, a cache of its own, no proxies
    return env


@pytest.fixture(scope="module")
def served_database(tmp_path_factory) -> tuple[Path, str]:
    """A migrated SQLite file with a provisioner client: (path, bearer token)."""
    path = tmp_path_factory.mktemp("served") / "scimgate.sqlite3"
    env = server_environ(f"sqlite:///{path}")
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    created = subprocess.run(
        [*manage, "createscimclient", "okta"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )
    return path, created.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[int]:
    """Run a server until the block ends; yields its port once it answers."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"{command[2]} exited with {process.returncode}:\n{log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{command[2]} did not listen within 60 s:\n{log.read_text()}")
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def gunicorn_command(port: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "--config", "provisioning/gunicorn_conf.py",
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket",
    ]


def runserver_command(port: int) -> list[str]:
    return [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]


COMMANDS = {"gunicorn": gunicorn_command, "runserver": runserver_command}


@pytest.fixture(scope="module", params=sorted(COMMANDS))
def server(request, served_database, tmp_path_factory) -> Iterator[tuple[str, int, str, Path]]:
    """(name, port, token, database) of a running gunicorn (with the repository's config)
    or runserver."""
    pytest.importorskip("gunicorn")
    path, token = served_database
    port = free_port()
    log = tmp_path_factory.mktemp(request.param) / "server.log"
    env = server_environ(f"sqlite:///{path}")
    with serving(COMMANDS[request.param](port), env, port, log):
        yield request.param, port, token, path


def call(port: int, method: str, target: str, *, token: str | None = None, body=None,
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request on a fresh connection. An iterable ``body`` goes out chunked."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        sent = {"Content-Type": SCIM_JSON, **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        connection.request(method, target, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def in_chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    return iter([data[i : i + size] for i in range(0, len(data), size)])


def scim_body(status: int, headers: dict, body: bytes) -> dict:
    assert headers["content-type"].startswith(SCIM_JSON), (status, headers, body[:300])
    return json.loads(body)


def test_a_chunked_post_and_patch_are_read(server):
    name, port, token, database = server
    document = {"schemas": [USER_SCHEMA], "userName": f"chunked-{name}", "title": "t" * 3000}
    raw = json.dumps(document).encode()
    status, headers, body = call(port, "POST", "/scim/v2/Users", token=token, body=in_chunks(raw))
    assert status == 201, body[:300]
    created = scim_body(status, headers, body)
    assert (created["userName"], created["title"]) == (document["userName"], document["title"])

    patch = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "title", "value": "cto"}]}
    status, headers, body = call(
        port, "PATCH", f"/scim/v2/Users/{created['id']}", token=token,
        body=in_chunks(json.dumps(patch).encode(), 7),
    )
    assert status == 200 and scim_body(status, headers, body)["title"] == "cto"

    # The request log has the body and its true size.
    with contextlib.closing(sqlite3.connect(database)) as db:
        size, stored = db.execute(
            "SELECT request_size, request_body FROM audit_requestlog WHERE method = 'POST' "
            "AND request_body LIKE ?",
            [f'%"chunked-{name}"%'],
        ).fetchone()
    assert size == len(raw) and json.loads(stored)["userName"] == document["userName"]


def test_a_chunked_body_over_the_limit_is_a_scim_413(server):
    _name, port, token, _database = server
    raw = json.dumps({"schemas": [USER_SCHEMA], "userName": "huge", "title": "x" * LIMIT}).encode()
    status, headers, body = call(port, "POST", "/scim/v2/Users", token=token, body=in_chunks(raw, 8192))
    assert status == 413
    error = scim_body(status, headers, body)
    assert (error["schemas"], error["status"]) == ([ERROR_SCHEMA], "413")


def test_a_body_with_content_length_is_still_read(server):
    name, port, token, _database = server
    raw = json.dumps({"schemas": [USER_SCHEMA], "userName": f"plain-{name}"}).encode()
    status, _headers, body = call(port, "POST", "/scim/v2/Users", token=token, body=raw)
    assert status == 201, body[:300]


@pytest.fixture(scope="module")
def gunicorn(served_database, tmp_path_factory) -> Iterator[tuple[int, str]]:
    path, token = served_database
    port = free_port()
    log = tmp_path_factory.mktemp("gunicorn-limits") / "server.log"
    with serving(gunicorn_command(port), server_environ(f"sqlite:///{path}"), port, log):
        yield port, token


def longest_filter_target(length: int) -> str:
    # Four UTF-8 bytes per character, each percent-encoded: 12 bytes on the request line.
    value = "\U0001d518" * (length - len('userName eq ""'))
    return "/scim/v2/Users?" + urllib.parse.urlencode({"filter": f'userName eq "{value}"'})


def test_gunicorn_passes_the_longest_filter_the_application_accepts(gunicorn):
    port, token = gunicorn
    target = longest_filter_target(4096)
    assert len(target) > 48_000  # far beyond gunicorn's default 4,094 and its usual cap 8,190
    status, headers, body = call(port, "GET", target, token=token)
    assert status == 200
    assert scim_body(status, headers, body)["schemas"] == [LIST_SCHEMA]
    # One character more: the application's own error, as SCIM JSON.
    status, headers, body = call(port, "GET", longest_filter_target(4097), token=token)
    assert status == 400
    assert scim_body(status, headers, body)["scimType"] == "invalidFilter"


def test_gunicorn_passes_large_and_many_headers(gunicorn):
    port, token = gunicorn
    headers = {"X-Context": "c" * 12_000, **{f"X-Extra-{n}": str(n) for n in range(110)}}
    status, response_headers, body = call(port, "GET", "/scim/v2/Users", token=token, headers=headers)
    assert status == 200
    assert scim_body(status, response_headers, body)["schemas"] == [LIST_SCHEMA]


# --- A database that cannot be reached ----------------------------------------------------


def test_gunicorn_answers_503_when_the_database_cannot_be_reached(tmp_path):
    pytest.importorskip("gunicorn")
    port, closed = free_port(), free_port()  # nothing listens on the second
    env = server_environ(f"postgres://scimgate@127.0.0.1:{closed}/scimgate")
    with serving(gunicorn_command(port), env, port, tmp_path / "server.log"):
        status, headers, body = call(
            port, "GET", "/scim/v2/Users", token="scg_AbCdEfGh_" + "x" * 43
        )
    assert status == 503
    error = scim_body(status, headers, body)
    assert (error["schemas"], error["status"]) == ([ERROR_SCHEMA], "503")
    assert int(headers["retry-after"]) > 0


@pytest.fixture
def database_down(monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection to server failed: Connection refused")

    return lambda: monkeypatch.setattr(connections["default"], "ensure_connection", refuse)


@pytest.mark.django_db
def test_a_database_outage_in_the_view_or_authentication_is_a_scim_503(database_down, caplog):
    scim = ScimApi(ScimClientFactory().raw_token)
    scim.create_user("before")
    database_down()
    response = scim.get("/Users")
    body = scim.assert_error(response, 503)
    assert response["Retry-After"] == "30"
    assert "Connection refused" not in body["detail"]
    assert "Database unavailable in SCIM endpoint" in caplog.text


class DatabaseDownMiddleware:
    """A middleware that needs the database before the view runs, while it is down."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raise OperationalError("connection to server failed: Connection refused")


@pytest.mark.django_db
def test_a_database_outage_before_the_view_is_a_scim_503_too(settings):
    audit = settings.MIDDLEWARE.index("provisioning.audit.middleware.AuditMiddleware")
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE[: audit + 1],
        "tests.test_transport.DatabaseDownMiddleware",
        *settings.MIDDLEWARE[audit + 1 :],
    ]
    client = Client(raise_request_exception=False)
    response = client.get("/scim/v2/Users")
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert response["Content-Type"] == SCIM_JSON
    assert json.loads(response.content)["schemas"] == [ERROR_SCHEMA]
    # Elsewhere, Django's own error page.
    assert client.get("/login/").status_code == 500
