"""Sending due deliveries to a stream's receiver: SET push (RFC 8935) and webhooks
(Standard Webhooks). Poll streams are fetched by their receiver (``poll``).

The database is the truth. A delivery is due when it is unfinished (``pending``, or
``sent`` whose lease ran out) and its ``next_attempt_at`` has come, and no earlier event
of the same resource is unfinished for the stream (per-resource order). Sending:

- one sender per stream at a time (a PostgreSQL advisory lock held by the sending
  connection, released when it ends or dies; a process lock on other databases), in event
  order;
- a delivery is claimed by a compare-and-set UPDATE that marks it ``sent`` and moves its
  ``next_attempt_at`` past the send's longest duration (a lease): a second sender cannot
  take it, and a sender that dies leaves it due again once the lease runs out;
- no transaction is open while the receiver is called;
- each try is a ``DeliveryAttempt`` (status, latency, the receiver's answer truncated;
  never the request's headers; the stream's credentials are redacted from it);
- push: ``202`` (any 2xx) delivers; ``400`` with a JSON ``{"err", "description"}`` body
  is the receiver refusing the SET (RFC 8935 §2.3): the delivery is ``failed``, recorded,
  not retried; anything else (other statuses, timeouts, refused connections, a
  destination the address guard refuses) is retried with exponential backoff and
  jitter, and the run stops there (the receiver is unwell; the sweep comes back);
- webhook: any 2xx delivers; anything else is retried;
- a stream whose receiver has been failing for ``pause_after_seconds`` goes to
  ``failing`` (paused): nothing is sent to it until an operator resumes it.

``deliveries_due_now`` is the state reset behind "resume" (``streams.resume_stream``): a
plain update, then a kick.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import SplitResult, urlsplit

import httpcore
import httpx
from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone
from standardwebhooks import Webhook

from provisioning.access import outbound
from provisioning.audit.redaction import redact_text

from . import signing
from .claims import event_payload, event_uri, issuer, set_claims
from .crypto import SecretUnreadable, unseal
from .models import Delivery, DeliveryAttempt, Event, EventKind, EventStream
from .outbox import kick

logger = logging.getLogger(__name__)

# The receiver's answer kept in the delivery log.
MAX_LOGGED_ANSWER = 2000
# Bytes of an answer read at most (a receiver cannot make the sender read without end).
MAX_ANSWER_BYTES = 64 * 1024
BATCH = 50
SET_CONTENT_TYPE = "application/secevent+jwt"
WEBHOOK_SECRET_PREFIX = "whsec_"

_jitter = random.Random()  # noqa: S311 - spreading retries, not secrecy

_WEBHOOK_VERBS = {
    EventKind.CREATE: "created",
    EventKind.PUT: "replaced",
    EventKind.PATCH: "updated",
    EventKind.DELETE: "deleted",
    EventKind.ACTIVATE: "activated",
    EventKind.DEACTIVATE: "deactivated",
    EventKind.ASYNC_RESPONSE: "async_completed",
    EventKind.VERIFY: "verification",  # a test event: ``stream.verification``
}


# --- Formats ------------------------------------------------------------------------


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 32 random bytes in base64."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_type(event: Event) -> str:
    """``user.created``, ``group.updated``, ``user.async_completed``, ..."""
    return f"{event.resource_type.lower()}.{_WEBHOOK_VERBS[EventKind(event.kind)]}"


def webhook_body(event: Event, stream: EventStream) -> dict:
    """The JSON a webhook stream receives for ``event``: the SET's content, unsigned
    (the Standard Webhooks signature authenticates it)."""
    uri = event_uri(event, stream)
    return {
        "type": webhook_type(event),
        "timestamp": event.created_at.astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "data": {
            "id": event.jti.hex,
            "txn": event.txn,
            "issuer": issuer(),
            "event": uri,
            "subject": event.sub_id,
            "payload": event_payload(event, uri),
        },
    }


# --- Retry schedule -----------------------------------------------------------------


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: exponential from
    SCIMGATE_EVENTS_RETRY_BASE_SECONDS, doubling, capped at
    SCIMGATE_EVENTS_RETRY_MAX_SECONDS, with jitter (a random point in its upper half), so
    streams that failed together do not retry together."""
    base = settings.SCIMGATE_EVENTS_RETRY_BASE_SECONDS
    cap = settings.SCIMGATE_EVENTS_RETRY_MAX_SECONDS
    delay = min(cap, base * 2 ** min(max(attempts, 1) - 1, 40))
    return _jitter.uniform(delay / 2, delay)


def lease() -> timedelta:
    """How long a claimed delivery is left alone: longer than the longest send."""
    return timedelta(
        seconds=settings.SCIMGATE_EVENTS_CONNECT_TIMEOUT + 3 * settings.SCIMGATE_EVENTS_TIMEOUT + 30
    )


def send_deadline() -> float:
    """Seconds one send may take in all (connecting, sending, reading the answer): a
    receiver trickling its answer cannot hold a sender past this, well within the lease."""
    return settings.SCIMGATE_EVENTS_CONNECT_TIMEOUT + 2 * settings.SCIMGATE_EVENTS_TIMEOUT


# --- Selection ----------------------------------------------------------------------


def due(stream_id, now: datetime):
    """The stream's due deliveries in event order: unfinished, their time come, and no
    earlier event of the same resource unfinished for the stream."""
    earlier_open = Delivery.objects.filter(
        stream_id=OuterRef("stream_id"),
        resource_id=OuterRef("resource_id"),
        event_id__lt=OuterRef("event_id"),
        status__in=Delivery.OPEN,
    )
    return (
        Delivery.objects.filter(
            stream_id=stream_id, status__in=Delivery.OPEN, next_attempt_at__lte=now
        )
        .filter(~Exists(earlier_open))
        .order_by("event_id")
    )


def claim(
    deliveries: list[Delivery], now: datetime, until: datetime, *, count_attempt: bool = False
) -> list[Delivery]:
    """Take ``deliveries`` for sending (or handing out) until ``until``, in one UPDATE
    that only takes rows still due (compare-and-set); the ones taken, in their order.
    ``until`` marks this claim's rows (a concurrent claim has another instant)."""
    if not deliveries:
        return []
    ids = [d.pk for d in deliveries]
    fields = {"status": Delivery.Status.SENT, "next_attempt_at": until}
    if count_attempt:
        fields["attempts"] = F("attempts") + 1
    Delivery.objects.filter(pk__in=ids, status__in=Delivery.OPEN, next_attempt_at__lte=now).update(
        **fields
    )
    mine = set(
        Delivery.objects.filter(
            pk__in=ids, status=Delivery.Status.SENT, next_attempt_at=until
        ).values_list("pk", flat=True)
    )
    taken = [d for d in deliveries if d.pk in mine]
    for delivery in taken:
        delivery.status, delivery.next_attempt_at = Delivery.Status.SENT, until
        if count_attempt:
            delivery.attempts += 1
    return taken


# --- HTTP ---------------------------------------------------------------------------


class _GuardedBackend(httpcore.SyncBackend):
    """Connections whose peer is checked by the address guard once connected (the name
    may resolve differently than when it was checked)."""

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        stream = super().connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            outbound.check_peer(
                stream.get_extra_info("socket"),
                allow_private=settings.SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES,
            )
        except outbound.DestinationRefused as exc:
            raise httpcore.ConnectError(str(exc)) from None
        return stream


def http_client() -> httpx.Client:
    """A delivery client: no redirects followed (a 3xx is a failed try), no proxy from
    the environment, the address guard on every connection (timeouts: per request)."""
    transport = httpx.HTTPTransport(retries=0)
    transport._pool._network_backend = _GuardedBackend()  # noqa: SLF001 - httpx has no hook
    return httpx.Client(transport=transport, follow_redirects=False, trust_env=False)


_clients = threading.local()


def _thread_client() -> httpx.Client:
    """This thread's client, kept between runs (TLS setup and keep-alive connections are
    reused: a worker or sender thread does not pay them per event)."""
    client = getattr(_clients, "client", None)
    if client is None:
        client = _clients.client = http_client()
    return client


def timeout() -> httpx.Timeout:
    return httpx.Timeout(
        settings.SCIMGATE_EVENTS_TIMEOUT, connect=settings.SCIMGATE_EVENTS_CONNECT_TIMEOUT
    )


def receiver_url_shape_ok(parts: SplitResult) -> bool:
    """The scheme and host rule for a receiver's URL, checked when a stream is saved
    (``streams.clean_endpoint_url``) and before each send: https (http only with
    SCIMGATE_EVENTS_ALLOW_HTTP, for development), a host, a valid port."""
    schemes = ("https", "http") if settings.SCIMGATE_EVENTS_ALLOW_HTTP else ("https",)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    return parts.scheme in schemes and bool(parts.hostname) and port_ok


def check_url(url: str) -> None:
    """Raise ``outbound.DestinationRefused`` unless ``url`` has a receiver URL's shape and
    its host resolves to public addresses only (others with
    SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES); ``outbound.DestinationUnresolved`` when it
    does not resolve."""
    if not receiver_url_shape_ok(urlsplit(url)):
        raise outbound.DestinationRefused(f"not an https URL: {url[:200]}")
    outbound.check_destination(url, allow_private=settings.SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES)


@dataclass
class Outcome:
    ok: bool
    status_code: int | None = None
    answer: str = ""
    error: str = ""
    refused: bool = False  # the receiver refused the SET (push 400): not retried
    latency_ms: int | None = None


def _refusal(body: str) -> str | None:
    """``err: description`` of an RFC 8935 §2.3 error body, else None."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("err"), str):
        return None
    description = document.get("description")
    return f"{document['err']}: {description}" if isinstance(description, str) else document["err"]


def _request(stream: EventStream, delivery: Delivery, key) -> tuple[dict, bytes]:
    """Headers and body of one send."""
    event = delivery.event
    if stream.method == EventStream.Method.PUSH:
        headers = {"Content-Type": SET_CONTENT_TYPE, "Accept": "application/json"}
        authorization = unseal(stream.authorization)
        if authorization:
            headers["Authorization"] = authorization
        return headers, signing.sign(set_claims(event, stream), key).encode()
    body = json.dumps(webhook_body(event, stream), separators=(",", ":"), ensure_ascii=False)
    stamp = timezone.now()
    headers = {
        "Content-Type": "application/json",
        "webhook-id": event.jti.hex,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": Webhook(unseal(stream.secret)).sign(event.jti.hex, stamp, body),
    }
    return headers, body.encode()


def send(http: httpx.Client, stream: EventStream, delivery: Delivery, key=None) -> Outcome:
    """POST one delivery to the stream's URL; the outcome. Never raises: any error while
    building or sending the request is a failed try (retried), logged by its type only
    (its message may quote the request's headers)."""
    try:
        outcome = _send(http, stream, delivery, key)
    except Exception as exc:
        logger.error(  # noqa: TRY400 - no traceback: it may quote a credential
            "sending delivery %s of event stream %s failed: %s",
            delivery.pk,
            stream.pk,
            type(exc).__name__,
        )
        return Outcome(ok=False, error=f"{type(exc).__name__} while sending (see the server log)")
    # A receiver may echo the request's headers (or quote a secret): the log shows neither.
    hidden = _credentials(stream)
    outcome.answer = redact_text(redact(outcome.answer, hidden))[:MAX_LOGGED_ANSWER]
    outcome.error = redact_text(redact(outcome.error, hidden))[:MAX_LOGGED_ANSWER]
    return outcome


REDACTED = "[redacted]"


def _credentials(stream: EventStream) -> list[str]:
    """The stream's credentials in clear, as they may appear in a receiver's answer: the
    push Authorization value and its credential (after the scheme), the webhook secret
    and its key (after ``whsec_``), each also as a JSON string would spell it."""
    try:
        values = [unseal(stream.authorization), unseal(stream.secret)]
    except SecretUnreadable:
        return []
    found: set[str] = set()
    for value in filter(None, values):
        found.add(value)
        found.add(value.partition(" ")[2].strip())
        found.add(value.removeprefix(WEBHOOK_SECRET_PREFIX))
    spelled = {json.dumps(value)[1:-1] for value in found}
    return sorted(filter(None, found | spelled), key=len, reverse=True)


def redact(text: str, credentials: list[str]) -> str:
    """``text`` with every occurrence of ``credentials`` (longest first) replaced."""
    for credential in credentials:
        text = text.replace(credential, REDACTED)
    return text


def _send(http: httpx.Client, stream: EventStream, delivery: Delivery, key) -> Outcome:
    try:
        check_url(stream.endpoint_url)
        headers, body = _request(stream, delivery, key)
    except (outbound.DestinationRefused, outbound.DestinationUnresolved, SecretUnreadable) as exc:
        return Outcome(ok=False, error=str(exc))
    started = time.perf_counter()
    deadline = time.monotonic() + send_deadline()
    try:
        with http.stream(
            "POST", stream.endpoint_url, headers=headers, content=body, timeout=timeout()
        ) as response:
            received = bytearray()
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) >= MAX_ANSWER_BYTES:
                    break
                if time.monotonic() > deadline:
                    return Outcome(
                        ok=False,
                        status_code=response.status_code,
                        error=f"the answer took longer than the {send_deadline():g} s deadline",
                        latency_ms=int((time.perf_counter() - started) * 1000),
                    )
    except httpx.HTTPError as exc:
        latency = int((time.perf_counter() - started) * 1000)
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}", latency_ms=latency)
    latency = int((time.perf_counter() - started) * 1000)
    answer = bytes(received[:MAX_ANSWER_BYTES]).decode(errors="replace")
    code = response.status_code
    outcome = Outcome(
        ok=200 <= code < 300,
        status_code=code,
        answer=answer,  # truncated once redacted (``send``)
        latency_ms=latency,
    )
    if not outcome.ok:
        refusal = (
            _refusal(answer) if stream.method == EventStream.Method.PUSH and code == 400 else None
        )
        outcome.refused = refusal is not None
        outcome.error = refusal or f"HTTP {code}"
    return outcome


# --- Recording ----------------------------------------------------------------------


def record(
    stream: EventStream, tried: list[tuple[Delivery, Outcome, datetime]], untried: list[Delivery]
) -> None:
    """In one transaction: each try in the log, the deliveries' new states, the stream's
    health; claimed deliveries not tried (the run stopped) are due again at once.

    A delivery's new state is written only while it is still as this sender claimed it
    (``sent``, its lease): an operator's redelivery or replay during the send wins (the
    try stays in the log)."""
    attempts, changed = [], []
    leases = {d.pk: d.next_attempt_at for d, _, _ in tried} | {
        d.pk: d.next_attempt_at for d in untried
    }
    for delivery, outcome, at in tried:
        delivery.attempts += 1
        delivery.last_status_code = outcome.status_code
        if outcome.ok:
            delivery.status, delivery.delivered_at, delivery.last_error = (
                Delivery.Status.DELIVERED,
                at,
                "",
            )
        elif outcome.refused:
            delivery.status, delivery.last_error = Delivery.Status.FAILED, outcome.error
        else:
            delivery.status = Delivery.Status.PENDING
            delivery.next_attempt_at = at + timedelta(seconds=retry_delay(delivery.attempts))
            delivery.last_error = outcome.error
        changed.append(delivery)
        attempts.append(
            DeliveryAttempt(
                delivery=delivery,
                at=at,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                response=(outcome.answer or outcome.error)[:MAX_LOGGED_ANSWER],
                ok=outcome.ok,
            )
        )
    now = timezone.now()
    for delivery in untried:
        delivery.status, delivery.next_attempt_at = Delivery.Status.PENDING, now
        changed.append(delivery)
    with transaction.atomic():
        DeliveryAttempt.objects.bulk_create(attempts)
        _update_rows(changed, leases)
        if any(outcome.ok for _, outcome, _ in tried):
            stream_succeeded(stream, now)
        for _, outcome, at in tried:
            if not outcome.ok:
                stream_failed(stream, outcome.error, at, receiver_answered=outcome.refused)


_ROW_FIELDS = (
    "status",
    "attempts",
    "next_attempt_at",
    "delivered_at",
    "last_status_code",
    "last_error",
)


def _update_rows(deliveries: list[Delivery], leases: dict) -> None:
    """Write each delivery's new state where the row is still ``sent`` with the lease
    this sender claimed it with (``leases``: pk -> lease end; compare-and-set): one
    parameterized UPDATE executed for all rows (a CASE per field over a batch costs more
    to build than to run)."""
    if not deliveries:
        return
    quote = connection.ops.quote_name
    fields = [Delivery._meta.get_field(name) for name in _ROW_FIELDS]
    status, lease_end = (
        Delivery._meta.get_field("status"),
        Delivery._meta.get_field("next_attempt_at"),
    )
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = (
        f"UPDATE {quote(Delivery._meta.db_table)} SET {assignments} "  # noqa: S608 - model names
        f"WHERE {quote(Delivery._meta.pk.column)} = %s "
        f"AND {quote(status.column)} = %s AND {quote(lease_end.column)} = %s"
    )
    rows = [
        [field.get_db_prep_save(getattr(d, field.attname), connection) for field in fields]
        + [
            d.pk,
            Delivery.Status.SENT.value,
            lease_end.get_db_prep_save(leases[d.pk], connection),
        ]
        for d in deliveries
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def stream_succeeded(stream: EventStream, now: datetime) -> None:
    EventStream.objects.filter(pk=stream.pk).update(last_success_at=now, failing_since=None)
    stream.last_success_at, stream.failing_since = now, None


def stream_failed(
    stream: EventStream, error: str, now: datetime, *, receiver_answered: bool
) -> None:
    """A failed try: recorded on the stream; one that says the receiver is unwell (not a
    refusal it answered properly) starts or continues the failing period, and a stream
    failing for ``pause_after_seconds`` is paused (``failing``)."""
    if receiver_answered:
        # The receiver is up: it answered, refusing this one SET.
        EventStream.objects.filter(pk=stream.pk).update(
            last_failure_at=now, last_error=error, failing_since=None
        )
        stream.failing_since = None
        return
    EventStream.objects.filter(pk=stream.pk).update(last_failure_at=now, last_error=error)
    EventStream.objects.filter(pk=stream.pk, failing_since__isnull=True).update(failing_since=now)
    pause_if_failing_too_long(stream.pk, now)


def pause_if_failing_too_long(stream_id, now: datetime) -> bool:
    stream = (
        EventStream.objects.filter(pk=stream_id)
        .only("failing_since", "pause_after_seconds", "state")
        .first()
    )
    if (
        stream is None
        or stream.state != EventStream.State.ACTIVE
        or stream.failing_since is None
        or now - stream.failing_since < timedelta(seconds=stream.pause_after_seconds)
    ):
        return False
    paused = EventStream.objects.filter(pk=stream_id, state=EventStream.State.ACTIVE).update(
        state=EventStream.State.FAILING
    )
    if paused:
        logger.warning(
            "event stream %s paused: its receiver has failed since %s",
            stream_id,
            stream.failing_since,
        )
    return bool(paused)


# --- The run ------------------------------------------------------------------------

_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def _lock_key(stream_id) -> int:
    digest = hashlib.blake2b(f"scimgate-events:{stream_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.contextmanager
def stream_lock(stream_id):
    """Whether this process may send to the stream now (one sender per stream)."""
    if connection.vendor == "postgresql":
        key = _lock_key(stream_id)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            acquired = cursor.fetchone()[0]
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    with _local_locks_guard:
        lock = _local_locks.setdefault(str(stream_id), threading.Lock())
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


def _sendable(stream_id) -> EventStream | None:
    stream = EventStream.objects.filter(pk=stream_id).first()
    if (
        stream is None
        or stream.method == EventStream.Method.POLL
        or stream.state != EventStream.State.ACTIVE
    ):
        return None
    return stream


def _run(stream_id) -> int:
    """Send the stream's due deliveries in order until none is due or a try fails; the
    number of deliveries finished. Each batch costs one claim and one recording
    transaction, whatever its size."""
    finished = 0
    stream = _sendable(stream_id)
    if stream is None:
        return 0
    key = signing.active_key() if stream.method == EventStream.Method.PUSH else None
    http = _thread_client()
    while True:
        now = timezone.now()
        batch = list(due(stream.pk, now).select_related("event")[:BATCH])
        if not batch:
            return finished
        claimed = claim(batch, now, now + lease())
        tried: list[tuple[Delivery, Outcome, datetime]] = []
        try:
            for delivery in claimed:
                outcome = send(http, stream, delivery, key)
                tried.append((delivery, outcome, timezone.now()))
                if not (outcome.ok or outcome.refused):
                    break
        finally:
            # Whatever happened, what was tried is recorded (and not sent again) and the
            # rest is due again.
            record(stream, tried, claimed[len(tried) :])
        finished += sum(1 for _, outcome, _ in tried if outcome.ok or outcome.refused)
        if tried and not (tried[-1][1].ok or tried[-1][1].refused):
            return finished
        # An operator may have paused the stream meanwhile.
        stream = _sendable(stream.pk)
        if stream is None:
            return finished


def deliver_due(stream_id) -> int:
    """Send what is due to a push or webhook stream (poll streams: nothing to do); the
    number of deliveries finished. Safe to call from several workers at once. A call
    with nothing due costs one query (every commit kicks a run; most find the previous
    run took their event)."""
    finished = 0
    for _ in range(3):
        if not due(stream_id, timezone.now()).exists():
            break
        with stream_lock(stream_id) as acquired:
            if not acquired:
                break
            done = _run(stream_id)
        finished += done
        if not done:  # paused, failing, or another sender took them
            break
        # A kick that arrived while the lock was held found it taken: look once more.
    return finished


# --- In-process delivery without a broker -------------------------------------------

_background: dict[str, bool] = {}
_background_guard = threading.Lock()


def deliver_in_background(stream_id) -> None:
    """``deliver_due`` on a daemon thread (one per stream; a kick while it runs makes it
    run once more), so a request that published events does not wait for receivers.
    Used when tasks run in-process (no broker)."""
    key = str(stream_id)
    with _background_guard:
        if key in _background:
            _background[key] = True
            return
        _background[key] = False

    def work():
        try:
            while True:
                try:
                    deliver_due(key)
                except Exception:
                    logger.exception("delivering events of stream %s failed", key)
                with _background_guard:
                    if not _background[key]:
                        del _background[key]
                        return
                    _background[key] = False
        finally:
            connections.close_all()

    threading.Thread(target=work, name=f"events-{key[:8]}", daemon=True).start()


# --- State resets (console) ---------------------------------------------------------


def deliveries_due_now(stream_id) -> int:
    """Make the stream's pending deliveries due now (after a resume, so backoff delays
    do not outlast the outage), then a kick on commit; the number rescheduled."""
    now = timezone.now()
    count = Delivery.objects.filter(
        stream_id=stream_id, status=Delivery.Status.PENDING, next_attempt_at__gt=now
    ).update(next_attempt_at=now)
    kick([stream_id])
    return count


# --- The sweep ----------------------------------------------------------------------


def streams_due(now: datetime | None = None) -> list:
    """Ids of active push and webhook streams with a due delivery (a lost kick, a retry
    whose time came, a lease that ran out); streams failing too long are paused first."""
    now = now or timezone.now()
    for stream_id in EventStream.objects.filter(
        state=EventStream.State.ACTIVE, failing_since__isnull=False
    ).values_list("pk", flat=True):
        pause_if_failing_too_long(stream_id, now)
    has_due = Delivery.objects.filter(
        stream_id=OuterRef("pk"), status__in=Delivery.OPEN, next_attempt_at__lte=now
    )
    return list(
        EventStream.objects.filter(
            state=EventStream.State.ACTIVE,
            method__in=[EventStream.Method.PUSH, EventStream.Method.WEBHOOK],
        )
        .filter(Exists(has_due))
        .values_list("pk", flat=True)
    )
