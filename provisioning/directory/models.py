"""The directory: users, groups and memberships as SCIM resources.

Attributes that are filtered, sorted, indexed or enforced live in columns;
everything else the IdP sent (multi-valued attributes, name parts, extension
attributes) lives in ``attributes`` exactly as sent. ``provisioning.scim.
resources`` assembles the SCIM document from both.
"""

import uuid

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from provisioning.access.models import ScimClient


class Resource(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    external_id = models.CharField(max_length=255, null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField()
    last_modified = models.DateTimeField()
    version = models.PositiveIntegerField(default=1)
    source = models.ForeignKey(
        ScimClient, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        abstract = True

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


class InDirectoryManager(models.Manager):
    """Users in the directory: not those awaiting a scheduled deletion.

    A user whose SCIM DELETE became a deactivation (deactivate before delete) is gone
    for SCIM (RFC 7644 §3.6: 404, omitted from queries, its userName free again) until
    it is deleted for good or an operator restores it; ``User.with_retired`` sees it.
    """

    def get_queryset(self):
        return super().get_queryset().filter(deletion_due__isnull=True)


class User(Resource):
    user_name = models.CharField(max_length=255)
    # None: the IdP never sent ``active``. Only False deactivates.
    active = models.BooleanField(null=True, blank=True, default=None)
    display_name = models.CharField(max_length=255, blank=True, default="")
    given_name = models.CharField(max_length=255, blank=True, default="")
    family_name = models.CharField(max_length=255, blank=True, default="")
    primary_email = models.CharField(max_length=320, blank=True, default="")
    employee_number = models.CharField(max_length=255, blank=True, default="")
    manager_id = models.CharField(max_length=255, blank=True, default="")
    # Set when a SCIM DELETE was turned into a deactivation: the user is deleted for good
    # at this time unless an operator restores it (``directory.services.user_restore``).
    deletion_due = models.DateTimeField(null=True, blank=True)

    # Every user, retired ones too (the base manager: related-object access uses it).
    with_retired = models.Manager()
    # The default manager: every read and write of the directory sees only users in it.
    objects = InDirectoryManager()

    class Meta:
        base_manager_name = "with_retired"
        default_manager_name = "objects"
        constraints = [
            # A retired user's userName is free for a new user (the IdP deleted it).
            models.UniqueConstraint(
                Lower("user_name"),
                condition=Q(deletion_due__isnull=True),
                name="user_username_ci_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["external_id"], name="user_external_id_idx"),
            models.Index(Lower("primary_email"), name="user_primary_email_ci_idx"),
            models.Index(Lower("display_name"), name="user_display_name_ci_idx"),
            models.Index(Lower("family_name"), name="user_family_name_ci_idx"),
            models.Index(fields=["employee_number"], name="user_employee_number_idx"),
            models.Index(fields=["last_modified"], name="user_last_modified_idx"),
            # The default list order (created, id) of the users in the directory: every
            # list reads them alone (deletion_due IS NULL), so a deep page's keys come
            # from this index only (an index-only scan, no visit to each row it steps
            # over), and cursor pages seek in it.
            models.Index(
                fields=["created", "id"],
                condition=Q(deletion_due__isnull=True),
                name="user_created_id_live_idx",
            ),
            # The sweep's queue of scheduled deletions (few rows, most users have none).
            models.Index(
                fields=["deletion_due"],
                condition=Q(deletion_due__isnull=False),
                name="user_deletion_due_idx",
            ),
        ]
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return self.user_name

    @property
    def retired(self) -> bool:
        """Deleted for SCIM, awaiting its scheduled hard delete."""
        return self.deletion_due is not None


class UserEmail(models.Model):
    """Index rows over ``User.attributes['emails']`` so email filters use SQL, not JSON scans."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="email_rows")
    value = models.CharField(max_length=320)
    type = models.CharField(max_length=64, blank=True, default="")
    primary = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(Lower("value"), name="useremail_value_ci_idx")]

    def __str__(self) -> str:
        return self.value


class Group(Resource):
    display_name = models.CharField(max_length=255)
    # Privileged groups (admins, finance, ...): SCIM roles may be barred from
    # changing their membership; not a SCIM attribute, set by operators only.
    privileged = models.BooleanField(default=False, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("display_name"), name="group_display_name_ci_unique"),
        ]
        indexes = [
            models.Index(fields=["external_id"], name="group_external_id_idx"),
            models.Index(fields=["last_modified"], name="group_last_modified_idx"),
            models.Index(fields=["created", "id"], name="group_created_id_idx"),
        ]
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return self.display_name


class Membership(models.Model):
    """One row per (group, member); the member is a user or a nested group."""

    # The memberships that exist for SCIM: a user awaiting its scheduled deletion is
    # deleted for SCIM, so its rows are not members (read, filtered, counted, replaced or
    # removed); they stay stored, so a restore brings its groups back.
    LIVE = Q(user__isnull=True) | Q(user__deletion_due__isnull=True)

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="memberships"
    )
    member_group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="parent_memberships"
    )
    display = models.CharField(max_length=255, null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    # The SCIM client whose write added it (None: an operator, a restore): removing a
    # membership the same client added moments ago is churn, not mass change.
    added_by = models.ForeignKey(
        ScimClient, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(member_group__isnull=True))
                | (Q(user__isnull=True) & Q(member_group__isnull=False)),
                name="membership_exactly_one_member",
            ),
            models.UniqueConstraint(
                fields=["group", "user"],
                condition=Q(user__isnull=False),
                name="membership_user_unique",
            ),
            models.UniqueConstraint(
                fields=["group", "member_group"],
                condition=Q(member_group__isnull=False),
                name="membership_group_unique",
            ),
        ]
        indexes = [models.Index(fields=["group", "id"], name="membership_group_page_idx")]

    def __str__(self) -> str:
        return f"{self.member_id} in {self.group_id}"

    @property
    def member_id(self) -> uuid.UUID:
        return self.user_id or self.member_group_id


class ResourceCount(models.Model):
    """The number of users and of groups, kept exact by database triggers on every INSERT,
    DELETE and TRUNCATE of their tables (migration 0005), in the writing transaction.

    An unfiltered SCIM list reads its ``totalResults`` here instead of counting 100,000
    rows. A missing row means "unknown" (e.g. after a test flush truncated this table):
    readers then count.
    """

    resource_type = models.CharField(max_length=16, primary_key=True)
    total = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.resource_type}: {self.total}"


class ExtensionSchema(models.Model):
    """An extension schema (RFC 7643 §3.3) an administrator registered for Users or Groups.

    Its attributes are an RFC 7643 §7 attribute list, validated and normalised by
    ``provisioning.scim.schema.parse_extension_document``; values live in each
    resource's ``attributes`` under the URN, like the enterprise extension's.
    """

    class ResourceType(models.TextChoices):
        USER = "User", "User"
        GROUP = "Group", "Group"

    urn = models.CharField(max_length=255)
    resource_type = models.CharField(max_length=16, choices=ResourceType.choices)
    name = models.CharField(max_length=128, blank=True, default="")
    description = models.TextField(blank=True, default="")
    attributes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("urn"), name="extensionschema_urn_ci_unique"),
        ]
        ordering = ["resource_type", "urn"]

    def __str__(self) -> str:
        return self.urn

    @property
    def document(self) -> dict:
        """The schema as RFC 7643 §7 describes it (without ``schemas`` and ``meta``)."""
        return {
            "id": self.urn,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes,
        }
