"""The HTTP ``Prefer`` request header (RFC 7240), as far as SCIM asks for it.

RFC 9967 §2.5.1.1: a client asks for asynchronous completion of a write with
``Prefer: respond-async``, possibly beside other preferences (``wait=10``,
``return=minimal``), in one header or several. Preference names are tokens compared
case-insensitively (RFC 7240 §2); the first instance of a preference counts; what this
server does not understand is ignored, never an error.
"""

from __future__ import annotations

import re

RESPOND_ASYNC = "respond-async"

# RFC 9110 §5.6.2 token characters.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _split(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside quoted strings (RFC 9110 §5.6.4)."""
    parts, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(word: str) -> str:
    if len(word) >= 2 and word[0] == word[-1] == '"':
        return re.sub(r"\\(.)", r"\1", word[1:-1])
    return word


def preferences(header: str | None) -> dict[str, str]:
    """The preferences of a ``Prefer`` header value, by lower-cased name, each with its
    value ("" when it has none; parameters after ``;`` are not needed here).

    ``"respond-async, wait=100"`` -> ``{"respond-async": "", "wait": "100"}``.
    """
    found: dict[str, str] = {}
    for element in _split(header or "", ","):
        head = _split(element, ";")[0]
        name, equals, value = head.partition("=")
        name = name.strip()
        if not _TOKEN.match(name):
            continue  # empty list elements (RFC 9110 §5.6.1) and malformed ones
        name = name.lower()
        if name not in found:  # RFC 7240 §2: only the first instance is considered
            found[name] = _unquote(value.strip()) if equals else ""
    return found


def respond_async(header: str | None) -> bool:
    """Whether the client asked for asynchronous processing (RFC 7240 §4.1).

    ``respond-async`` takes no value; an empty one is the same as none (RFC 7240 §2), a
    non-empty one is not this preference as the RFC defines it and is ignored.
    """
    return preferences(header).get(RESPOND_ASYNC) == ""
