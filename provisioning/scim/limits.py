"""Limits on what one request may ask and one resource may hold, so that the cost of a
request and what a change adds to the audit trail stay bounded (README, "Limits").

Per resource:

- values of a multi-valued attribute (``emails``, ``phoneNumbers``, ...): at most
  ``SCIM_MAX_MULTI_VALUES``, counted in a request body before its values are validated
  and after each PATCH operation (400 ``invalidValue``: a value the server refuses);
- the stored document (writable attributes as compact JSON, group members excluded):
  at most ``SCIM_MAX_DOCUMENT_BYTES`` (413).

Per request (a Bulk request counts its operations together, as one request):

- group members named: at most ``SCIM_MAX_MEMBERS_PER_REQUEST`` (413); a group may
  hold any number, changed in deltas;
- PATCH operations: at most ``SCIM_MAX_PATCH_OPERATIONS`` (413);
- work: at most ``SCIM_MAX_REQUEST_WORK`` units of roughly a microsecond, weighed
  below. Work of PATCH paths and value filters over the limit is 400 ``tooMany``
  (RFC 7644 §3.12 names it for PATCH filters that select more than the server will
  process); writes over it are 413. Equality filters (``emails[value eq "x"]``, what
  IdPs send) are looked up, not compared with every value, and cost only the values
  they find. An ordinary write costs a few thousand units: only Bulk requests of many
  writes on large resources and pathological PATCH requests meet the limit.

A request over a limit of this server is answered 413, as RFC 7644 §3.7.4 answers a
Bulk request over ``maxOperations`` or ``maxPayloadSize``. A resource stored before a
limit existed (or was lowered) may keep what it holds and shrink, not grow. The time a
list may take in the database is limited where lists are read
(``directory.selectors.page``). ServiceProviderConfig has no field for these limits:
``/Schemas`` states them in the description of each multi-valued attribute
(``annotate_schema``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings

from .errors import InvalidValue, PayloadTooLarge, ScimError
from .schema import GROUP, Attribute, ResourceSchema

# Weights of the work budget (what a unit of work is), roughly the microseconds each costs:
# a path character parsed, a value a filter's comparison examines, a value written.
PATH_CHARACTER = 2
COMPARISON = 3
WRITE = 8
# A member filter other than ``value eq`` is evaluated by the database over every
# membership of the group: one unit per member.
MEMBER_ROW = 1
# A resource written (its transaction, audit rows and request-log share), its weight,
# and each member a group gains or loses (a row written or deleted, and its audit entry).
RESOURCE_WRITE = 4_000
DOCUMENT_BYTES_PER_UNIT = 1
MEMBER_CHANGE = 100


def max_multi_values() -> int:
    return settings.SCIM_MAX_MULTI_VALUES


def max_members_per_request() -> int:
    return settings.SCIM_MAX_MEMBERS_PER_REQUEST


def max_patch_operations() -> int:
    return settings.SCIM_MAX_PATCH_OPERATIONS


def max_document_bytes() -> int:
    return settings.SCIM_MAX_DOCUMENT_BYTES


def max_request_work() -> int:
    return settings.SCIM_MAX_REQUEST_WORK


def is_group_members(attribute: Attribute) -> bool:
    return attribute.urn == GROUP and attribute.name == "members"


def check_values(attribute: Attribute, count: int, where: str, *, stored: int = 0) -> None:
    """Refuse ``count`` values for multi-valued ``attribute`` when over its limit.

    ``stored``: how many it holds now. A resource stored before the limit existed (or
    was lowered) keeps what it has and may shrink; it may not grow. Group members are
    counted per request instead (``Budget.count_members``).
    """
    if is_group_members(attribute):
        budget().count_members(count)
        return
    limit = max_multi_values()
    if count > max(limit, stored):
        raise InvalidValue(
            f"'{where}' may hold at most {limit} values; this request would leave {count}"
        )


def check_request_values(schema: ResourceSchema, body: Any, stored: dict | None = None) -> None:
    """Count the values of each multi-valued attribute in a POST or PUT body before any
    is validated: an oversized list is refused at the cost of its length.

    ``stored`` is the resource's document for a PUT (its lists may keep their length).
    Names that do not resolve are left to validation, which reports them.
    """
    if not isinstance(body, dict):
        return
    stored = stored or {}
    for key, value in body.items():
        if not isinstance(key, str):
            continue
        urn = schema.canonical_urn(key)
        if urn and urn != schema.core and isinstance(value, dict):
            attributes = schema.extension_attributes(urn)
            inner_stored = stored.get(urn) if isinstance(stored.get(urn), dict) else {}
            for name, item in value.items():
                attribute = attributes.get(name.lower()) if isinstance(name, str) else None
                _check_listed(attribute, item, inner_stored)
            continue
        try:
            if key.lower().startswith("urn:"):
                attribute = schema.resolve(key).attribute
            else:
                attribute = schema.core_attribute(key)
        except ScimError:
            continue
        _check_listed(attribute, value, stored)


def _check_listed(attribute: Attribute | None, value: Any, stored: dict) -> None:
    if attribute is None or not attribute.multi_valued or not isinstance(value, list):
        return
    kept = stored.get(attribute.name)
    check_values(attribute, len(value), attribute.name, stored=len(kept) if isinstance(kept, list) else 0)


def check_members(count: int) -> None:
    limit = max_members_per_request()
    if count > limit:
        raise PayloadTooLarge(
            f"At most {limit} group members may be named in one request; this one names "
            f"{count}. Send the rest in further requests"
        )


def check_operations(count: int) -> None:
    limit = max_patch_operations()
    if count > limit:
        raise PayloadTooLarge(
            f"At most {limit} PATCH operations are accepted per request; this one has {count}"
        )


class Budget:
    """What one HTTP request has used of the per-request limits.

    A PATCH request is one budget. A Bulk request shares one budget between its
    operations (``request_budget``), so that splitting work into Bulk operations does
    not multiply what one request may cost.
    """

    def __init__(self) -> None:
        self.operations = 0
        self.members = 0
        self.work = 0
        self.writes = 0

    def count_operations(self, count: int) -> None:
        self.operations += count
        check_operations(self.operations)

    def count_members(self, count: int) -> None:
        self.members += count
        check_members(self.members)

    def count_work(self, units: int) -> None:
        """Work of PATCH paths and filters (``PATH_CHARACTER``, ``COMPARISON``, ``WRITE``
        and ``MEMBER_ROW`` units)."""
        self.work += units
        limit = max_request_work()
        if self.work > limit:
            # RFC 7644 §3.12 names tooMany for PATCH path filters that select more
            # than the server is willing to process.
            raise ScimError(
                "The paths and value filters of this request would examine or write more "
                "values than accepted in one request; send fewer operations, narrower "
                f"filters or shorter paths (limit: {limit} units)",
                scim_type="tooMany",
            )

    def begin_write(self) -> None:
        """A write starts: counted before it reads anything, so that a Bulk request whose
        work is spent refuses its remaining operations at once."""
        self.writes += 1
        self._count_written(RESOURCE_WRITE)

    def count_written(self, document_bytes: int, members_changed: int = 0) -> None:
        """What a planned write will store: its resource's size, its membership delta."""
        self._count_written(
            document_bytes // DOCUMENT_BYTES_PER_UNIT + members_changed * MEMBER_CHANGE
        )

    def _count_written(self, units: int) -> None:
        self.work += units
        limit = max_request_work()
        if self.work > limit:
            raise PayloadTooLarge(
                "This request would write more than the server accepts in one request "
                f"({self.writes} resources so far; limit: {limit} units); send the rest in "
                "another request"
            )


_budget: ContextVar[Budget | None] = ContextVar("scimgate_request_budget", default=None)


def budget() -> Budget:
    """The budget of the request being served, or a budget of its own for one call."""
    return _budget.get() or Budget()


@contextmanager
def request_budget() -> Iterator[Budget]:
    """One budget for everything served inside: a Bulk request's operations, a write
    service's steps. Inside another, the outer budget goes on counting."""
    current = _budget.get()
    if current is not None:
        yield current
        return
    shared = Budget()
    token = _budget.set(shared)
    try:
        yield shared
    finally:
        _budget.reset(token)


def document_size(document: dict) -> int:
    """Bytes of ``document`` as compact UTF-8 JSON: what one stored resource weighs."""
    return len(
        json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str).encode(
            "utf-8", "surrogatepass"
        )
    )


# A resource stored larger than the limit may still grow this much per change (a
# deactivation, a new title), so that it can be kept up to date, and no more.
STORED_GROWTH = 1024


def check_change(
    before: dict | None, after: dict | None, resource_type: str, *, members_changed: int = 0
) -> None:
    """What a write leaves, checked once it is planned (every write passes here): no
    resource larger than the limit, no multi-valued attribute over its limit, no more
    work than the request may do (its size and membership delta counted). A resource
    stored before a limit existed may stay as it is or shrink, not grow (its size by at
    most ``STORED_GROWTH`` bytes)."""
    if after is None:
        budget().count_written(0, members_changed)
        return
    _check_lists(after, before or {})
    limit = max_document_bytes()
    size = document_size(after)
    # A resource stored larger than the limit is counted as large as allowed: one write of
    # it always fits in a request (it can be deactivated), a Bulk of them does not.
    budget().count_written(min(size, limit), members_changed)
    if size <= limit:
        return
    if before is not None:
        stored = document_size(before)
        if stored > limit and size <= stored + STORED_GROWTH:
            return
    raise PayloadTooLarge(
        f"The {resource_type} would take {size} bytes as JSON; at most {limit} are "
        "accepted per resource (group members are not counted)"
    )


def _check_lists(document: dict, stored: dict) -> None:
    limit = max_multi_values()
    for key, value in document.items():
        kept = stored.get(key)
        if isinstance(value, list) and len(value) > limit:
            allowed = len(kept) if isinstance(kept, list) else 0
            if len(value) > allowed:
                raise InvalidValue(
                    f"'{key}' may hold at most {limit} values; this request would leave "
                    f"{len(value)}"
                )
        elif isinstance(value, dict) and key.startswith("urn:"):
            _check_lists(value, kept if isinstance(kept, dict) else {})


def annotate_schema(document: dict) -> dict:
    """A copy of a ``/Schemas`` document whose multi-valued attributes state their limit."""
    document = copy.deepcopy(document)
    urn = document.get("id", "")
    for attribute in document.get("attributes", []):
        if not attribute.get("multiValued"):
            continue
        if urn == GROUP and attribute.get("name") == "members":
            note = f"At most {max_members_per_request()} members may be named per request."
        else:
            note = f"At most {max_multi_values()} values."
        attribute["description"] = _joined(attribute.get("description"), note)
    return document


def _joined(description: Any, note: str) -> str:
    text = description.strip() if isinstance(description, str) else ""
    if text and not text.endswith("."):
        text += "."
    return f"{text} {note}".strip()
