"""Policy rules and the circuit breaker: the oversight gates of the write pipeline.

``policy_gate`` runs after access control and before anything is applied: a
matching rule flags the change or holds it. Creates are never held (IdPs need
the new id at once), so a hold on a create becomes a flag. ``breaker_gate``
counts a client's destructive operations in the window and holds what would
exceed the limit, quarantining the client. Each hold has a key ("rule:<id>",
"circuit-breaker") that a person's approval names, so an approved operation
passes exactly the holds it was approved for.

Which rules cover a write depends on where it comes from (``Write.origin``):
a SCIM client's write (or its approved operation) meets the rules for every
client or for that client; an operator's console action meets the rules that
apply to console actions; a rollback step meets both the console rules and the
rules covering the client whose change it undoes.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Sum
from django.utils import timezone

from provisioning.access.models import ScimClient
from provisioning.directory import pipeline, selectors
from provisioning.directory.changes import Change
from provisioning.directory.models import User
from provisioning.scim.resources import primary_email

from .models import CircuitBreaker, DestructiveEvent, PolicyRule, Quarantine, RuleAction

# The key of every hold the circuit breaker makes (tripping it, or an active quarantine):
# releasing a quarantine approves its operations for this key.
BREAKER = "circuit-breaker"
CREATES_ARE_FLAGGED = "creates are flagged, never held"


def rule_key(rule: PolicyRule) -> str:
    return f"rule:{rule.pk}"


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
        # A member added to a group nested (at any depth) in a privileged group is
        # added to the privileged group too.
        return (
            not user
            and bool(change.members_added)
            and (
                change.resource.privileged
                or any(group.privileged for group in change.enclosing_groups())
            )
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


def _covers(rule: PolicyRule, client: ScimClient) -> bool:
    clients = rule.clients.all()
    return not clients or any(c.pk == client.pk for c in clients)


def rules_for(write: pipeline.Write) -> list[PolicyRule]:
    """The enabled rules that cover this write (see the module docstring)."""
    rules = PolicyRule.objects.filter(enabled=True).prefetch_related("clients")
    client = write.change.client
    if client is not None:
        return [rule for rule in rules if _covers(rule, client)]
    undone = write.on_behalf_of if write.origin == pipeline.ROLLBACK else None
    return [
        rule
        for rule in rules
        if rule.applies_to_console or (undone is not None and _covers(rule, undone))
    ]


def policy_gate(write: pipeline.Write) -> None:
    """Flag or hold the change for every rule that matches it."""
    change = write.change
    if change.is_noop:
        return
    for rule in rules_for(write):
        if not _rule_matches(rule, change):
            continue
        reason = f"{rule.name}: {rule.get_kind_display()}"
        if rule.action == RuleAction.HOLD and change.action != "create":
            write.hold(rule_key(rule), reason)
            if rule.two_approvers:
                write.notes["two_approvers"] = True
        elif rule.action == RuleAction.HOLD:
            write.flag(reason)
            write.flag(CREATES_ARE_FLAGGED)
        elif rule.action == RuleAction.FLAG:
            write.flag(reason)


def breaker_gate(write: pipeline.Write) -> None:
    """Hold a client's destructive change while it is quarantined, or when it would
    take the client past the breaker's limit (which quarantines it).

    Exact under concurrency: the client's row is locked (``FOR NO KEY UPDATE``) before
    counting, so destructive writes of one client are counted one after another, each
    seeing every earlier one that committed. An approved operation was decided by a
    person: it is not counted, and passes the breaker only if approved for it.
    """
    change = write.change
    client = change.client
    if client is None or change.is_noop:
        return
    weight = destructive_weight(change)
    if weight == 0:
        return
    counted = write.approval is None
    if counted:
        ScimClient.objects.select_for_update(no_key=True).filter(pk=client.pk).exists()
    active = Quarantine.objects.filter(client=client, status=Quarantine.Status.ACTIVE).first()
    if active is not None:
        write.notes["quarantine"] = active
        write.hold(BREAKER, f"client {client.name} is quarantined")
        return
    if not counted:
        return
    write.notes["destructive_weight"] = weight
    breaker = CircuitBreaker.objects.first()
    if breaker is None or not breaker.enabled:
        return
    since = timezone.now() - timedelta(minutes=breaker.window_minutes)
    applied = (
        DestructiveEvent.objects.filter(client=client, at__gte=since).aggregate(n=Sum("weight"))[
            "n"
        ]
        or 0
    )
    total = applied + weight
    window = f"within {breaker.window_minutes} minutes"
    reason = ""
    if total > breaker.max_operations:
        reason = (
            f"{applied} destructive operations applied {window}; this one would make "
            f"{total} (limit {breaker.max_operations})"
        )
    else:
        users = directory_size()
        if (
            users >= breaker.min_directory_size
            and Decimal(total) * 100 > breaker.max_percent * users
        ):
            reason = (
                f"{applied} destructive operations applied {window}; this one would make "
                f"{total}, over {breaker.max_percent}% of {users} users"
            )
    if reason:
        write.notes["trip_reason"] = reason
        write.hold(BREAKER, f"circuit breaker: {reason}")


def directory_size() -> int:
    """Users in the directory, for the percentage threshold: the trigger-kept counter
    (one row), else a COUNT cached for a minute."""
    total = selectors.resource_total(User)
    if total is not None:
        return total
    return cache.get_or_set("scimgate:directory-size", User.objects.count, 60)


def destructive_recorder(write: pipeline.Write) -> None:
    """Count an applied destructive change against its client (same transaction)."""
    weight = write.notes.get("destructive_weight", 0)
    if weight:
        DestructiveEvent.objects.create(client=write.change.client, at=timezone.now(), weight=weight)
