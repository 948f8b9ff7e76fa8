"""Console pages for outbound event streams: the streams with their health, their
settings and credentials, replay, the delivery log and the events it carried.

Reading needs the viewer role; every change needs administrator and is a POST
through the ``provisioning.events.streams`` services with ``operator=request.user``,
so it is audited in the action's change set. A webhook signing secret or a poll token
exists in clear only in the response that issues it (never cached, never shown again).
"""

from __future__ import annotations

import json
import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from provisioning.events import claims, poll, selectors, streams
from provisioning.events.models import Delivery, Event, EventStream

from . import listing
from .actions import Outcome, add_service_errors, answer_row, console_scope, decide, flash
from .events_forms import DeliveryFilter, ReplayForm, StreamForm
from .permissions import has_role, require_role
from .signin.stepup import require_step_up

RECENT_DELIVERIES = 10


def _stream_or_404(stream_id: uuid.UUID) -> EventStream:
    stream = selectors.stream_get(stream_id)
    if stream is None:
        raise Http404("No such event stream")
    return stream


def _delivery_or_404(delivery_id: int) -> Delivery:
    delivery = selectors.delivery_get(delivery_id)
    if delivery is None:
        raise Http404("No such delivery")
    return delivery


def _poll_url(request: HttpRequest, stream: EventStream) -> str:
    return request.build_absolute_uri(poll.poll_path(stream.pk))


def _claims_json(request: HttpRequest, event: Event, stream: EventStream) -> str:
    """The SET claims ``stream`` receives for ``event``, indented (the template escapes)."""
    poll_url = _poll_url(request, stream) if stream.method == EventStream.Method.POLL else ""
    return json.dumps(
        claims.set_claims(event, stream, poll_url=poll_url), indent=2, ensure_ascii=False
    )


def _credential_page(
    request: HttpRequest, *, stream: EventStream, raw: str, created: bool
) -> HttpResponse:
    """The only page that ever shows a stream's secret or token; no cache may keep it."""
    response = render(
        request,
        "console/events/credential.html",
        {
            "stream": stream,
            "raw": raw,
            "created": created,
            "poll_url": _poll_url(request, stream),
        },
    )
    add_never_cache_headers(response)
    return response


def _detail(stream: EventStream) -> HttpResponse:
    return redirect("console:stream_detail", stream_id=stream.pk)


# --- Streams ----------------------------------------------------------------------------


@require_role("viewer")
@require_GET
def stream_list(request: HttpRequest) -> HttpResponse:
    """Every stream with its state and health: backlog, lag, last success, failures."""
    context = {
        "rows": [
            {"stream": stream, "health": health}
            for stream, health in selectors.streams_with_health()
        ],
        "can_administer": has_role(request.user, "administrator"),
    }
    return render(request, "console/events/list.html", context)


@require_role("administrator")
@require_step_up
@require_http_methods(["GET", "POST"])
def stream_create(request: HttpRequest) -> HttpResponse:
    """Register a stream; a webhook secret or poll token is shown once, on the next page."""
    form = StreamForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            with console_scope(request, {"action": "event stream create"}):
                stream, raw = streams.create_stream(**form.service_fields(), operator=request.user)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            if raw is not None:
                return _credential_page(request, stream=stream, raw=raw, created=True)
            messages.success(
                request,
                f"Event stream {stream.name} created. Its SETs are signed with the keys "
                "published at /.well-known/jwks.json.",
            )
            return _detail(stream)
    status = 400 if form.is_bound else 200
    return render(
        request, "console/events/form.html", {"form": form, "stream": None}, status=status
    )


@require_role("viewer")
@require_GET
def stream_detail(request: HttpRequest, stream_id: uuid.UUID) -> HttpResponse:
    stream = _stream_or_404(stream_id)
    recent = selectors.deliveries(stream=stream).order_by("-id")[:RECENT_DELIVERIES]
    context = {
        "stream": stream,
        "health": selectors.stream_health(stream),
        "recent": list(recent),
        "poll_url": _poll_url(request, stream),
        "replay_form": ReplayForm(auto_id="replay_%s"),
        "can_administer": has_role(request.user, "administrator"),
    }
    return render(request, "console/events/detail.html", context)


@require_role("administrator")
@require_step_up
@require_http_methods(["GET", "POST"])
def stream_edit(request: HttpRequest, stream_id: uuid.UUID) -> HttpResponse:
    stream = _stream_or_404(stream_id)
    data = request.POST if request.method == "POST" else None
    form = StreamForm(data, initial=StreamForm.initial_for(stream), stream=stream)
    if request.method == "POST" and form.is_valid():
        try:
            with console_scope(request, {"action": "event stream edit", "stream": str(stream.pk)}):
                stream = streams.update_stream(
                    stream=stream, **form.service_fields(), operator=request.user
                )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Event stream {stream.name} saved.")
            return _detail(stream)
    status = 400 if form.is_bound else 200
    return render(
        request, "console/events/form.html", {"form": form, "stream": stream}, status=status
    )


def _act(request: HttpRequest, stream: EventStream, action: str, run, message: str) -> HttpResponse:
    """Run a stream action in the operator's change set; flash its outcome; back to the stream."""
    _, refusal = decide(request, {"action": action, "stream": str(stream.pk)}, run)
    flash(request, refusal or Outcome(message))
    return _detail(stream)


@require_role("administrator")
@require_POST
def stream_pause(request: HttpRequest, stream_id: uuid.UUID) -> HttpResponse:
    stream = _stream_or_404(stream_id)
    return _act(
        request,
        stream,
        "event stream pause",
        lambda: streams.pause_stream(stream=stream, operator=request.user),
        f"{stream.name} paused: events wait until it is resumed.",
    )


@require_role("administrator")
@require_POST
def stream_resume(request: HttpRequest, stream_id: uuid.UUID) -> HttpResponse:
    stream = _stream_or_404(stream_id)
    return _act(
        request,
        stream,
        "event stream resume",
        lambda: streams.resume_stream(stream=stream, operator=request.user),
        f"{stream.name} resumed: waiting events are being delivered in order.",
    )


@require_role("administrator")
@require_POST
def stream_test_event(request: HttpRequest, stream_id: uuid.UUID) -> HttpResponse:
    stream = _stream_or_404(stream_id)
    event, refusal = decide(
        request,
        {"action": "event stream test", "stream": str(stream.pk)},
        lambda: streams.send_test_event(stream=stream, operator=request.user),
    )
    if refusal is not None:
        flash(request, refusal)
        return _detail(stream)
    note = (
        "" if stream.state == EventStream.State.ACTIVE else " It waits until the stream is resumed."
    )
    messages.success(request, f"Test event {event.jti.hex} queued for {stream.name}.{note}")
    return redirect("console:event_detail", event_id=event.pk)


@require_role("administrator")
@require_step_up
@require_POST
def stream_replay(request: HttpRequest, stream_id: uuid.UUID) -> HttpResponse:
    stream = _stream_or_404(stream_id)
    form = ReplayForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "Replay: " + " ".join(form.errors.get("since", ["choose a start time."]))
        )
        return _detail(stream)
    since = form.cleaned_data["since"]
    result, refusal = decide(
        request,
        {"action": "event stream replay", "stream": str(stream.pk), "since": since.isoformat()},
        lambda: streams.replay(stream=stream, since=since, operator=request.user),
    )
    if refusal is not None:
        flash(request, refusal)
    else:
        total = result["reset"] + result["created"]
        messages.success(
            request,
            f"Replay from {since:%Y-%m-%d %H:%M} UTC: {total} deliver{'y' if total == 1 else 'ies'} "
            f"queued ({result['created']} new).",
        )
    return _detail(stream)


@require_role("administrator")
@require_step_up
@require_POST
def stream_rotate(request: HttpRequest, stream_id: uuid.UUID) -> HttpResponse:
    """A new webhook signing secret or poll token; the old one stops working at once."""
    stream = _stream_or_404(stream_id)
    raw, refusal = decide(
        request,
        {"action": "event stream credential", "stream": str(stream.pk)},
        lambda: streams.rotate_secret(stream=stream, operator=request.user),
    )
    if refusal is not None:
        flash(request, refusal)
        return _detail(stream)
    return _credential_page(request, stream=stream, raw=raw, created=False)


@require_role("administrator")
@require_GET
def stream_delete_confirm(request: HttpRequest, stream_id: uuid.UUID) -> HttpResponse:
    stream = _stream_or_404(stream_id)
    context = {"stream": stream, "health": selectors.stream_health(stream)}
    return render(request, "console/events/delete_confirm.html", context)


@require_role("administrator")
@require_step_up
@require_POST
def stream_delete(request: HttpRequest, stream_id: uuid.UUID) -> HttpResponse:
    stream = _stream_or_404(stream_id)
    _, refusal = decide(
        request,
        {"action": "event stream delete", "stream": str(stream.pk)},
        lambda: streams.delete_stream(stream=stream, operator=request.user),
    )
    if refusal is not None:
        flash(request, refusal)
        return _detail(stream)
    messages.success(request, f"Event stream {stream.name} deleted.")
    return redirect("console:stream_list")


# --- Delivery log and events --------------------------------------------------------------


@require_role("viewer")
@require_GET
def delivery_list(request: HttpRequest) -> HttpResponse:
    """Deliveries by stream, status, event, resource and time, newest first."""
    filterset = DeliveryFilter(request.GET)
    return listing.render_listing(
        request,
        "console/events/deliveries.html",
        filterset,
        # The rows show neither the event's payload nor its subject.
        queryset=filterset.qs.defer("event__payload", "event__sub_id"),
        key=F("id"),
        descending=True,
        cursor=listing.int_cursor,
        extra=lambda page: {
            "can_administer": has_role(request.user, "administrator"),
            "here": request.get_full_path(),
        },
    )


@require_role("viewer")
@require_GET
def delivery_detail(request: HttpRequest, delivery_id: int) -> HttpResponse:
    """One delivery: its attempts (status, latency, the receiver's answer) and the SET."""
    delivery = _delivery_or_404(delivery_id)
    context = {
        "delivery": delivery,
        "attempts": selectors.delivery_attempts(delivery),
        "claims_json": _claims_json(request, delivery.event, delivery.stream),
        "can_administer": has_role(request.user, "administrator"),
    }
    return render(request, "console/events/delivery.html", context)


@require_role("administrator")
@require_POST
def delivery_redeliver(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = _delivery_or_404(delivery_id)
    _, refusal = decide(
        request,
        {"action": "event redeliver", "delivery": delivery.pk},
        lambda: streams.redeliver(delivery=delivery, operator=request.user),
    )
    outcome = refusal or Outcome(f"Queued again for {delivery.stream.name}.")
    return answer_row(
        request,
        outcome,
        fragment="console/events/delivery_row.html",
        context=lambda: {
            "delivery": selectors.delivery_get(delivery.pk),
            "can_administer": True,
        },
        listing_url=reverse("console:delivery_list"),
        detail_url=reverse("console:delivery_detail", args=[delivery.pk]),
    )


@require_role("viewer")
@require_GET
def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    """One outbox event: its subject and payload as recorded, and the SET each stream
    that has it receives (audience and payload mode differ per stream)."""
    event = selectors.event_get(event_id)
    if event is None:
        raise Http404("No such event")
    deliveries = selectors.event_deliveries(event)
    context = {
        "event": event,
        "deliveries": [
            {"delivery": d, "claims_json": _claims_json(request, event, d.stream)}
            for d in deliveries
        ],
        "payload_json": json.dumps(event.payload, indent=2, ensure_ascii=False),
        "sub_id_json": json.dumps(event.sub_id, indent=2, ensure_ascii=False),
    }
    return render(request, "console/events/event.html", context)
