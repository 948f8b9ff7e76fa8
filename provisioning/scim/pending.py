"""What an IdP sees of a write that policy held: 202 Accepted and a status resource.

``GET /scim/v2/PendingOperations/{id}`` lets the client that sent the write follow
it (pending, applied, rejected, ...); other clients get 404.
"""

from __future__ import annotations

import uuid

from rest_framework.response import Response

from provisioning.oversight.models import PendingOperation
from provisioning.scim import errors
from provisioning.scim.api import ScimView
from provisioning.scim.resources import isoformat

PENDING_SCHEMA = "urn:scimgate:params:scim:api:messages:2.0:PendingOperation"
_METHODS = {"delete": "DELETE", "replace": "PUT", "patch": "PATCH", "create": "POST"}


def pending_document(pending: PendingOperation, base_url: str) -> dict:
    document = {
        "schemas": [PENDING_SCHEMA],
        "id": str(pending.pk),
        "status": pending.status,
        "detail": "Held for approval by an administrator; nothing has been applied yet."
        if pending.status == PendingOperation.Status.PENDING
        else pending.result_detail or pending.get_status_display(),
        "operation": {
            "method": _METHODS.get(pending.action, pending.action),
            "resourceType": pending.resource_type,
            "resourceId": str(pending.resource_id),
            "version": f'W/"{pending.base_version}"',
        },
        "reasons": pending.reasons,
        "meta": {
            "resourceType": "PendingOperation",
            "created": isoformat(pending.created_at),
            "expires": isoformat(pending.expires_at),
            "location": f"{base_url}/PendingOperations/{pending.pk}",
        },
    }
    return document


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
