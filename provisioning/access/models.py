"""SCIM clients (one per IdP connection), their bearer tokens and their roles, and the
OAuth 2.0 credentials a client may authenticate with at the token endpoint (client
secrets, public keys for ``private_key_jwt``, trusted federated issuers) with the
access tokens issued there."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

RESOURCE_TYPES = ("User", "Group")
OPERATIONS = ("read", "create", "replace", "patch", "delete")
# Every permission a role can hold, as "<resource type>:<operation>".
ALL_PERMISSIONS = tuple(f"{rt}:{op}" for rt in RESOURCE_TYPES for op in OPERATIONS)


class ConfigRevision(models.Model):
    """One row whose token changes with every change to the settings a request or write
    reads: SCIM roles, policy rules (with their clients), circuit breakers, outbound event
    streams, registered extension schemas.

    Every process keeps those settings in memory with the token it read before loading
    them (``access.config_cache``) and reloads only when the token differs. A random
    token, not a counter: a rolled-back change cannot make two different sets of
    settings carry the same revision. The migration creates the row; without it (a test
    database flushed of every table, settings included) the revision is None.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    token = models.UUIDField(default=uuid.uuid4)

    def __str__(self) -> str:
        return str(self.token)

    @classmethod
    def bump(cls) -> None:
        """A new token, in the caller's transaction: other processes see it when the
        change commits, and never if it rolls back."""
        if not cls.objects.filter(pk=1).update(token=uuid.uuid4()):
            cls.objects.update_or_create(pk=1, defaults={"token": uuid.uuid4()})


class RevisedQuerySet(models.QuerySet):
    """The queryset of a model that ``ConfigRevision`` covers: the bulk writes that send no
    signals (``update``, ``bulk_create``, ``bulk_update``) replace the revision too.
    Saves and deletes send signals, which the apps connect to ``ConfigRevision.bump``."""

    def update(self, **kwargs):
        rows = super().update(**kwargs)
        if rows:
            ConfigRevision.bump()
        return rows

    def bulk_create(self, objs, *args, **kwargs):
        created = super().bulk_create(objs, *args, **kwargs)
        if created:
            ConfigRevision.bump()
        return created

    def bulk_update(self, objs, *args, **kwargs):
        rows = super().bulk_update(objs, *args, **kwargs)
        if rows:
            ConfigRevision.bump()
        return rows


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

    objects = RevisedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("name"), name="role_name_ci_unique"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def allows(self, resource_type: str, operation: str) -> bool:
        return f"{resource_type}:{operation}" in self.permissions


class AuthMethod(models.TextChoices):
    """How a SCIM client may authenticate; each client allows a subset (``auth_methods``)."""

    STATIC_TOKEN = "static_token", "Static bearer token"
    CLIENT_SECRET = "client_secret", "OAuth client secret"
    PRIVATE_KEY_JWT = "private_key_jwt", "OAuth private_key_jwt"
    FEDERATION = "federation", "OAuth federated assertion"


def _static_token_only() -> list[str]:
    return [AuthMethod.STATIC_TOKEN.value]


# Access tokens live between one and six hours (Entra's requirement), one hour by default.
ACCESS_TOKEN_LIFETIME_MIN = 3600
ACCESS_TOKEN_LIFETIME_MAX = 6 * 3600
ACCESS_TOKEN_LIFETIME_DEFAULT = 3600


class ScimClient(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    # PROTECT: a role in use cannot be deleted out from under its clients.
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="clients")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Requests refused with 403 (Bulk operations counted one by one).
    denied_requests = models.PositiveBigIntegerField(default=0, editable=False)
    # AuthMethod values this client may use; a credential of another kind is refused.
    auth_methods = models.JSONField(default=_static_token_only, blank=True)
    # Seconds an access token issued to this client stays valid (one to six hours).
    access_token_lifetime = models.PositiveIntegerField(default=ACCESS_TOKEN_LIFETIME_DEFAULT)
    # CIDR strings the token endpoint and this client's access tokens may be used from.
    oauth_allowed_networks = models.JSONField(default=list, blank=True)
    # Failed client authentications at the token endpoint (client health).
    oauth_failures = models.PositiveBigIntegerField(default=0, editable=False)
    oauth_last_failure_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("name"), name="scimclient_name_ci_unique"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    # DRF treats the authenticated principal like a user.
    is_authenticated = True

    def allows_method(self, method: str) -> bool:
        return method in (self.auth_methods or [])


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


class ClientSecret(models.Model):
    """An OAuth client secret (``scgcs_<prefix>_<secret>``): only its SHA-256 digest is
    stored; the prefix identifies it in logs and the console. It always expires."""

    client = models.ForeignKey(ScimClient, on_delete=models.CASCADE, related_name="secrets")
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"secret {self.prefix}… ({self.client_id})"


class ClientKey(models.Model):
    """Public keys a client signs ``private_key_jwt`` assertions with (RFC 7523 §2.2):
    a JWKS document stored here, or the URL of one (fetched, cached)."""

    client = models.ForeignKey(ScimClient, on_delete=models.CASCADE, related_name="keys")
    jwks = models.JSONField(null=True, blank=True)
    jwks_uri = models.URLField(max_length=2048, blank=True, default="")
    # The key ids the document held when registered (for the console; URLs: empty).
    key_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(jwks__isnull=False) & models.Q(jwks_uri=""))
                | (models.Q(jwks__isnull=True) & ~models.Q(jwks_uri="")),
                name="clientkey_document_or_url",
            )
        ]

    def __str__(self) -> str:
        return f"keys {self.pk} ({self.client_id})"


class FederatedIssuer(models.Model):
    """An external issuer (an IdP) whose signed JWTs authenticate this client: the
    assertion's ``iss``, ``sub`` and ``aud`` must be exactly these; its keys come from
    the issuer's OpenID discovery document (``jwks_uri``)."""

    client = models.ForeignKey(ScimClient, on_delete=models.CASCADE, related_name="federations")
    issuer = models.URLField(max_length=2048)
    subject = models.CharField(max_length=512)
    # Empty: the token endpoint's URL.
    audience = models.CharField(max_length=2048, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["issuer", "subject"], name="federation_iss_sub_idx")]

    def __str__(self) -> str:
        return f"{self.issuer} / {self.subject}"


class AccessToken(models.Model):
    """An OAuth access token (``scgat_<prefix>_<secret>``) bound to one client: only its
    SHA-256 digest is stored. It authenticates SCIM requests as a static token does."""

    client = models.ForeignKey(ScimClient, on_delete=models.CASCADE, related_name="access_tokens")
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The client authentication method that obtained it (client_secret_basic, ...), and
    # which credential: "secret:<prefix>", "key:<id>", "federation:<id>".
    auth_method = models.CharField(max_length=32)
    credential = models.CharField(max_length=64, blank=True, default="")
    allowed_networks = models.JSONField(default=list, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["client", "expires_at"], name="accesstoken_client_exp_idx")]

    def __str__(self) -> str:
        return f"access token {self.prefix}… ({self.client_id})"


class OperatorToken(models.Model):
    """A console operator's API token (``scgop_<prefix>_<secret>``) for the management API:
    it acts with its operator's console role. Only its SHA-256 digest is stored; the
    name tells the operator's tokens apart (one per script or machine)."""

    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"API token {self.prefix}… ({self.name})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class AssertionUse(models.Model):
    """A client assertion already used (RFC 7523 §3 ``jti``): a second use is a replay.
    ``key`` is the SHA-256 of issuer and ``jti`` (or of the whole assertion without one);
    rows are kept until the assertion expires."""

    key = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.key


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
