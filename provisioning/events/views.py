"""HTTP endpoints of outbound events: the signing keys (JWKS) and RFC 8936 polling."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from . import poll as polling
from .signing import jwks


@require_GET
def jwks_document(request: HttpRequest) -> JsonResponse:
    """``/.well-known/jwks.json``: the public keys that verify SETs (active and retiring),
    public and cacheable for SCIMGATE_EVENTS_JWKS_MAX_AGE seconds."""
    response = JsonResponse(jwks())
    patch_cache_control(response, public=True, max_age=settings.SCIMGATE_EVENTS_JWKS_MAX_AGE)
    return response


def _error(error: polling.PollError) -> JsonResponse:
    response = JsonResponse(error.body(), status=error.status)
    if error.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="events", error="invalid_token"'
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@require_http_methods(["POST"])
def poll_stream(request: HttpRequest, stream_id) -> JsonResponse:
    """RFC 8936 poll endpoint of one stream: ``POST`` JSON with ``ack``, ``setErrs``,
    ``maxEvents``, ``returnImmediately``; bearer token of the stream."""
    try:
        stream = polling.authenticate(stream_id, request.headers.get("Authorization"))
        poll_request = polling.parse(request.body)
        answer = polling.poll(
            stream, poll_request, poll_url=request.build_absolute_uri(polling.poll_path(stream.pk))
        )
    except polling.PollError as error:
        return _error(error)
    response = JsonResponse(answer)
    response["Cache-Control"] = "no-store"
    return response
