"""The DRF plumbing every SCIM endpoint shares: authentication, rate limiting,
content negotiation and turning every failure into a SCIM Error body.

Authorization (what a client's role allows) is not here: reads are checked in
``views``, writes in the directory services, both through
``provisioning.access.authorization``."""

from __future__ import annotations

import json
import logging
import operator
import re
import sys
from itertools import accumulate, count
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from django.views import defaults
from rest_framework import exceptions as drf
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from provisioning.access import config_cache
from provisioning.access.client_address import client_address
from provisioning.access.models import ScimClient
from provisioning.access.token_check import (
    TokenRejected,
    scim_client_record_denied,
    scim_token_verify,
)
from provisioning.audit.middleware import SCIM_PREFIX, announced_length

from . import errors
from .resources import scim_base_url
from .schema import checked_once, refresh_extensions

logger = logging.getLogger(__name__)

SCIM_CONTENT_TYPE = "application/scim+json"
WWW_AUTHENTICATE = 'Bearer realm="scimgate"'


class ScimRenderer(JSONRenderer):
    """SCIM's JSON, written by orjson: what DRF's renderer writes (compact, UTF-8,
    U+2028 and U+2029 escaped), about ten times faster; a 100-user page (125 KB) took
    0.9 ms with ``json``. Types orjson does not know (dates, decimals, lazy strings) go to
    DRF's encoder, as before. orjson writes a negative exponent without its leading zero
    (``1e-7`` for ``1e-07``) and NaN as ``null``; no document holds NaN (SCIM bodies that
    carry one are refused, PostgreSQL's jsonb cannot store one). What orjson refuses (an
    integer beyond 64 bits, a non-string key, a lone surrogate) and an indented rendering
    go to DRF's renderer."""

    media_type = SCIM_CONTENT_TYPE
    charset = None
    _OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    # DRF's encoder keeps no state: one serves every response.
    _default = staticmethod(JSONRenderer.encoder_class().default)

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if (
            self.compact
            and not self.ensure_ascii
            and self.get_indent(accepted_media_type, renderer_context or {}) is None
        ):
            try:
                rendered = orjson.dumps(
                    data, default=self._default, option=self._OPTIONS
                )
            except TypeError:
                pass
            else:
                return rendered.replace(b"\xe2\x80\xa8", b"\\u2028").replace(
                    b"\xe2\x80\xa9", b"\\u2029"
                )
        return super().render(data, accepted_media_type, renderer_context)


# JSON nested deeper than this is refused before it is parsed: the decoder recurses once
# per level, and no SCIM document needs more than a handful.
MAX_JSON_DEPTH = 64

# Characters no SCIM value may hold: NUL (PostgreSQL cannot store it) and lone surrogates
# (``"\ud800"`` decodes to one, and no UTF-8 encoder can write it back).
_FORBIDDEN = re.compile(r"[\x00\ud800-\udfff]")
# A string, or an unterminated one to the end of the text: matching never restarts inside
# a string, so even escaped quotes by the million cost linear time.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def json_depth(raw: bytes) -> int:
    """How deeply ``raw`` nests arrays and objects, counting brackets outside strings.

    Linear and without recursion. Unbalanced or otherwise broken text still gets a
    number (the deepest point reached), which is all a limit needs.
    """
    brackets = _JSON_STRING.sub(b"", raw).translate(_BRACKET_STEP, _NOT_BRACKET)
    if not brackets:
        return 0
    # An opener adds 2 and a closer 0; minus one per bracket, the running sum is the depth.
    return max(map(operator.sub, accumulate(brackets), count(1)))


def forbidden_character(text: str) -> str | None:
    """The name of the first character ``text`` may not contain, or None."""
    found = _FORBIDDEN.search(text)
    if found is None:
        return None
    return "a NUL character" if found.group() == "\x00" else "a lone surrogate"


def _pointer(path: list) -> str:
    """A JSON Pointer (RFC 6901) for an error message, every character printable."""
    parts = (str(p).replace("~", "~0").replace("/", "~1") for p in path)
    return json.dumps("/" + "/".join(parts))[1:-1] if path else "the top level"


def check_characters(value: Any) -> None:
    """Refuse NUL characters and lone surrogates in any key or string of a JSON value."""
    stack: list[tuple[Any, list]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if problem := forbidden_character(node):
                raise errors.InvalidValue(f"The request body holds {problem} at {_pointer(path)}")
        elif isinstance(node, dict):
            for key, item in node.items():
                if problem := forbidden_character(key):
                    raise errors.InvalidValue(
                        f"The request body holds {problem} in a name at {_pointer(path + [key])}"
                    )
                stack.append((item, path + [key]))
        elif isinstance(node, list):
            stack.extend((item, path + [index]) for index, item in enumerate(node))


def _finite(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise errors.InvalidValue(f"The number {text[:40]} is out of range")
    return number


def _no_constant(name: str):
    raise errors.InvalidSyntax(f"'{name}' is not valid JSON")


def parse_json_body(raw: bytes) -> Any:
    """Decode a request body: UTF-8 JSON (RFC 8259 §8.1), nested at most MAX_JSON_DEPTH
    levels, without NUL characters or lone surrogates in any string or name."""
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise errors.InvalidSyntax(
            f"The request body is nested deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        # A declared charset is not obeyed: JSON between systems is UTF-8 (a BOM is tolerated).
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise errors.InvalidSyntax("The request body is not valid UTF-8") from None
    try:
        data = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except ValueError:
        # JSONDecodeError, and integers longer than Python converts (4,300 digits)
        raise errors.InvalidSyntax("The request body is not valid JSON") from None
    # json.loads refuses a raw NUL (a control character) in a string, and valid UTF-8
    # holds no lone surrogate: either can only arrive as a \u escape.
    if "\\u" in text:
        check_characters(data)
    return data


class ScimParser(JSONParser):
    media_type = SCIM_CONTENT_TYPE

    def parse(self, stream, media_type=None, parser_context=None):
        return parse_json_body(stream.read() if stream is not None else b"")


class PlainJsonParser(ScimParser):
    media_type = "application/json"


class ScimNegotiation(BaseContentNegotiation):
    """SCIM answers application/scim+json whatever the Accept header says (RFC 7644 §3.1)."""

    def select_parser(self, request, parsers):
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        for parser in parsers:
            if parser.media_type == content_type:
                return parser
        # IdPs occasionally omit the type or send text/plain; the body is still JSON.
        return parsers[0] if content_type in ("", "text/plain") else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


# What a rejected token is told; "invalid" covers unknown and wrong secrets alike.
_REJECTIONS = {
    "invalid": "The bearer token is not valid",
    "revoked": "The bearer token has been revoked",
    "expired": "The bearer token has expired",
    "network": "The bearer token may not be used from this network address",
}


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != b"bearer" or len(header) != 2:
            raise errors.Unauthorized("Use 'Authorization: Bearer <token>'")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise errors.Unauthorized("The bearer token is not valid") from None
        # The client behind our trusted proxies, not the proxy (SCIMGATE_TRUSTED_PROXIES).
        address = client_address(request)
        try:
            token = scim_token_verify(raw, address=address)
        except TokenRejected as exc:
            logger.warning(
                "SCIM token rejected: %s (prefix %s, address %s)",
                exc.reason,
                exc.prefix or "-",
                address,
            )
            raise errors.Unauthorized(_REJECTIONS[exc.reason]) from None
        return token.client, token

    def authenticate_header(self, request):
        return WWW_AUTHENTICATE


class ScimClientRequired(BasePermission):
    """An authenticated SCIM client. What it may do is decided by its role, per resource,
    in ``provisioning.access.authorization`` (called by the views and directory services)."""

    def has_permission(self, request, view):
        if request.user is None:
            raise errors.Unauthorized("Authentication required: send a bearer token")
        return True


class ScimClientThrottle(SimpleRateThrottle):
    """Requests per client, at ``settings.SCIM_RATE_LIMIT`` ("600/min"); unset: no limit.

    Counters live in the default cache: configure a shared one (Redis) when
    several web processes serve SCIM, or each process counts on its own.
    """

    scope = "scim"

    def get_rate(self):
        return getattr(settings, "SCIM_RATE_LIMIT", None) or None

    def get_cache_key(self, request, view):
        client = request.user
        if not isinstance(client, ScimClient):
            return None
        return self.cache_format % {"scope": self.scope, "ident": client.pk}


class UnauthenticatedThrottle(SimpleRateThrottle):
    """Requests without valid credentials, per client address, at
    ``settings.SCIM_UNAUTHENTICATED_RATE_LIMIT`` ("60/min"); unset: no limit.

    Bounds token guessing and what anonymous senders add to the request log. Counted
    before anything else about the request is checked (``ScimView.initial``), so a
    client with a valid token is never held back by others at its address.
    """

    scope = "scim-unauthenticated"

    def get_rate(self):
        return getattr(settings, "SCIM_UNAUTHENTICATED_RATE_LIMIT", None) or None

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_address(request) or "unknown"}


def record_denied(request, error: errors.ScimError) -> None:
    """Count a 403 against the client that received it (Bulk: once per refused operation)."""
    if error.status != 403:
        return  # and do not touch request.user: it may be what failed
    client = getattr(request, "user", None)
    if isinstance(client, ScimClient):
        scim_client_record_denied(client=client)


def scim_exception_handler(exc, context) -> Response:
    """Every failure becomes a SCIM Error body with a string status (RFC 7644 §3.12).

    A held write is not a failure and never reaches here: the views answer it (202).
    """
    error = as_scim_error(exc)
    request = context.get("request")
    if request is not None:
        record_denied(request, error)
    response = Response(error.to_dict(), status=error.status, headers=error.headers)
    if error.status == 401:
        response["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response


# How long an IdP is asked to wait when the database cannot be reached.
UNAVAILABLE_RETRY_AFTER = 30


def as_scim_error(exc) -> errors.ScimError:
    if isinstance(exc, errors.ScimError):
        return exc
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is unreachable, restarting or overloaded: retry later (RFC 9110 §15.6.4).
        logger.error("Database unavailable in SCIM endpoint: %s", exc, exc_info=exc)
        error = errors.ScimError("The service is temporarily unavailable; retry later", status=503)
        error.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
        return error
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return errors.Unauthorized("Authentication required: send a bearer token")
    if isinstance(exc, drf.PermissionDenied):
        return errors.Forbidden(str(exc.detail))
    if isinstance(exc, drf.MethodNotAllowed):
        return errors.MethodNotAllowed(str(exc.detail))
    if isinstance(exc, drf.UnsupportedMediaType):
        return errors.ScimError(
            "Send the body as application/scim+json or application/json", status=415
        )
    if isinstance(exc, drf.Throttled):
        error = errors.ScimError("Too many requests; retry later", status=429)
        if exc.wait is not None:
            error.headers["Retry-After"] = str(int(exc.wait) + 1)
        return error
    if isinstance(exc, drf.ParseError):
        return errors.InvalidSyntax("The request body is not valid JSON")
    if isinstance(exc, Http404 | drf.NotFound):
        return errors.NotFound("Resource not found")
    if isinstance(exc, RequestDataTooBig):
        return errors.PayloadTooLarge("The request body is too large")
    logger.exception("Unhandled error in SCIM endpoint")
    return errors.ScimError("Internal server error", status=500)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: a failure outside the SCIM views on a SCIM path (in a middleware,
    before DRF ran) is still a SCIM Error, 503 with Retry-After if the database is down."""
    if not request.path.startswith(SCIM_PREFIX):
        return defaults.server_error(request)
    exc = sys.exc_info()[1]
    error = (
        as_scim_error(exc)
        if exc is not None
        else errors.ScimError("Internal server error", status=500)
    )
    response = HttpResponse(
        json.dumps(error.to_dict()), status=error.status, content_type=SCIM_CONTENT_TYPE
    )
    for header, value in error.headers.items():
        response[header] = value
    return response


# Request headers the SCIM views read; the rest pass through unread.
_READ_HEADERS = ("If-Match", "If-None-Match")


def check_request_text(request) -> None:
    """Refuse NUL characters and lone surrogates in the path, the query and the headers
    the views read, so no such character reaches a query or an error message."""
    if problem := forbidden_character(request.path):
        raise errors.InvalidValue(f"The request path holds {problem}")
    for name, values in request.query_params.lists():
        for text in (name, *values):
            if problem := forbidden_character(text):
                raise errors.InvalidValue(f"A query parameter holds {problem}")
    for header in _READ_HEADERS:
        if problem := forbidden_character(request.headers.get(header, "")):
            raise errors.InvalidValue(f"The {header} header holds {problem}")
    if request.method == "DELETE" and request.body:
        # RFC 9110 §9.3.5: a DELETE body has no meaning here and may be refused; one that
        # is sent meets the rules of any other body, since the DELETE's change set records
        # it. (A GET's body is only kept by the request log, escaped as needed.)
        parse_json_body(request.body)


class ScimView(APIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [ScimClientRequired]
    throttle_classes = [ScimClientThrottle]
    renderer_classes = [ScimRenderer]
    parser_classes = [ScimParser, PlainJsonParser]
    content_negotiation_class = ScimNegotiation

    def get_exception_handler(self):
        return scim_exception_handler

    def dispatch(self, request, *args, **kwargs):
        # One check of the registered extension schemas per request (in ``initial``), at
        # the settings revision the token lookup reads (no query of its own).
        with checked_once(), config_cache.request_scope():
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        self.check_unauthenticated_rate(request)
        length = announced_length(request.META)
        if length is not None and length > self.max_body_size():
            raise errors.PayloadTooLarge(
                f"The request body exceeds {self.max_body_size()} bytes"
            )
        super().initial(request, *args, **kwargs)
        check_request_text(request)
        # Extension schemas registered or changed by another process (one primary-key read).
        refresh_extensions()

    def check_unauthenticated_rate(self, request) -> None:
        """Count a request without valid credentials against its address; 429 beyond the rate.

        Authenticates first (DRF keeps the result), so a rejected token is counted too and
        its 401 raised as it would have been.
        """
        try:
            authenticated = isinstance(request.user, ScimClient)
        except (errors.Unauthorized, drf.AuthenticationFailed, drf.NotAuthenticated):
            self._throttle_unauthenticated(request)
            raise
        if not authenticated:
            self._throttle_unauthenticated(request)

    def _throttle_unauthenticated(self, request) -> None:
        throttle = UnauthenticatedThrottle()
        if not throttle.allow_request(request, self):
            raise drf.Throttled(wait=throttle.wait())

    def max_body_size(self) -> int:
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    def body(self, request) -> dict:
        """The JSON object in the request body; anything else is invalidSyntax."""
        data = request.data
        if not isinstance(data, dict):
            raise errors.InvalidSyntax("The request body must be a JSON object")
        return data

    def base_url(self, request) -> str:
        return scim_base_url(request)


class PublicScimView(ScimView):
    """Discovery documents describe the server and need no credentials (RFC 7644 §4)."""

    authentication_classes = []
    permission_classes = []
    throttle_classes = []
