"""The OpenAPI 3.1 description of the management API (drf-spectacular).

Every operation states the role it needs (in its description and as ``x-required-role``)
and documents its error answers with the one error body (``errors``): 401, 403 and 429
everywhere, 400 where it takes input, 404 on a resource, and on changing ones 409, 412,
415, 422 and 428. Only ``/api/v1/`` is described: the SCIM endpoints have their own
discovery documents (RFC 7644 §4).
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

API_PREFIX = "/api/v1/"


def path_id(name: str, description: str) -> OpenApiParameter:
    """A numeric id in the path: the routes match digits only, so never below 1."""
    return OpenApiParameter(
        name, {"type": "integer", "minimum": 1}, OpenApiParameter.PATH, description=description
    )


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="Machine-readable code, e.g. not_found, invalid.")
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per request field (validation errors); empty otherwise.",
    )

    class Meta:
        ref_name = "Error"


_ERRORS = {
    "400": "The request is not valid (see fields).",
    "401": "No valid credentials: an API token or a console session.",
    "403": "The operator's role does not allow this, or a rule refused it (four eyes).",
    "404": "No such resource.",
    "406": "The Accept header asks for a representation the API does not serve.",
    "409": "The resource's state does not allow this, or the Idempotency-Key is in use.",
    "412": "If-Match names no current representation (RFC 9110 §13.1.1).",
    "415": "The body is not JSON.",
    "422": "The Idempotency-Key was used with another request.",
    "428": "If-Match is required (RFC 6585 §3).",
    "429": "Too many requests: wait Retry-After seconds.",
}


class ApiAutoSchema(AutoSchema):
    """Adds the role and the standard error answers to every operation."""

    def _changing(self) -> bool:
        return self.method not in ("GET", "HEAD", "OPTIONS")

    def get_description(self) -> str:
        text = super().get_description() or ""
        role = getattr(self.view, "required_role", None)
        return f"{text}\n\nNeeds the **{role}** console role." if role else text

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is not None and getattr(self.view, "required_role", None):
            operation["x-required-role"] = self.view.required_role
        return operation

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = ["401", "403", "406", "429"]
        if self.method == "GET" and self._is_list_view():
            codes.append("400")
        if "{" in self.path:
            codes.append("404")
        if self._changing():
            codes += ["400", "409", "412", "415", "422", "428"]
        for code in sorted(set(codes)):
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                responses[code]["description"] = _ERRORS[code]
        return responses


class OperatorTokenScheme(OpenApiAuthenticationExtension):
    target_class = "console.api.authentication.OperatorTokenAuthentication"
    name = "operatorToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An operator API token (scgop_...), created in the console "
            "(API tokens) or with manage.py createoperatortoken.",
        }


def only_management_api(endpoints):
    """Preprocessing hook: describe ``/api/v1/`` only."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(API_PREFIX)]
