"""The framework floor: a bare Django view answering a fixed SCIM user document from memory.

Mounted at ``/bench/floor`` only when ``SCIMGATE_BENCH_FLOOR`` is set (the
benchmark's gunicorn sets it). It passes through the same middleware stack as
every other request but touches no database, so the load generator's rate
against it is the most this machine, gunicorn and Django can serve: the
ceiling any SCIM endpoint is compared with.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

FLOOR_DOCUMENT = {
    "schemas": [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    ],
    "id": "2819c223-7f76-453a-919d-413861904646",
    "externalId": "701984",
    "userName": "bjensen@example.com",
    "name": {"formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen", "givenName": "Barbara"},
    "displayName": "Babs Jensen",
    "title": "Tour Guide",
    "active": True,
    "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
        "employeeNumber": "701984",
        "department": "Tour Operations",
    },
    "meta": {
        "resourceType": "User",
        "created": "2010-01-23T04:56:22.000Z",
        "lastModified": "2011-05-13T04:42:34.000Z",
        "location": "http://127.0.0.1/scim/v2/Users/2819c223-7f76-453a-919d-413861904646",
        "version": 'W/"3"',
    },
}
_BODY = json.dumps(FLOOR_DOCUMENT, separators=(",", ":")).encode()


@require_GET
def floor(request: HttpRequest) -> HttpResponse:
    """The fixed document, serialised once at import."""
    return HttpResponse(_BODY, content_type="application/scim+json")
