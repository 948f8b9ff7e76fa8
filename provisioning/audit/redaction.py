"""Secrets out of everything that keeps a request: request log, change sets, held operations.

What is a secret is decided the way the parsers read a request, so that no spelling
the server accepts slips past:

- a key is a secret when it names one, in any letter case and with any separators
  (``password``, ``Password1``, ``passwd``, ``pwd``, ``client_secret``, ``privateKey``,
  ``private-key``, ``api_key``, ``access_token``, ``credentials``, ``Authorization``,
  ``client_assertion``, ...); a key that is an attribute path counts by its attribute
  and sub-attribute (``urn:...:User:password``, ``password[type eq "x"].value``), not
  by a schema URN or a value filter around it (``emails[value eq "password"]`` is not);
- in an object with a ``path`` member (any case, as the PATCH parser matches member
  names, RFC 7644 §3.5.2) that names a secret attribute, every ``value`` member (any
  case) is a secret: a PATCH operation, also inside a Bulk operation's ``data``;
- bearer tokens (``scg_<prefix>_<secret>``), OAuth access tokens (``scgat_...``), client
  secrets (``scgcs_...``), event-stream poll tokens (``scgev_...``) and operator API tokens
  (``scgop_...``) in any string keep only their scheme and public prefix.

A body is parsed before it is stored: JSON is stored redacted (exactly as sent when
nothing in it could be a secret), a form-encoded body as its pairs with secret values
replaced. A body that cannot be parsed (invalid JSON, undecodable bytes, any other
text) is never stored as sent: only its size, its media type and its shape, every
value masked.

The directory stores no password (``password`` is accepted and dropped, RFC 7643
§4.1.1 makes it writeOnly), so a held operation whose stored request has the password
replaced applies exactly as the original request would have.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

REDACTED = "[REDACTED]"

# Matched against a name lower-cased with everything but letters and digits removed, so
# ``client_secret``, ``Client-Secret`` and ``clientSecret`` are one name.
_SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "pwd",
    "secret",
    "token",
    "credential",
    "authorization",
    "assertion",
    "digest",
    "privatekey",
    "apikey",
    "signingkey",
    "encryptionkey",
    "sharedkey",
)
# Short names that are secrets only on their own (``pin`` is not ``shipping``), with
# trailing digits (``pw1``).
_SECRET_NAMES = frozenset({"pass", "pw", "pin", "otp", "bearer"})
# Every ASCII byte but a-z and 0-9 (after lower-casing, non-ASCII is dropped by encoding).
_NOT_ALNUM = bytes(b for b in range(128) if not (48 <= b <= 57 or 97 <= b <= 122))
_TRAILING_DIGITS = re.compile(r"[0-9]+$")
_TOKEN_RE = re.compile(r"(scg|scgat|scgcs|scgev|scgop)_([A-Za-z0-9]{8})_[A-Za-z0-9_\-]+")
# The quoted literals of a filter: ``"..."`` with backslash escapes.
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"?')
# Bodies quicker to keep as sent than to re-serialise: no trace of a secret-like name
# (once separators are removed), of a token, or of an escape that could spell one.
_ESCAPES = (b"\\u", b"%", b"\x00", "\ufffd".encode())
# Contained in every name ``_secret_name`` matches: one scan each instead of one per name.
_SECRET_STEMS = (
    "pass",
    "pw",
    "secret",
    "token",
    "credential",
    "authorization",
    "assertion",
    "digest",
    "key",
    "pin",
    "otp",
    "bearer",
)


def _squash(text: str) -> str:
    """Lower case, letters a-z and digits only: how names are compared. ``str.lower``
    first, as the parsers match names (the Kelvin sign lower-cases to ``k``)."""
    return text.lower().encode("ascii", "ignore").translate(None, _NOT_ALNUM).decode("ascii")


def _secret_name(name: str) -> bool:
    squashed = _squash(name)
    if not squashed:
        return False
    if _TRAILING_DIGITS.sub("", squashed) in _SECRET_NAMES:
        return True
    return any(part in squashed for part in _SECRET_PARTS)


def _without_filters(path: str) -> str:
    """A path with its value filters (``[...]``, quoted literals included) removed."""
    out, depth, quoted, escaped = [], 0, False, False
    for char in path:
        if quoted:
            quoted = not (char == '"' and not escaped)
            escaped = char == "\\" and not escaped
        elif char == '"':
            quoted = True
        elif char == "[":
            depth += 1
        elif char == "]":
            depth = max(depth - 1, 0)
        elif depth == 0:
            out.append(char)
    return "".join(out)


def is_secret_key(key: Any) -> bool:
    """Whether a member name, or an attribute path used as one, names a secret.

    A path counts by its attribute and sub-attribute: ``urn:...:User:password`` and
    ``password.value`` do, ``emails[value eq "password"].value`` does not.
    """
    if not isinstance(key, str):
        return False
    if ":" not in key and "." not in key and "[" not in key:
        return _secret_name(key)
    attribute = _without_filters(key).rsplit(":", 1)[-1]
    return _secret_name(attribute) or any(_secret_name(p) for p in attribute.split("."))


def redact_text(text: str) -> str:
    """Bearer tokens in free text: keep the public prefix, drop the secret."""
    return _TOKEN_RE.sub(lambda m: f"{m[1]}_{m[2]}_{REDACTED}", text)


def _redact_path(path: str) -> str:
    """A path naming a secret keeps no literal of its filter (``password[value eq "x"]``)."""
    return _QUOTED.sub(f'"{REDACTED}"', path) if '"' in path else path


class Redacted(dict):
    """An object ``redact`` has made already (a request as ``_describe`` stores it on a
    change set): ``redact`` gives it back as it is, instead of a second, identical
    copy. Nothing else is trusted: a plain object is redacted whoever built it."""


def redact(value: Any) -> Any:
    """A copy of a JSON value with every secret replaced (see the module docstring);
    a ``Redacted`` object as it is.

    Objects and arrays nested deeper than the interpreter's recursion limit raise
    ``RecursionError``; the body functions below treat such a body as unparsed.
    """
    if isinstance(value, Redacted):
        return value
    if isinstance(value, dict):
        secret_path = any(
            isinstance(key, str)
            and key.lower() == "path"
            and isinstance(item, str)
            and is_secret_key(item)
            for key, item in value.items()
        )
        redacted = {}
        for key, item in value.items():
            lowered = key.lower() if isinstance(key, str) else key
            if is_secret_key(key) or (secret_path and lowered == "value"):
                redacted[key] = REDACTED
            elif secret_path and lowered == "path" and isinstance(item, str):
                redacted[key] = _redact_path(item)
            else:
                redacted[key] = redact(item)
        return redacted
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _redact_filter(expression: str) -> str:
    """A filter comparing a secret attribute keeps none of its literals."""
    names = re.findall(r"[A-Za-z0-9_$:.\-\[\]]+", _QUOTED.sub("", expression))
    if any(is_secret_key(name) for name in names):
        return _QUOTED.sub(f'"{REDACTED}"', expression)
    return redact_text(expression)


def _redact_pairs(pairs: list[tuple[str, str]]) -> str:
    return urlencode(
        [
            (
                key,
                REDACTED
                if is_secret_key(key)
                else _redact_filter(value)
                if key.lower() == "filter"
                else redact_text(value),
            )
            for key, value in pairs
        ],
        safe="[]",
    )


def redact_query(query: str) -> str:
    """A query string with the values of secret-named parameters (any case) replaced,
    and the literals of a filter on a secret attribute."""
    if not query:
        return ""
    # Only ``&`` separates parameters (as Django reads them), so ``a=1;password=x`` is one
    # value: a value holding a secret-named ``name=`` or ``name:`` is dropped whole.
    pairs = [
        (key, REDACTED if _holds_named_secret(value) else value)
        for key, value in parse_qsl(query, keep_blank_values=True)
    ]
    return _redact_pairs(pairs)


def _holds_named_secret(value: str) -> bool:
    return any(is_secret_key(name) for name in re.findall(r"([A-Za-z0-9_.\-]+)\s*[=:]", value))


# --- Bodies --------------------------------------------------------------------------

_UNPARSED = object()
# Media types named as sent; any other keeps only its top-level type (the header is the
# client's text, and could carry anything).
_KNOWN_MEDIA_TYPES = frozenset(
    {
        "application/scim+json",
        "application/json",
        "application/x-www-form-urlencoded",
        "application/xml",
        "application/octet-stream",
        "multipart/form-data",
        "text/plain",
        "text/xml",
        "text/html",
        "text/csv",
    }
)
_TOP_LEVEL_TYPES = frozenset(
    {"application", "audio", "font", "image", "message", "model", "multipart", "text", "video"}
)
_FORM_BODY = re.compile(r"[^=&\s]+=[^&\s]*(?:&[^=&\s]+=[^&\s]*)*&?")
_FORM_KEY = re.compile(r"[A-Za-z0-9_.:$\-\[\]]{1,128}")
# A shape token: a quoted string (maybe unterminated), punctuation, blanks, or a run of
# anything else (words, numbers, bytes that did not decode).
_SHAPE_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[{}\[\]:,=&;]|\s+|[^\s{}\[\]:,=&;"]+')
_SHAPE_KEY = re.compile(r'"[A-Za-z$][A-Za-z0-9_.:$\-]{0,127}"')
_SHAPE_LIMIT = 2048


def media_type(content_type: str | None) -> str:
    """A Content-Type header as it may be stored: a common ``type/subtype`` as sent
    (parameters dropped), another as ``type/other``, anything else as "unknown"."""
    main = (content_type or "").split(";", 1)[0].strip().lower()
    if main in _KNOWN_MEDIA_TYPES:
        return main
    top = main.split("/", 1)[0]
    return f"{top}/other" if "/" in main and top in _TOP_LEVEL_TYPES else "unknown"


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)  # bytes: UTF-8, UTF-16 or UTF-32, as RFC 8259 §8.1 allows
    except (ValueError, RecursionError):
        return _UNPARSED


def _dump(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # A lone surrogate (``"\ud800"`` sent escaped) cannot be stored as text: keep it escaped.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _form_text(raw: bytes) -> str | None:
    """A form-encoded body (``a=1&b=2``) with secret values replaced, else None."""
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if not _FORM_BODY.fullmatch(text):
        return None
    pairs = parse_qsl(text, keep_blank_values=True)
    if not pairs or not all(_FORM_KEY.fullmatch(key) for key, _ in pairs):
        return None
    return _redact_pairs([(k, REDACTED if _holds_named_secret(v) else v) for k, v in pairs])


def masked_shape(text: str, limit: int = _SHAPE_LIMIT) -> str:
    """The shape of a text that could not be parsed: punctuation kept, member names that
    look like attribute names kept, every other string, word and number masked.

    ``{"userName": "ana", "password": "x",}`` becomes ``{"userName": "*", "password": "*",}``.
    """
    # Each token shows as at least one character: a prefix of the text gives the whole
    # shape that fits (an unterminated string or a long run is one token, cut short).
    tokens = _SHAPE_TOKEN.findall(text[: limit * 8])
    out: list[str] = []
    size = 0
    previous = ""  # the last token that was not blank
    for index, token in enumerate(tokens):
        if token.isspace():
            if out and out[-1] != " ":
                out.append(" ")
                size += 1
            continue
        if token.startswith('"'):
            after = index + 1
            while after < len(tokens) and tokens[after].isspace():
                after += 1
            following = tokens[after] if after < len(tokens) else ""
            is_key = previous in ("{", ",", "") and following == ":" and _SHAPE_KEY.fullmatch(token)
            shown = token if is_key else '"*"'
        elif len(token) == 1 and token in "{}[]:,=&;":
            shown = token
        else:
            shown = "*"
        if size + len(shown) > limit:
            out.append("…")
            break
        out.append(shown)
        size += len(shown)
        previous = token
    return "".join(out).strip()


def unparsed_summary(raw: bytes, content_type: str | None = None) -> str:
    """What is kept of a body that cannot be parsed: size, media type, masked shape."""
    shape = masked_shape(raw.decode("utf-8", errors="replace"))
    return f"[unparsed body: {len(raw)} bytes, {media_type(content_type)}] {shape}".rstrip()


def redact_body(raw: bytes, content_type: str | None = None) -> tuple[Any, str]:
    """(redacted JSON value or None, text to store) for a request or response body.

    JSON: its value and text with secrets replaced. Form-encoded: None and its pairs,
    secret values replaced. Anything else: None and ``unparsed_summary``.
    """
    if not raw:
        return None, ""
    parsed = _parse_json(raw)
    if parsed is not _UNPARSED:
        try:
            cleaned = redact(parsed)
            return cleaned, _dump(cleaned)
        except RecursionError:
            return None, unparsed_summary(raw, content_type)
    form = _form_text(raw)
    if form is not None:
        return None, form
    return None, unparsed_summary(raw, content_type)


def _may_hold_secret(raw: bytes, text: str) -> bool:
    """Whether anything in a body could name a secret as ``is_secret_key`` would, or
    spell one in an escape (a superset: stems count wherever they appear)."""
    if b"scg" in raw or any(escape in raw for escape in _ESCAPES):
        return True
    squashed = _squash(text)
    return any(stem in squashed for stem in _SECRET_STEMS)


def redact_body_text(
    raw: bytes, content_type: str | None = None, *, rendered_json: bool = False
) -> str:
    """The text ``redact_body`` stores for a body; valid JSON in which nothing could be a
    secret (no secret-like name, no token, no escape that could spell one) is kept
    exactly as sent, without re-serialising it.

    ``rendered_json``: ``raw`` is this server's own JSON encoder's output (a response
    body), valid by construction, so it is not parsed again to prove it; the secret
    check is the same.
    """
    if not raw:
        return ""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return redact_body(raw, content_type)[1]
    if not _may_hold_secret(raw, text) and (rendered_json or _parse_json(raw) is not _UNPARSED):
        return text
    return redact_body(raw, content_type)[1]


def unredacted_head(raw: bytes, limit: int) -> str | None:
    """The first ``limit`` bytes of a body, cut on a character boundary, as the text to
    store, when nothing in them could name or spell a secret (``_may_hold_secret``); else
    None. Only for this server's own JSON (valid UTF-8 by construction): what
    ``truncate(redact_body_text(raw), limit)`` keeps of a body in which nothing could be
    a secret, found without checking the part that is not kept."""
    head = raw[:limit]
    text = head.decode("utf-8", errors="ignore")
    return None if _may_hold_secret(head, text) else text


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` bytes of UTF-8, cut on a character boundary."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore")
