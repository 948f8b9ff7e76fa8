"""Event streams: register, change, pause and resume them, issue their credentials, replay
and redeliver their events, send them a test event. The console and the
``createeventstream`` command call only these.

Every change takes the ``operator`` (a Django user, or None for a command) and runs in
one audited change set. Credentials exist in clear only in the return value of the call
that issues them:

- a webhook stream's signing secret (Standard Webhooks: ``whsec_`` and the base64 of
  32 random bytes) is stored encrypted (``crypto.seal``): the sender needs it again;
- a poll stream's bearer token (``scgev_<prefix>_<secret>``) is stored as its SHA-256
  digest, as SCIM tokens are (``access.token_check.token_digest``), with its public prefix;
- a push stream's optional ``Authorization`` header value is stored encrypted.

The audit trail never holds them: the stream's credential columns are excluded from
its audit entries, and issuing one is recorded as an entry that names what happened.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from provisioning.access import outbound
from provisioning.access.models import ScimClient
from provisioning.access.token_check import new_raw_token, token_digest
from provisioning.audit.context import change_set_scope
from provisioning.audit.models import ChangeSet

from . import crypto, delivery, outbox, poll
from .models import Delivery, Event, EventKind, EventStream
from .poll import token_matches as poll_token_matches  # noqa: F401 (the services' name)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

POLL_TOKEN_SCHEME = "scgev"
MAX_URL_LENGTH = 2000
MAX_AUTHORIZATION_LENGTH = 4096
# A failing push or webhook stream is paused after this long (bounds for operators).
MIN_PAUSE_AFTER = timedelta(minutes=5)
MAX_PAUSE_AFTER = timedelta(days=30)
# Kinds a stream may filter on: the provisioning events and asynchronous completions
# (test events always reach the stream they verify).
FILTERABLE_KINDS = [kind for kind in EventKind if kind != EventKind.VERIFY]
RESOURCE_TYPES = ["User", "Group"]
# Replay writes deliveries in batches of this many.
REPLAY_BATCH = 2000

_UNSET: Any = object()


# --- Addresses ------------------------------------------------------------------------


def site_base_url() -> str:
    """The server's public root URL, without a trailing slash, for addresses handed out
    outside a request (the ``createeventstream`` command): SCIM_BASE_URL without its
    ``/scim/v2``, else SCIMGATE_EVENTS_ISSUER when it is a URL, else SCIMGATE_CONSOLE_URL."""
    scim_base = settings.SCIM_BASE_URL.rstrip("/")
    if scim_base:
        return scim_base.removesuffix("/scim/v2")
    issuer = getattr(settings, "SCIMGATE_EVENTS_ISSUER", "").rstrip("/")
    if urlsplit(issuer).scheme in ("http", "https"):
        return issuer
    return settings.SCIMGATE_CONSOLE_URL.rstrip("/")


def poll_url(stream: EventStream, base_url: str = "") -> str:
    """The absolute poll URL of ``stream`` under ``base_url`` (default: ``site_base_url``)."""
    return (base_url.rstrip("/") or site_base_url()) + poll.poll_path(stream.pk)


def clean_endpoint_url(value: str, field: str = "endpoint_url") -> str:
    """A receiver's URL: https (http only with SCIMGATE_EVENTS_ALLOW_HTTP, for development),
    no credentials in it, a host that resolves to public addresses only (others with
    SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES, for development): an event stream must not
    make the server post into its own network (SSRF). The sender checks again when it
    connects, as the name may resolve differently then."""
    value = (value or "").strip()
    parts = urlsplit(value)
    if not value:
        raise ValidationError({field: "A push or webhook stream needs the receiver's URL."})
    if len(value) > MAX_URL_LENGTH:
        raise ValidationError({field: f"The URL is longer than {MAX_URL_LENGTH} characters."})
    if not delivery.receiver_url_shape_ok(parts):
        raise ValidationError({field: f"“{value[:200]}” is not an https URL."})
    if parts.username or parts.password:
        raise ValidationError(
            {
                field: "Put no credentials in the URL (a push stream can send an Authorization header)."
            }
        )
    if parts.fragment:
        raise ValidationError({field: "The URL cannot have a #fragment."})
    try:
        outbound.check_destination(
            value, allow_private=settings.SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES
        )
    except outbound.DestinationRefused:
        raise ValidationError(
            {
                field: f"“{parts.hostname[:200]}” is not a public address: events are sent only "
                "to public addresses (SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES allows others, "
                "for development)."
            }
        ) from None
    except outbound.DestinationUnresolved:
        raise ValidationError(
            {field: f"The host “{parts.hostname[:200]}” does not resolve."}
        ) from None
    return value


# --- Credentials ----------------------------------------------------------------------


def _new_poll_token() -> tuple[str, str]:
    """(raw token, its public prefix)."""
    return new_raw_token(POLL_TOKEN_SCHEME)


def webhook_secret(stream: EventStream) -> str:
    """The webhook signing secret in clear, for the sender (never for display)."""
    return crypto.unseal(stream.secret)


def authorization_header(stream: EventStream) -> str:
    """The Authorization header value a push stream sends ("" for none), for the sender."""
    return crypto.unseal(stream.authorization)


def _issue_credential(stream: EventStream) -> str | None:
    """Give ``stream`` a new credential for its method (unsaved); return it in clear."""
    if stream.method == EventStream.Method.WEBHOOK:
        raw = delivery.new_webhook_secret()
        stream.secret = crypto.seal(raw)
        return raw
    if stream.method == EventStream.Method.POLL:
        raw, prefix = _new_poll_token()
        stream.poll_token_hash = token_digest(raw)
        stream.poll_token_prefix = prefix
        return raw
    return None


# --- Audit ----------------------------------------------------------------------------


def _scope(operator: AbstractBaseUser | None, summary: dict):
    """One audited unit of change (joins the caller's, e.g. the console action's)."""
    return change_set_scope(
        operator=operator,
        source=ChangeSet.Source.CONSOLE if operator is not None else ChangeSet.Source.SYSTEM,
        request={"events": summary},
    )


def _record(stream: EventStream, changes: dict[str, list]) -> None:
    """One audit entry (an update of ``stream``) for an action no audited column shows:
    a credential issued, a replay, a redelivery, a test event. Member names must not
    look like secrets (the audit log drops those); values never hold one."""
    from auditlog import get_logentry_model

    entry_model = get_logentry_model()
    entry_model.objects.log_create(
        stream, action=entry_model.Action.UPDATE, changes=changes, force_log=True
    )


# --- Validation -----------------------------------------------------------------------


def _clean_name(name: str, errors: dict, exclude: uuid.UUID | None = None) -> str:
    name = (name or "").strip()
    max_length = EventStream._meta.get_field("name").max_length
    if not name:
        errors["name"] = "An event stream needs a name."
    elif len(name) > max_length:
        errors["name"] = f"The name must be at most {max_length} characters long."
    elif EventStream.objects.filter(name__iexact=name).exclude(pk=exclude).exists():
        errors["name"] = f"An event stream named “{name}” already exists."
    return name


def _clean_choices(
    values: Iterable[str] | None, allowed: list[str], field: str, errors: dict
) -> list[str]:
    cleaned: list[str] = []
    for value in values or []:
        if value not in allowed:
            errors[field] = f"“{str(value)[:50]}” is not one of {', '.join(allowed)}."
            return []
        if value not in cleaned:
            cleaned.append(value)
    # Everything listed is the same as no filter: store the short form.
    return [] if set(cleaned) == set(allowed) else sorted(cleaned, key=allowed.index)


def _clean_authorization(value: str, method: str, errors: dict) -> str:
    value = (value or "").strip()
    if not value:
        return ""
    if method != EventStream.Method.PUSH:
        errors["authorization"] = "Only a SET push stream sends an Authorization header."
    elif len(value) > MAX_AUTHORIZATION_LENGTH:
        errors["authorization"] = (
            f"The header value is longer than {MAX_AUTHORIZATION_LENGTH} characters."
        )
    elif any(ord(c) < 32 or ord(c) == 127 for c in value):
        errors["authorization"] = (
            "The header value cannot contain line breaks or control characters."
        )
    elif not all(c == " " or "!" <= c <= "~" for c in value):
        # RFC 9110 §5.5 (RFC 7230 §3.2): a field value is visible ASCII and spaces.
        errors["authorization"] = (
            "The header value can hold only visible ASCII characters and spaces "
            "(encode others, e.g. in base64)."
        )
    return value


def _clean_pause_after(value: timedelta | int | None, errors: dict) -> int:
    if value is None:
        return EventStream._meta.get_field("pause_after_seconds").default
    seconds = int(value.total_seconds()) if isinstance(value, timedelta) else int(value)
    if not MIN_PAUSE_AFTER.total_seconds() <= seconds <= MAX_PAUSE_AFTER.total_seconds():
        errors["pause_after"] = "Pause a failing stream after between 5 minutes and 30 days."
    return seconds


def _check_filters(
    method: str, endpoint_url: str, kinds: list[str], client: ScimClient | None, errors: dict
) -> str:
    if method == EventStream.Method.POLL:
        if endpoint_url:
            errors["endpoint_url"] = (
                "A poll stream has no endpoint: its receiver fetches the events."
            )
        endpoint_url = ""
    else:
        try:
            endpoint_url = clean_endpoint_url(endpoint_url)
        except ValidationError as error:
            errors.update({k: v[0] for k, v in error.message_dict.items()})
    if kinds == [EventKind.ASYNC_RESPONSE] and client is None:
        errors["event_kinds"] = (
            "Asynchronous completions go only to a stream bound to a SCIM client: choose the client."
        )
    return endpoint_url


# --- Services -------------------------------------------------------------------------


@transaction.atomic
def create_stream(
    *,
    name: str,
    method: str,
    endpoint_url: str = "",
    authorization: str = "",
    resource_types: Iterable[str] | None = None,
    event_kinds: Iterable[str] | None = None,
    payload: str = EventStream.Payload.NOTICE,
    client: ScimClient | None = None,
    pause_after: timedelta | int | None = None,
    audience: str = "",
    operator: AbstractBaseUser | None = None,
) -> tuple[EventStream, str | None]:
    """Register a stream; return it and its credential in clear, shown only this once:
    a webhook stream's signing secret, a poll stream's bearer token, None for SET push.

    Empty filters admit everything. Raises ValidationError keyed by field (``name``,
    ``method``, ``endpoint_url``, ``authorization``, ``resource_types``,
    ``event_kinds``, ``payload``, ``pause_after``, ``audience``); nothing is created then.
    """
    errors: dict[str, str] = {}
    name = _clean_name(name, errors)
    if method not in EventStream.Method.values:
        errors["method"] = f"Choose a delivery method: {', '.join(EventStream.Method.values)}."
        method = EventStream.Method.PUSH
    resource_types = _clean_choices(resource_types, RESOURCE_TYPES, "resource_types", errors)
    event_kinds = _clean_choices(
        event_kinds, [k.value for k in FILTERABLE_KINDS], "event_kinds", errors
    )
    if payload not in EventStream.Payload.values:
        errors["payload"] = "Choose notice or full payloads."
    authorization = _clean_authorization(authorization, method, errors)
    pause_seconds = _clean_pause_after(pause_after, errors)
    audience = (audience or "").strip()
    if len(audience) > MAX_URL_LENGTH:
        errors["audience"] = f"The audience is longer than {MAX_URL_LENGTH} characters."
    endpoint_url = _check_filters(method, endpoint_url, event_kinds, client, errors)
    if errors:
        raise ValidationError(errors)

    stream = EventStream(
        name=name,
        method=method,
        endpoint_url=endpoint_url,
        authorization=crypto.seal(authorization),
        resource_types=resource_types,
        event_kinds=event_kinds,
        payload=payload,
        client=client,
        pause_after_seconds=pause_seconds,
        audience=audience,
        created_by=operator,
    )
    raw = _issue_credential(stream)
    with _scope(operator, {"action": "create stream", "name": name}):
        try:
            # A savepoint: a concurrent create of the same name is a validation error.
            with transaction.atomic():
                stream.save()
        except IntegrityError as exc:
            raise ValidationError(
                {"name": f"An event stream named “{name}” already exists."}
            ) from exc
    return stream, raw


@transaction.atomic
def update_stream(
    *,
    stream: EventStream,
    name: str = _UNSET,
    endpoint_url: str = _UNSET,
    authorization: str | None = _UNSET,
    resource_types: Iterable[str] = _UNSET,
    event_kinds: Iterable[str] = _UNSET,
    payload: str = _UNSET,
    client: ScimClient | None = _UNSET,
    pause_after: timedelta | int = _UNSET,
    audience: str = _UNSET,
    operator: AbstractBaseUser | None = None,
) -> EventStream:
    """Change a stream's settings (arguments not given stay as they are). The method
    cannot change (its credential would not fit): delete the stream and create another.
    ``authorization``: a new header value, or "" to send none. New filters apply to
    events recorded from now on (``replay`` applies them to earlier ones)."""
    locked = EventStream.objects.select_for_update().get(pk=stream.pk)
    errors: dict[str, str] = {}
    if name is not _UNSET:
        locked.name = _clean_name(name, errors, exclude=locked.pk)
    if resource_types is not _UNSET:
        locked.resource_types = _clean_choices(
            resource_types, RESOURCE_TYPES, "resource_types", errors
        )
    if event_kinds is not _UNSET:
        locked.event_kinds = _clean_choices(
            event_kinds, [k.value for k in FILTERABLE_KINDS], "event_kinds", errors
        )
    if payload is not _UNSET:
        if payload not in EventStream.Payload.values:
            errors["payload"] = "Choose notice or full payloads."
        locked.payload = payload
    if client is not _UNSET:
        locked.client = client
    if pause_after is not _UNSET:
        locked.pause_after_seconds = _clean_pause_after(pause_after, errors)
    if audience is not _UNSET:
        locked.audience = (audience or "").strip()
        if len(locked.audience) > MAX_URL_LENGTH:
            errors["audience"] = f"The audience is longer than {MAX_URL_LENGTH} characters."
    header_changed = None
    if authorization is not _UNSET:
        value = _clean_authorization(authorization or "", locked.method, errors)
        had = bool(locked.authorization)
        if value or had:
            header_changed = ["set" if had else "none", "set" if value else "none"]
        locked.authorization = crypto.seal(value)
    locked.endpoint_url = _check_filters(
        locked.method,
        locked.endpoint_url if endpoint_url is _UNSET else endpoint_url,
        locked.event_kinds,
        locked.client,
        errors,
    )
    if errors:
        raise ValidationError(errors)
    with _scope(operator, {"action": "update stream", "stream": str(locked.pk)}):
        try:
            with transaction.atomic():
                locked.save()
        except IntegrityError as exc:
            raise ValidationError(
                {"name": f"An event stream named “{locked.name}” already exists."}
            ) from exc
        if header_changed is not None:
            # The column is excluded from audit entries; record that it changed, not its value.
            _record(locked, {"push_auth_header": header_changed})
    return locked


@transaction.atomic
def rotate_secret(*, stream: EventStream, operator: AbstractBaseUser | None = None) -> str:
    """Replace a webhook stream's signing secret or a poll stream's bearer token; the old
    one stops working at once. Returns the new one in clear (shown only this once).
    A SET push stream has neither (its SETs are signed with the server's keys)."""
    locked = EventStream.objects.select_for_update().get(pk=stream.pk)
    if locked.method == EventStream.Method.PUSH:
        raise ValidationError(
            "A SET push stream has no secret: its events are signed with the server's keys "
            "(published as a JWKS)."
        )
    old_prefix = locked.poll_token_prefix
    raw = _issue_credential(locked)
    with _scope(operator, {"action": "rotate stream credential", "stream": str(locked.pk)}):
        locked.save(update_fields=["secret", "poll_token_hash", "poll_token_prefix", "updated_at"])
        if locked.method == EventStream.Method.POLL:
            _record(locked, {"poll_access_prefix": [old_prefix, locked.poll_token_prefix]})
        else:
            _record(locked, {"webhook_signing": ["replaced", "new signing secret issued"]})
    stream.secret, stream.poll_token_hash = locked.secret, locked.poll_token_hash
    stream.poll_token_prefix = locked.poll_token_prefix
    return raw


@transaction.atomic
def pause_stream(*, stream: EventStream, operator: AbstractBaseUser | None = None) -> EventStream:
    """Stop delivering to ``stream`` (a poll stream answers no events); events keep being
    recorded for it and wait. Pausing a stream paused for failing keeps it paused."""
    locked = EventStream.objects.select_for_update().get(pk=stream.pk)
    if locked.state == EventStream.State.ACTIVE:
        with _scope(operator, {"action": "pause stream", "stream": str(locked.pk)}):
            locked.state = EventStream.State.PAUSED
            locked.save(update_fields=["state", "updated_at"])
    stream.state = locked.state
    return locked


@transaction.atomic
def resume_stream(*, stream: EventStream, operator: AbstractBaseUser | None = None) -> EventStream:
    """Deliver again: clears a failing stream's state and failure clock and asks for a
    delivery run once the transaction commits (waiting deliveries go out in order)."""
    locked = EventStream.objects.select_for_update().get(pk=stream.pk)
    if locked.state != EventStream.State.ACTIVE or locked.failing_since is not None:
        with _scope(operator, {"action": "resume stream", "stream": str(locked.pk)}):
            locked.state = EventStream.State.ACTIVE
            locked.failing_since = None
            locked.save(update_fields=["state", "failing_since", "updated_at"])
    delivery.deliveries_due_now(locked.pk)
    stream.state, stream.failing_since = locked.state, locked.failing_since
    return locked


def _reset(deliveries, now: datetime) -> int:
    return deliveries.update(
        status=Delivery.Status.PENDING,
        next_attempt_at=now,
        attempts=0,
        delivered_at=None,
        last_status_code=None,
        last_error="",
    )


@transaction.atomic
def replay(
    *, stream: EventStream, since: datetime, operator: AbstractBaseUser | None = None
) -> dict[str, int]:
    """Deliver again every event recorded at or after ``since`` that is still retained
    and that ``stream`` hears: its existing deliveries go back to pending, due now, and
    events it has none for (recorded before it existed, or before its filters admitted
    them) get one, in event order. The receiver de-duplicates by ``jti``.

    Returns ``{"reset": n, "created": m}``.
    """
    if timezone.is_naive(since):
        raise ValidationError({"since": "The replay start needs a time zone."})
    now = timezone.now()
    if since > now:
        raise ValidationError({"since": "The replay start is in the future."})
    locked = EventStream.objects.select_for_update().get(pk=stream.pk)
    reset = _reset(Delivery.objects.filter(stream=locked, event__created_at__gte=since), now)
    missing = (
        Event.objects.filter(created_at__gte=since)
        .exclude(deliveries__stream=locked)
        .only("id", "kind", "resource_type", "resource_id", "client_id")
        .order_by("id")
    )
    created = 0
    batch: list[Delivery] = []
    for event in missing.iterator(chunk_size=REPLAY_BATCH):
        if not outbox.stream_matches(locked, event):
            continue
        batch.append(
            Delivery(
                stream=locked,
                event=event,
                resource_id=event.resource_id,
                next_attempt_at=now,
                created_at=now,
            )
        )
        if len(batch) >= REPLAY_BATCH:
            created += len(Delivery.objects.bulk_create(batch, ignore_conflicts=True))
            batch = []
    if batch:
        created += len(Delivery.objects.bulk_create(batch, ignore_conflicts=True))
    with _scope(operator, {"action": "replay stream", "stream": str(locked.pk)}):
        _record(
            locked,
            {
                "replayed_from": [None, since.isoformat()],
                "deliveries_queued": [None, str(reset + created)],
            },
        )
    if reset or created:
        outbox.kick([locked.pk])
    return {"reset": reset, "created": created}


@transaction.atomic
def redeliver(*, delivery: Delivery, operator: AbstractBaseUser | None = None) -> Delivery:
    """Send one delivery again: back to pending, due now (its attempt log stays)."""
    locked = Delivery.objects.select_for_update().select_related("stream").get(pk=delivery.pk)
    _reset(Delivery.objects.filter(pk=locked.pk), timezone.now())
    with _scope(operator, {"action": "redeliver", "delivery": locked.pk}):
        _record(locked.stream, {"redelivered_event": [None, str(locked.event_id)]})
    outbox.kick([locked.stream_id])
    locked.refresh_from_db()
    return locked


@transaction.atomic
def send_test_event(*, stream: EventStream, operator: AbstractBaseUser | None = None) -> Event:
    """Publish a verification event (OpenID Shared Signals Framework 1.0, §8.1.4.1) that
    only ``stream`` receives: ``sub_id`` ``{"format": "opaque", "id": <stream id>}`` and a
    random ``state`` the receiver can echo. It is delivered like any event (a paused
    stream keeps it until resumed), so it tests the whole path: signing, the receiver's
    URL and credentials, its answer."""
    locked = EventStream.objects.get(pk=stream.pk)
    event = Event(
        kind=EventKind.VERIFY,
        txn=uuid.uuid4().hex,
        resource_type="Stream",
        resource_id=locked.pk,
        sub_id={"format": "opaque", "id": str(locked.pk)},
        payload={"state": secrets.token_urlsafe(16)},
    )
    with _scope(operator, {"action": "send test event", "stream": str(locked.pk)}):
        outbox.publish([event], candidates=[locked])
        _record(locked, {"test_event_sent": [None, event.jti.hex]})
    return event


@transaction.atomic
def delete_stream(*, stream: EventStream, operator: AbstractBaseUser | None = None) -> None:
    """Delete ``stream`` with its deliveries and their log (the events stay: other
    streams and replays read them)."""
    locked = EventStream.objects.select_for_update().get(pk=stream.pk)
    with _scope(operator, {"action": "delete stream", "stream": str(locked.pk)}):
        locked.delete()
