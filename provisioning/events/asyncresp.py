"""Asynchronous completion of held writes (RFC 9967 §2.5.1, §3).

A SCIM client that sends a write with ``Prefer: respond-async`` and sees it held by
policy is answered ``202`` with ``Set-Txn``; this module keeps that promise:

- ``request_notes`` is what the SCIM views hand the write pipeline (``Write.notes``)
  for such a request; ``request_held`` (called by the oversight holder, in the hold's
  transaction) stores the ``AsyncRequest`` of the pending operation;
- ``pending_ended`` (called by oversight in the transaction of each outcome) publishes
  one ``misc:asyncresp`` event per async request of the operations that ended, to the
  streams bound to the client that sent the write (``outbox.stream_matches``);
- ``bulk_completed`` publishes the completions of the operations of an asynchronous
  Bulk request that finished at once (RFC 9967 §2.5.1.2: one per operation).

The payload is a Bulk response operation (RFC 7644 §3.7.3, RFC 9967 §2.5.1.3):
``method``, ``bulkId`` (Bulk operations that had one), ``version`` (the ETag after a
successful PUT/PATCH/POST), ``status`` (a string) and, when not 2xx, ``response``: the
SCIM Error (RFC 7644 §3.12) the write would have been answered with. The subject's
``sub_id.uri`` names the resource, so ``location`` is not repeated.

How a pending operation's end maps to a status (``PendingOperation.Status`` values;
oversight sits above this package, so they are compared as text):

=============  ======================================================================
applied        ``201`` POST, ``200`` PUT/PATCH (with ``version``), ``204`` DELETE
conflict       ``412``: the resource changed after the write was held (RFC 7644 §3.14
               "Failed to update. Resource has changed on the server"); an operator's
               later deliberate re-apply sends no second completion
failed         the status and ``scimType`` of the error applying it met (``404`` when the
               resource is gone, ``409`` uniqueness, ``400`` ...)
rejected       ``403``: an approver refused it; nothing was applied
expired        ``403``: nobody decided within the hold's lifetime; nothing was applied
discarded      ``403``: discarded with its client's quarantine; nothing was applied
reheld         not an end: held again for a reason it was not approved for, the async
               requests follow the new pending operation and complete when it ends
=============  ======================================================================
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from provisioning.access.models import ScimClient
from provisioning.directory.models import Group, User
from provisioning.scim import errors
from provisioning.scim.prefer import respond_async

from . import claims, outbox
from .models import AsyncRequest, Event, EventKind, EventStream

# The ``Write.notes`` key the SCIM views set for a write sent with ``Prefer: respond-async``.
NOTE = "respond_async"

# The ServiceProviderConfig ``securityEvents.asyncRequest`` value (RFC 9967 §4):
# asynchronous completion happens when the client asks for it (and the write cannot be
# completed at once); without the preference a held write keeps its synchronous 202.
ASYNC_REQUEST_MODE = "request"

# A write action -> its SCIM HTTP method (also the status resource's ``operation.method``).
METHODS = {"create": "POST", "replace": "PUT", "patch": "PATCH", "delete": "DELETE"}
_SUCCESS = {"POST": 201, "PUT": 200, "PATCH": 200, "DELETE": 204}
# The subject of a completion that names no resource (a failed Bulk POST).
NO_RESOURCE = uuid.UUID(int=0)


@dataclass(frozen=True)
class Ask:
    """A client's request for asynchronous completion of one write."""

    txn: str
    bulk_id: str = ""
    # Part of a Bulk request: its own ``<Set-Txn>:<index>``, never shared with a retry.
    in_bulk: bool = False


def new_txn() -> str:
    """A fresh ``Set-Txn`` value (RFC 9967 §3: a unique string)."""
    return uuid.uuid4().hex


def request_notes(txn: str, *, bulk_id: str | None = None, in_bulk: bool = False) -> tuple:
    """``directory.services.Via(notes=...)`` for a write sent with ``Prefer: respond-async``."""
    return ((NOTE, Ask(txn, bulk_id or "", in_bulk)),)


def honours_respond_async(client: ScimClient | None, prefer_header: str | None) -> bool:
    """Whether a write (or a Bulk request) from ``client`` with this ``Prefer`` header is
    answered asynchronously (RFC 9967 §2.5.1): the client asked (``respond-async``) and
    an event stream is bound to it. Without a bound stream nobody would hear the
    completion, so the request is answered as without the preference (RFC 7240 §2: a
    preference the server does not apply is ignored). The one rule for single writes and
    Bulk."""
    return (
        respond_async(prefer_header)
        and client is not None
        and EventStream.objects.filter(client=client).exists()
    )


def single_txn(pending_id) -> str | None:
    """The ``Set-Txn`` of the single (non-Bulk) asynchronous write held as ``pending_id``:
    the one every retry of that write is told."""
    return (
        AsyncRequest.objects.filter(pending_id=pending_id)
        .exclude(txn__contains=":")  # Bulk requests' are "<Set-Txn>:<index>"
        .order_by("created_at", "txn")
        .values_list("txn", flat=True)
        .first()
    )


def request_held(write, pending) -> AsyncRequest | None:
    """Store the asynchronous request of a held ``write`` (the holder's transaction).

    A retry of a single write (same client, target, state and effect: the same pending
    operation) reuses the async request it already has, so it is told the same
    ``Set-Txn``; each Bulk request gets its own.
    """
    ask = write.notes.get(NOTE)
    change = write.change
    if not isinstance(ask, Ask) or change.client is None:
        return None
    if not ask.in_bulk:
        existing = single_txn(pending.pk)
        if existing is not None:
            return AsyncRequest.objects.get(pk=existing)
    return AsyncRequest.objects.create(
        txn=ask.txn,
        pending_id=pending.pk,
        client=change.client,
        method=METHODS[change.action],
        resource_type=change.resource_type,
        resource_id=pending.resource_id,
        bulk_id=ask.bulk_id,
        created_at=timezone.now(),
    )


def outcome(pending, *, resource=None, error: errors.ScimError | None = None) -> dict | None:
    """The ``misc:asyncresp`` payload (without ``bulkId``) for ``pending`` as it ended,
    or None when it has not ended (see the module's table)."""
    method = METHODS.get(pending.action, pending.action.upper())
    status = str(pending.status)
    noun = pending.resource_type.lower()
    if status == "applied":
        payload = {"method": method}
        if method != "DELETE" and resource is not None:
            payload["version"] = resource.etag
        payload["status"] = str(_SUCCESS[method])
        return payload
    if status == "conflict":
        error = errors.PreconditionFailed(
            f"The {noun} changed after the operation was held (at version "
            f'W/"{pending.base_version}"); nothing was applied.'
        )
    elif status == "failed":
        error = error or errors.ScimError(
            pending.result_detail or "The operation could not be applied", status=500
        )
    elif status == "rejected":
        error = errors.Forbidden("The operation was rejected by an approver; nothing was applied.")
    elif status == "expired":
        error = errors.Forbidden(
            "No approver decided on the operation before it expired; nothing was applied."
        )
    elif status == "discarded":
        error = errors.Forbidden(
            "The operation was discarded with the quarantine of its SCIM client; "
            "nothing was applied."
        )
    else:
        return None  # pending, approved (being applied), reheld: not an end
    return {"method": method, "status": str(error.status), "response": error.to_dict()}


def pending_ended(
    operations,
    *,
    resource=None,
    error: errors.ScimError | None = None,
    reheld_as=None,
) -> list[Event]:
    """Publish the completion of every asynchronous request of ``operations`` (pending
    operations whose status was just set and saved), in the caller's transaction.

    ``operations``: a list of ``PendingOperation`` rows, or a queryset of them (only the
    rows with an open async request are loaded). ``resource`` (the applied user or
    group, for ``version``) and ``error`` (what applying it met) describe a single
    operation. An operation held again (``reheld_as``, its new pending operation) has
    not ended: its async requests move to the new one. Completed requests are never
    completed again, so calling this twice is harmless.
    """
    open_requests = AsyncRequest.objects.select_for_update().filter(completed_at__isnull=True)
    if isinstance(operations, QuerySet):
        requests = list(open_requests.filter(pending_id__in=operations.values("pk")))
        if not requests:
            return []
        operations = list(operations.filter(pk__in={r.pending_id for r in requests}))
    else:
        operations = list(operations)
        requests = list(open_requests.filter(pending_id__in=[op.pk for op in operations]))
    if not requests:
        return []
    if reheld_as is not None:
        AsyncRequest.objects.filter(pk__in=[r.pk for r in requests]).update(pending_id=reheld_as.pk)
        return []
    by_id = {op.pk: op for op in operations}
    subjects = _subjects(requests, resource)
    now = timezone.now()
    events, done = [], []
    for request in sorted(requests, key=lambda r: (r.created_at, r.txn)):
        payload = outcome(by_id[request.pending_id], resource=resource, error=error)
        if payload is None:
            continue
        if request.bulk_id:
            payload = {"method": payload.pop("method"), "bulkId": request.bulk_id, **payload}
        request.payload, request.status, request.completed_at = payload, int(payload["status"]), now
        done.append(request)
        events.append(
            _event(
                request.txn,
                request.client_id,
                request.resource_type,
                request.resource_id,
                subjects,
                payload,
            )
        )
    AsyncRequest.objects.bulk_update(done, ["payload", "status", "completed_at"])
    outbox.publish(events)
    return events


@dataclass(frozen=True)
class BulkOutcome:
    """One operation of an asynchronous Bulk request that finished at once."""

    index: int
    result: dict  # the Bulk response operation (RFC 7644 §3.7.3)
    resource_type: str = ""  # "User" | "Group", or "" when the path named neither
    resource_id: uuid.UUID | None = None  # None: no resource (a failed POST, a bad path)


def bulk_completed(client: ScimClient, txn: str, outcomes: Iterable[BulkOutcome]) -> list[Event]:
    """Publish the completions of the Bulk operations that did not wait for anyone (they
    were applied or failed), ``txn`` being the Bulk request's ``Set-Txn``: one event each,
    ``txn`` ``<Set-Txn>:<index>`` (RFC 9967 §2.5.1.2). Caller's transaction."""
    outcomes = list(outcomes)
    known = [o for o in outcomes if o.resource_id is not None]
    subjects = _external_ids({(o.resource_type, o.resource_id) for o in known})
    events = []
    for item in outcomes:
        payload = {k: v for k, v in item.result.items() if k != "location"}
        events.append(
            _event(
                f"{txn}:{item.index}",
                client.pk,
                item.resource_type,
                item.resource_id,
                subjects,
                payload,
            )
        )
    outbox.publish(events)
    return events


def advertised() -> dict | None:
    """ServiceProviderConfig ``securityEvents`` (RFC 9967 §4): the async mode and every
    SCIM event URI this server can emit (provisioning events in both payload modes); None
    while no event stream is registered (not configured for security events). The
    operator's test event (a Shared Signals verification event) is not a SCIM event."""
    if not EventStream.objects.exists():
        return None
    uris = []
    for kind in EventKind:
        if kind == EventKind.VERIFY:
            continue
        for mode in EventStream.Payload:
            uri = claims.event_uri(
                Event(kind=kind, payload={"data": {}}), EventStream(payload=mode)
            )
            if uri not in uris:
                uris.append(uri)
    return {"asyncRequest": ASYNC_REQUEST_MODE, "eventUris": uris}


# --- The subject ---------------------------------------------------------------------


def _subjects(requests: list[AsyncRequest], resource) -> dict:
    if resource is not None:
        return {(type(resource).__name__, resource.pk): resource.external_id}
    return _external_ids({(r.resource_type, r.resource_id) for r in requests})


def _external_ids(keys: set) -> dict:
    """``externalId`` of the named resources that still exist (one query per type)."""
    found = {}
    for model in (User, Group):
        ids = [rid for rtype, rid in keys if rtype == model.__name__]
        if ids:
            for pk, external_id in model.objects.filter(pk__in=ids).values_list(
                "pk", "external_id"
            ):
                found[(model.__name__, pk)] = external_id
    return found


def _event(txn, client_id, resource_type, resource_id, external_ids, payload) -> Event:
    """RFC 9967 §2.1 ``sub_id``: the resource's URI relative to the SCIM base, its id and
    ``externalId``; a completion that names no resource has the endpoint's URI."""
    external_id = None if resource_id is None else external_ids.get((resource_type, resource_id))
    sub_id = claims.subject(resource_type, resource_id, external_id)
    return Event(
        txn=txn,
        kind=EventKind.ASYNC_RESPONSE,
        resource_type=resource_type,
        resource_id=resource_id or NO_RESOURCE,
        sub_id=sub_id,
        payload=payload,
        client_id=client_id,
    )
