"""The WSGI application gunicorn (and ``manage.py runserver``) serves.

Django reads a request body by its Content-Length and reads nothing without one, so a
body sent with ``Transfer-Encoding: chunked`` would look empty. A server that decodes
the chunks itself and marks the stream as ending with the body (``wsgi.input_terminated``,
as gunicorn and our runserver do) lets ``ChunkedBodies`` read it first, up to the same
limit as any other body (``DATA_UPLOAD_MAX_MEMORY_SIZE``), and hand it to Django with
its length. A larger body is cut one byte past the limit, so Django and the SCIM views
refuse it as they refuse any other (413); up to as much again is read and dropped, since
a connection closed with input unread is reset, and the client could lose the answer.
"""

import codecs
import io
import os

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.utils.http import parse_header_parameters

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "provisioning.settings")


def is_chunked(environ: dict) -> bool:
    """A request whose body is framed by chunked transfer coding (RFC 9112 §7.1)."""
    codings = environ.get("HTTP_TRANSFER_ENCODING", "")
    return not environ.get("CONTENT_LENGTH") and "chunked" in codings.lower()


def discard(stream, amount: int) -> None:
    """Read and drop up to ``amount`` bytes of ``stream``."""
    while amount > 0:
        data = stream.read(min(amount, 64 * 1024))
        if not data:
            return
        amount -= len(data)


class ChunkedBodies:
    """WSGI middleware: a chunked body, read up to the upload limit, given a Content-Length."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("wsgi.input_terminated") and is_chunked(environ):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            stream = environ["wsgi.input"]
            body = stream.read(limit + 1)
            if len(body) > limit:
                discard(stream, limit)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


class Request(WSGIRequest):
    """A request whose ``charset`` parameter is believed only when it names a text encoding.

    Django checks that the charset names a codec, but ``rot13``, ``hex`` or ``base64`` are
    codecs that do not turn bytes into text: decoding the query string with one raises
    ``LookupError`` while the request is built, before any middleware could answer. Such a
    parameter is ignored, as Django ignores an unknown one, and the default (UTF-8) applies.
    """

    def _set_content_type_params(self, meta):
        self.content_type, self.content_params = parse_header_parameters(
            meta.get("CONTENT_TYPE", "")
        )
        charset = self.content_params.get("charset")
        if charset is not None and is_text_encoding(charset):
            self.encoding = charset


def is_text_encoding(name: str) -> bool:
    try:
        return codecs.lookup(name)._is_text_encoding
    except LookupError:
        return False


class Handler(WSGIHandler):
    request_class = Request


def get_application():
    django.setup(set_prefix=False)
    return ChunkedBodies(Handler())


application = get_application()
