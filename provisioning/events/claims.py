"""An outbox event as a stream receives it: the SET claims (RFC 8417, RFC 9967) and the
plain JSON of a webhook.

The event row holds everything but what depends on the receiver: the audience, and for
provisioning events the payload mode (``:notice`` lists the changed ``attributes``,
``:full`` carries ``data``; exactly one of the two, RFC 9967 §2.4).
"""

from __future__ import annotations

from django.conf import settings

from .models import EVENT_URI_PREFIX, Event, EventKind, EventStream

_WITHOUT_MODE = {EventKind.DELETE, EventKind.ACTIVATE, EventKind.DEACTIVATE}
_MISC = {EventKind.ASYNC_RESPONSE}
# OpenID Shared Signals Framework 1.0, §8.1.4.1: the event a transmitter sends to let a
# receiver (and the operator) check a stream end to end. Its sub_id is
# {"format": "opaque", "id": <stream id>} and its payload may carry "state".
VERIFICATION_EVENT_URI = "https://schemas.openid.net/secevent/ssf/event-type/verification"


# A resource type -> its SCIM endpoint (and back: ``RESOURCE_TYPES``).
ENDPOINTS = {"User": "Users", "Group": "Groups"}
RESOURCE_TYPES = {endpoint: type_ for type_, endpoint in ENDPOINTS.items()}


def subject(resource_type: str, resource_id=None, external_id=None) -> dict:
    """RFC 9967 §2.1 ``sub_id``: the resource's path relative to the SCIM base URL, its id
    and ``externalId``. Without a resource (an asynchronous POST that failed) the path is
    the endpoint's (``/Users``), or ``/Bulk``."""
    endpoint = ENDPOINTS.get(resource_type, "")
    if resource_id is None:
        return {"format": "scim", "uri": f"/{endpoint}" if endpoint else "/Bulk"}
    sub_id = {"format": "scim", "uri": f"/{endpoint}/{resource_id}", "id": str(resource_id)}
    if external_id:
        sub_id["externalId"] = external_id
    return sub_id


def issuer() -> str:
    """The SET ``iss``: ``SCIMGATE_EVENTS_ISSUER``, else the SCIM base URL, else "scimgate"."""
    return (
        getattr(settings, "SCIMGATE_EVENTS_ISSUER", "")
        or getattr(settings, "SCIM_BASE_URL", "")
        or "scimgate"
    )


def event_uri(event: Event, stream: EventStream) -> str:
    """``urn:ietf:params:scim:event:prov:patch:notice`` and the like."""
    kind = EventKind(event.kind)
    if kind == EventKind.VERIFY:
        return VERIFICATION_EVENT_URI
    if kind in _MISC:
        return f"{EVENT_URI_PREFIX}misc:{kind.value}"
    if kind in _WITHOUT_MODE:
        return f"{EVENT_URI_PREFIX}prov:{kind.value}"
    mode = (
        "full"
        if stream.payload == EventStream.Payload.FULL and "data" in event.payload
        else "notice"
    )
    return f"{EVENT_URI_PREFIX}prov:{kind.value}:{mode}"


def event_payload(event: Event, uri: str) -> dict:
    payload = dict(event.payload)
    if uri.endswith(":full"):
        payload.pop("attributes", None)
    elif uri.endswith(":notice"):
        payload.pop("data", None)
    return payload


def audience(stream: EventStream, poll_url: str = "") -> str:
    return stream.audience or stream.endpoint_url or poll_url or issuer()


def set_claims(event: Event, stream: EventStream, *, poll_url: str = "") -> dict:
    """The claims of the SET that carries ``event`` to ``stream`` (to be signed)."""
    uri = event_uri(event, stream)
    return {
        "jti": event.jti.hex,
        "iat": int(event.created_at.timestamp()),
        "iss": issuer(),
        "aud": audience(stream, poll_url),
        "txn": event.txn,
        "sub_id": event.sub_id,
        "events": {uri: event_payload(event, uri)},
    }
