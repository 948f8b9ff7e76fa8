"""Poll-based SET delivery (RFC 8936): the receiver asks, acknowledges and reports errors.

One poll request (§2.2): ``ack`` (jti values received and persisted) become
``delivered``; ``setErrs`` (jti -> ``{"err", "description"}``) become ``failed`` with the
error in the delivery log; then up to ``maxEvents`` due SETs are handed out (``sent``),
waiting up to SCIMGATE_EVENTS_POLL_WAIT_SECONDS for one to arrive unless
``returnImmediately``. A SET handed out and not acknowledged within
SCIMGATE_EVENTS_POLL_ACK_TIMEOUT_SECONDS is handed out again (the receiver may have lost
the answer). Per-resource order: a SET is not handed out while an earlier one of the same
resource is unacknowledged. ``moreAvailable`` (§2.3) says unfinished SETs remain that this
answer did not carry (some may wait for this answer's acknowledgements).

The waiting poll holds no transaction and no database connection between its looks.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from provisioning.access.token_check import MAX_TOKEN_LENGTH, token_digest
from provisioning.audit.redaction import redact_text

from . import signing
from .claims import set_claims
from .delivery import claim, due
from .models import Delivery, DeliveryAttempt, EventStream

MAX_ERROR_TEXT = 1000


class PollError(Exception):
    """An RFC 8936 §2.4 error answer: ``err`` code, ``description``, HTTP status."""

    def __init__(self, err: str, description: str, status: int = 400):
        super().__init__(description)
        self.err, self.description, self.status = err, description, status

    def body(self) -> dict:
        return {"err": self.err, "description": self.description}


@dataclass
class PollRequest:
    ack: list[str] = field(default_factory=list)
    set_errs: dict[str, dict] = field(default_factory=dict)
    max_events: int | None = None
    return_immediately: bool = False


def poll_path(stream_id) -> str:
    return reverse("events-poll", args=[stream_id])


def authenticate(stream_id, authorization: str | None) -> EventStream:
    """The poll stream a request's ``Authorization: Bearer <token>`` opens, or
    ``PollError`` 401 ``authentication_failed`` (the same for an unknown stream, another
    method, and a wrong token: nothing tells them apart). Digests are compared in
    constant time."""
    failed = PollError(
        "authentication_failed", "A valid bearer token for this stream is required.", 401
    )
    scheme, _, raw = (authorization or "").partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw or len(raw) > MAX_TOKEN_LENGTH:
        raise failed
    stream = EventStream.objects.filter(pk=stream_id, method=EventStream.Method.POLL).first()
    if not token_matches(stream, raw):
        raise failed
    return stream


def token_matches(stream: EventStream | None, raw: str | None) -> bool:
    """Whether ``raw`` is ``stream``'s poll token (digests compared in constant time)."""
    expected = stream.poll_token_hash if stream is not None else ""
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return False
    return hmac.compare_digest(expected or "-", token_digest(raw)) and bool(expected)


def _jti(value) -> uuid.UUID:
    if not isinstance(value, str):
        raise PollError("invalid_request", "Each jti must be a string.")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise PollError(
            "invalid_request", f"“{value[:100]}” is not a jti this transmitter issued."
        ) from None


def parse(body: bytes) -> PollRequest:
    """The poll request of a JSON body (an empty body is an empty request)."""
    if not body.strip():
        return PollRequest()
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PollError("invalid_request", "The request body is not JSON.") from None
    if not isinstance(document, dict):
        raise PollError("invalid_request", "The request body must be a JSON object.")
    request = PollRequest()
    ack = document.get("ack", [])
    if not isinstance(ack, list):
        raise PollError("invalid_request", "“ack” must be an array of jti values.")
    for value in ack:
        _jti(value)
    request.ack = ack
    errors = document.get("setErrs", {})
    if not isinstance(errors, dict):
        raise PollError("invalid_request", "“setErrs” must be an object of jti values.")
    for jti, error in errors.items():
        _jti(jti)
        if not isinstance(error, dict) or not isinstance(error.get("err"), str):
            raise PollError(
                "invalid_request", f"“setErrs” of {jti[:100]} must be an object with “err”."
            )
        if "description" in error and not isinstance(error["description"], str):
            raise PollError("invalid_request", f"“description” of {jti[:100]} must be a string.")
    request.set_errs = errors
    max_events = document.get("maxEvents")
    if max_events is not None and (
        isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 0
    ):
        raise PollError("invalid_request", "“maxEvents” must be a non-negative integer.")
    request.max_events = max_events
    immediately = document.get("returnImmediately", False)
    if not isinstance(immediately, bool):
        raise PollError("invalid_request", "“returnImmediately” must be true or false.")
    request.return_immediately = immediately
    return request


def _finish(stream: EventStream, request: PollRequest, now: datetime) -> None:
    """Acknowledgements and errors: the deliveries finished, each in the log. Unknown or
    already finished jti values are ignored (a repeated acknowledgement is harmless)."""
    if not (request.ack or request.set_errs):
        return
    acked = {_jti(j) for j in request.ack}
    errors = {_jti(j): e for j, e in request.set_errs.items()}
    with transaction.atomic():
        deliveries = list(
            Delivery.objects.select_for_update()
            .filter(stream=stream, status__in=Delivery.OPEN, event__jti__in=acked | set(errors))
            .select_related("event")
        )
        log = []
        for delivery in deliveries:
            jti = delivery.event.jti
            # The latency of a poll delivery: from the event to its acknowledgement.
            latency = max(0, int((now - delivery.event.created_at).total_seconds() * 1000))
            if jti in errors:
                error = errors[jti]
                # The receiver's words reach the delivery log: tokens in them are redacted.
                err, description = redact_text(error["err"]), redact_text(
                    error.get("description", "")
                )
                text = json.dumps({"err": err, "description": description})
                delivery.status = Delivery.Status.FAILED
                delivery.last_error = f"{err}: {description}"[:MAX_ERROR_TEXT]
                log.append(
                    DeliveryAttempt(
                        delivery=delivery,
                        at=now,
                        latency_ms=latency,
                        response=text[:MAX_ERROR_TEXT],
                        ok=False,
                    )
                )
            else:
                delivery.status = Delivery.Status.DELIVERED
                delivery.delivered_at = now
                delivery.last_error = ""
                log.append(
                    DeliveryAttempt(
                        delivery=delivery,
                        at=now,
                        latency_ms=latency,
                        response="acknowledged",
                        ok=True,
                    )
                )
        Delivery.objects.bulk_update(deliveries, ["status", "delivered_at", "last_error"])
        DeliveryAttempt.objects.bulk_create(log)


def _hand_out(stream: EventStream, limit: int, poll_url: str) -> tuple[dict[str, str], bool]:
    """Claim up to ``limit`` due deliveries and sign their SETs; and whether unfinished
    deliveries remain that were not handed out."""
    sets: dict[str, str] = {}
    now = timezone.now()
    if limit and stream.state == EventStream.State.ACTIVE:
        until = now + timedelta(seconds=settings.SCIMGATE_EVENTS_POLL_ACK_TIMEOUT_SECONDS)
        candidates = list(due(stream.pk, now).select_related("event")[:limit])
        again = {d.pk for d in candidates if d.status == Delivery.Status.SENT}
        taken = claim(candidates, now, until, count_attempt=True)
        if taken:
            DeliveryAttempt.objects.bulk_create(
                DeliveryAttempt(
                    delivery=delivery,
                    at=now,
                    response="not acknowledged in time: handed out again",
                    ok=False,
                )
                for delivery in taken
                if delivery.pk in again
            )
            key = signing.active_key()
            for delivery in taken:
                claims = set_claims(delivery.event, stream, poll_url=poll_url)
                sets[delivery.event.jti.hex] = signing.sign(claims, key)
    more = stream.state == EventStream.State.ACTIVE and (
        Delivery.objects.filter(stream=stream, status=Delivery.Status.PENDING).exists()
        or Delivery.objects.filter(
            stream=stream, status=Delivery.Status.SENT, next_attempt_at__lte=now
        ).exists()
    )
    return sets, more


def poll(stream: EventStream, request: PollRequest, *, poll_url: str) -> dict:
    """Answer one poll request (RFC 8936 §2.3): ``{"sets": {jti: SET}, "moreAvailable"}``."""
    now = timezone.now()
    _finish(stream, request, now)
    EventStream.objects.filter(pk=stream.pk).update(last_success_at=now)
    limit = settings.SCIMGATE_EVENTS_POLL_MAX_EVENTS
    if request.max_events is not None:
        limit = min(limit, request.max_events)
    deadline = time.monotonic() + (
        0
        if request.return_immediately or limit == 0
        else settings.SCIMGATE_EVENTS_POLL_WAIT_SECONDS
    )
    while True:
        sets, more = _hand_out(stream, limit, poll_url)
        if sets or time.monotonic() >= deadline:
            return {"sets": sets, "moreAvailable": more}
        # Waiting: no transaction is open here, and the connection goes back (closed)
        # so a long poll does not keep a database connection for its whole wait.
        if not connection.in_atomic_block:
            connection.close()
        time.sleep(
            min(
                settings.SCIMGATE_EVENTS_POLL_INTERVAL_SECONDS,
                max(0.0, deadline - time.monotonic()),
            )
        )
        stream.refresh_from_db(fields=["state"])
