"""One error body for every refusal of the management API:

    {"error": "<code>", "detail": "<message>", "fields": {"<field>": ["<message>", ...]}}

``error`` is a stable machine-readable code (``invalid``, ``not_authenticated``,
``invalid_token``, ``permission_denied``, ``not_found``, ``method_not_allowed``,
``unsupported_media_type``, ``throttled``, ``precondition_failed``, ...); ``fields``
holds per-field messages of a validation error and is empty otherwise. Headers DRF sets
stay (``WWW-Authenticate`` on 401, ``Retry-After`` on 429, ``Allow`` on 405).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class PreconditionFailed(exceptions.APIException):
    """``If-Match`` names no current representation (RFC 9110 §13.1.1)."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The resource changed since you read it: read it again (its ETag)."
    default_code = "precondition_failed"


class PreconditionRequired(exceptions.APIException):
    """A changing request without ``If-Match`` where one is required (RFC 6585 §3)."""

    status_code = status.HTTP_428_PRECONDITION_REQUIRED
    default_detail = "Send If-Match with the ETag of the resource as you read it."
    default_code = "precondition_required"


class Conflict(exceptions.APIException):
    """The resource is not in a state that allows the request (a decided operation)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource does not allow this in its current state."
    default_code = "conflict"


class IdempotencyKeyInUse(exceptions.APIException):
    """A request with this key is still being processed (idempotency-key draft §2.7)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "A request with this Idempotency-Key is still being processed; retry later."
    default_code = "idempotency_key_in_use"


class IdempotencyKeyReused(exceptions.APIException):
    """The key came with another request (idempotency-key draft §2.7: 422)."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was used with a different request."
    default_code = "idempotency_key_reused"


def _flatten(detail: Any) -> list[str]:
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in _flatten(value)]
    if isinstance(detail, list):
        return [m for value in detail for m in _flatten(value)]
    return [str(detail)]


def _fields(detail: dict) -> dict[str, list[str]]:
    return {
        str(name): _flatten(value)
        for name, value in detail.items()
        if name not in ("non_field_errors", "__all__")
    }


def _as_api_exception(exc: Exception) -> Exception:
    """A service's refusal as the API answers it."""
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return exceptions.ValidationError(exc.message_dict)
        # A service refusing a transition (an operation already decided): a state conflict.
        return Conflict(" ".join(exc.messages))
    if isinstance(exc, ObjectDoesNotExist):
        return exceptions.NotFound()
    return exc


def error_body(code: str, detail: str, fields: dict | None = None) -> dict:
    return {"error": code, "detail": detail, "fields": fields or {}}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler (status, headers, Django's 404 and 403 mapped), then our body.
    Anything else is a server error: None lets it propagate (500)."""
    exc = _as_api_exception(exc)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.APIException):
        detail = exc.detail
        codes = exc.get_codes()
    else:  # Http404 or PermissionDenied from Django, mapped by DRF
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        codes = "not_found" if response.status_code == 404 else "permission_denied"
    if isinstance(exc, exceptions.ValidationError):
        fields = _fields(detail) if isinstance(detail, dict) else {}
        general = (
            _flatten(detail.get("non_field_errors", []) + detail.get("__all__", []))
            if isinstance(detail, dict)
            else _flatten(detail)
        )
        message = " ".join(general) or "The request is not valid; see the fields."
        response.data = error_body("invalid", message, fields)
        return response
    code = codes if isinstance(codes, str) else getattr(exc, "default_code", "error")
    if isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated):
        code = code if code in ("invalid_token", "not_authenticated") else "not_authenticated"
    response.data = error_body(str(code), " ".join(_flatten(detail)))
    return response
