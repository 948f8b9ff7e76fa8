"""What an IdP sees of a write that policy held: 202 Accepted and a status resource.

``GET /scim/v2/PendingOperations/{id}`` lets the client that sent the write follow
it (pending, applied, rejected, ...); other clients get 404.

A write sent with ``Prefer: respond-async`` (RFC 9967 §2.5.1.1) that is held is
answered 202 without a body, with ``Set-Txn``, ``Preference-Applied: respond-async``
and the status resource as ``Location``; its outcome arrives later as a
``misc:asyncresp`` event (``provisioning.events.asyncresp``) and is shown by the status
resource under ``asyncRequests``. A write with the preference that is applied (or
refused) at once, or from a client no event stream is bound to (nobody would hear the
completion), is answered as usual, without ``Preference-Applied``.
"""

from __future__ import annotations

import uuid

from rest_framework.response import Response

from provisioning.directory import services
from provisioning.events import asyncresp
from provisioning.events.models import AsyncRequest
from provisioning.oversight.models import PendingOperation
from provisioning.scim import errors
from provisioning.scim.api import ScimView
from provisioning.scim.prefer import RESPOND_ASYNC
from provisioning.scim.resources import isoformat

PENDING_SCHEMA = "urn:scimgate:params:scim:api:messages:2.0:PendingOperation"


def pending_location(pending: PendingOperation, base_url: str) -> str:
    return f"{base_url}/PendingOperations/{pending.pk}"


def pending_document(pending: PendingOperation, base_url: str) -> dict:
    document = {
        "schemas": [PENDING_SCHEMA],
        "id": str(pending.pk),
        "status": pending.status,
        "detail": "Held for approval by an administrator; nothing has been applied yet."
        if pending.status == PendingOperation.Status.PENDING
        else pending.result_detail or pending.get_status_display(),
        "operation": {
            "method": asyncresp.METHODS.get(pending.action, pending.action),
            "resourceType": pending.resource_type,
            "resourceId": str(pending.resource_id),
            "version": f'W/"{pending.base_version}"',
        },
        "reasons": pending.reasons,
        "meta": {
            "resourceType": "PendingOperation",
            "created": isoformat(pending.created_at),
            "expires": isoformat(pending.expires_at),
            "location": pending_location(pending, base_url),
        },
    }
    requests = AsyncRequest.objects.filter(pending_id=pending.pk).order_by("created_at", "txn")
    if requests := [_async_request(r) for r in requests]:
        document["asyncRequests"] = requests
    return document


def _async_request(request: AsyncRequest) -> dict:
    """The ``Set-Txn`` a client was given for this operation and, once it ended, the
    completion sent with it (the ``misc:asyncresp`` payload, RFC 9967 §2.5.1.3)."""
    entry = {"txn": request.txn}
    if request.completed_at is None:
        entry["method"] = request.method
        if request.bulk_id:
            entry["bulkId"] = request.bulk_id
        return entry
    return {**entry, **(request.payload or {}), "completed": isoformat(request.completed_at)}


def write_via(request) -> services.Via | None:
    """How a SCIM write reaches the pipeline: with a fresh ``Set-Txn`` when the client
    sent ``Prefer: respond-async`` and the preference is honoured
    (``asyncresp.honours_respond_async``), which the holder keeps if the write is held."""
    if not asyncresp.honours_respond_async(request.user, request.headers.get("Prefer")):
        return None
    return services.Via(notes=asyncresp.request_notes(asyncresp.new_txn()))


def async_headers(txn: str) -> dict:
    """RFC 9967 §3 ``Set-Txn`` and RFC 7240 §3 ``Preference-Applied``."""
    return {"Set-Txn": txn, "Preference-Applied": RESPOND_ASYNC}


def async_held_response(request, pending: PendingOperation, base_url: str) -> Response | None:
    """The asynchronous answer to a held write that asked for one (RFC 9967 §2.5.1.1):
    202, no body, ``Set-Txn`` (the same for every retry of the write), and the status
    resource as ``Location``. None when the client did not ask or the preference is not
    honoured (``asyncresp.honours_respond_async``)."""
    if not asyncresp.honours_respond_async(request.user, request.headers.get("Prefer")):
        return None
    txn = asyncresp.single_txn(pending.pk)
    if txn is None:
        return None
    headers = {**async_headers(txn), "Location": pending_location(pending, base_url)}
    return Response(status=202, headers=headers)


def held_response(pending: PendingOperation, base_url: str) -> Response:
    document = pending_document(pending, base_url)
    return Response(document, status=202, headers={"Location": document["meta"]["location"]})


class PendingOperationView(ScimView):
    def get(self, request, pending_id):
        pending = (
            PendingOperation.objects.filter(pk=pending_id, client=request.user).first()
            if _is_uuid(pending_id)
            else None
        )
        if pending is None:
            raise errors.NotFound(f"Pending operation {pending_id} not found")
        return Response(pending_document(pending, self.base_url(request)))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
