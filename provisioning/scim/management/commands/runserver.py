"""``manage.py runserver`` that reads request bodies sent with ``Transfer-Encoding: chunked``.

Django's development server hands the application only as many bytes as the
Content-Length announces: none for a chunked body, which then looks empty (and its
chunks are left on the connection). IdPs and HTTP libraries do send chunked bodies, so
this server decodes them (RFC 9112 §7.1) and passes the body on with its length, as
gunicorn does (see ``provisioning/wsgi.py``). A body over the upload limit is cut one
byte past it and refused by the application (413); a very large one also ends the
connection.

Everything else is Django's runserver, with WhiteNoise serving static files (the
command this one extends; ``provisioning.scim`` is listed before it in INSTALLED_APPS).
"""

from __future__ import annotations

import io
import re

from django.conf import settings
from django.core.servers.basehttp import ServerHandler, WSGIRequestHandler, WSGIServer
from whitenoise.runserver_nostatic.management.commands.runserver import (
    Command as RunserverCommand,
)

_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
# Longest chunk-size line (with extensions) and most trailer lines we read.
_MAX_LINE = 4096
_MAX_TRAILERS = 100


class MalformedChunks(ValueError):
    pass


def _line(rfile) -> bytes:
    line = rfile.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE or not line.endswith(b"\n"):
        raise MalformedChunks("chunk line too long or truncated")
    return line.rstrip(b"\r\n")


def read_chunked(rfile, limit: int) -> tuple[bytes, bool]:
    """The decoded body (at most ``limit + 1`` bytes of it), and whether it was read to its
    end: beyond the limit, up to as much again is read and dropped, so that a body not much
    larger leaves the connection clean for the 413 (closing on unread input resets it).

    Chunk extensions are ignored and trailer fields dropped (RFC 9112 §7.1.1, §7.1.2).
    """
    body = bytearray()
    budget = 2 * limit + 1  # decoded bytes read in all
    while True:
        size_field = _line(rfile).split(b";", 1)[0].strip(b" \t")
        if not _CHUNK_SIZE.fullmatch(size_field):
            raise MalformedChunks("invalid chunk size")
        size = int(size_field, 16)
        if size == 0:
            for _ in range(_MAX_TRAILERS):
                if not _line(rfile):
                    return bytes(body), True
            raise MalformedChunks("too many trailer fields")
        if size > budget:
            body += rfile.read(max(0, limit + 1 - len(body)))
            return bytes(body), False
        chunk = rfile.read(size)
        if len(chunk) != size or _line(rfile):
            raise MalformedChunks("chunk shorter than its size")
        budget -= size
        body += chunk[: max(0, limit + 1 - len(body))]


class ChunkedRequestHandler(WSGIRequestHandler):
    def handle_one_request(self):
        """Django's, with a chunked body decoded before the application is called."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = ""
            self.request_version = ""
            self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        environ = self.get_environ()
        stdin = self.rfile
        coding = self.headers.get("Transfer-Encoding")
        if coding is not None:
            # RFC 9112 §6.1, §6.3: chunked alone, never with a Content-Length; after a
            # refusal the rest of the connection cannot be framed, so it is closed.
            if coding.strip().lower() != "chunked":
                self.close_connection = True
                self.send_error(501, "Unsupported transfer coding")
                return
            if self.headers.get("Content-Length") is not None:
                self.close_connection = True
                self.send_error(400, "Both Transfer-Encoding and Content-Length")
                return
            try:
                body, complete = read_chunked(self.rfile, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
            except (MalformedChunks, OSError):
                self.close_connection = True
                self.send_error(400, "Malformed chunked request body")
                return
            stdin = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            if not complete:
                self.close_connection = True  # the rest of the body is still on the wire
        handler = ServerHandler(stdin, self.wfile, self.get_stderr(), environ)
        handler.request_handler = self
        handler.run(self.server.get_app())


class ChunkedWSGIServer(WSGIServer):
    def __init__(self, server_address, handler_class=None, *args, **kwargs):
        super().__init__(server_address, ChunkedRequestHandler, *args, **kwargs)


class Command(RunserverCommand):
    server_cls = ChunkedWSGIServer
