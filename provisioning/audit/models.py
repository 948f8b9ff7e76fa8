"""The audit trail: change sets, the auditlog entries, seals, and the SCIM request log.

- ``ChangeSet``: one per unit of change (SCIM request, Bulk operation, console
  action): who, when, through which client, the (redacted) request.
- ``ChangeRecord``: every directory resource a change set touched, with its
  snapshot before and after and the exact membership delta. A delete's
  ``before`` holds everything needed to restore the resource.
- ``AuditEntry``: django-auditlog's log entry (``AUDITLOG_LOGENTRY_MODEL``)
  with the SCIM client, the change set and a content hash: the audit log of
  everything that is not a directory resource (clients, tokens, roles,
  policies, operators, decisions). A directory change is recorded once, as its
  change record; the audit log shows both kinds (``selectors.audit_log``).
- ``RetiredEntry``: entries that repeated a change record (written before a
  directory change was recorded once), moved out of the log with the exact text
  their hash covers, so the sealed chain of entries still verifies.
- ``AuditSeal``: tamper evidence. Every audit row carries an HMAC of its
  content, computed as it is written (no shared row to wait on); a periodic
  task seals rows in id order into batches chained to the previous batch.
- ``RequestLog``: every request to ``/scim/v2/``, secrets redacted, whatever it carried.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from auditlog.models import AbstractLogEntry
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.crypto import salted_hmac

from provisioning.ids import time_ordered_uuid

# Fields never covered by a row's own hash (the hash itself, the row id: ids
# are covered by the batch seal, which detects rows inserted or removed).
_UNHASHED = frozenset({"id", "content_hash"})


# ``json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"))``
# without building an encoder per call (``encode`` keeps no state between calls).
_CANONICAL = DjangoJSONEncoder(sort_keys=True, separators=(",", ":"))


def canonical_json(value) -> str:
    return _CANONICAL.encode(value)


def normalised_json(value) -> tuple[Any, str]:
    """The value as the JSON column will give it back (so that hashing now and later
    agree) and its canonical text, with one encoding where the value is JSON already (the
    common case: a SCIM document, a snapshot, a redacted request).

    The value read back is compared with the value given: equal, they encode alike, since
    the text was encoded from the one and the other was decoded from that text. Unequal
    (a tuple, a datetime, a UUID, an int key, NaN), the value read back is encoded again.
    """
    text = canonical_json(value)
    normal = json.loads(text)
    if normal != value:
        text = canonical_json(normal)
    return normal, text


def canonical_payload(values: dict[str, Any], texts: dict[str, str] | None = None) -> str:
    """``canonical_json(values)``, taking the canonical text of the values named in
    ``texts`` as given (``normalised_json`` made it) instead of encoding them again."""
    if not texts:
        return canonical_json(values)
    encode = _CANONICAL.encode
    members = (
        f"{encode(key)}:{texts[key] if key in texts else encode(values[key])}"
        for key in sorted(values)
    )
    return "{" + ",".join(members) + "}"


def audit_hmac(payload: str) -> str:
    """HMAC-SHA256 keyed by ``SCIMGATE_AUDIT_KEY``: a row's hash cannot be recomputed without it."""
    return salted_hmac(
        "scimgate.audit", payload, secret=settings.SCIMGATE_AUDIT_KEY, algorithm="sha256"
    ).hexdigest()


class Sealed(models.Model):
    """A row whose content is hashed when written and later sealed into a chained batch."""

    content_hash = models.CharField(max_length=64, editable=False)

    class Meta:
        abstract = True

    def hash_values(self) -> dict[str, Any]:
        """The fields a row's hash covers, by attribute name."""
        return {
            f.attname: getattr(self, f.attname)
            for f in self._meta.concrete_fields
            if f.attname not in _UNHASHED
        }

    def hash_payload(self, texts: dict[str, str] | None = None) -> str:
        """The canonical text the row's hash covers. ``texts``: what ``normalise_for_hash``
        returned, when nothing changed since."""
        return canonical_payload(self.hash_values(), texts)

    def compute_hash(self, texts: dict[str, str] | None = None) -> str:
        return audit_hmac(self.hash_payload(texts))

    def normalise_for_hash(self) -> dict[str, str]:
        """Give every field the value the database will return, and return the canonical
        text of each JSON field (the text its hash covers and its column is written from)."""
        texts = {}
        for f in self._meta.concrete_fields:
            if isinstance(f, models.JSONField):
                value = getattr(self, f.attname)
                if value is None:
                    continue
                value, texts[f.attname] = normalised_json(value)
                setattr(self, f.attname, value)
            elif getattr(self, f.attname) is not None:
                # The value as the database returns it (an int object_pk comes back a string).
                value = f.to_python(getattr(self, f.attname))
                if isinstance(value, datetime):
                    # Stored and hashed at millisecond precision on every database.
                    value = value.replace(microsecond=value.microsecond // 1000 * 1000)
                setattr(self, f.attname, value)
        return texts

    def _save_table(self, *args, **kwargs):
        # Hashed here, after every pre_save receiver (auditlog's context among
        # them) has filled its fields, and just before the INSERT.
        if self._state.adding:
            self.content_hash = self.compute_hash(self.normalise_for_hash())
        return super()._save_table(*args, **kwargs)


def new_nonce() -> str:
    return secrets.token_hex(16)


class ChangeSet(Sealed):
    class Source(models.TextChoices):
        SCIM = "scim", "SCIM request"
        BULK = "bulk", "SCIM Bulk operation"
        CONSOLE = "console", "Console action"
        ADMIN = "admin", "Django admin"
        SYSTEM = "system", "System (command or task)"
        SIGNIN = "signin", "Operator sign-in"
        API = "api", "Management API"

    correlation_id = models.UUIDField(db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=16)
    # No single-column indexes: (operator, created_at) and (scim_client, created_at) serve.
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    scim_client = models.ForeignKey(
        "access.ScimClient",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    # The actor's name when the change was made: kept when the client or operator is deleted.
    actor_repr = models.CharField(max_length=255, blank=True, default="")
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    request = models.JSONField(null=True, blank=True)
    # Random, hashed with the rest: no two change sets have the same content hash (a
    # record's hash covers its change set's), even two of one request written in the
    # same millisecond with the same request. None on change sets written before
    # audit migration 0009, whose hash it is left out of.
    nonce = models.CharField(max_length=32, null=True, default=new_nonce, editable=False)

    class Meta:
        ordering = ["-id"]
        # Each index serves a query the product runs (migration 0007 says which).
        indexes = [
            models.Index(fields=["scim_client", "created_at"], name="changeset_client_idx"),
            # Console changes only: a SCIM client's change (nearly every one) has no
            # operator and no query asks for the changes without one.
            models.Index(
                fields=["operator", "created_at"],
                name="changeset_operator_idx",
                condition=models.Q(operator__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"Change set {self.pk} by {self.actor_repr or 'system'} ({self.source})"

    def hash_values(self) -> dict[str, Any]:
        values = super().hash_values()
        if self.nonce is None:
            del values["nonce"]
        return values


# The annotation under which a verification reads each record's change-set hash.
CHANGE_SET_HASH = "change_set_content_hash"


class ChangeRecord(Sealed):
    """One directory resource as a change set found and left it."""

    change_set = models.ForeignKey(ChangeSet, on_delete=models.PROTECT, related_name="records")
    created_at = models.DateTimeField(default=timezone.now)
    action = models.CharField(max_length=16)  # create, replace, patch, delete
    resource_type = models.CharField(max_length=16)  # User, Group
    resource_id = models.UUIDField()
    # userName / displayName after the change (before, for a delete): searchable by name.
    resource_name = models.CharField(max_length=255, blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    changed_attributes = models.JSONField(default=list, blank=True)
    # [{"value": id, "type": "User"|"Group", "display": ...}]: set-based membership
    # writes bypass model signals, so these lists are the record of them.
    members_added = models.JSONField(default=list, blank=True)
    members_removed = models.JSONField(default=list, blank=True)
    search_text = models.TextField(blank=True, default="")
    # How ``content_hash`` binds the record to its change set: 1 (records written before
    # audit migration 0008) hashes the change set's id; 2 hashes the change set's own
    # content hash, which is known before the database assigns the id, so a change set
    # and its first record are written in one statement. Either way a record moved to
    # another change set, or whose version is changed, no longer matches its hash.
    hash_version = models.PositiveSmallIntegerField(default=2, editable=False)

    class Meta:
        ordering = ["id"]
        indexes = [
            # History of one resource by id (with or without its type: ids are unique).
            models.Index(fields=["resource_id", "id"], name="changerecord_resource_id_idx"),
            models.Index(Lower("resource_name"), name="changerecord_name_ci_idx"),
            models.Index(fields=["action", "created_at"], name="changerecord_action_idx"),
            models.Index(fields=["created_at"], name="changerecord_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.resource_type} {self.resource_name or self.resource_id}"

    def hash_values(self) -> dict[str, Any]:
        values = super().hash_values()
        del values["hash_version"]
        if self.hash_version != 1:
            values["change_set_id"] = self.change_set_hash()
            values["hash_version"] = self.hash_version
        return values

    def change_set_hash(self) -> str:
        """The content hash of the record's change set: the instance it was built with, the
        value a verification read with it (``CHANGE_SET_HASH``), else one read."""
        cached = self._state.fields_cache.get("change_set")
        if cached is not None:
            return cached.content_hash
        if CHANGE_SET_HASH in self.__dict__:
            return self.__dict__[CHANGE_SET_HASH]
        return ChangeSet.objects.filter(pk=self.change_set_id).values_list("content_hash", flat=True).first()


class AuditEntry(Sealed, AbstractLogEntry):
    """django-auditlog's entry plus the SCIM client, the change set and a content hash.

    Every insert maintains every index, so auditlog's single-column indexes that the
    composite ones below already serve are left out (its fields are redeclared here
    without ``db_index``; ``object_pk`` and ``cid`` keep a plain index, without the
    pattern-matching twin PostgreSQL would add).
    """

    content_type = models.ForeignKey(
        to="contenttypes.ContentType",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name="content type",
        db_index=False,
    )
    object_pk = models.CharField(max_length=255, verbose_name="object pk")
    object_id = models.BigIntegerField(blank=True, null=True, verbose_name="object id")
    action = models.PositiveSmallIntegerField(
        choices=AbstractLogEntry.Action.choices, verbose_name="action"
    )
    actor = models.ForeignKey(
        to=settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        blank=True,
        null=True,
        related_name="+",
        verbose_name="actor",
        db_index=False,
    )
    cid = models.CharField(max_length=255, blank=True, null=True, verbose_name="Correlation ID")
    scim_client = models.ForeignKey(
        "access.ScimClient",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    change_set = models.ForeignKey(
        ChangeSet, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    # The changed values and the object's name as text, for free-text search
    # (trigram-indexed on PostgreSQL; see the migration).
    search_text = models.TextField(blank=True, default="")

    class Meta(AbstractLogEntry.Meta):
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["content_type", "object_pk", "timestamp"], name="auditentry_object_idx"),
            models.Index(fields=["scim_client", "timestamp"], name="auditentry_client_idx"),
            models.Index(fields=["actor", "timestamp"], name="auditentry_actor_idx"),
            models.Index(fields=["action", "timestamp"], name="auditentry_action_idx"),
            models.Index(Lower("object_repr"), name="auditentry_repr_ci_idx"),
            models.Index(fields=["object_pk"], name="auditentry_object_pk_idx"),
        ]

    def __str__(self) -> str:
        return f"{super().__str__()} ({self.timestamp:%Y-%m-%d %H:%M:%S})"


class RetiredEntry(models.Model):
    """An audit entry of a directory change that its change record already held.

    Kept only for tamper evidence: ``id`` is the entry's id in the sealed stream of
    entries, ``payload`` the canonical text its ``content_hash`` was computed over.
    The audit log, search and export show the change record instead.
    """

    id = models.BigIntegerField(primary_key=True)
    timestamp = models.DateTimeField()
    payload = models.TextField()
    content_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Retired audit entry {self.pk}"

    def compute_hash(self) -> str:
        return audit_hmac(self.payload)


class AuditSeal(models.Model):
    """A sealed batch of one stream: H(previous seal + ids range + count + ordered row hashes)."""

    class Stream(models.TextChoices):
        ENTRIES = "entries", "Audit entries"
        CHANGE_SETS = "change_sets", "Change sets"
        RECORDS = "records", "Change records"

    stream = models.CharField(max_length=16, choices=Stream.choices)
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    row_count = models.PositiveIntegerField()
    previous_hash = models.CharField(max_length=64)
    batch_hash = models.CharField(max_length=64)
    sealed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["stream", "last_id"]
        constraints = [
            models.UniqueConstraint(fields=["stream", "last_id"], name="auditseal_stream_last_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.stream} {self.first_id}..{self.last_id} ({self.row_count})"


class RequestLog(models.Model):
    """One request to ``/scim/v2/``. Bodies are redacted; ``*_size`` is the size before truncation."""

    timestamp = models.DateTimeField(default=timezone.now)
    correlation_id = models.UUIDField(default=time_ordered_uuid)
    scim_client = models.ForeignKey(
        "access.ScimClient",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        # Logging must not depend on the client row: no constraint, the id is kept.
        db_constraint=False,
        db_index=False,  # (scim_client, timestamp) serves
    )
    # The public prefix of a bearer token that failed authentication (never the token).
    token_prefix = models.CharField(max_length=16, blank=True, default="")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2048)
    query = models.TextField(blank=True, default="")
    status = models.PositiveSmallIntegerField()
    latency_ms = models.FloatField()
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    request_body = models.TextField(blank=True, default="")
    request_size = models.PositiveIntegerField(default=0)
    request_truncated = models.BooleanField(default=False)
    response_body = models.TextField(blank=True, default="")
    response_size = models.PositiveIntegerField(default=0)
    response_truncated = models.BooleanField(default=False)
    # Some of the request could not be stored as sent (NUL, lone surrogates, bytes that are
    # not UTF-8): such characters are written as backslash escapes (\x00, \ud800), a body
    # that is not UTF-8 is kept masked (redaction.unparsed_summary).
    escaped = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["timestamp"], name="requestlog_timestamp_idx"),
            models.Index(fields=["scim_client", "timestamp"], name="requestlog_client_idx"),
            models.Index(fields=["status", "timestamp"], name="requestlog_status_idx"),
            models.Index(fields=["method", "timestamp"], name="requestlog_method_idx"),
            models.Index(fields=["correlation_id"], name="requestlog_cid_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status}"

