"""Evaluating policy rules and the circuit breaker for one planned ``Change``.

Runs after RBAC and before anything is applied. The strongest action wins:
hold > flag > allow. Creates are never held (IdPs need the new id at once), so
a hold on a create becomes a flag.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Sum
from django.utils import timezone

from provisioning.access.models import ScimClient
from provisioning.directory import selectors
from provisioning.directory.changes import Change
from provisioning.directory.models import User
from provisioning.scim.resources import primary_email

from .models import Action, CircuitBreaker, DestructiveEvent, PolicyRule, Quarantine

_STRENGTH = {Action.ALLOW: 0, Action.FLAG: 1, Action.HOLD: 2}

# Set while an approved operation is applied: it was already decided by a person.
approved_operation: ContextVar[object | None] = ContextVar("approved_operation", default=None)


@dataclass
class Decision:
    action: str = Action.ALLOW
    reasons: list[str] = field(default_factory=list)
    two_approvers: bool = False
    # The circuit breaker: an active quarantine of the client (existing or to be started).
    quarantine: Quarantine | None = None
    trip_reason: str = ""
    destructive_weight: int = 0

    def escalate(self, action: str, reason: str) -> None:
        self.reasons.append(reason)
        if _STRENGTH[action] > _STRENGTH[self.action]:
            self.action = action


def destructive_weight(change: Change) -> int:
    """How much a change counts towards the breaker: deletes, deactivations, member removals."""
    if change.action == "delete":
        return 1
    weight = len(change.members_removed)
    if change.resource_type == "User" and _deactivates(change):
        weight += 1
    return weight


def _deactivates(change: Change) -> bool:
    before, after = change.before or {}, change.after or {}
    return after.get("active") is False and before.get("active") is not False


def _rule_matches(rule: PolicyRule, change: Change) -> bool:
    kind, user = rule.kind, change.resource_type == "User"
    if kind == PolicyRule.Kind.DELETE_USER:
        return user and change.action == "delete"
    if kind == PolicyRule.Kind.DELETE_GROUP:
        return not user and change.action == "delete"
    if kind == PolicyRule.Kind.DEACTIVATE_USER:
        return user and change.action != "delete" and _deactivates(change)
    if kind == PolicyRule.Kind.PRIVILEGED_MEMBERSHIP:
        return (
            not user
            and bool(change.members_added)
            and bool(getattr(change.resource, "privileged", False))
        )
    if kind == PolicyRule.Kind.IDENTITY_CHANGE:
        if not user or change.before is None or change.after is None:
            return False
        before, after = change.before, change.after
        return (
            before.get("userName") != after.get("userName")
            or primary_email(before.get("emails")).lower()
            != primary_email(after.get("emails")).lower()
        )
    if kind == PolicyRule.Kind.ATTRIBUTE_CHANGE:
        wanted = {name.lower() for name in rule.attributes}
        return any(name.lower() in wanted for name in change.changed_attributes)
    return False


def _rules_for(change: Change) -> list[PolicyRule]:
    rules = PolicyRule.objects.filter(enabled=True).prefetch_related("clients")
    if change.client is None:
        rules = rules.filter(applies_to_console=True)
    return [
        rule
        for rule in rules
        if change.client is None
        or not rule.clients.all()
        or any(c.pk == change.client.pk for c in rule.clients.all())
    ]


def evaluate(change: Change) -> Decision:
    """The decision for one change. Reads rules and breaker state; writes nothing."""
    decision = Decision()
    if approved_operation.get() is not None:
        return decision
    for rule in _rules_for(change):
        if _rule_matches(rule, change):
            decision.escalate(rule.action, f"{rule.name}: {rule.get_kind_display()}")
            decision.two_approvers |= rule.two_approvers and rule.action == Action.HOLD
    if change.client is not None:
        _circuit_breaker(change, decision)
    if change.action == "create" and decision.action == Action.HOLD:
        decision.action = Action.FLAG
        decision.reasons.append("creates are flagged, never held")
    return decision


def _circuit_breaker(change: Change, decision: Decision) -> None:
    weight = destructive_weight(change)
    decision.destructive_weight = weight
    if weight == 0:
        return
    client = change.client
    active = Quarantine.objects.filter(client=client, status=Quarantine.Status.ACTIVE).first()
    if active is not None:
        decision.quarantine = active
        decision.escalate(Action.HOLD, f"client {client.name} is quarantined")
        return
    breaker = CircuitBreaker.objects.first()
    if breaker is None or not breaker.enabled:
        return
    since = timezone.now() - timedelta(minutes=breaker.window_minutes)
    recent = (
        DestructiveEvent.objects.filter(client=client, at__gte=since).aggregate(n=Sum("weight"))[
            "n"
        ]
        or 0
    )
    total = recent + weight
    reason = ""
    if total > breaker.max_operations:
        reason = (
            f"{total} destructive operations within {breaker.window_minutes} minutes "
            f"(limit {breaker.max_operations})"
        )
    else:
        users = directory_size()
        if (
            users >= breaker.min_directory_size
            and Decimal(total) * 100 > breaker.max_percent * users
        ):
            reason = (
                f"{total} destructive operations within {breaker.window_minutes} minutes exceed "
                f"{breaker.max_percent}% of {users} users"
            )
    if reason:
        decision.trip_reason = reason
        decision.escalate(Action.HOLD, f"circuit breaker: {reason}")


def directory_size() -> int:
    """Users in the directory, for the percentage threshold: the trigger-kept counter
    (one row), else a COUNT cached for a minute."""
    total = selectors.resource_total(User)
    if total is not None:
        return total
    return cache.get_or_set("scimgate:directory-size", User.objects.count, 60)


def record_destructive(client: ScimClient, weight: int) -> None:
    """Count an applied destructive change against its client (same transaction as the change)."""
    if weight:
        DestructiveEvent.objects.create(client=client, at=timezone.now(), weight=weight)


class Held(Exception):
    """Raised inside a directory write that policy holds: nothing is applied.

    The write's transaction rolls back; ``provisioning.directory.services`` then
    stores the pending operation in a fresh transaction and raises ``OperationHeld``.
    """

    def __init__(self, change: Change, decision: Decision):
        super().__init__("held by policy")
        self.change = change
        self.decision = decision


class OperationHeld(Exception):
    """A write was held; ``pending`` is the stored PendingOperation (SCIM answers 202)."""

    def __init__(self, pending):
        super().__init__(f"held as pending operation {pending.pk}")
        self.pending = pending
