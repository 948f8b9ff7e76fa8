"""Correlation id, change-set scope and request log for every request.

Every request gets a server-generated correlation id (a UUIDv7; a client cannot
choose it). A request to ``/scim/v2/`` is one unit of change (one change set)
and is written to the request log; a write through the Django admin is one
unit too. The log row is written when the response is closed, after its bytes
went to the client (before, where the database connection is shared between threads),
with one INSERT outside the SCIM write transaction; any failure is logged and
swallowed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import connection
from django.http import HttpRequest, HttpResponse
from rest_framework.renderers import JSONRenderer

from provisioning.access.client_address import client_address
from provisioning.access.models import ScimClient
from provisioning.access.token_check import token_prefix_of

from .context import change_set_scope, request_context
from .redaction import (
    Redacted,
    redact_body,
    redact_body_text,
    redact_query,
    truncate,
    unredacted_head,
)
from .request_log import request_log_write, storable_text

logger = logging.getLogger(__name__)

SCIM_PREFIX = "/scim/v2/"
ADMIN_PREFIX = "/admin/"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _bearer_prefix(request: HttpRequest) -> str:
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return token_prefix_of(parts[1]) or ""
    return ""


class AuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Resolved here, once, for everything that asks later (audit, tokens, rate limits).
        address = client_address(request)
        with request_context(remote_addr=address, http_request=request) as ctx:
            if request.path.startswith(SCIM_PREFIX):
                return self._scim(request, ctx.correlation_id)
            if request.path.startswith(ADMIN_PREFIX) and request.method not in _SAFE_METHODS:
                with change_set_scope(source="admin", http_request=request, request=_describe(request)):
                    return self.get_response(request)
            return self.get_response(request)

    def _scim(self, request: HttpRequest, correlation_id) -> HttpResponse:
        started = time.perf_counter()
        body = _read_body(request)
        with change_set_scope(
            source="scim", http_request=request, request=lambda: _describe(request, body)
        ):
            response = self.get_response(request)
        latency_ms = (time.perf_counter() - started) * 1000
        if settings.SCIMGATE_REQUEST_LOG_ENABLED:

            def log() -> None:
                self._log(request, response, body, latency_ms, correlation_id)

            if connection.allow_thread_sharing:
                # One connection shared by the threads of a server (a live test server on an
                # in-memory SQLite database): the client's next request may commit on it
                # as soon as it has this answer, which it must not do while this thread
                # still writes on it. The log is written before the answer is sent.
                log()
            else:
                # Closers run once the server has sent the response: the client does not
                # wait for the log.
                response._resource_closers.append(log)
        return response

    def _log(self, request, response, body: bytes | None, latency_ms: float, correlation_id) -> None:
        try:
            user = getattr(request, "user", None)
            client = user if isinstance(user, ScimClient) else None
            # Anyone can send a body: without valid credentials only a prefix of it is kept.
            limit = (
                settings.SCIMGATE_REQUEST_LOG_MAX_BODY
                if client is not None
                else settings.SCIMGATE_REQUEST_LOG_UNAUTHENTICATED_MAX_BODY
            )
            response_bytes = b"" if response.streaming else response.content
            request_stored, request_truncated, request_escaped = _stored_body(
                body or b"", request.content_type, limit
            )
            response_stored, response_truncated, response_escaped = _stored_body(
                response_bytes,
                response.get("Content-Type"),
                limit,
                rendered_json=_rendered_json(response),
            )
            request_log_write(
                correlation_id=correlation_id,
                scim_client_id=client.pk if client is not None else None,
                token_prefix=_bearer_prefix(request),
                method=request.method,
                path=request.path,
                query=redact_query(request.META.get("QUERY_STRING", "")),
                status=response.status_code,
                latency_ms=round(latency_ms, 3),
                remote_addr=client_address(request),
                request_body=request_stored,
                request_size=_request_size(request, body),
                request_truncated=request_truncated,
                response_body=response_stored,
                response_size=len(response_bytes),
                response_truncated=response_truncated,
                escaped=request_escaped or response_escaped,
            )
        except Exception:  # noqa: BLE001 - the request log must never fail a request
            logger.exception("Could not write the SCIM request log")


# A JSON escape of a UTF-16 surrogate (after an odd run of backslashes: a real escape);
# ``low`` is the escape that completes a high surrogate into a pair.
_SURROGATE_ESCAPE = re.compile(
    rb"(?<!\\)(?:\\\\)*\\u(?:[dD][89abAB][0-9a-fA-F]{2}(?P<low>\\u[dD][c-fC-F][0-9a-fA-F]{2})?"
    rb"|[dD][c-fC-F][0-9a-fA-F]{2})"
)


def _unstorable(raw: bytes) -> bool:
    """Whether a body holds what no text column of every database can hold as sent:
    bytes that are not UTF-8, NUL, a lone surrogate (as a JSON escape)."""
    if b"\x00" in raw:
        return True
    if not raw.isascii():
        try:
            raw.decode()
        except UnicodeDecodeError:
            return True
    return b"\\u" in raw and any(m["low"] is None for m in _SURROGATE_ESCAPE.finditer(raw))


def _rendered_json(response: HttpResponse) -> bool:
    """Whether a response's body is the output of DRF's JSON renderer (strict: no NaN),
    which is valid JSON by construction."""
    return isinstance(getattr(response, "accepted_renderer", None), JSONRenderer)


def _body_text(
    raw: bytes, content_type: str | None, *, rendered_json: bool = False
) -> tuple[str, bool]:
    """The redacted text of a body as stored, and whether the body held what a column
    cannot hold as sent (the row is then flagged ``escaped``).

    Redaction keeps such a body escaped (JSON) or masked (what it cannot parse); whatever
    is left that a column cannot hold is escaped here (``\\x00``, ``\\ud800``).
    """
    text, escaped = storable_text(redact_body_text(raw, content_type, rendered_json=rendered_json))
    return text, escaped or _unstorable(raw)


def _stored_body(
    raw: bytes, content_type: str | None, limit: int, *, rendered_json: bool = False
) -> tuple[str, bool, bool]:
    """The text a body is stored as (at most ``limit`` bytes), whether it was cut, and
    whether the body held what a column cannot hold. This server's own JSON longer than
    the limit (a 100-user list page is 125 KB, the limit 64 KiB) is checked for secrets
    over the part that is kept only, when nothing there could be one."""
    if rendered_json and len(raw) > limit:
        head = unredacted_head(raw, limit)
        if head is not None:
            return head, True, _unstorable(raw)
    text, escaped = _body_text(raw, content_type, rendered_json=rendered_json)
    stored = truncate(text, limit)
    return stored, len(stored) < len(text), escaped


def announced_length(meta) -> int | None:
    """The Content-Length a request announces, or None when it has none or it is not a
    number. Beyond 18 digits it is 10**18, more than any limit (and int() refuses strings
    of more than 4,300 digits); the request-log writer clamps it to its column."""
    announced = meta.get("CONTENT_LENGTH") or ""
    if not (announced.isascii() and announced.isdigit()):
        return None
    digits = announced.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else 10**18


def _request_size(request: HttpRequest, body: bytes | None) -> int:
    """The body's size; the announced Content-Length for a body not read (too large)."""
    if body is not None:
        return len(body)
    return announced_length(request.META) or 0


def _read_body(request: HttpRequest) -> bytes | None:
    """The raw body, read now so that DRF can still parse it afterwards (Django caches it)."""
    try:
        return request.body
    except RequestDataTooBig:
        return None  # DRF answers 413; the log records the announced size only
    except Exception:  # noqa: BLE001 - a broken stream is the view's error to report
        return None


def _describe(request: HttpRequest, body: bytes | None = None) -> Redacted:
    """The request as stored on a change set: method, path, query and redacted body
    (``Redacted``: the change set does not redact it again)."""
    document = Redacted(
        method=request.method,
        path=request.path,
        query=redact_query(request.META.get("QUERY_STRING", "")),
    )
    if body:
        # JSON as its redacted value; anything else as redacted pairs or a masked shape.
        parsed, text = redact_body(body, request.content_type)
        limit = settings.SCIMGATE_REQUEST_LOG_MAX_BODY
        if len(text.encode()) <= limit:
            document["body"] = parsed if parsed is not None else text
        else:
            document["body"] = truncate(text, limit)
            document["body_truncated"] = True
        document["body_size"] = len(body)
    return document
