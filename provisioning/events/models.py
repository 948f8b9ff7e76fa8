"""Outbound events: the outbox, the streams that receive it, and the keys that sign it.

- ``Event`` is the outbox: one row per event, written by the events recorder in the
  transaction of the directory change (or of a held write's outcome) it describes. It holds
  the SET's claims except the per-stream ones (``aud``, ``jti`` of the delivery is the
  event's ``jti``), so one change costs one row however many streams hear it.
- ``Delivery`` is one event owed to one stream, created in the same transaction for every
  stream whose filters match: at-least-once delivery is "every delivery row ends
  delivered (or failed with the receiver's answer)". Per-resource order is kept per stream
  by never sending a delivery while an earlier one for the same resource is unfinished.
- ``DeliveryAttempt`` is the delivery log: each try, its status, latency and answer.
- ``SigningKey`` signs SETs (JWS); public halves are published at
  ``/.well-known/jwks.json`` while active or retiring.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from provisioning.access.models import ScimClient
from provisioning.ids import time_ordered_uuid


class EventKind(models.TextChoices):
    """The RFC 9967 event a row carries (the URI without ``:notice``/``:full``)."""

    CREATE = "create", "prov:create"
    PUT = "put", "prov:put"
    PATCH = "patch", "prov:patch"
    DELETE = "delete", "prov:delete"
    ACTIVATE = "activate", "prov:activate"
    DEACTIVATE = "deactivate", "prov:deactivate"
    ASYNC_RESPONSE = "asyncresp", "misc:asyncresp"
    # A stream's test event: the OpenID Shared Signals Framework 1.0 verification event
    # (RFC 9967 defines none), sent only to the stream it verifies (``streams.send_test_event``).
    VERIFY = "verify", "ssf:verification"


EVENT_URI_PREFIX = "urn:ietf:params:scim:event:"


class EventStream(models.Model):
    """A receiver registered by an administrator, with its delivery method and filters."""

    class Method(models.TextChoices):
        PUSH = "push", "SET push (RFC 8935)"
        POLL = "poll", "SET poll (RFC 8936)"
        WEBHOOK = "webhook", "Webhook (Standard Webhooks)"

    class Payload(models.TextChoices):
        NOTICE = "notice", "Notice (changed attribute names)"
        FULL = "full", "Full (resource data)"

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused by an operator"
        FAILING = "failing", "Paused: receiver failing"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    method = models.CharField(max_length=8, choices=Method.choices)
    # Push and webhook: where events are POSTed (https in production; SSRF-guarded).
    endpoint_url = models.URLField(max_length=2000, blank=True, default="")
    # Push: the Authorization header value sent with each POST (encrypted, crypto.seal).
    authorization = models.TextField(blank=True, default="")
    # Webhook: the Standard Webhooks signing secret ("whsec_..."), encrypted (crypto.seal).
    secret = models.TextField(blank=True, default="")
    # Poll: the receiver's bearer token, hashed like SCIM tokens; prefix for display.
    poll_token_hash = models.CharField(max_length=128, blank=True, default="", db_index=True)
    poll_token_prefix = models.CharField(max_length=16, blank=True, default="")
    # The SET "aud" claim; empty: the endpoint URL (push) or the stream's poll URL.
    audience = models.CharField(max_length=2000, blank=True, default="")
    # Filters. Empty lists mean "all".
    resource_types = models.JSONField(default=list, blank=True)  # ["User", "Group"]
    event_kinds = models.JSONField(default=list, blank=True)  # EventKind values
    payload = models.CharField(max_length=6, choices=Payload.choices, default=Payload.NOTICE)
    # Asynchronous completions (misc:asyncresp) of this SCIM client's held writes go here.
    client = models.ForeignKey(
        ScimClient, null=True, blank=True, on_delete=models.SET_NULL, related_name="event_streams"
    )
    state = models.CharField(max_length=8, choices=State.choices, default=State.ACTIVE)
    # A push/webhook stream failing for this long is set to FAILING (paused).
    pause_after_seconds = models.PositiveIntegerField(default=24 * 3600)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Event(models.Model):
    """One outbound event (the outbox row), written in its change's transaction."""

    id = models.BigAutoField(primary_key=True)
    # Time-ordered (``provisioning.ids``): each new event goes to its unique index's last leaf.
    jti = models.UUIDField(default=time_ordered_uuid, unique=True, editable=False)
    # RFC 9967 txn: the same for every event of one transaction (a request's change set,
    # an approval's application) and, for misc:asyncresp, the Set-Txn the client was given.
    # Not indexed: no query looks an event up by its txn (readers go by id, stream or
    # time), and each index is one more write per event.
    txn = models.CharField(max_length=100)
    created_at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=10, choices=EventKind.choices)
    resource_type = models.CharField(max_length=8)  # "User" | "Group"
    resource_id = models.UUIDField()
    # RFC 9967 §2.1 sub_id (format "scim", uri relative to the SCIM base, id, externalId).
    sub_id = models.JSONField()
    # The event payload without the mode-specific member: "version", and per event:
    # notice "attributes", full "data" (present only when a full-mode stream wanted it),
    # asyncresp "method", "status", "response", "bulkId".
    payload = models.JSONField(default=dict)
    # The SCIM client whose write caused it (None: console, rollback, system).
    client = models.ForeignKey(
        ScimClient, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["id"]
        # No index by resource: a delivery carries its event's resource (``Delivery``'s
        # (stream, resource, event) index orders a resource's events), and each index
        # here is one more write per event, on a random leaf for a resource's id.

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.resource_type}/{self.resource_id}"


class Delivery(models.Model):
    """One event owed to one stream."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # to send (push/webhook) or to hand out (poll)
        SENT = "sent", "Sent, awaiting acknowledgement"  # poll: handed out, not yet acked
        DELIVERED = "delivered", "Delivered"  # 2xx / acknowledged
        FAILED = "failed", "Refused by the receiver"  # 400 / setErrs: not retried

    # Unfinished: still to send, or sent and not yet finished (a lease, or awaiting an ack).
    OPEN = (Status.PENDING, Status.SENT)

    id = models.BigAutoField(primary_key=True)
    stream = models.ForeignKey(EventStream, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    # Copied from the event: per-resource ordering is checked within one stream.
    resource_id = models.UUIDField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["stream", "event"], name="one_delivery_per_stream_event"
            )
        ]
        indexes = [
            # The sender's queue: due, unfinished deliveries of a stream in event order.
            models.Index(
                fields=["stream", "next_attempt_at", "event"],
                condition=Q(status__in=["pending", "sent"]),
                name="delivery_due_idx",
            ),
            # Per-resource order: is an earlier delivery of this resource unfinished?
            models.Index(
                fields=["stream", "resource_id", "event"],
                condition=Q(status__in=["pending", "sent"]),
                name="delivery_resource_open_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.stream_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One try of a delivery: the delivery log."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="log")
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # The receiver's answer (truncated; RFC 8935 {"err", "description"} on 400) or the
    # transport error. Never the request's credentials.
    response = models.TextField(blank=True, default="")
    ok = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"attempt {self.pk} of {self.delivery_id}"


class SigningKey(models.Model):
    """A key that signs SETs. Rotation: a new key becomes active, the previous one stays
    published (retiring) until receivers have fetched the new JWKS, then is retired."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active (signs)"
        RETIRING = "retiring", "Retiring (published, no longer signs)"
        RETIRED = "retired", "Retired (not published)"

    class Algorithm(models.TextChoices):
        RS256 = "RS256", "RS256"
        ES256 = "ES256", "ES256"

    kid = models.CharField(max_length=64, unique=True)
    algorithm = models.CharField(max_length=5, choices=Algorithm.choices)
    private_key = models.TextField()  # PEM, encrypted (crypto.seal)
    public_jwk = models.JSONField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    retiring_since = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="one_active_signing_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.algorithm}, {self.status})"


class AsyncRequest(models.Model):
    """A write sent with ``Prefer: respond-async`` that policy held (RFC 9967 §2.5.1):
    the client was answered 202 with ``Set-Txn``; when the held operation ends (applied,
    rejected, conflict, expired, ...) a ``misc:asyncresp`` event with this ``txn`` goes to
    the streams bound to the client. Keyed by the pending operation's id (oversight sits
    above this package, so no foreign key).

    One pending operation may carry several: a single write and its retries share one
    (the retry is told the same ``Set-Txn``), but each Bulk request that asked for it
    holds its own, ``<Set-Txn>:<index>`` (RFC 9967 §2.5.1.2)."""

    txn = models.CharField(max_length=100, primary_key=True)
    pending_id = models.UUIDField(db_index=True)
    client = models.ForeignKey(ScimClient, null=True, on_delete=models.SET_NULL, related_name="+")
    method = models.CharField(max_length=6)  # POST | PUT | PATCH | DELETE
    resource_type = models.CharField(max_length=8)
    resource_id = models.UUIDField()
    bulk_id = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    # The outcome sent (HTTP status of the write had it run then, and the SCIM error).
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    # The misc:asyncresp payload sent (method, status, version, response, bulkId): what
    # the pending operation's status resource shows, even after the event is purged.
    payload = models.JSONField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.method} {self.resource_type}/{self.resource_id} txn {self.txn}"
