"""SCIM clients (one per IdP connection), their bearer tokens and their roles."""

import uuid

from django.db import models
from django.db.models.functions import Lower

RESOURCE_TYPES = ("User", "Group")
OPERATIONS = ("read", "create", "replace", "patch", "delete")
# Every permission a role can hold, as "<resource type>:<operation>".
ALL_PERMISSIONS = tuple(f"{rt}:{op}" for rt in RESOURCE_TYPES for op in OPERATIONS)


class Role(models.Model):
    """What a SCIM client may do: resource type x operation, optionally narrowed.

    ``permissions`` lists "User:read"-style entries. ``forbidden_attributes`` are
    canonical attribute names (``active``, ``urn:...:User:manager``) that writes
    may not change; ``own_resources_only`` limits the client to resources it
    created; ``protected_group_names`` (names or glob patterns, case-insensitive)
    and, with ``protect_privileged_groups``, ``Group.privileged`` mark groups whose
    membership the role may not change.
    """

    name = models.CharField(max_length=64)
    description = models.TextField(blank=True, default="")
    built_in = models.BooleanField(default=False, editable=False)
    permissions = models.JSONField(default=list, blank=True)
    forbidden_attributes = models.JSONField(default=list, blank=True)
    own_resources_only = models.BooleanField(default=False)
    protected_group_names = models.JSONField(default=list, blank=True)
    # Opt-in: groups marked privileged are then protected for this role too. Off, a
    # privileged group's membership changes go to policy (which may hold them).
    protect_privileged_groups = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("name"), name="role_name_ci_unique"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def allows(self, resource_type: str, operation: str) -> bool:
        return f"{resource_type}:{operation}" in self.permissions


class ScimClient(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    # PROTECT: a role in use cannot be deleted out from under its clients.
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="clients")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Requests refused with 403 (Bulk operations counted one by one).
    denied_requests = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("name"), name="scimclient_name_ci_unique"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    # DRF treats the authenticated principal like a user.
    is_authenticated = True


class ScimToken(models.Model):
    """A bearer token. Only its SHA-256 digest is stored; the prefix identifies it in logs."""

    client = models.ForeignKey(ScimClient, on_delete=models.CASCADE, related_name="tokens")
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # CIDR strings; empty means any address.
    allowed_networks = models.JSONField(default=list, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_address = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.client})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class ConsoleAccess(models.Model):
    """Holder of the console operator permissions; it has no table.

    The operator roles (Django groups viewer, approver, administrator) are
    made of these permissions, so a custom group or a single user can be
    granted exactly one level too.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("console_view", "Can view the console (viewer)"),
            ("console_approve", "Can approve, reject and roll back changes (approver)"),
            ("console_administer", "Can manage clients, tokens, roles, policies, operators"),
        ]

    def __str__(self) -> str:
        return "console access"
