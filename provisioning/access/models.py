"""SCIM clients (one per IdP connection) and their bearer tokens."""

import uuid

from django.db import models
from django.db.models.functions import Lower


class ScimClient(models.Model):
    class Role(models.TextChoices):
        PROVISIONER = "provisioner", "Provisioner (every operation)"
        READ_ONLY = "read-only", "Read-only"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=32, choices=Role.choices, default=Role.PROVISIONER)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("name"), name="scimclient_name_ci_unique"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    # DRF treats the authenticated principal like a user.
    is_authenticated = True

    @property
    def can_write(self) -> bool:
        return self.role == self.Role.PROVISIONER


class ScimToken(models.Model):
    """A bearer token. Only its SHA-256 digest is stored; the prefix identifies it in logs."""

    client = models.ForeignKey(ScimClient, on_delete=models.CASCADE, related_name="tokens")
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.client})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
