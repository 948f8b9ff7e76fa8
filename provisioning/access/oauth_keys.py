"""Published keys: JWKS documents fetched from a URL or found through an issuer's
OpenID discovery document (``<issuer>/.well-known/openid-configuration`` →
``jwks_uri``), kept in the default cache.

A key id the cached document does not hold makes the caller ask once for a fresh
copy (``refresh=True``); a URL is refetched for that reason at most once per
SCIMGATE_OAUTH_KEYS_REFRESH_SECONDS, so assertions with made-up key ids cannot make
the server hammer an IdP.

Fetching is guarded against server-side request forgery: redirects are not followed
(a 3xx answer is a failed fetch), and the destination must be a public (globally
routable) address, checked when the host name is resolved and again on the connected
socket (DNS rebinding), unless SCIMGATE_OAUTH_ALLOW_PRIVATE_ADDRESSES (development)
allows loopback and private networks. No proxy from the environment is used. A fetch
ends after FETCH_DEADLINE seconds in all and MAX_DOCUMENT_BYTES bytes; a URL whose
fetch failed is not fetched again for FAILURE_CACHE_SECONDS.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import socket
import ssl
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet

from . import outbound

logger = logging.getLogger(__name__)

# Each connect or read waits at most this long, and the whole fetch FETCH_DEADLINE.
FETCH_TIMEOUT = 5
FETCH_DEADLINE = 10
MAX_DOCUMENT_BYTES = 256 * 1024
FAILURE_CACHE_SECONDS = 30
_CHUNK = 16 * 1024
_CACHE_PREFIX = "scimgate:oauth:doc:"


class KeysUnavailable(Exception):
    """A key document could not be fetched or is not one."""


class AddressRefused(KeysUnavailable):
    """A URL's host is, or resolves to, an address that is not public."""


def _cache_key(url: str, suffix: str = "") -> str:
    return _CACHE_PREFIX + hashlib.sha256(url.encode()).hexdigest() + suffix


def _address_allowed(address: str) -> bool:
    return outbound.address_allowed(
        address, allow_private=settings.SCIMGATE_OAUTH_ALLOW_PRIVATE_ADDRESSES
    )


def check_destination(url: str) -> None:
    """Refuse a URL whose host resolves to any non-public address (loopback, private,
    link-local such as 169.254.169.254, …) unless SCIMGATE_OAUTH_ALLOW_PRIVATE_ADDRESSES.
    Raises ``AddressRefused``, or ``KeysUnavailable`` when the host does not resolve."""
    try:
        outbound.check_destination(
            url, allow_private=settings.SCIMGATE_OAUTH_ALLOW_PRIVATE_ADDRESSES
        )
    except outbound.DestinationRefused as exc:
        raise AddressRefused(str(exc)) from None
    except outbound.DestinationUnresolved as exc:
        raise KeysUnavailable(str(exc)) from None


def _guarded_connect(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None):  # noqa: SLF001
    """socket.create_connection, refusing a peer that is not a public address (the name
    may resolve differently than when it was checked)."""
    try:
        return outbound.guarded_connect(
            address,
            timeout,
            source_address,
            allow_private=settings.SCIMGATE_OAUTH_ALLOW_PRIVATE_ADDRESSES,
        )
    except outbound.DestinationRefused as exc:
        raise AddressRefused(str(exc)) from None


class _Handler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """http and https with guarded connections; remembers them so the reader can
    shorten their timeouts to the fetch's deadline."""

    def __init__(self):
        urllib.request.HTTPHandler.__init__(self)
        urllib.request.HTTPSHandler.__init__(self, context=ssl.create_default_context())
        self.connections: list[http.client.HTTPConnection] = []

    def _connection(self, cls):
        def make(host, **kwargs):
            connection = cls(host, **kwargs)
            connection._create_connection = _guarded_connect  # noqa: SLF001
            self.connections.append(connection)
            return connection

        return make

    def http_open(self, req):
        return self.do_open(self._connection(http.client.HTTPConnection), req)

    def https_open(self, req):
        return self.do_open(
            self._connection(http.client.HTTPSConnection), req, context=self._context
        )


def _opener() -> tuple[urllib.request.OpenerDirector, _Handler]:
    """An opener without redirect or proxy handlers: a 3xx is an HTTPError."""
    opener = urllib.request.OpenerDirector()
    handler = _Handler()
    for h in (
        handler,
        urllib.request.UnknownHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(h)
    return opener, handler


def _read(response, handler: _Handler, deadline: float) -> bytes:
    """The body, read in chunks until MAX_DOCUMENT_BYTES + 1 or the deadline."""
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KeysUnavailable(f"took longer than {FETCH_DEADLINE} seconds")
        for connection in handler.connections:
            if connection.sock is not None:
                connection.sock.settimeout(min(FETCH_TIMEOUT, remaining))
        chunk = response.read1(_CHUNK) if hasattr(response, "read1") else response.read(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_DOCUMENT_BYTES:
            raise KeysUnavailable(f"answered more than {MAX_DOCUMENT_BYTES} bytes")


def _fetch_json(url: str) -> dict:
    """GET a JSON object from an http(s) URL at a public address, within FETCH_DEADLINE
    and MAX_DOCUMENT_BYTES, following no redirect."""
    scheme = urlsplit(url).scheme
    if scheme != "https" and not (scheme == "http" and settings.SCIMGATE_OAUTH_ALLOW_HTTP):
        raise KeysUnavailable(f"not an https URL: {url[:200]}")
    deadline = time.monotonic() + FETCH_DEADLINE
    try:
        check_destination(url)
    except KeysUnavailable as exc:
        raise KeysUnavailable(f"fetching {url[:200]} refused: {exc}") from None
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked
    opener, handler = _opener()
    try:
        with opener.open(request, timeout=FETCH_TIMEOUT) as response:
            body = _read(response, handler, deadline)
    except urllib.error.HTTPError as exc:
        note = " (redirects are not followed)" if 300 <= exc.code < 400 else ""
        raise KeysUnavailable(f"fetching {url[:200]} failed: HTTP {exc.code}{note}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException, KeysUnavailable) as exc:
        raise KeysUnavailable(f"fetching {url[:200]} failed: {exc}") from None
    try:
        document = json.loads(body)
    except ValueError:
        raise KeysUnavailable(f"{url[:200]} did not answer JSON") from None
    if not isinstance(document, dict):
        raise KeysUnavailable(f"{url[:200]} did not answer a JSON object")
    return document


def _may_refresh(url: str) -> bool:
    """Whether an unknown key id may refetch ``url`` now (at most once per interval)."""
    interval = settings.SCIMGATE_OAUTH_KEYS_REFRESH_SECONDS
    if interval <= 0:
        return True
    return cache.add(_cache_key(url, ":refreshed"), True, interval)


def _fetch_or_remember_failure(url: str) -> dict:
    """``_fetch_json``; a failure is remembered for FAILURE_CACHE_SECONDS, during which
    the URL is not fetched again (an unreachable IdP is not asked on every request)."""
    failed = cache.get(_cache_key(url, ":failed"))
    if failed is not None:
        raise KeysUnavailable(f"{failed} (not retried for {FAILURE_CACHE_SECONDS} s)")
    try:
        return _fetch_json(url)
    except KeysUnavailable as exc:
        cache.set(_cache_key(url, ":failed"), str(exc)[:500], FAILURE_CACHE_SECONDS)
        raise


def _document(url: str, *, refresh: bool) -> dict:
    """The JSON document at ``url``: cached, or fetched; with ``refresh`` fetched again
    unless it was refetched less than SCIMGATE_OAUTH_KEYS_REFRESH_SECONDS ago."""
    key = _cache_key(url)
    document = cache.get(key)
    if document is None or (refresh and _may_refresh(url)):
        document = _fetch_or_remember_failure(url)
        cache.set(key, document, settings.SCIMGATE_OAUTH_KEYS_CACHE_SECONDS)
    return document


def import_keys(document: dict) -> list[Key]:
    """The keys of a JWKS document that joserfc can use; malformed entries are skipped
    (RFC 7517 §5: keys of unknown types are ignored)."""
    keys: list[Key] = []
    for entry in document.get("keys") or []:
        if not isinstance(entry, dict):
            continue
        try:
            keys.extend(KeySet.import_key_set({"keys": [entry]}).keys)
        except (JoseError, ValueError, TypeError, KeyError):
            continue
    return keys


def jwks_from_url(url: str, *, refresh: bool = False) -> list[Key]:
    """The keys published at a JWKS URL."""
    return import_keys(_document(url, refresh=refresh))


def discovery_url(issuer: str) -> str:
    """OpenID Connect Discovery 1.0 §4: the configuration under the issuer's path."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def jwks_from_issuer(issuer: str, *, refresh: bool = False) -> list[Key]:
    """The keys an issuer publishes: its discovery document's ``jwks_uri``. The document
    must name the same issuer (OpenID Discovery §4.3), or its keys are not the issuer's."""
    configuration = _document(discovery_url(issuer), refresh=refresh)
    if configuration.get("issuer") != issuer:
        raise KeysUnavailable(f"the discovery document of {issuer[:200]} names another issuer")
    jwks_uri = configuration.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise KeysUnavailable(f"the discovery document of {issuer[:200]} has no jwks_uri")
    return jwks_from_url(jwks_uri, refresh=refresh)
