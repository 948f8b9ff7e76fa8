"""Event stream endpoints of the management API: streams (list, detail, create, change,
pause, resume, rotate the credential, replay, send a test event, delete) and the
delivery log (list with the console's filters, detail, redeliver).

Each calls what the console's view calls (``console/views_events.py``) with the same
role: reading needs the viewer role, every change the administrator role, and where
the console asks for a recent sign-in (step-up: create, change, rotate, replay,
delete) a call through the console session does too; a token stands on its own.
Changes run in ``api_scope`` (audited, source "api") and take an ``Idempotency-Key``,
except the two answers that carry a credential.

A webhook's signing secret or a poll stream's token is in the one answer that issues it
(creation, rotation), marked ``Cache-Control: no-store``; it is never stored, so those
calls take no ``Idempotency-Key`` (a replay would have to keep it).

A stream's ``ETag`` validates its settings and state, not its ``health``: the backlog
and lag are measured at each read (the lag grows by the second), so a tag over them
would never match by the time a change named it. ``If-Match`` on a change or a
deletion names that tag; ``If-None-Match`` answers 304 while the settings and state
are unchanged, whatever the health.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.http import Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from console.events_forms import DeliveryFilter
from provisioning.events import claims, poll
from provisioning.events import selectors as event_selectors
from provisioning.events import streams as event_streams
from provisioning.events.models import Delivery, EventKind, EventStream
from provisioning.events.streams import RESOURCE_TYPES

from .base import Administer, ApiView, ReadOrAdminister, api_scope, require_fresh_session
from .idempotency import idempotent
from .preconditions import conditional_response, etag_of, if_match
from .schema import path_id
from .serializers_events import (
    CreatedStreamSerializer,
    DeliveryDetailSerializer,
    DeliverySerializer,
    EventStreamDetailSerializer,
    EventStreamSerializer,
    ReplayResultSerializer,
    ReplaySerializer,
    StreamChangeSerializer,
    StreamCreateSerializer,
    StreamCredentialSerializer,
)
from .views import ETAG_HEADER, IDEMPOTENCY_KEY, IF_MATCH
from .views_config import NOT_MODIFIED
from .views_logs import _query, _row_id, _valid

TAG = "event streams"
DELIVERY_ID = path_id("delivery_id", "A delivery's id.")
NO_STORE = OpenApiParameter(
    "Cache-Control",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=True,
    required=False,
    description="no-store: the answer carries a credential.",
)


# --- Streams --------------------------------------------------------------------------------------


def _stream_data(request: Request, stream: EventStream, health) -> dict:
    return {
        "id": stream.pk,
        "name": stream.name,
        "method": stream.method,
        "endpoint_url": stream.endpoint_url,
        "has_authorization": bool(stream.authorization),
        "poll_token_prefix": stream.poll_token_prefix,
        "audience": stream.audience,
        "resource_types": list(stream.resource_types),
        "event_kinds": list(stream.event_kinds),
        "payload": stream.payload,
        "client": {"id": stream.client.pk, "name": stream.client.name} if stream.client else None,
        "state": stream.state,
        "pause_after_seconds": stream.pause_after_seconds,
        "failing_since": stream.failing_since,
        "last_success_at": stream.last_success_at,
        "last_failure_at": stream.last_failure_at,
        "health": {
            "backlog": health.backlog,
            "lag_seconds": health.lag.total_seconds() if health.lag is not None else None,
            "failed": health.failed,
        },
        "created_at": stream.created_at,
        "updated_at": stream.updated_at,
    }


def _stream_or_404(stream_id: uuid.UUID) -> EventStream:
    stream = event_selectors.stream_get(stream_id)
    if stream is None:
        raise Http404("No such event stream.")
    return stream


def stream_representation(request: Request, stream: EventStream) -> tuple[dict, str]:
    """The detail representation of ``stream`` and its ETag (of all but ``health``)."""
    data = {
        **_stream_data(request, stream, event_selectors.stream_health(stream)),
        "poll_url": request.build_absolute_uri(poll.poll_path(stream.pk))
        if stream.method == EventStream.Method.POLL
        else None,
        "last_error": stream.last_error,
    }
    data = EventStreamDetailSerializer(data).data
    return data, etag_of({name: value for name, value in data.items() if name != "health"})


def _stream_response(request: Request, stream_id: uuid.UUID, status: int = 200) -> Response:
    data, etag = stream_representation(request, _stream_or_404(stream_id))
    return Response(data, status=status, headers={"ETag": etag})


def _no_store(response: Response) -> Response:
    response["Cache-Control"] = "no-store"
    return response


class EventStreamList(ReadOrAdminister):
    """Outbound event streams by name with their state and health (backlog, lag,
    refused deliveries), as the console lists them. ``POST`` registers one; a webhook's
    signing secret or a poll stream's token is in that answer only."""

    queryset = EventStream.objects.all()

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("name", "id")

    @extend_schema(
        responses=EventStreamSerializer(many=True),
        operation_id="event_streams_list",
        tags=[TAG],
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        ids = {stream.pk for stream in page}
        rows = [
            _stream_data(request, stream, health)
            for stream, health in event_selectors.streams_with_health()
            if stream.pk in ids
        ]
        return self.get_paginated_response(EventStreamSerializer(rows, many=True).data)

    @extend_schema(
        request=StreamCreateSerializer,
        responses={201: CreatedStreamSerializer},
        operation_id="event_streams_create",
        tags=[TAG],
    )
    def post(self, request: Request) -> Response:
        require_fresh_session(request)
        serializer = StreamCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        summary = {"action": "event stream create", "name": fields["name"]}
        with transaction.atomic(), api_scope(request, summary):
            stream, raw = event_streams.create_stream(**fields, operator=request.user)
        data, _etag = stream_representation(request, _stream_or_404(stream.pk))
        return _no_store(
            Response(CreatedStreamSerializer({"stream": data, "secret": raw}).data, status=201)
        )


class EventStreamDetail(ApiView):
    """One stream: settings, state, health and (poll) its URL; never a credential."""

    @extend_schema(
        responses={200: EventStreamDetailSerializer, 304: NOT_MODIFIED},
        parameters=[ETAG_HEADER],
        operation_id="event_streams_retrieve",
        tags=[TAG],
    )
    def get(self, request: Request, stream_id: uuid.UUID) -> Response:
        return conditional_response(
            request, *stream_representation(request, _stream_or_404(stream_id))
        )


class _StreamAction(Administer):
    action_name: str

    def run(self, stream: EventStream, operator) -> None:
        raise NotImplementedError

    def post(self, request: Request, stream_id: uuid.UUID) -> Response:
        def handle() -> Response:
            stream = _stream_or_404(stream_id)
            summary = {"action": self.action_name, "stream": str(stream.pk)}
            with transaction.atomic(), api_scope(request, summary):
                self.run(stream, request.user)
            return _stream_response(request, stream.pk)

        return idempotent(handle, request)


class EventStreamPause(_StreamAction):
    """Stop delivering (events keep being recorded and wait); a paused stream stays so."""

    action_name = "event stream pause"

    def run(self, stream, operator) -> None:
        event_streams.pause_stream(stream=stream, operator=operator)

    @extend_schema(
        request=None,
        responses=EventStreamDetailSerializer,
        parameters=[IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="event_streams_pause",
        tags=[TAG],
    )
    def post(self, request: Request, stream_id: uuid.UUID) -> Response:
        return super().post(request, stream_id)


class EventStreamResume(_StreamAction):
    """Deliver again: clears a failing stream's state; waiting events go out in order."""

    action_name = "event stream resume"

    def run(self, stream, operator) -> None:
        event_streams.resume_stream(stream=stream, operator=operator)

    @extend_schema(
        request=None,
        responses=EventStreamDetailSerializer,
        parameters=[IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="event_streams_resume",
        tags=[TAG],
    )
    def post(self, request: Request, stream_id: uuid.UUID) -> Response:
        return super().post(request, stream_id)


class EventStreamChange(Administer):
    """Change a stream's settings as the console's edit form does: the fields sent change,
    the others stay (a push stream's Authorization header too, unless a new value or
    ``remove_authorization`` is sent). New filters apply to events recorded from now on
    (a replay applies them to earlier ones). The method cannot change."""

    @extend_schema(
        request=StreamChangeSerializer,
        responses=EventStreamDetailSerializer,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY, ETAG_HEADER],
        operation_id="event_streams_change",
        tags=[TAG],
    )
    def post(self, request: Request, stream_id: uuid.UUID) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            stream = _stream_or_404(stream_id)
            if_match(request, stream_representation(request, stream)[1])
            serializer = StreamChangeSerializer(data=request.data, context={"stream": stream})
            serializer.is_valid(raise_exception=True)
            summary = {
                "action": "event stream edit",
                "stream": str(stream.pk),
                # Names only: a header value sent is never recorded.
                "fields": sorted(serializer.initial_data.keys() & serializer.fields.keys()),
            }
            with transaction.atomic(), api_scope(request, summary):
                event_streams.update_stream(
                    stream=stream, **serializer.validated_data, operator=request.user
                )
            return _stream_response(request, stream.pk)

        return idempotent(handle, request)


class EventStreamRotateCredential(Administer):
    """A new webhook signing secret or poll token; the old one stops working at once. It
    is in this answer only. A SET push stream has neither (its SETs are signed with the
    server's keys): 409."""

    @extend_schema(
        request=None,
        responses={200: StreamCredentialSerializer},
        parameters=[NO_STORE],
        operation_id="event_streams_rotate_credential",
        tags=[TAG],
    )
    def post(self, request: Request, stream_id: uuid.UUID) -> Response:
        require_fresh_session(request)
        stream = _stream_or_404(stream_id)
        summary = {"action": "event stream credential", "stream": str(stream.pk)}
        with transaction.atomic(), api_scope(request, summary):
            raw = event_streams.rotate_secret(stream=stream, operator=request.user)
        data, _etag = stream_representation(request, _stream_or_404(stream.pk))
        return _no_store(Response(StreamCredentialSerializer({"stream": data, "secret": raw}).data))


class EventStreamReplay(Administer):
    """Deliver again every retained event recorded since a time that the stream hears:
    its deliveries of them go back to pending, due now, and events it has none for get
    one, in event order (the receiver de-duplicates by ``jti``), as the console's
    replay form does."""

    @extend_schema(
        request=ReplaySerializer,
        responses=ReplayResultSerializer,
        parameters=[IDEMPOTENCY_KEY],
        operation_id="event_streams_replay",
        tags=[TAG],
    )
    def post(self, request: Request, stream_id: uuid.UUID) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            stream = _stream_or_404(stream_id)
            serializer = ReplaySerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            since = serializer.validated_data["since"]
            summary = {
                "action": "event stream replay",
                "stream": str(stream.pk),
                "since": since.isoformat(),
            }
            with transaction.atomic(), api_scope(request, summary):
                result = event_streams.replay(stream=stream, since=since, operator=request.user)
            data, _etag = stream_representation(request, _stream_or_404(stream.pk))
            return Response(ReplayResultSerializer({"since": since, **result, "stream": data}).data)

        return idempotent(handle, request)


def _event_ref(event) -> dict:
    return {
        "id": event.pk,
        "jti": event.jti.hex,
        "txn": event.txn,
        "kind": event.kind,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "created_at": event.created_at,
        "client": {"id": event.client.pk, "name": event.client.name} if event.client else None,
    }


def _delivery_data(delivery: Delivery) -> dict:
    stream = delivery.stream
    return {
        "id": delivery.pk,
        "stream": {"id": stream.pk, "name": stream.name, "method": stream.method},
        "event": _event_ref(delivery.event),
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
    }


def _delivery_or_404(delivery_id) -> Delivery:
    delivery = event_selectors.delivery_get(_row_id(delivery_id))
    if delivery is None:
        raise Http404("No such delivery.")
    return delivery


def delivery_representation(request: Request, delivery_id) -> dict:
    """A delivery with its attempts and the SET claims its stream receives, as the
    console's delivery page shows them."""
    delivery = _delivery_or_404(delivery_id)
    stream = delivery.stream
    poll_url = (
        request.build_absolute_uri(poll.poll_path(stream.pk))
        if stream.method == EventStream.Method.POLL
        else ""
    )
    data = {
        **_delivery_data(delivery),
        "log": [
            {
                "id": attempt.pk,
                "at": attempt.at,
                "ok": attempt.ok,
                "status_code": attempt.status_code,
                "latency_ms": attempt.latency_ms,
                "response": attempt.response,
            }
            for attempt in event_selectors.delivery_attempts(delivery)
        ],
        "claims": claims.set_claims(delivery.event, stream, poll_url=poll_url),
    }
    return DeliveryDetailSerializer(data).data


class EventStreamTestEvent(Administer):
    """Send the stream a verification event (OpenID Shared Signals Framework 1.0,
    §8.1.4.1) that only it receives, delivered like any event (a paused stream keeps it
    until resumed). Answers its delivery, 201, with the delivery's ``Location``."""

    @extend_schema(
        request=None,
        responses={201: DeliveryDetailSerializer},
        parameters=[IDEMPOTENCY_KEY],
        operation_id="event_streams_test_event",
        tags=[TAG],
    )
    def post(self, request: Request, stream_id: uuid.UUID) -> Response:
        def handle() -> Response:
            stream = _stream_or_404(stream_id)
            summary = {"action": "event stream test", "stream": str(stream.pk)}
            with transaction.atomic(), api_scope(request, summary):
                event = event_streams.send_test_event(stream=stream, operator=request.user)
            delivery = Delivery.objects.get(stream=stream, event=event)
            return Response(
                delivery_representation(request, delivery.pk),
                status=201,
                headers={"Location": reverse("api:event-delivery-detail", args=[delivery.pk])},
            )

        return idempotent(handle, request)


class EventStreamDelete(Administer):
    """Delete a stream with its deliveries and their log (the events stay)."""

    @extend_schema(
        request=None,
        responses={204: OpenApiResponse(description="Deleted.")},
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
        operation_id="event_streams_delete",
        tags=[TAG],
    )
    def post(self, request: Request, stream_id: uuid.UUID) -> Response:
        def handle() -> Response:
            require_fresh_session(request)
            stream = _stream_or_404(stream_id)
            if_match(request, stream_representation(request, stream)[1])
            summary = {"action": "event stream delete", "stream": str(stream.pk)}
            with transaction.atomic(), api_scope(request, summary):
                event_streams.delete_stream(stream=stream, operator=request.user)
            return Response(status=204)

        return idempotent(handle, request)


# --- The delivery log -----------------------------------------------------------------------------

DELIVERY_FILTERS = [
    _query("stream", OpenApiTypes.UUID, "A stream's id."),
    _query(
        "status",
        description="pending, sent (poll: handed out, not yet acknowledged), delivered, or "
        "failed (refused by the receiver).",
        enum=Delivery.Status.values,
    ),
    _query("kind", description="The event.", enum=EventKind.values),
    _query("resource_type", description="The event's resource type.", enum=RESOURCE_TYPES),
    _query("resource", OpenApiTypes.UUID, "A user's or group's id."),
    _query("since", OpenApiTypes.DATETIME, "Events recorded from this time (inclusive)."),
    _query("until", OpenApiTypes.DATETIME, "Until this time (exclusive)."),
]


class DeliveryList(ApiView):
    """The delivery log with the console's filters (stream, status, event, resource, the
    event's time), newest first. Each row names its event; the SET is in the detail."""

    queryset = Delivery.objects.none()

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-id",)

    @extend_schema(
        parameters=DELIVERY_FILTERS,
        responses=DeliverySerializer(many=True),
        operation_id="event_deliveries_list",
        tags=[TAG],
    )
    def get(self, request: Request) -> Response:
        filterset = _valid(DeliveryFilter(request.query_params))
        # The rows show neither the event's payload nor its subject.
        queryset = filterset.qs.select_related("event__client").defer(
            "event__payload", "event__sub_id"
        )
        page = self.paginate_queryset(queryset)
        rows = DeliverySerializer([_delivery_data(d) for d in page], many=True).data
        return self.get_paginated_response(rows)


class DeliveryDetail(ApiView):
    """One delivery: its attempts (status, latency, the receiver's answer) and the claims
    of the SET its stream receives."""

    @extend_schema(
        parameters=[DELIVERY_ID],
        responses=DeliveryDetailSerializer,
        operation_id="event_deliveries_retrieve",
        tags=[TAG],
    )
    def get(self, request: Request, delivery_id: str) -> Response:
        return Response(delivery_representation(request, delivery_id))


class DeliveryRedeliver(Administer):
    """Send one delivery again: back to pending, due now, its attempts counted afresh
    (their log stays)."""

    @extend_schema(
        request=None,
        responses=DeliveryDetailSerializer,
        parameters=[DELIVERY_ID, IDEMPOTENCY_KEY],
        operation_id="event_deliveries_redeliver",
        tags=[TAG],
    )
    def post(self, request: Request, delivery_id: str) -> Response:
        def handle() -> Response:
            delivery = _delivery_or_404(delivery_id)
            summary = {"action": "event redeliver", "delivery": delivery.pk}
            with transaction.atomic(), api_scope(request, summary):
                event_streams.redeliver(delivery=delivery, operator=request.user)
            return Response(delivery_representation(request, delivery.pk))

        return idempotent(handle, request)
