"""SCIM errors (RFC 7644 §3.12), built on django-scim2's exception type.

Every failure on the SCIM side is one of these, rendered as a SCIM Error body
with a string ``status`` by ``provisioning.scim.api``.
"""

from django_scim.constants import SchemaURI
from django_scim.exceptions import SCIMException


class ScimError(SCIMException):
    status = 400
    scim_type: str | None = None

    def __init__(self, detail: str = "", *, status: int | None = None, scim_type: str | None = None):
        super().__init__(detail, status=status or self.status, scim_type=scim_type or self.scim_type)
        self.headers: dict[str, str] = {}

    def to_dict(self) -> dict:
        body = {"schemas": [SchemaURI.ERROR], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


class InvalidFilter(ScimError):
    scim_type = "invalidFilter"


class InvalidSyntax(ScimError):
    scim_type = "invalidSyntax"


class InvalidPath(ScimError):
    scim_type = "invalidPath"


class NoTarget(ScimError):
    scim_type = "noTarget"


class InvalidValue(ScimError):
    scim_type = "invalidValue"


# RFC 9865 §2.1: pagination errors.
class InvalidCursor(ScimError):
    scim_type = "invalidCursor"


class ExpiredCursor(ScimError):
    scim_type = "expiredCursor"


class InvalidCount(ScimError):
    scim_type = "invalidCount"


class Mutability(ScimError):
    scim_type = "mutability"


class Uniqueness(ScimError):
    status = 409
    scim_type = "uniqueness"


class Unauthorized(ScimError):
    status = 401


class Forbidden(ScimError):
    status = 403


class NotFound(ScimError):
    status = 404


class MethodNotAllowed(ScimError):
    status = 405


class PreconditionFailed(ScimError):
    status = 412


class PayloadTooLarge(ScimError):
    status = 413


class NotImplementedYet(ScimError):
    status = 501
