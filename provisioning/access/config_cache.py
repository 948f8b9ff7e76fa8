"""Per-process copies of the settings every write reads (SCIM roles, policy rules,
circuit breakers), kept while the database's ``ConfigRevision`` token is unchanged.

The token is replaced in the same transaction as any change to those settings (signals
on save, delete and m2m changes; ``RevisedQuerySet`` for bulk writes), so every
process, whatever connection served the change, reloads once that change commits, and
never because of one that rolled back.

A SCIM request reads the token in its token lookup (``token_check``, the same
statement) and records it on the client it loaded; writes of that request use that
revision and read no setting from the database unless it changed. Other writes (console
actions, approved operations, rollbacks) read the token itself: one primary-key read.

The revision is read before the values it is stored with, so a value is never older than
its revision says: a change that commits in between is loaded early and reloaded
once more, never missed. Values are shared by concurrent requests of the process: they
are immutable, or callers get a fresh copy of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.db import connection
from django.db.models import signals

from .models import ConfigRevision

T = TypeVar("T")

# The revision a client instance was loaded with is unknown (not loaded by a token lookup).
UNSEEN = object()
# The attribute of a ``ScimClient`` instance that holds the revision its token lookup read.
SEEN_ATTRIBUTE = "config_revision"

# The table name is the model's own constant; the id is a parameter.
_REVISION_SQL = f"SELECT token FROM {ConfigRevision._meta.db_table} WHERE id = %s"  # noqa: S608
# The same read as a scalar subquery, for statements that fold the check in.
REVISION_SUBQUERY = f"(SELECT token FROM {ConfigRevision._meta.db_table} WHERE id = 1)"  # noqa: S608

# kind -> (revision, value). Replacing an entry is one dict assignment (atomic).
_entries: dict[str, tuple[Any, Any]] = {}


def revision_from_db(value: Any) -> str | None:
    """The revision as compared here, from a database value of the token column."""
    return None if value is None else str(value)


def revision() -> str | None:
    """The current revision token: one primary-key read, without the ORM's query building."""
    with connection.cursor() as cursor:
        cursor.execute(_REVISION_SQL, [1])
        row = cursor.fetchone()
    return revision_from_db(row[0] if row else None)


# Inside ``request_scope()``: the revision the request's token lookup read, once it did.
_request: ContextVar[list | None] = ContextVar("scimgate_config_request", default=None)


@contextmanager
def request_scope() -> Iterator[None]:
    """One SCIM request: the revision its token lookup reads (``note_request_revision``)
    is the one every setting of the request is read at (``request_revision``), the
    registered extension schemas included, so the request reads no revision twice."""
    token = _request.set([UNSEEN])
    try:
        yield
    finally:
        _request.reset(token)


def note_request_revision(value: str | None) -> None:
    """Record the revision the token lookup read, for the rest of the request."""
    scope = _request.get()
    if scope is not None:
        scope[0] = value


def request_revision() -> str | None:
    """The revision the current request's token lookup read; outside a request (or before
    its lookup) the current one, read now."""
    scope = _request.get()
    if scope is not None and scope[0] is not UNSEEN:
        return scope[0]
    return revision()


def revision_seen_by(client: Any) -> str | None:
    """The revision read with ``client`` by its request's token lookup, else the current one."""
    seen = getattr(client, SEEN_ATTRIBUTE, UNSEEN) if client is not None else UNSEEN
    return revision() if seen is UNSEEN else seen


def revision_noted(notes: dict, client: Any) -> str | None:
    """The revision one write reads its settings at, read once per write and kept in
    ``notes`` (the write's scratch dict) for every gate and recorder after it."""
    if SEEN_ATTRIBUTE not in notes:
        notes[SEEN_ATTRIBUTE] = revision_seen_by(client)
    return notes[SEEN_ATTRIBUTE]


def cached(kind: str, revision: str | None, load: Callable[[], T]) -> T:
    """The value of ``kind`` at ``revision``: this process's copy if it was loaded at that
    revision, else ``load()`` (which must return a value that is safe to share)."""
    entry = _entries.get(kind)
    if entry is not None and entry[0] == revision:
        return entry[1]
    value = load()
    _entries[kind] = (revision, value)
    return value


def forget() -> None:
    """Drop every copy (the next read of each kind loads it)."""
    _entries.clear()


def _bump(sender, **kwargs) -> None:
    ConfigRevision.bump()


def _bump_m2m(sender, action: str, **kwargs) -> None:
    if action.startswith("post_"):
        ConfigRevision.bump()


def watch(*models: type, m2m: tuple[type, ...] = (), deletes: tuple[type, ...] = ()) -> None:
    """Replace the revision whenever a row of ``models`` is saved or deleted, a relation
    through one of ``m2m`` (through models) changes, or a row of ``deletes`` is deleted
    (a deletion whose cascade changes a cached value without signals)."""
    for model in models:
        signals.post_save.connect(
            _bump, sender=model, dispatch_uid=f"config-revision-save-{model._meta.label}"
        )
        signals.post_delete.connect(
            _bump, sender=model, dispatch_uid=f"config-revision-delete-{model._meta.label}"
        )
    for through in m2m:
        signals.m2m_changed.connect(
            _bump_m2m, sender=through, dispatch_uid=f"config-revision-m2m-{through._meta.label}"
        )
    for model in deletes:
        signals.post_delete.connect(
            _bump, sender=model, dispatch_uid=f"config-revision-delete-{model._meta.label}"
        )
