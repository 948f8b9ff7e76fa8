"""HTTP for the OAuth 2.0 authorization server: the token endpoint (RFC 6749 §3.2) and
the authorization server metadata (RFC 8414). Decisions are in ``oauth_server``.

Every answer of the token endpoint is JSON with ``Cache-Control: no-store``
(RFC 6749 §5.1, §5.2). Every request is counted per client address
(OAUTH_TOKEN_RATE_LIMIT_ADDRESS), and failed client authentications per claimed
client id *and* address (OAUTH_TOKEN_RATE_LIMIT_CLIENT), in the default cache, before
anything else is checked: someone elsewhere sending wrong credentials for a client id
cannot lock the client out. Beyond either rate the answer is 429 with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import parse_qs

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .client_address import client_address
from .oauth_server import (
    TOKEN_PATH,
    OAuthError,
    TokenRequest,
    claimed_client_id,
    metadata,
    token_failure_record,
    token_request_handle,
)

FORM_TYPE = "application/x-www-form-urlencoded"
_PERIODS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def issuer(request: HttpRequest) -> str:
    """This server's issuer identifier: SCIMGATE_OAUTH_ISSUER, else the request's origin."""
    return (settings.SCIMGATE_OAUTH_ISSUER or request.build_absolute_uri("/")).rstrip("/")


def _json(document: dict, status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(json.dumps(document), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _error(error: OAuthError) -> HttpResponse:
    body = {"error": error.error, "error_description": error.description}
    if error.status == 401:
        # RFC 6749 §5.2: invalid_client is 401 with the scheme the client may use.
        return _json(body, 401, WWW_Authenticate='Basic realm="scimgate", error="invalid_client"')
    return _json(body, error.status)


def _rate(value: str | None) -> tuple[int, int] | None:
    """("30/min") → (30, 60); empty: no limit."""
    if not value:
        return None
    count, _, period = value.partition("/")
    return int(count), _PERIODS[period.strip().lower()]


def _window(scope: str, ident: str, period: int) -> tuple[str, int]:
    window = int(time.time() // period)
    key = "scimgate:oauth:rate:%s:%s:%d" % (  # noqa: UP031
        scope, hashlib.sha256(ident.encode()).hexdigest()[:32], window
    )
    return key, window


def _wait(window: int, period: int) -> int:
    return max(1, int((window + 1) * period - time.time()) + 1)


def _count(scope: str, ident: str, rate: str | None) -> int:
    """Count one event for ``ident`` in the current window; the count (0: no limit)."""
    parsed = _rate(rate)
    if parsed is None:
        return 0
    _limit, period = parsed
    key, _window_index = _window(scope, ident, period)
    cache.add(key, 0, period + 1)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, period + 1)
        return 1


def _over_limit(scope: str, ident: str, rate: str | None) -> int:
    """Count one request for ``ident``; the seconds to wait when beyond ``rate``, else 0.
    A fixed window per period: one cache increment per request."""
    parsed = _rate(rate)
    if parsed is None:
        return 0
    limit, period = parsed
    count = _count(scope, ident, rate)
    return 0 if count <= limit else _wait(_window(scope, ident, period)[1], period)


def _limited(scope: str, ident: str, rate: str | None) -> int:
    """Without counting: the seconds to wait when ``ident`` already reached ``rate``."""
    parsed = _rate(rate)
    if parsed is None:
        return 0
    limit, period = parsed
    key, window = _window(scope, ident, period)
    return _wait(window, period) if (cache.get(key) or 0) >= limit else 0


def _failure_ident(claimed: str, address: str | None) -> str:
    return f"{claimed}\0{address or 'unknown'}"


def _too_many(wait: int) -> HttpResponse:
    """429 (RFC 6585 §4) with Retry-After. RFC 6749 §5.2 has no error code for a rate
    limit (``temporarily_unavailable`` is the authorization endpoint's, §4.1.2.1), so
    the body is ``invalid_request`` saying when to retry."""
    return _json(
        {"error": "invalid_request", "error_description": f"Too many requests; retry after {wait} seconds"},
        429,
        Retry_After=str(wait),
    )


@csrf_exempt
def token_endpoint(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        response = _json(
            {"error": "invalid_request", "error_description": "Use POST (RFC 6749 §3.2)"}, 405
        )
        response["Allow"] = "POST"
        return response
    address = client_address(request)
    content_type = (request.content_type or "").lower()
    try:
        body = request.body.decode("utf-8") if content_type == FORM_TYPE else ""
        params = parse_qs(body, keep_blank_values=True, strict_parsing=False) if body else {}
    except (UnicodeDecodeError, ValueError):
        params = {}
    authorization = request.META.get("HTTP_AUTHORIZATION")
    wait = _over_limit("address", address or "unknown", settings.OAUTH_TOKEN_RATE_LIMIT_ADDRESS)
    claimed = claimed_client_id(params, authorization)
    if not wait and claimed:
        wait = _limited(
            "client-failures", _failure_ident(claimed, address), settings.OAUTH_TOKEN_RATE_LIMIT_CLIENT
        )
    if wait:
        return _too_many(wait)
    try:
        if content_type != FORM_TYPE:
            raise OAuthError("invalid_request", f"Send the parameters as {FORM_TYPE}")
        origin = issuer(request)
        response = token_request_handle(
            TokenRequest(
                params=params,
                authorization=authorization,
                address=address,
                issuer=origin,
                token_endpoint=origin + TOKEN_PATH,
            )
        )
    except OAuthError as error:
        if not error.claimed_id:
            error.claimed_id = claimed
        token_failure_record(error, address=address)
        if claimed and error.error in ("invalid_client", "invalid_grant"):
            _count("client-failures", _failure_ident(claimed, address), settings.OAUTH_TOKEN_RATE_LIMIT_CLIENT)
        return _error(error)
    return _json(response.as_dict())


def authorization_server_metadata(request: HttpRequest) -> HttpResponse:
    """RFC 8414 §3: the metadata document, at /.well-known/oauth-authorization-server."""
    if request.method not in ("GET", "HEAD"):
        response = HttpResponse(status=405)
        response["Allow"] = "GET, HEAD"
        return response
    response = HttpResponse(
        json.dumps(metadata(issuer=issuer(request))), content_type="application/json"
    )
    response["Cache-Control"] = "public, max-age=3600"
    return response
