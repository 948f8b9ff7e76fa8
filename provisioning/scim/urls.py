from django.urls import re_path

from . import bulk, discovery, pending, views

app_name = "scim"


def _route(pattern: str, view, name: str):
    """``pattern`` with or without a trailing slash: ``/Users`` and ``/Users/`` are one
    collection (clients and proxies add the slash)."""
    return re_path(rf"^{pattern}/?$", view, name=name)


_ID = r"(?P<resource_id>[^/]+)"

urlpatterns = [
    _route("Users", views.UserCollection.as_view(), "users"),
    _route(r"Users/\.search", views.UserSearch.as_view(), "users-search"),
    _route(rf"Users/{_ID}", views.UserItem.as_view(), "user"),
    _route("Groups", views.GroupCollection.as_view(), "groups"),
    _route(r"Groups/\.search", views.GroupSearch.as_view(), "groups-search"),
    _route(rf"Groups/{_ID}", views.GroupItem.as_view(), "group"),
    _route(r"\.search", views.RootSearch.as_view(), "search"),
    _route("Bulk", bulk.BulkView.as_view(), "bulk"),
    _route(
        r"PendingOperations/(?P<pending_id>[^/]+)",
        pending.PendingOperationView.as_view(),
        "pending-operation",
    ),
    _route("Me", discovery.NotImplementedView.as_view(), "me"),
    _route(
        "ServiceProviderConfig",
        discovery.ServiceProviderConfigView.as_view(),
        "service-provider-config",
    ),
    _route("ResourceTypes", discovery.ResourceTypesView.as_view(), "resource-types"),
    _route(r"ResourceTypes/(?P<name>[^/]+)", discovery.ResourceTypesView.as_view(), "resource-type"),
    _route("Schemas", discovery.SchemasView.as_view(), "schemas"),
    _route(r"Schemas/(?P<urn>[^/]+)", discovery.SchemasView.as_view(), "schema"),
    # [\s\S], not ".": a path holding a newline is still a SCIM path (a SCIM 404).
    re_path(r"^[\s\S]*$", discovery.UnknownEndpointView.as_view(), name="unknown"),
]
