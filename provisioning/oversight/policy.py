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

The enabled rules and the breakers' settings come from this process's copy
(``access.config_cache``), read again only when the settings revision changed: a SCIM
write reads neither from the database while nobody changes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db.models import Q, Sum
from django.utils import timezone

from provisioning.access import config_cache
from provisioning.access.models import ScimClient
from provisioning.directory import pipeline, selectors
from provisioning.directory.changes import Change, member_q
from provisioning.directory.models import Membership, User
from provisioning.scim.resources import primary_email

from .models import CircuitBreaker, DestructiveEvent, PolicyRule, Quarantine, RuleAction

# The key of every hold the circuit breaker makes (tripping it, or an active quarantine):
# releasing a quarantine approves its operations for this key.
BREAKER = "circuit-breaker"
CREATES_ARE_FLAGGED = "creates are flagged, never held"


@dataclass(frozen=True)
class ActiveRule:
    """An enabled policy rule as the policy gate reads it: an immutable value that every
    write of the process shares (``rules_for``)."""

    pk: int
    name: str
    kind: str
    kind_label: str
    action: str
    # Empty: every client.
    client_ids: frozenset
    attributes: tuple
    applies_to_console: bool
    two_approvers: bool

    @classmethod
    def of(cls, rule: PolicyRule) -> ActiveRule:
        return cls(
            pk=rule.pk,
            name=rule.name,
            kind=rule.kind,
            kind_label=rule.get_kind_display(),
            action=rule.action,
            client_ids=frozenset(client.pk for client in rule.clients.all()),
            attributes=tuple(rule.attributes or ()),
            applies_to_console=rule.applies_to_console,
            two_approvers=rule.two_approvers,
        )


def rule_key(rule: PolicyRule | ActiveRule) -> str:
    return f"rule:{rule.pk}"


def could_destroy(change: Change) -> bool:
    """Whether a change deletes, deactivates or removes members (no query)."""
    return (
        change.requested_action == "delete"
        or bool(change.members_removed)
        or (change.resource_type == "User" and _deactivates(change))
    )


def destructive_weight(change: Change, *, churn_since: datetime | None = None) -> int:
    """How much a change counts towards the breaker: deletes, deactivations, member removals.

    With ``churn_since``, destroying what the same client created since then (a user or
    group), or removing a membership it added since then, is churn and counts nothing:
    a test connection or an onboarding script removing its own fixtures endangers nobody.
    Provenance is read from the locked resource (``source``, ``created``) and, for member
    removals, from the removed membership rows (``added_by``, ``created``): one query.
    """
    client = change.client

    def churn(resource) -> bool:
        return (
            churn_since is not None
            and client is not None
            and resource.source_id == client.pk
            and resource.created >= churn_since
        )

    if change.requested_action == "delete":
        return 0 if churn(change.resource) else 1
    weight = 0
    if change.resource_type == "User" and _deactivates(change) and not churn(change.resource):
        weight += 1
    if change.members_removed:
        weight += len(change.members_removed)
        if churn_since is not None and client is not None:
            weight -= _memberships_added_since(change, client, churn_since)
    return weight


def _memberships_added_since(change: Change, client: ScimClient, since: datetime) -> int:
    """How many of the memberships the change removes ``client`` added since ``since``."""
    ids = [ref.id for ref in change.members_removed]
    added = Membership.objects.filter(group=change.resource, added_by=client, created__gte=since)
    return sum(
        added.filter(member_q(ids[start : start + 1000])).count()
        for start in range(0, len(ids), 1000)
    )


def _deactivates(change: Change) -> bool:
    before, after = change.before or {}, change.after or {}
    return after.get("active") is False and before.get("active") is not False


def _rule_matches(rule: ActiveRule, change: Change) -> bool:
    kind, user = rule.kind, change.resource_type == "User"
    if kind == PolicyRule.Kind.DELETE_USER:
        # Deactivate before delete included: policy judges the delete that was asked.
        return user and change.requested_action == "delete"
    if kind == PolicyRule.Kind.DELETE_GROUP:
        return not user and change.action == "delete"
    if kind == PolicyRule.Kind.DEACTIVATE_USER:
        return user and change.requested_action != "delete" and _deactivates(change)
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


def _covers(rule: ActiveRule, client: ScimClient) -> bool:
    return not rule.client_ids or client.pk in rule.client_ids


def _enabled_rules() -> tuple[ActiveRule, ...]:
    rules = PolicyRule.objects.filter(enabled=True).prefetch_related("clients")
    return tuple(ActiveRule.of(rule) for rule in rules)


def _revision(write: pipeline.Write) -> str | None:
    """The settings revision this write reads rules and breakers at: the one its SCIM
    request's token lookup read, else the current one (read once per write)."""
    return config_cache.revision_noted(write.notes, write.change.client)


def rules_for(write: pipeline.Write) -> list[ActiveRule]:
    """The enabled rules that cover this write (see the module docstring)."""
    if write.origin == pipeline.SCHEDULED:
        # The hard delete of a deferred deletion: its request met the rules when it was
        # made (and was approved if one held it); nothing new is decided now.
        return []
    rules = config_cache.cached("policy-rules", _revision(write), _enabled_rules)
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
        reason = f"{rule.name}: {rule.kind_label}"
        if rule.action == RuleAction.HOLD and change.action != "create":
            write.hold(rule_key(rule), reason)
            if rule.two_approvers:
                write.notes["two_approvers"] = True
        elif rule.action == RuleAction.HOLD:
            write.flag(reason)
            write.flag(CREATES_ARE_FLAGGED)
        elif rule.action == RuleAction.FLAG:
            write.flag(reason)


@dataclass(frozen=True)
class _BreakerRows:
    """Every breaker row's values, as loaded: the defaults row and each client's own."""

    alias: str
    attnames: tuple
    defaults: tuple | None
    own: dict  # client id -> values (read only)


def _breaker_rows() -> _BreakerRows:
    attnames = tuple(f.attname for f in CircuitBreaker._meta.concrete_fields)
    defaults, own, alias = None, {}, "default"
    for row in CircuitBreaker.objects.order_by("pk"):
        values = tuple(getattr(row, name) for name in attnames)
        alias = row._state.db
        if row.client_id is not None:
            own[row.client_id] = values
        elif defaults is None:
            defaults = values
    return _BreakerRows(alias, attnames, defaults, own)


def breaker_for(client: ScimClient | None, *, revision: Any = config_cache.UNSEEN) -> CircuitBreaker:
    """The deletion-safety settings for ``client``: its own row, else the defaults row,
    else the model's defaults (a database without the row behaves as a fresh install).

    Read from this process's copy of the breakers at ``revision`` (by default the one
    the client's request read, else the current one); a fresh instance each call, which
    the caller may change without touching the copy.
    """
    if revision is config_cache.UNSEEN:
        revision = config_cache.revision_seen_by(client)
    rows = config_cache.cached("circuit-breakers", revision, _breaker_rows)
    values = rows.own.get(client.pk) if client is not None else None
    if values is None:
        values = rows.defaults
    if values is None:
        return CircuitBreaker()
    return CircuitBreaker.from_db(rows.alias, list(rows.attnames), list(values))


@dataclass(frozen=True)
class Standing:
    """Where a client stands against its breaker: what it destroyed in each window."""

    breaker: CircuitBreaker
    counted: int  # destructive operations applied within the count's window
    counted_for_percent: int  # ... within the percentage's window
    base: int  # users the percentage is of

    @property
    def percent(self) -> Decimal:
        return Decimal(self.counted_for_percent * 100) / self.base if self.base else Decimal(0)

    @property
    def percent_applies(self) -> bool:
        return self.base >= self.breaker.min_directory_size and self.base > 0

    @property
    def closeness(self) -> int:
        """How close to tripping, in percent of the nearer threshold (100: the next
        counted operation trips it)."""
        shares = [self.counted * 100 // max(self.breaker.max_operations, 1)]
        if self.percent_applies:
            shares.append(int(self.percent * 100 / self.breaker.max_percent))
        return min(max(shares), 100)

    def trip_reason(self, weight: int) -> str:
        """Why ``weight`` more destructive operations trip the breaker, or ""."""
        breaker = self.breaker
        total = self.counted + weight
        if total > breaker.max_operations:
            return (
                f"{self.counted} destructive operations applied within "
                f"{breaker.window_minutes} minutes; this one would make {total} "
                f"(limit {breaker.max_operations})"
            )
        total = self.counted_for_percent + weight
        if self.percent_applies and Decimal(total) * 100 > breaker.max_percent * self.base:
            return (
                f"{self.counted_for_percent} destructive operations applied within "
                f"{breaker.percent_window_minutes} minutes; this one would make {total}, over "
                f"{breaker.max_percent}% of {self.base} {breaker.get_percent_of_display()}"
            )
        return ""


def breaker_standing(client: ScimClient, breaker: CircuitBreaker, now=None) -> Standing:
    """What ``client`` destroyed (counted) within the breaker's two windows: one query
    over its destructive events, and the percentage's base (a cached count)."""
    now = now or timezone.now()
    count_since = now - timedelta(minutes=breaker.window_minutes)
    percent_since = now - timedelta(minutes=breaker.percent_window_minutes)
    sums = DestructiveEvent.objects.filter(
        client=client, at__gte=min(count_since, percent_since)
    ).aggregate(
        counted=Sum("weight", filter=Q(at__gte=count_since)),
        percent=Sum("weight", filter=Q(at__gte=percent_since)),
    )
    base = client_size(client) if breaker.percent_of == CircuitBreaker.Base.CLIENT else None
    return Standing(
        breaker,
        sums["counted"] or 0,
        sums["percent"] or 0,
        directory_size() if base is None else base,
    )


def breaker_gate(write: pipeline.Write) -> None:
    """Hold a client's destructive change while it is quarantined, or when it would
    take the client past one of its breaker's thresholds (which quarantines it).

    Churn (destroying what the same client created within the churn window) is not
    destructive here: it is neither counted nor held.

    Exact under concurrency: the client's row is locked (``FOR NO KEY UPDATE``) before
    counting, so destructive writes of one client are counted one after another, each
    seeing every earlier one that committed. An approved operation was decided by a
    person: it is not counted, and passes the breaker only if approved for it.
    """
    change = write.change
    client = change.client
    if client is None or change.is_noop or not could_destroy(change):
        return
    breaker = breaker_for(client, revision=_revision(write))
    now = timezone.now()
    weight = destructive_weight(
        change, churn_since=now - timedelta(minutes=breaker.churn_minutes)
    )
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
    if not breaker.enabled:
        return
    reason = breaker_standing(client, breaker, timezone.now()).trip_reason(weight)
    if reason:
        write.notes["trip_reason"] = reason
        write.hold(BREAKER, f"circuit breaker: {reason}")


def directory_size() -> int:
    """Users in the directory, for the percentage threshold: the trigger-kept counter
    (one row), else a COUNT cached for a minute."""
    total = selectors.resource_total(User)
    if total is not None:
        return total - selectors.retired_users().count()
    return cache.get_or_set("scimgate:directory-size", User.objects.count, 60)


def client_size(client: ScimClient) -> int:
    """Users ``client`` created that are in the directory (a COUNT cached for a minute)."""
    return cache.get_or_set(
        f"scimgate:client-size:{client.pk}",
        lambda: User.objects.filter(source=client).count(),
        60,
    )


def deletion_deferral(client: ScimClient) -> datetime | None:
    """Deactivate before delete: when a user ``client`` deletes is deleted for good
    (its settings' delay from now), or None to delete at once. The pipeline asks."""
    days = breaker_for(client).deletion_delay_days
    return timezone.now() + timedelta(days=days) if days else None


def destructive_recorder(write: pipeline.Write) -> None:
    """Count an applied destructive change against its client (same transaction)."""
    weight = write.notes.get("destructive_weight", 0)
    if weight:
        DestructiveEvent.objects.create(client=write.change.client, at=timezone.now(), weight=weight)
