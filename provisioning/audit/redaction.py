"""Secrets out of everything the audit trail stores: request/response bodies, query strings.

Passwords (any key containing "password", at any depth, in any case, and the
``value`` of a PATCH operation whose ``path`` names a password), bearer
tokens (``scg_<prefix>_<secret>``: the public prefix is kept, the secret
replaced) and credential-like keys are replaced by ``REDACTED``.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

REDACTED = "[REDACTED]"
_SECRET_KEY_PARTS = ("password", "secret", "authorization", "token", "credential", "digest")
_TOKEN_RE = re.compile(r"scg_([A-Za-z0-9]{8})_[A-Za-z0-9_\-]+")
# For bodies that are not valid JSON: "password": "x" / password=x.
_LOOSE_SECRET_RE = re.compile(
    r"""(?ix)
    ("?[a-z_\-]*(?:password|secret|token|authorization)[a-z_\-]*"?\s*[:=]\s*)
    ("(?:[^"\\]|\\.)*"|[^,&}\s]*)
    """
)


def is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and any(part in key.lower() for part in _SECRET_KEY_PARTS)


def redact_text(text: str) -> str:
    """Bearer tokens in free text: keep the public prefix, drop the secret."""
    return _TOKEN_RE.sub(lambda m: f"scg_{m[1]}_{REDACTED}", text)


def redact(value: Any) -> Any:
    """A copy of a JSON value with every secret replaced."""
    if isinstance(value, dict):
        path = value.get("path")
        names_secret = isinstance(path, str) and is_secret_key(path.rsplit(":", 1)[-1])
        return {
            key: REDACTED
            if is_secret_key(key) or (names_secret and key == "value")
            else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_query(query: str) -> str:
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode(
        [(key, REDACTED if is_secret_key(key) else redact_text(value)) for key, value in pairs]
    )


def redact_body(raw: bytes) -> tuple[Any, str]:
    """(parsed JSON or None, redacted text) for a request or response body."""
    if not raw:
        return None, ""
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        text = raw.decode("utf-8", errors="replace")
        return None, redact_text(_LOOSE_SECRET_RE.sub(lambda m: m[1] + f'"{REDACTED}"', text))
    cleaned = redact(parsed)
    return cleaned, json.dumps(cleaned, ensure_ascii=False, separators=(",", ":"))


def redact_body_text(raw: bytes) -> str:
    """The redacted text of a body, as ``redact_body`` gives it, without parsing a body that
    cannot hold a secret: one with no secret-like word, no token prefix and no escape that
    could spell one (``\\u0070assword``, or UTF-16/32 text) is stored exactly as sent."""
    if not raw:
        return ""
    text = raw.decode("utf-8", errors="replace")
    lowered = text.lower()
    if (
        "\\u" in lowered
        or "\x00" in text
        or "\ufffd" in text
        or "scg_" in lowered
        or any(part in lowered for part in _SECRET_KEY_PARTS)
    ):
        return redact_body(raw)[1]
    return text


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` bytes of UTF-8, cut on a character boundary."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore")
