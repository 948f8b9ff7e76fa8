"""Published keys: JWKS documents fetched from a URL or found through an issuer's
OpenID discovery document (``<issuer>/.well-known/openid-configuration`` →
``jwks_uri``), kept in the default cache.

A key id the cached document does not hold makes the caller ask once for a fresh
copy (``refresh=True``); a URL is refetched for that reason at most once per
SCIMGATE_OAUTH_KEYS_REFRESH_SECONDS, so assertions with made-up key ids cannot make
the server hammer an IdP. Fetches are bounded in time and size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet

logger = logging.getLogger(__name__)

FETCH_TIMEOUT = 5
MAX_DOCUMENT_BYTES = 256 * 1024
_CACHE_PREFIX = "scimgate:oauth:doc:"


class KeysUnavailable(Exception):
    """A key document could not be fetched or is not one."""


def _cache_key(url: str, suffix: str = "") -> str:
    return _CACHE_PREFIX + hashlib.sha256(url.encode()).hexdigest() + suffix


def _fetch_json(url: str) -> dict:
    """GET a JSON object from an http(s) URL, within FETCH_TIMEOUT and MAX_DOCUMENT_BYTES."""
    scheme = urlsplit(url).scheme
    if scheme != "https" and not (scheme == "http" and settings.SCIMGATE_OAUTH_ALLOW_HTTP):
        raise KeysUnavailable(f"not an https URL: {url[:200]}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:  # noqa: S310
            body = response.read(MAX_DOCUMENT_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise KeysUnavailable(f"fetching {url[:200]} failed: {exc}") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise KeysUnavailable(f"{url[:200]} answered more than {MAX_DOCUMENT_BYTES} bytes")
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


def _document(url: str, *, refresh: bool) -> dict:
    """The JSON document at ``url``: cached, or fetched; with ``refresh`` fetched again
    unless it was refetched less than SCIMGATE_OAUTH_KEYS_REFRESH_SECONDS ago."""
    key = _cache_key(url)
    document = cache.get(key)
    if document is None or (refresh and _may_refresh(url)):
        document = _fetch_json(url)
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
