"""Oversight: policy rules, held (pending) operations, reviews of flagged change
sets, and the mass-change circuit breaker's quarantines."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from provisioning.access.models import RevisedQuerySet, ScimClient


class RuleAction(models.TextChoices):
    """What a policy rule does with a write it matches."""

    ALLOW = "allow", "Allow"
    FLAG = "flag", "Apply and flag for review"
    HOLD = "hold", "Hold for approval"


class PolicyRule(models.Model):
    """A rule evaluated for every write after RBAC and before anything is applied."""

    class Kind(models.TextChoices):
        DELETE_USER = "delete_user", "Delete a user"
        DELETE_GROUP = "delete_group", "Delete a group"
        DEACTIVATE_USER = "deactivate_user", "Deactivate a user"
        PRIVILEGED_MEMBERSHIP = "privileged_membership", "Add members to a privileged group"
        IDENTITY_CHANGE = "identity_change", "Change userName or primary email"
        ATTRIBUTE_CHANGE = "attribute_change", "Change chosen attributes"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    action = models.CharField(max_length=8, choices=RuleAction.choices, default=RuleAction.FLAG)
    enabled = models.BooleanField(default=True)
    # Empty: every client. Otherwise only writes by these clients.
    clients = models.ManyToManyField(ScimClient, blank=True, related_name="policy_rules")
    # For ATTRIBUTE_CHANGE: canonical attribute names (``active``, ``urn:...:manager``).
    attributes = models.JSONField(default=list, blank=True)
    # Applies to console actions too (an operator's own changes).
    applies_to_console = models.BooleanField(default=False)
    two_approvers = models.BooleanField(
        default=False, help_text="Require two different approvers for operations this rule holds."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RevisedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CircuitBreaker(models.Model):
    """Deletion safety: the mass-change circuit breaker's thresholds and deactivate
    before delete. One row without a client holds the defaults; a row for a client
    replaces them, whole, for that client. Edited by administrators."""

    class Base(models.TextChoices):
        DIRECTORY = "directory", "users in the directory"
        CLIENT = "client", "users the client created"

    client = models.OneToOneField(
        ScimClient, null=True, blank=True, on_delete=models.CASCADE, related_name="breaker"
    )
    enabled = models.BooleanField(default=True)
    max_operations = models.PositiveIntegerField(
        default=50, help_text="Destructive operations per client within the window."
    )
    window_minutes = models.PositiveIntegerField(default=10)
    max_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=20,
        help_text="Destructive operations as a percentage of the base, within its window.",
    )
    percent_window_minutes = models.PositiveIntegerField(default=60)
    percent_of = models.CharField(max_length=10, choices=Base.choices, default=Base.DIRECTORY)
    min_directory_size = models.PositiveIntegerField(
        default=100, help_text="The percentage applies only once the base has this many users."
    )
    # Destroying what the same client created (or a membership it added) this recently
    # is churn and is not counted; None: the breaker's window.
    churn_window_minutes = models.PositiveIntegerField(null=True, blank=True)
    # Deactivate before delete: a SCIM DELETE of a user deactivates it and the hard delete
    # follows after this many days unless an operator restores it; 0: delete at once.
    deletion_delay_days = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RevisedQuerySet.as_manager()

    def __str__(self) -> str:
        return (
            f"{self.max_operations} in {self.window_minutes} min or {self.max_percent}% "
            f"in {self.percent_window_minutes} min"
        )

    @property
    def churn_minutes(self) -> int:
        """None: the breaker's window; 0: churn off (every destructive effect counts)."""
        if self.churn_window_minutes is None:
            return self.window_minutes
        return self.churn_window_minutes


class DestructiveEvent(models.Model):
    """One destructive effect (deactivate, delete, membership removals) by a client, for the breaker."""

    client = models.ForeignKey(ScimClient, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField(db_index=True)
    weight = models.PositiveIntegerField(default=1)

    class Meta:
        indexes = [models.Index(fields=["client", "at"], name="destructive_client_at_idx")]

    def __str__(self) -> str:
        return f"{self.client_id} x{self.weight} at {self.at:%Y-%m-%d %H:%M:%S}"


class Quarantine(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RELEASED = "released", "Released"
        DISCARDED = "discarded", "Discarded"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(ScimClient, on_delete=models.CASCADE, related_name="quarantines")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    started_at = models.DateTimeField()
    reason = models.TextField()
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["client"], condition=Q(status="active"), name="one_active_quarantine"
            )
        ]

    def __str__(self) -> str:
        return f"{self.client} ({self.status})"


class HeldKind(models.TextChoices):
    """What a destructive operation held by the circuit breaker destroys."""

    DELETION = "deletion", "Deletions"
    DEACTIVATION = "deactivation", "Deactivations"
    MEMBER_REMOVAL = "member_removal", "Member removals"


def held_kind_q(kind: str) -> Q:
    """The held operations of one kind, as a ``Q`` over ``PendingOperation``: a delete
    (deactivate before delete included) is a deletion; any other destructive user write
    a deactivation; any other destructive group write removes members."""
    if kind == HeldKind.DELETION:
        return Q(action="delete")
    if kind == HeldKind.DEACTIVATION:
        return Q(resource_type="User") & ~Q(action="delete")
    if kind == HeldKind.MEMBER_REMOVAL:
        return Q(resource_type="Group") & ~Q(action="delete")
    raise ValueError(f"Unknown kind of held operation {kind!r}")


class PendingOperation(models.Model):
    """A write held by policy: nothing was applied; an approver decides."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved, being applied"
        APPLIED = "applied", "Applied"
        CONFLICT = "conflict", "Conflict: target changed"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        DISCARDED = "discarded", "Discarded with quarantine"
        REHELD = "reheld", "Held again for another reason"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    client = models.ForeignKey(
        ScimClient, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resource_type = models.CharField(max_length=8)
    resource_id = models.UUIDField()
    resource_label = models.CharField(max_length=255, blank=True, default="")
    action = models.CharField(max_length=8)  # replace | patch | delete
    request = models.JSONField(default=dict, blank=True)
    before = models.JSONField(null=True, blank=True)
    proposed = models.JSONField(null=True, blank=True)
    members_added = models.JSONField(default=list, blank=True)
    members_removed = models.JSONField(default=list, blank=True)
    base_version = models.PositiveIntegerField()
    reasons = models.JSONField(default=list, blank=True)
    # The keys of the holds that stopped it ("rule:<id>", "circuit-breaker"): approving
    # it lets exactly these pass when it is applied.
    hold_keys = models.JSONField(default=list, blank=True)
    # Who asked, what, on which resource and version, with which effect: a repeat of a
    # held write (an IdP retrying) finds the pending operation it already has.
    fingerprint = models.CharField(max_length=64, blank=True, default="")
    two_approvers = models.BooleanField(default=False)
    quarantine = models.ForeignKey(
        Quarantine, null=True, blank=True, on_delete=models.SET_NULL, related_name="operations"
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_reason = models.TextField(blank=True, default="")
    force = models.BooleanField(default=False)
    # The door the decision came by ("console", "api"): the change set that applies the
    # operation, later and often in a worker, is attributed to it.
    decided_via = models.CharField(max_length=16, blank=True, default="")
    applied_at = models.DateTimeField(null=True, blank=True)
    result_detail = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(status="pending"), name="pending_queue_idx"
            ),
            models.Index(
                fields=["decided_at"], condition=Q(status="approved"), name="approved_unapplied_idx"
            ),
            models.Index(fields=["resource_type", "resource_id"], name="pending_target_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=Q(status="pending") & ~Q(fingerprint=""),
                name="one_pending_per_fingerprint",
            )
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.resource_type} {self.resource_label or self.resource_id}"


class Approval(models.Model):
    """One approver's approval; operations needing two approvers collect two."""

    operation = models.ForeignKey(
        PendingOperation, on_delete=models.CASCADE, related_name="approvals"
    )
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["operation", "operator"], name="one_approval_each")
        ]

    def __str__(self) -> str:
        return f"{self.operator} approved {self.operation_id}"


class Review(models.Model):
    """A flagged change set in the review queue: accepted, or rolled back."""

    class Status(models.TextChoices):
        OPEN = "open", "Awaiting review"
        ACCEPTED = "accepted", "Accepted"
        ROLLED_BACK = "rolled_back", "Rolled back"

    change_set = models.OneToOneField(
        "audit.ChangeSet", on_delete=models.PROTECT, related_name="review"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    reasons = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["created_at"], condition=Q(status="open"), name="review_queue_idx")
        ]

    def __str__(self) -> str:
        return f"review of change set {self.change_set_id} ({self.status})"


class Rollback(models.Model):
    """A change set that undid another one."""

    original = models.ForeignKey(
        "audit.ChangeSet", on_delete=models.PROTECT, related_name="rollbacks"
    )
    rollback = models.OneToOneField(
        "audit.ChangeSet", on_delete=models.PROTECT, related_name="rolls_back"
    )
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    forced = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            # A change set is undone at most once, even by two rollbacks racing each other.
            models.UniqueConstraint(fields=["original"], name="one_rollback_per_change_set")
        ]

    def __str__(self) -> str:
        return f"{self.rollback_id} rolls back {self.original_id}"


class RollbackJob(models.Model):
    """A rollback too large for one web request, run by a task in chunks.

    The row is the truth about the work: a lost message or a dead worker only
    delays it until the sweep enqueues it again (``rollback_jobs.rollback_jobs_sweep``).
    Its items say which change sets it undoes, in order, and what undid each.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    force = models.BooleanField(default=False)
    total = models.PositiveIntegerField()
    done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    failed_change_set = models.ForeignKey(
        "audit.ChangeSet", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Runs begun (first run, task retries, sweeps); the sweep gives up after a few.
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    enqueued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    # Written after every chunk: a running job whose heartbeat is old lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["enqueued_at"], condition=Q(status="queued"), name="rollback_job_queued_idx"
            ),
            models.Index(
                fields=["heartbeat_at"],
                condition=Q(status="running"),
                name="rollback_job_running_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"rollback of {self.total} change set(s) ({self.status})"

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def percent(self) -> int:
        return 100 if not self.total else self.done * 100 // self.total


class RollbackJobItem(models.Model):
    """One change set a rollback job undoes. ``active`` while its job is queued or
    running: a change set is in at most one active job (a database constraint)."""

    job = models.ForeignKey(RollbackJob, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()  # 0 is undone first (the newest change set)
    change_set = models.ForeignKey("audit.ChangeSet", on_delete=models.PROTECT, related_name="+")
    active = models.BooleanField(default=True)
    # The change set that undid it, once it has been undone.
    rollback = models.ForeignKey(
        "audit.ChangeSet", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Pending operations its steps became where policy held them (ids), awaiting approval.
    held_operations = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["job", "position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "position"], name="rollback_item_position"),
            models.UniqueConstraint(
                fields=["change_set"],
                condition=Q(active=True),
                name="one_active_rollback_job_per_change_set",
            ),
        ]

    def __str__(self) -> str:
        return f"change set {self.change_set_id} in {self.job_id}"
