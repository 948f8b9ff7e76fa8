"""Cursor paging (RFC 9865): signed cursors and keyset pages over one or more resource types.

A cursor names the boundary row of the page that issued it: its resource type (the
root search walks Users, then Groups), its sort key value (type-tagged, so a datetime
comes back a datetime) and its id, and whether it leads forwards (``nextCursor``) or
backwards (``previousCursor``). The next page is read with comparisons against that
row, never OFFSET, so inserts and deletes elsewhere do not shift it: a resource that
exists throughout the walk appears exactly once. Nothing is stored on the server.

A cursor is signed with ``SECRET_KEY`` (``django.core.signing``: URL-safe, only RFC 3986
unreserved characters) under a salt that binds it to the query: the endpoint (User,
Group or the root search), the SCIM client, ``filter``, ``sortBy`` and ``sortOrder``.
Presented with another client or another of those parameters, or altered, its
signature fails: 400 ``invalidCursor``. It carries its page size (another ``count`` is
400 ``invalidCount``) and its time of issue (older than ``SCIM["CURSOR_TIMEOUT"]``
seconds: 400 ``expiredCursor``). ``attributes``/``excludedAttributes`` only shape the
documents and may change between pages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
import zlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core import signing
from django.db.models import Model, QuerySet

from provisioning.directory import selectors

from . import errors

SALT = "provisioning.scim.cursors"
FORMAT = 1
# The order of the root search, and the index a cursor records.
KINDS = ("User", "Group")
# Ours are about 150 characters; anything much longer is not one of ours.
MAX_LENGTH = 1024
# RFC 9865 §2: unreserved characters (RFC 3986 §2.3) only.
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")


@dataclass(frozen=True)
class Binding:
    """What a cursor is valid for: the query's endpoint, client and result-defining parameters."""

    endpoint: str  # "User", "Group" or "root"
    client_id: str
    filter: str | None
    sort_by: str | None
    descending: bool

    def salt(self) -> str:
        material = json.dumps(
            [FORMAT, self.endpoint, self.client_id, self.filter, self.sort_by, self.descending]
        )
        return f"{SALT}:{hashlib.sha256(material.encode()).hexdigest()}"


@dataclass(frozen=True)
class Position:
    """The boundary row of a page: the next page starts after it (before it, ``backwards``)."""

    kind: int  # index into KINDS
    value: Any
    pk: uuid.UUID
    backwards: bool = False


def _signer(binding: Binding) -> signing.TimestampSigner:
    # "~" instead of ":" between the parts: unreserved, and outside base64's alphabet.
    return signing.TimestampSigner(salt=binding.salt(), sep="~")


# --- Sort key values, type-tagged ----------------------------------------------------


def _tag(value: Any) -> list:
    if value is None:
        return ["n", None]
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, float):
        return ["f", repr(value)]
    if isinstance(value, Decimal):
        return ["d", str(value)]
    if isinstance(value, datetime):
        return ["t", value.isoformat()]
    if isinstance(value, date):
        return ["D", value.isoformat()]
    if isinstance(value, uuid.UUID):
        return ["u", value.hex]
    if isinstance(value, str):
        return ["s", value]
    return ["j", value]  # a JSON value (object or array) read from a JSON attribute


def _untag(tag: str, value: Any) -> Any:
    readers = {
        "n": lambda v: None,
        "b": lambda v: v if isinstance(v, bool) else _bad(),
        "i": lambda v: v if isinstance(v, int) and not isinstance(v, bool) else _bad(),
        "f": float,
        "d": Decimal,
        "t": datetime.fromisoformat,
        "D": date.fromisoformat,
        "u": uuid.UUID,
        "s": lambda v: v if isinstance(v, str) else _bad(),
        "j": lambda v: v,
    }
    return readers[tag](value)


def _bad():
    raise ValueError("malformed cursor value")


def _uuid_text(pk: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(pk.bytes).rstrip(b"=").decode()


def _uuid_from(text: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


# --- Cursors -------------------------------------------------------------------------


def issue(binding: Binding, count: int, position: Position | None) -> str:
    """A cursor for the page after (before) ``position``; None: the first page."""
    payload: list = [count]
    if position is not None:
        payload += [
            position.kind,
            int(position.backwards),
            *_tag(position.value),
            _uuid_text(position.pk),
        ]
    return _signer(binding).sign_object(payload, compress=True)


def read(token: str, binding: Binding) -> tuple[int, Position | None]:
    """``(count, position)`` of a cursor issued for ``binding``.

    Every failure but age is the same ``invalidCursor``, whatever its cause (RFC 9865
    §5.2: a forged cursor and another client's look alike).
    """
    invalid = errors.InvalidCursor(
        "The cursor is not valid for this query: send the nextCursor or previousCursor of "
        "a previous page with the same filter, sortBy and sortOrder, or an empty cursor for "
        "the first page"
    )
    if len(token) > MAX_LENGTH or not _UNRESERVED.fullmatch(token):
        raise invalid
    timeout = settings.SCIM["CURSOR_TIMEOUT"]
    try:
        payload = _signer(binding).unsign_object(token, max_age=timeout)
    except signing.SignatureExpired:
        raise errors.ExpiredCursor(
            f"The cursor has expired: request the next page within {timeout} seconds "
            "(cursorTimeout), or start again with an empty cursor"
        ) from None
    except (signing.BadSignature, ValueError, binascii.Error, zlib.error):
        raise invalid from None
    try:
        count, *rest = payload
        if isinstance(count, bool) or not isinstance(count, int):
            raise ValueError
        if not rest:
            return count, None
        kind, backwards, tag, value, pk = rest
        if kind not in range(len(KINDS)) or backwards not in (0, 1):
            raise ValueError
        return count, Position(kind, _untag(tag, value), _uuid_from(pk), bool(backwards))
    except (TypeError, ValueError, KeyError, ArithmeticError, binascii.Error):
        raise invalid from None


def resolve(
    token: str, binding: Binding, *, count: int, count_given: bool
) -> tuple[int, Position | None]:
    """The page size and position of a request in cursor mode: an empty cursor is the first
    page at ``count``; a cursor keeps the size it was issued with, and another explicit
    ``count`` is 400 ``invalidCount`` (RFC 9865 §2.1: identical to the initial query)."""
    if token == "":
        return count, None
    issued_count, position = read(token, binding)
    if count_given and count != issued_count:
        raise errors.InvalidCount(
            f"'count' must stay {issued_count} on every page of this query (RFC 9865 §2.1)"
        )
    return issued_count, position


# --- Pages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One resource type's readable, filtered resources, in ``KINDS`` order."""

    kind: int
    queryset: QuerySet


@dataclass
class CursorPage:
    rows: list[tuple[int, Model]]  # (kind, resource) in order
    total: int
    next_cursor: str | None = None
    previous_cursor: str | None = None


def page(
    segments: list[Segment],
    *,
    binding: Binding,
    key: Any,
    descending: bool,
    count: int,
    position: Position | None,
) -> CursorPage:
    """One page of the segments walked in order (each in keyset order by ``key``), starting
    after (before) ``position``, with the cursors of its neighbours.

    ``nextCursor`` unless nothing follows; ``previousCursor`` unless nothing precedes (the
    first page never has one, RFC 9865 §2). Queries: one count per segment (the counter
    row when unfiltered), the page (one per segment it spans) and one existence check.
    """
    segments = sorted(segments, key=lambda segment: segment.kind)
    with selectors.list_time_limit():
        totals = {segment.kind: selectors.count(segment.queryset) for segment in segments}
        total = sum(totals.values())
        if count <= 0 or total == 0:
            # count=0 asks for totalResults alone (RFC 9865 §2).
            return CursorPage([], total)
        walk = _Walk(segments, totals, key, descending)
        if position is None or not position.backwards:
            rows, after = walk.forward(position, count)
            before = position is not None and bool(rows) and walk.exists(rows[0], backwards=True)
        else:
            rows, before = walk.backward(position, count)
            after = walk.exists(rows[-1], backwards=False) if rows else True
    result = CursorPage(rows, total)
    if after:
        # An empty backward page means nothing precedes the position any more: the rest
        # is the walk from the start.
        last = Position(rows[-1][0], _key(rows[-1][1]), rows[-1][1].pk) if rows else None
        result.next_cursor = issue(binding, count, last)
    if before:
        first = rows[0]
        result.previous_cursor = issue(
            binding, count, Position(first[0], _key(first[1]), first[1].pk, backwards=True)
        )
    return result


def _key(row: Model) -> Any:
    return getattr(row, selectors.SEEK)


class _Walk:
    def __init__(self, segments: list[Segment], totals: dict[int, int], key: Any, descending: bool):
        self.segments = [segment for segment in segments if totals[segment.kind]]
        self.key = key
        self.descending = descending

    def _rows(self, segment: Segment, boundary, *, backwards: bool, limit: int) -> list:
        found = selectors.seek_rows(
            segment.queryset,
            key=self.key,
            descending=self.descending,
            boundary=boundary,
            backwards=backwards,
            limit=limit,
        )
        return [(segment.kind, row) for row in found]

    def forward(self, position: Position | None, count: int) -> tuple[list, bool]:
        """The first ``count`` rows after ``position``, and whether more follow."""
        rows: list = []
        for segment in self.segments:
            if len(rows) > count:
                break
            if position is not None and segment.kind < position.kind:
                continue
            boundary = None
            if position is not None and segment.kind == position.kind:
                boundary = (position.value, position.pk)
            rows += self._rows(segment, boundary, backwards=False, limit=count + 1 - len(rows))
        return rows[:count], len(rows) > count

    def backward(self, position: Position, count: int) -> tuple[list, bool]:
        """The last ``count`` rows before ``position``, in order, and whether more precede."""
        rows: list = []
        for segment in reversed(self.segments):
            if len(rows) > count:
                break
            if segment.kind > position.kind:
                continue
            boundary = (position.value, position.pk) if segment.kind == position.kind else None
            rows = self._rows(segment, boundary, backwards=True, limit=count + 1 - len(rows)) + rows
        return rows[-count:], len(rows) > count

    def exists(self, row: tuple[int, Model], *, backwards: bool) -> bool:
        """Whether anything precedes (``backwards``) or follows ``row`` in the walk."""
        kind, resource = row
        for segment in self.segments:
            if (segment.kind < kind) if backwards else (segment.kind > kind):
                return True  # segments are kept only when they have rows
        segment = next(segment for segment in self.segments if segment.kind == kind)
        return selectors.seek_exists(
            segment.queryset,
            key=self.key,
            descending=self.descending,
            boundary=(_key(resource), resource.pk),
            backwards=backwards,
        )
