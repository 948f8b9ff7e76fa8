"""ServiceProviderConfig, ResourceTypes and Schemas (RFC 7644 §4): they advertise
exactly what this server implements, with limits read from settings."""

from __future__ import annotations

from django.conf import settings
from rest_framework.response import Response

from provisioning.events import asyncresp

from . import errors, limits
from .api import PublicScimView, ScimView
from .schema import RESOURCE_SCHEMAS, registered_extensions, schema_documents
from .views import LIST_RESPONSE

SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


def service_provider_config(base_url: str) -> dict:
    scim = settings.SCIM
    config = {
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": True},
        "bulk": {
            "supported": True,
            "maxOperations": scim["BULK_MAX_OPERATIONS"],
            "maxPayloadSize": scim["BULK_MAX_PAYLOAD_SIZE"],
        },
        "filter": {"supported": True, "maxResults": scim["MAX_RESULTS"]},
        # RFC 9865 §4: both methods; index stays the default for clients that name none.
        "pagination": {
            "cursor": True,
            "index": True,
            "defaultPaginationMethod": "index",
            "defaultPageSize": min(scim["DEFAULT_COUNT"], scim["MAX_RESULTS"]),
            "maxPageSize": scim["MAX_RESULTS"],
            "cursorTimeout": scim["CURSOR_TIMEOUT"],
        },
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A bearer token issued to one SCIM client (IdP connection).",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base_url}/ServiceProviderConfig",
        },
    }
    if scim["DOCUMENTATION_URI"]:
        config["documentationUri"] = scim["DOCUMENTATION_URI"]
    # RFC 9967 §4: asynchronous completion when asked (``Prefer: respond-async``) and the
    # events this server sends. Absent "indicates the SCIM Service Provider does not
    # support or is not currently configured for Security Events": until an event stream
    # is registered nothing can be delivered, and strict clients that predate RFC 9967
    # (they refuse unknown attributes) keep reading the document.
    security_events = asyncresp.advertised()
    if security_events is not None:
        config["securityEvents"] = security_events
    return config


def resource_type_document(name: str, base_url: str) -> dict:
    schema = RESOURCE_SCHEMAS[name]
    # RFC 7643 §6: a registered extension with a required attribute must be on every
    # resource of the type (creates and replaces without it are refused).
    required = {e.urn for e in registered_extensions() if e.required}
    return {
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": name,
        "name": name,
        "endpoint": schema.endpoint,
        "description": f"{name} resources",
        "schema": schema.core,
        "schemaExtensions": [
            {"schema": urn, "required": urn in required} for urn in schema.extensions
        ],
        "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/{name}"},
    }


def schema_document(urn: str, base_url: str) -> dict:
    document = limits.annotate_schema(schema_documents()[urn])
    document["schemas"] = [SCHEMA_SCHEMA]
    document["meta"] = {"resourceType": "Schema", "location": f"{base_url}/Schemas/{urn}"}
    return document


def _listing(documents: list[dict]) -> dict:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": len(documents),
        "startIndex": 1,
        "itemsPerPage": len(documents),
        "Resources": documents,
    }


class DiscoveryView(PublicScimView):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if "filter" in request.query_params:
            # RFC 7644 §4: filtering discovery endpoints is not supported.
            raise errors.Forbidden("Filtering is not supported on discovery endpoints")


class ServiceProviderConfigView(DiscoveryView):
    def get(self, request):
        return Response(service_provider_config(self.base_url(request)))


class ResourceTypesView(DiscoveryView):
    def get(self, request, name: str | None = None):
        base_url = self.base_url(request)
        if name is None:
            return Response(
                _listing([resource_type_document(n, base_url) for n in RESOURCE_SCHEMAS])
            )
        if name not in RESOURCE_SCHEMAS:
            raise errors.NotFound(f"Resource type {name} not found")
        return Response(resource_type_document(name, base_url))


class SchemasView(DiscoveryView):
    def get(self, request, urn: str | None = None):
        base_url = self.base_url(request)
        if urn is None:
            return Response(_listing([schema_document(u, base_url) for u in schema_documents()]))
        if urn not in schema_documents():
            raise errors.NotFound(f"Schema {urn} not found")
        return Response(schema_document(urn, base_url))


class NotImplementedView(ScimView):
    """``/Me`` needs a subject the bearer token does not have (RFC 7644 §3.11)."""

    def dispatch_not_implemented(self, request, *args, **kwargs):
        raise errors.NotImplementedYet("/Me is not supported: tokens belong to IdP connections")

    get = post = put = patch = delete = dispatch_not_implemented


class UnknownEndpointView(PublicScimView):
    def not_found(self, request, *args, **kwargs):
        raise errors.NotFound(f"No SCIM endpoint at {request.path}")

    get = post = put = patch = delete = not_found
