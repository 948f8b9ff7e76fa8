"""``POST /Bulk`` (RFC 7644 §3.7): operations in order, each in its own transaction,
``bulkId`` references resolved as the resources they name are created.

Asynchronous Bulk (RFC 9967 §2.5.1.2): with ``Prefer: respond-async``, from a client
that has an event stream bound to it, the operations run as usual; if policy held any
of them, the answer is ``202`` without a body, with ``Set-Txn`` and
``Preference-Applied``, and every operation that ran gets its own completion event,
``txn`` ``<Set-Txn>:<index>``: those that finished at once now (in one transaction
after the last operation), the held ones when they end. If nothing was held, or no
stream is bound to the client (the results would reach nobody), the Bulk response is
the usual synchronous one.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from rest_framework.response import Response

from provisioning.audit.context import change_set_scope
from provisioning.audit.redaction import redact
from provisioning.directory import services
from provisioning.directory.pipeline import OperationHeld
from provisioning.events import asyncresp, claims

from . import errors, limits
from .api import ScimView, as_scim_error, record_denied
from .patch import parse_patch_request
from .pending import async_headers, pending_location

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
_BULK_REF = re.compile(r"^bulkId:(.+)$")
_PATH = re.compile(r"^/(Users|Groups)(?:/([^/]+))?/?$")
_ACTIONS = {"POST": "create", "PUT": "replace", "PATCH": "patch", "DELETE": "delete"}


class Unresolved(Exception):
    """An operation names a bulkId that no earlier operation has created (yet)."""

    def __init__(self, bulk_id: str):
        self.bulk_id = bulk_id


@dataclass
class Operation:
    index: int
    method: str
    path: str
    bulk_id: str | None
    version: str | None
    data: Any


def _resolve(value: Any, created: dict[str, str]) -> Any:
    """Replace every ``bulkId:x`` string with the id the operation ``x`` created."""
    if isinstance(value, str):
        match = _BULK_REF.match(value)
        if match:
            if match.group(1) not in created:
                raise Unresolved(match.group(1))
            return created[match.group(1)]
        return value
    if isinstance(value, list):
        return [_resolve(v, created) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, created) for k, v in value.items()}
    return value


def _resolve_path(path: str, created: dict[str, str]) -> str:
    """``/Users/bulkId:u1`` names what operation ``u1`` created (RFC 7644 §3.7.2: a bulkId
    reference may stand wherever the created resource's id would)."""
    match = _PATH.match(path)
    if match and match.group(2):
        return f"/{match.group(1)}/{_resolve(match.group(2), created)}"
    return path


def _audit_request(op: Operation) -> dict:
    """The operation as its change set records it, secrets redacted."""
    return {
        "method": op.method,
        "path": op.path,
        "bulkId": op.bulk_id,
        "version": op.version,
        "body": redact(op.data),
    }


def _string(raw: dict, name: str, index: int) -> str | None:
    """An operation's member that must be a string when present (RFC 7644 §3.7)."""
    value = raw.get(name)
    if value is not None and not isinstance(value, str):
        raise errors.InvalidValue(f"Operation {index + 1}: '{name}' must be a string")
    return value


def _parse(body: dict) -> tuple[list[Operation], int | None]:
    schemas = body.get("schemas")
    if schemas is not None and (
        not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas)
    ):
        raise errors.InvalidValue("'schemas' must be an array of schema URIs")
    if BULK_REQUEST not in (schemas or []):
        raise errors.InvalidValue(f"A bulk request must use the schema {BULK_REQUEST}")
    raw_ops = body.get("Operations")
    if not isinstance(raw_ops, list) or not raw_ops:
        raise errors.InvalidSyntax("'Operations' must be a non-empty array")
    maximum = settings.SCIM["BULK_MAX_OPERATIONS"]
    if len(raw_ops) > maximum:
        raise errors.PayloadTooLarge(f"A bulk request may hold at most {maximum} operations")
    fail_on_errors = body.get("failOnErrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool)
        or not isinstance(fail_on_errors, int)
        or fail_on_errors < 1
    ):
        raise errors.InvalidValue("'failOnErrors' must be a positive integer")
    operations, bulk_ids = [], set()
    for index, raw in enumerate(raw_ops):
        if not isinstance(raw, dict):
            raise errors.InvalidSyntax(f"Operation {index + 1} must be an object")
        # Members of the wrong type refuse the whole request before anything runs;
        # well-typed but unusable values fail their own operation below.
        method = (_string(raw, "method", index) or "").upper()
        path = _string(raw, "path", index) or ""
        version = _string(raw, "version", index)
        bulk_id = raw.get("bulkId")
        if bulk_id is not None:
            if not isinstance(bulk_id, str) or not bulk_id or bulk_id in bulk_ids:
                raise errors.InvalidValue(f"Operation {index + 1}: bulkId must be a unique string")
            bulk_ids.add(bulk_id)
        if method == "POST" and bulk_id is None:
            raise errors.InvalidValue(f"Operation {index + 1}: POST needs a bulkId")
        operations.append(Operation(index, method, path, bulk_id, version, raw.get("data")))
    return operations, fail_on_errors


class BulkView(ScimView):
    def max_body_size(self) -> int:
        return settings.SCIM["BULK_MAX_PAYLOAD_SIZE"]

    def post(self, request):
        # The operations share one request's limits (PATCH operations, members, work).
        with limits.request_budget():
            return self.run(request)

    def run(self, request):
        operations, fail_on_errors = _parse(self.body(request))
        base_url = self.base_url(request)
        created: dict[str, str] = {}
        results: dict[int, dict] = {}
        held_ops: set[int] = set()
        failures = 0
        txn = None
        if asyncresp.honours_respond_async(request.user, request.headers.get("Prefer")):
            txn = asyncresp.new_txn()
        pending = operations
        # Operations naming a bulkId created later are retried after the others (§3.7.2).
        while pending:
            deferred = []
            for op in pending:
                if fail_on_errors and failures >= fail_on_errors:
                    break
                try:
                    # Each operation is its own unit of change: its own change set.
                    with change_set_scope(
                        source="bulk", separate=True, request=lambda op=op: _audit_request(op)
                    ):
                        results[op.index] = self.execute(request, op, created, base_url, txn)
                except Unresolved:
                    deferred.append(op)
                    continue
                except OperationHeld as held:
                    held_ops.add(op.index)
                    results[op.index] = self.result(
                        op, status=202, location=pending_location(held.pending, base_url)
                    )
                except Exception as exc:  # noqa: BLE001 - every failure becomes a result
                    error = as_scim_error(exc)
                    # A refused operation gets its own 403 result and is counted on its own.
                    record_denied(request, error)
                    results[op.index] = self.failure(op, error)
                if int(results[op.index]["status"]) >= 400:
                    failures += 1
            if len(deferred) == len(pending) or (fail_on_errors and failures >= fail_on_errors):
                for op in deferred:
                    if fail_on_errors and failures >= fail_on_errors:
                        break
                    missing = self._missing_reference(op, created)
                    results[op.index] = self.failure(
                        op,
                        errors.InvalidValue(
                            f"bulkId '{missing}' was not created by this request", status=409
                        ),
                    )
                    failures += 1
                break
            pending = deferred
        if txn is not None and held_ops:
            return self.accepted(request, txn, operations, results, held_ops)
        return Response(
            {"schemas": [BULK_RESPONSE], "Operations": [results[i] for i in sorted(results)]}
        )

    def accepted(self, request, txn: str, operations, results: dict, held_ops: set) -> Response:
        """202 for an asynchronous Bulk request (RFC 9967 §2.5.1.1-2): the operations that
        finished get their completion now; the held ones get theirs when they end.

        No ``Location``: a Bulk request has no resource of its own to name (the normal
        Bulk response has none, RFC 9967 §2.5.1.1 (b)); each held operation's status
        resource is ``PendingOperations/<id>``, its completion names it by ``txn``.
        """
        finished = [
            _outcome(op, results[op.index])
            for op in operations
            if op.index in results and op.index not in held_ops
        ]
        with transaction.atomic():
            asyncresp.bulk_completed(request.user, txn, finished)
        return Response(status=202, headers=async_headers(txn))

    @staticmethod
    def _missing_reference(op: Operation, created: dict[str, str]) -> str:
        try:
            _resolve_path(op.path, created)
            _resolve(op.data, created)
        except Unresolved as exc:
            return exc.bulk_id
        return "?"

    def execute(
        self, request, op: Operation, created: dict[str, str], base_url: str, txn: str | None
    ) -> dict:
        path = _resolve_path(op.path, created)
        data = _resolve(op.data, created)
        match = _PATH.match(path)
        if not match:
            raise errors.InvalidPath(f"Unsupported bulk path '{op.path}'")
        resource_type = claims.RESOURCE_TYPES[match.group(1)]
        resource_id = match.group(2)
        if op.method not in ("POST", "PUT", "PATCH", "DELETE"):
            raise errors.InvalidValue(f"Unsupported bulk method '{op.method}'")
        if (op.method == "POST") == bool(resource_id):
            raise errors.InvalidPath(f"{op.method} does not take the path '{op.path}'")
        # The client's role is checked by the write pipeline, per operation.
        if op.method != "DELETE" and not isinstance(data, dict):
            raise errors.InvalidSyntax("'data' must be an object")
        action = _ACTIONS[op.method]
        if action == "patch":
            payload = {"operations": parse_patch_request(data)}
        elif action == "delete":
            payload = {}
        else:
            payload = {"document": data}
        resource = services.perform(
            resource_type,
            action,
            resource_id=resource_id,
            request=payload,
            client=request.user,
            if_match=op.version if resource_id else None,
            via=None if txn is None else _async_via(txn, op),
        )
        if action == "delete":
            return self.result(
                op, status=204, location=f"{base_url}/{match.group(1)}/{resource_id}"
            )
        if action == "create":
            created[op.bulk_id] = str(resource.pk)
        location = f"{base_url}/{match.group(1)}/{resource.pk}"
        status = 201 if action == "create" else 200
        return self.result(op, status=status, location=location, version=resource.etag)

    @staticmethod
    def result(op: Operation, *, status: int, location=None, version=None) -> dict:
        result = {"method": op.method}
        if op.bulk_id:
            result["bulkId"] = op.bulk_id
        if version:
            result["version"] = version
        if location:
            result["location"] = location
        result["status"] = str(status)
        return result

    def failure(self, op: Operation, error: errors.ScimError) -> dict:
        result = self.result(op, status=error.status)
        result["response"] = error.to_dict()
        return result


def _async_via(txn: str, op: Operation) -> services.Via:
    """The operation's own ``<Set-Txn>:<index>`` (RFC 9967 §2.5.1.2), kept if it is held."""
    notes = asyncresp.request_notes(f"{txn}:{op.index}", bulk_id=op.bulk_id, in_bulk=True)
    return services.Via(notes=notes)


def _outcome(op: Operation, result: dict) -> asyncresp.BulkOutcome:
    """The completion subject of an operation that finished: what its ``location`` (or,
    failing that, its path) names."""
    match = _PATH.match(_location_path(result.get("location")) or op.path)
    if not match:
        return asyncresp.BulkOutcome(op.index, result)
    try:
        resource_id = uuid.UUID(match.group(2)) if match.group(2) else None
    except ValueError:
        resource_id = None
    return asyncresp.BulkOutcome(
        op.index, result, claims.RESOURCE_TYPES[match.group(1)], resource_id
    )


def _location_path(location: str | None) -> str | None:
    """``https://host/scim/v2/Users/<id>`` -> ``/Users/<id>``."""
    if not location:
        return None
    found = re.search(r"/(Users|Groups)/[^/]+/?$", location)
    return found.group(0) if found else None
