"""``/api/``: the management API (version 1), its OpenAPI schema and its docs page."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from console.permissions import require_role

from . import views
from .base import ApiView

app_name = "api"


class SchemaView(SpectacularAPIView, ApiView):
    """The OpenAPI 3.1 document, for any operator (token or session)."""

    authentication_classes = ApiView.authentication_classes
    permission_classes = ApiView.permission_classes
    throttle_classes = ApiView.throttle_classes


urlpatterns = [
    path("v1/me", views.MeView.as_view(), name="me"),
    path("v1/pending-operations", views.PendingOperationList.as_view(), name="pending-list"),
    path(
        "v1/pending-operations/<uuid:pending_id>",
        views.PendingOperationDetail.as_view(),
        name="pending-detail",
    ),
    path(
        "v1/pending-operations/<uuid:pending_id>/approve",
        views.PendingOperationApprove.as_view(),
        name="pending-approve",
    ),
    path(
        "v1/pending-operations/<uuid:pending_id>/reject",
        views.PendingOperationReject.as_view(),
        name="pending-reject",
    ),
    path("schema/", SchemaView.as_view(), name="schema"),
    # The docs page is a console page: signed-in operators only (else the login page).
    # Its script is a separate request, so the Content-Security-Policy needs no inline script.
    path(
        "docs/",
        require_role("viewer")(SpectacularSwaggerSplitView.as_view(url_name="api:schema")),
        name="docs",
    ),
]
