"""The base of every management API view: one place for how the API authenticates,
authorizes, limits, parses, renders, paginates and answers errors.

The project-wide DRF defaults stay empty (the SCIM views set their own classes); these
settings apply to the API only. A new endpoint subclasses ``ApiView``, names its
``required_role`` and calls a service or selector; a changing one runs the service in
``api_scope`` (audited, source "api") through ``idempotent`` and checks ``if_match``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.db import transaction
from rest_framework.authentication import SessionAuthentication
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from console.signin.session import step_up_fresh
from provisioning.access.models import OperatorToken
from provisioning.audit.context import change_set_scope
from provisioning.audit.models import ChangeSet

from .authentication import OperatorTokenAuthentication
from .errors import api_exception_handler
from .idempotency import idempotent
from .pagination import ApiCursorPagination
from .permissions import HasConsoleRole
from .preconditions import if_match
from .schema import ApiAutoSchema
from .throttling import OperatorRateThrottle


class ApiView(GenericAPIView):
    # The console session (browsable API, docs page) is DRF's: CSRF enforced on unsafe methods.
    authentication_classes = [OperatorTokenAuthentication, SessionAuthentication]
    permission_classes = [HasConsoleRole]
    throttle_classes = [OperatorRateThrottle]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]
    pagination_class = ApiCursorPagination
    filter_backends: list = []
    schema = ApiAutoSchema()
    required_role = "viewer"

    def get_exception_handler(self):
        return api_exception_handler


class Administer(ApiView):
    """Every method needs the administrator role (configuration changes)."""

    required_role = "administrator"


class ReadOrAdminister(ApiView):
    """Reading needs the viewer role; changing, the administrator role (as the console)."""

    @property
    def required_role(self) -> str:
        method = getattr(getattr(self, "request", None), "method", "GET")
        return "viewer" if method in SAFE_METHODS else "administrator"


def api_scope(request, summary: dict):
    """The change set scope of one API call: attributed to the operator, source "api",
    recording what was asked and with which token (its public prefix)."""
    token = request.auth if isinstance(request.auth, OperatorToken) else None
    return change_set_scope(
        operator=request.user,
        source=ChangeSet.Source.API,
        request={
            "api": summary,
            "method": request.method,
            "path": request.path,
            # The token's public prefix (a key named like a secret would be redacted).
            "authenticated_by": f"token:{token.prefix}" if token is not None else "session",
        },
    )


def require_fresh_session(request) -> None:
    """A decision through the console session needs the console's step-up (a recent
    sign-in), as the console's own buttons do; a token stands on its own."""
    if not isinstance(request.auth, OperatorToken) and not step_up_fresh(request._request):
        raise PermissionDenied(
            "Sign in again in the console (step-up) before deciding through the session."
        )


Target = TypeVar("Target")
Result = TypeVar("Result")


def decide(
    view: GenericAPIView,
    request: Request,
    *,
    load: Callable[[], Target],
    etag: Callable[[Target], str],
    summary: Callable[[Target, dict], dict],
    act: Callable[[Target, dict], Result],
    answer: Callable[[Target, Result], Response],
) -> Response:
    """The shape of a decision on one resource (approve, reject, accept, roll back,
    discard): idempotent under its ``Idempotency-Key``; the console's step-up for a
    session; the body checked by the view's serializer (``act`` gets its validated data,
    empty without one); the resource loaded (404) and its ETag matched (428, 412);
    ``act`` run in one transaction and an audited API change set named by ``summary``;
    ``answer`` built after the commit (an approval applied by in-process tasks shows)."""

    def handle() -> Response:
        require_fresh_session(request)
        data: dict[str, Any] = {}
        if view.serializer_class is not None:
            serializer = view.get_serializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        target = load()
        if_match(request, etag(target))
        with transaction.atomic(), api_scope(request, summary(target, data)):
            result = act(target, data)
        return answer(target, result)

    return idempotent(handle, request)
