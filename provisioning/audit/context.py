"""Who is changing things right now, and which change set their changes belong to.

A *unit* is one SCIM request, one Bulk operation or one console action. Code
that performs a unit wraps it in ``change_set_scope(...)``; every audit entry
and every recorded directory change written inside it is attributed to the
scope's actor and lands in one change set. Scopes nest: an inner scope joins
the outer one (a console action calling a service that opens its own scope is
still one unit), unless it is opened with ``separate=True`` (each Bulk
operation is its own unit inside the Bulk request).

The change set row is created lazily, at the first recorded change, inside the
caller's database transaction (by the creator the audit app connects at startup): a unit that changes nothing leaves no change
set, and a unit whose transaction rolls back leaves none either.

The correlation id is generated here or by the request middleware (a UUIDv7,
``provisioning.ids``: time-ordered for the indexes that hold it), never read from a
request header.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction

from provisioning.ids import time_ordered_uuid

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.http import HttpRequest

    from provisioning.access.models import ScimClient

    from .models import ChangeSet


@dataclass
class RequestContext:
    """What the middleware knows about the HTTP request being served."""

    correlation_id: uuid.UUID
    remote_addr: str | None = None
    http_request: HttpRequest | None = None

    def principal(self) -> tuple[AbstractBaseUser | None, ScimClient | None]:
        """(operator, client) from ``request.user``; DRF sets it to the ScimClient it authenticated."""
        from provisioning.access.models import ScimClient

        user = getattr(self.http_request, "user", None) if self.http_request is not None else None
        if isinstance(user, ScimClient):
            return None, user
        if user is not None and getattr(user, "is_authenticated", False) and getattr(user, "pk", None):
            return user, None
        return None, None


@dataclass
class ChangeSetScope:
    """One unit of change. ``change_set`` exists once something has been recorded."""

    source: str
    correlation_id: uuid.UUID
    operator: AbstractBaseUser | None = None
    client: ScimClient | None = None
    request: dict | Callable[[], dict | None] | None = None
    remote_addr: str | None = None
    http_request: HttpRequest | None = None
    _change_set: ChangeSet | None = field(default=None, repr=False)
    _committed: bool = field(default=False, repr=False)
    _marker: Callable[[], None] | None = field(default=None, repr=False)

    def actor(self) -> tuple[AbstractBaseUser | None, ScimClient | None]:
        """(operator, client): explicit values first, else whoever the request authenticated."""
        if self.operator is not None or self.client is not None:
            return self.operator, self.client
        if self.http_request is not None:
            return RequestContext(self.correlation_id, http_request=self.http_request).principal()
        return None, None

    def request_document(self) -> dict | None:
        return self.request() if callable(self.request) else self.request

    @property
    def change_set(self) -> ChangeSet | None:
        """The change set if it exists in the database as seen by the current transaction."""
        if self._change_set is None:
            return None
        if not self._committed and not self._pending_in_transaction():
            # The transaction (or savepoint) that created it rolled back: the row is gone.
            self._change_set = None
        return self._change_set

    def ensure_change_set(self) -> ChangeSet:
        """The unit's change set, created now (in the current transaction) if needed."""
        existing = self.change_set
        if existing is not None:
            return existing
        if _change_set_create is None:
            raise RuntimeError("No change set creator: the audit app connects one when Django starts.")
        change_set = _change_set_create(**self.change_set_arguments())
        self.bind(change_set)
        return change_set

    def change_set_arguments(self) -> dict[str, Any]:
        """What the unit's change set records: the keyword arguments of
        ``change_sets.change_set_create``."""
        operator, client = self.actor()
        return {
            "correlation_id": self.correlation_id,
            "source": self.source,
            "operator": operator,
            "client": client,
            "request": self.request_document(),
            "remote_addr": self.remote_addr,
        }

    def bind(self, change_set: ChangeSet) -> None:
        """Make ``change_set``, just inserted in the current transaction, the unit's."""
        self._change_set, self._committed = change_set, False

        def marker() -> None:
            self._committed = True

        self._marker = marker
        # Django drops on_commit callbacks registered inside a transaction or
        # savepoint that rolls back, so the marker's presence tells whether the
        # row still exists without a query. Outside a transaction it runs now.
        transaction.on_commit(marker)

    def _pending_in_transaction(self) -> bool:
        marker = self._marker
        return any(entry[1] is marker for entry in connection.run_on_commit)


# The function that inserts a unit's change set (``change_sets.change_set_create``). The
# audit app plugs it in at startup: the change-set module reads the scope from here, so
# this module does not import it back.
_change_set_create: Callable[..., ChangeSet] | None = None


def connect_change_set_creator(create: Callable[..., ChangeSet]) -> None:
    """Set the function ``ChangeSetScope.ensure_change_set`` calls to insert the change set.

    It takes the keyword arguments of ``change_sets.change_set_create``.
    """
    global _change_set_create
    _change_set_create = create


_request: ContextVar[RequestContext | None] = ContextVar("scimgate_audit_request", default=None)
_scope: ContextVar[ChangeSetScope | None] = ContextVar("scimgate_audit_scope", default=None)


def current_request() -> RequestContext | None:
    return _request.get()


def current_scope() -> ChangeSetScope | None:
    return _scope.get()


def current_correlation_id() -> str | None:
    """The correlation id stamped on audit entries (``AUDITLOG_CID_GETTER``)."""
    scope = _scope.get()
    if scope is not None:
        return str(scope.correlation_id)
    request = _request.get()
    return str(request.correlation_id) if request is not None else None


@contextmanager
def request_context(
    *, remote_addr: str | None = None, http_request: HttpRequest | None = None
) -> Iterator[RequestContext]:
    """Bind a fresh server-generated correlation id (and the client address) to one HTTP request."""
    context = RequestContext(time_ordered_uuid(), remote_addr, http_request)
    token = _request.set(context)
    try:
        yield context
    finally:
        _request.reset(token)


@contextmanager
def change_set_scope(
    *,
    operator: AbstractBaseUser | None = None,
    client: ScimClient | None = None,
    source: str,
    request: dict | Callable[[], dict | None] | None = None,
    separate: bool = False,
    http_request: HttpRequest | None = None,
) -> Iterator[ChangeSetScope]:
    """Make everything recorded inside one unit of change (one change set).

    ``source`` names the channel ("scim", "bulk", "console", ...). ``request`` is
    a JSON-able description of what was asked (method, path, body); pass it
    already redacted, or a callable that builds it only if something changes.
    Nested scopes join the outermost one unless ``separate`` is true, in which
    case the inner scope is a unit of its own sharing the correlation id.
    ``http_request``: resolve the actor lazily from ``request.user`` (the
    middleware opens its scope before DRF has authenticated the client).
    """
    outer = _scope.get()
    if outer is not None and not separate:
        yield outer
        return
    http = current_request()
    if outer is not None:
        correlation_id = outer.correlation_id
    elif http is not None:
        correlation_id = http.correlation_id
    else:
        correlation_id = time_ordered_uuid()
    scope = ChangeSetScope(
        source=source,
        correlation_id=correlation_id,
        operator=operator,
        client=client,
        request=request,
        remote_addr=http.remote_addr if http is not None else None,
        http_request=http_request
        or (outer.http_request if outer is not None else None)
        or (http.http_request if http is not None else None),
    )
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def source_or(default: str) -> str:
    """The source of the unit being performed (an API call's "api"), else ``default``: a
    unit of its own opened inside one (``separate``) keeps saying which door it came by."""
    scope = _scope.get()
    return scope.source if scope is not None else default


def actor_for_entry() -> dict[str, Any]:
    """Attribution for an audit entry written now: operator, client, correlation id, address."""
    scope = _scope.get()
    if scope is not None:
        operator, client = scope.actor()
        return {
            "actor": operator,
            "scim_client": client,
            "cid": str(scope.correlation_id),
            "remote_addr": scope.remote_addr,
        }
    request = _request.get()
    if request is not None:
        operator, client = request.principal()
        return {
            "actor": operator,
            "scim_client": client,
            "cid": str(request.correlation_id),
            "remote_addr": request.remote_addr,
        }
    return {}
