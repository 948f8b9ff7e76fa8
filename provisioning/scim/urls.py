from django.urls import path, re_path

from . import bulk, discovery, pending, views

app_name = "scim"

urlpatterns = [
    path("Users", views.UserCollection.as_view(), name="users"),
    path("Users/.search", views.UserSearch.as_view(), name="users-search"),
    path("Users/<str:resource_id>", views.UserItem.as_view(), name="user"),
    path("Groups", views.GroupCollection.as_view(), name="groups"),
    path("Groups/.search", views.GroupSearch.as_view(), name="groups-search"),
    path("Groups/<str:resource_id>", views.GroupItem.as_view(), name="group"),
    path(".search", views.RootSearch.as_view(), name="search"),
    path("Bulk", bulk.BulkView.as_view(), name="bulk"),
    path(
        "PendingOperations/<str:pending_id>",
        pending.PendingOperationView.as_view(),
        name="pending-operation",
    ),
    path("Me", discovery.NotImplementedView.as_view(), name="me"),
    path(
        "ServiceProviderConfig",
        discovery.ServiceProviderConfigView.as_view(),
        name="service-provider-config",
    ),
    path("ResourceTypes", discovery.ResourceTypesView.as_view(), name="resource-types"),
    path("ResourceTypes/<str:name>", discovery.ResourceTypesView.as_view(), name="resource-type"),
    path("Schemas", discovery.SchemasView.as_view(), name="schemas"),
    path("Schemas/<str:urn>", discovery.SchemasView.as_view(), name="schema"),
    # [\s\S], not ".": a path holding a newline is still a SCIM path (a SCIM 404).
    re_path(r"^[\s\S]*$", discovery.UnknownEndpointView.as_view(), name="unknown"),
]
