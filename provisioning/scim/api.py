"""The DRF plumbing every SCIM endpoint shares: authentication, permissions,
content negotiation and turning every failure into a SCIM Error body."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from provisioning.access.services import scim_token_authenticate

from . import errors

logger = logging.getLogger(__name__)

SCIM_CONTENT_TYPE = "application/scim+json"
WWW_AUTHENTICATE = 'Bearer realm="scimgate"'


class ScimRenderer(JSONRenderer):
    media_type = SCIM_CONTENT_TYPE
    charset = None


class ScimParser(JSONParser):
    media_type = SCIM_CONTENT_TYPE

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except drf.ParseError:
            raise errors.InvalidSyntax("The request body is not valid JSON") from None


class PlainJsonParser(ScimParser):
    media_type = "application/json"


class ScimNegotiation(BaseContentNegotiation):
    """SCIM answers application/scim+json whatever the Accept header says (RFC 7644 §3.1)."""

    def select_parser(self, request, parsers):
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        for parser in parsers:
            if parser.media_type == content_type:
                return parser
        # IdPs occasionally omit the type or send text/plain; the body is still JSON.
        return parsers[0] if content_type in ("", "text/plain") else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != b"bearer" or len(header) != 2:
            raise errors.Unauthorized("Use 'Authorization: Bearer <token>'")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise errors.Unauthorized("The bearer token is not valid") from None
        token = scim_token_authenticate(raw)
        if token is None:
            raise errors.Unauthorized("The bearer token is not valid, expired or revoked")
        return token.client, token

    def authenticate_header(self, request):
        return WWW_AUTHENTICATE


class ScimClientPermission(BasePermission):
    """Authenticated SCIM client; writes need a role that may write."""

    def has_permission(self, request, view):
        client = request.user
        if client is None:
            raise errors.Unauthorized("Authentication required: send a bearer token")
        if view.is_write(request) and not client.can_write:
            raise errors.Forbidden(
                f"Client '{client.name}' has role '{client.role}', which may not write"
            )
        return True


def scim_exception_handler(exc, context) -> Response:
    """Every failure becomes a SCIM Error body with a string status (RFC 7644 §3.12)."""
    error = _as_scim_error(exc)
    response = Response(error.to_dict(), status=error.status, headers=error.headers)
    if error.status == 401:
        response["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response


def _as_scim_error(exc) -> errors.ScimError:
    if isinstance(exc, errors.ScimError):
        return exc
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return errors.Unauthorized("Authentication required: send a bearer token")
    if isinstance(exc, drf.PermissionDenied):
        return errors.Forbidden(str(exc.detail))
    if isinstance(exc, drf.MethodNotAllowed):
        return errors.MethodNotAllowed(str(exc.detail))
    if isinstance(exc, drf.UnsupportedMediaType):
        return errors.ScimError(
            "Send the body as application/scim+json or application/json", status=415
        )
    if isinstance(exc, drf.Throttled):
        error = errors.ScimError("Too many requests; retry later", status=429)
        if exc.wait is not None:
            error.headers["Retry-After"] = str(int(exc.wait) + 1)
        return error
    if isinstance(exc, drf.ParseError):
        return errors.InvalidSyntax("The request body is not valid JSON")
    if isinstance(exc, Http404 | drf.NotFound):
        return errors.NotFound("Resource not found")
    if isinstance(exc, RequestDataTooBig):
        return errors.PayloadTooLarge("The request body is too large")
    logger.exception("Unhandled error in SCIM endpoint")
    return errors.ScimError("Internal server error", status=500)


class ScimView(APIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [ScimClientPermission]
    renderer_classes = [ScimRenderer]
    parser_classes = [ScimParser, PlainJsonParser]
    content_negotiation_class = ScimNegotiation
    # Methods that change state. ``.search`` endpoints are POST but read.
    write_methods = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def is_write(self, request) -> bool:
        return request.method in self.write_methods

    def get_exception_handler(self):
        return scim_exception_handler

    def initial(self, request, *args, **kwargs):
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > self.max_body_size():
            raise errors.PayloadTooLarge(
                f"The request body exceeds {self.max_body_size()} bytes"
            )
        super().initial(request, *args, **kwargs)

    def max_body_size(self) -> int:
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    def body(self, request) -> dict:
        """The JSON object in the request body; anything else is invalidSyntax."""
        data = request.data
        if not isinstance(data, dict):
            raise errors.InvalidSyntax("The request body must be a JSON object")
        return data

    def base_url(self, request) -> str:
        return settings.SCIM_BASE_URL or request.build_absolute_uri("/scim/v2").rstrip("/")


class PublicScimView(ScimView):
    """Discovery documents describe the server and need no credentials (RFC 7644 §4)."""

    authentication_classes = []
    permission_classes = []

    def is_write(self, request) -> bool:
        return False
