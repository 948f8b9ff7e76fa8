"""ETags and ``If-Match`` for resources that change (RFC 9110 §8.8.3, §13.1.1).

An ETag here is strong: the SHA-256 of the resource's JSON representation as the API
serves it, so it changes with anything the representation shows. ``If-Match`` is
evaluated with the strong comparison RFC 9110 §13.1.1 requires: a weak tag (``W/"..."``)
never matches; ``*`` matches any current representation. A stale tag is 412; a changing
request without ``If-Match`` where one is required is 428 (RFC 6585 §3).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from rest_framework.response import Response

from .errors import PreconditionFailed, PreconditionRequired

# One entity-tag of a list: optional weak indicator, then a quoted opaque tag
# (RFC 9110 §8.8.3: etagc is any visible character but DQUOTE).
_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')


def etag_of(representation: Any) -> str:
    """The strong ETag of a JSON representation (stable key order)."""
    canonical = json.dumps(representation, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:40] + '"'


def _entity_tags(header: str) -> list[tuple[bool, str]] | None:
    """(weak, opaque tag) of each entity-tag in the header; None if it is not a list of them."""
    tags, position = [], 0
    header = header.strip()
    while position < len(header):
        match = _ENTITY_TAG.match(header, position)
        if match is None:
            return None
        tags.append((match[1] is not None, match[2]))
        position = match.end()
    return tags or None


def if_match(request, current_etag: str, *, required: bool = True) -> None:
    """Raise 428 or 412 unless ``If-Match`` names ``current_etag`` (strong comparison)."""
    header = request.headers.get("If-Match")
    if header is None:
        if required:
            raise PreconditionRequired()
        return
    if header.strip() == "*":
        return
    tags = _entity_tags(header)
    current = current_etag.strip('"')
    if tags is None or not any(not weak and tag == current for weak, tag in tags):
        raise PreconditionFailed()


def not_modified(request, current_etag: str) -> bool:
    """Whether ``If-None-Match`` names ``current_etag`` (weak comparison, RFC 9110 §13.1.2)."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    tags = _entity_tags(header) or []
    return any(tag == current_etag.strip('"') for _weak, tag in tags)


def conditional_response(request, data, etag: str):
    """``data`` with its ``ETag``, or 304 when ``If-None-Match`` already names it."""
    if not_modified(request, etag):
        return Response(status=304, headers={"ETag": etag})
    return Response(data, headers={"ETag": etag})
