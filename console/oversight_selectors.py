"""Reads for the oversight counts the navigation and the dashboard show, and for the
identity provider's changes a user or group page lists.

Each count is one ``COUNT`` served by a partial index on the waiting rows
(``pending_queue_idx``, ``review_queue_idx``, ``one_active_quarantine``), so
the navigation costs the same three cheap queries however long the history is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Min, Q
from django.utils import timezone

from provisioning.access.models import ScimClient
from provisioning.directory import selectors as directory_selectors
from provisioning.oversight.models import (
    CircuitBreaker,
    HeldKind,
    PendingOperation,
    Quarantine,
    Review,
    held_kind_q,
)
from provisioning.oversight.policy import Standing, breaker_standing
from provisioning.scim import resources

from .diff import AttributeChange, record_diff


def pending_count() -> int:
    """Operations waiting for a decision."""
    return PendingOperation.objects.filter(status=PendingOperation.Status.PENDING).count()


def flagged_count() -> int:
    """Flagged change sets awaiting review."""
    return Review.objects.filter(status=Review.Status.OPEN).count()


def quarantined_count() -> int:
    """SCIM clients in quarantine (at most one active quarantine each)."""
    return Quarantine.objects.filter(status=Quarantine.Status.ACTIVE).count()


def held_in_quarantine() -> Count:
    """Annotation: how many operations a quarantine still holds."""
    return Count("operations", filter=Q(operations__status=PendingOperation.Status.PENDING))


def oversight_summary() -> dict:
    """The dashboard panel: what waits, since when, and which clients are quarantined."""
    waiting = PendingOperation.objects.filter(status=PendingOperation.Status.PENDING).aggregate(
        n=Count("id"), oldest=Min("created_at")
    )
    return {
        "pending": waiting["n"],
        "oldest_pending": waiting["oldest"],
        "conflicts": PendingOperation.objects.filter(
            status=PendingOperation.Status.CONFLICT
        ).count(),
        "flagged": flagged_count(),
        "quarantined": quarantined_count(),
        "quarantines": list(
            Quarantine.objects.filter(status=Quarantine.Status.ACTIVE)
            .select_related("client")
            .annotate(held=held_in_quarantine())
            .order_by("started_at")[:10]
        ),
    }


# Held changes an identity provider is still waiting on: it was answered 202 Accepted.
WAITING = (PendingOperation.Status.PENDING, PendingOperation.Status.CONFLICT)
# Held changes that never reached the directory although the identity provider was told
# they were accepted: it believes the resource looks as it asked.
NOT_APPLIED = (
    PendingOperation.Status.REJECTED,
    PendingOperation.Status.EXPIRED,
    PendingOperation.Status.DISCARDED,
    PendingOperation.Status.FAILED,
)


@dataclass(frozen=True)
class HeldChanges:
    items: list[PendingOperation]  # newest first
    count: int  # all of them, ``items`` being the first ``limit``

    @property
    def drift(self) -> int:
        """How many of ``items`` the identity provider believes were applied."""
        return sum(1 for op in self.items if op.status in NOT_APPLIED)


def held_idp_changes(resource_type: str, resource_id: uuid.UUID, *, limit: int = 20) -> HeldChanges:
    """The identity providers' held changes to one user or group that are waiting or were
    never applied, newest first: the first ``limit`` and how many there are.

    Served by ``pending_target_idx`` (resource type and id); the count is a second
    query only when there are more than ``limit``. Operators' own held console
    actions are left out: no identity provider is waiting on those.
    """
    operations = PendingOperation.objects.filter(
        resource_type=resource_type,
        resource_id=resource_id,
        operator__isnull=True,
        status__in=(*WAITING, *NOT_APPLIED),
    )
    items = list(
        operations.select_related("client", "decided_by").order_by("-created_at", "-id")[:limit]
    )
    count = len(items) if len(items) < limit else operations.count()
    return HeldChanges(items, count)


@dataclass(frozen=True)
class ClientStanding:
    """One SCIM client against its circuit breaker, for the breaker editor."""

    client: ScimClient
    own_settings: bool
    standing: Standing
    quarantined: bool


def breaker_standings() -> list[ClientStanding]:
    """Every SCIM client with how close it is to tripping its breaker: one query for the
    settings and quarantines, one aggregate over each client's recent destructive events."""
    rows = list(CircuitBreaker.objects.order_by("pk"))
    defaults = next((row for row in rows if row.client_id is None), None) or CircuitBreaker()
    own = {row.client_id: row for row in rows if row.client_id is not None}
    quarantined = set(
        Quarantine.objects.filter(status=Quarantine.Status.ACTIVE).values_list(
            "client_id", flat=True
        )
    )
    now = timezone.now()
    return [
        ClientStanding(
            client,
            client.pk in own,
            breaker_standing(client, own.get(client.pk, defaults), now),
            client.pk in quarantined,
        )
        for client in ScimClient.objects.order_by("name")
    ]


@dataclass(frozen=True)
class HeldGroup:
    """The operations of one kind a quarantine holds: how many, and the first few."""

    kind: str
    label: str
    count: int
    samples: list


def held_by_kind(quarantine: Quarantine, samples: int = 5) -> list[HeldGroup]:
    """What a quarantine holds, grouped by kind (deletions, deactivations, member removals),
    with counts and the first ``samples`` of each in the order they arrived."""
    held = quarantine.operations.filter(status=PendingOperation.Status.PENDING)
    groups = []
    for kind in HeldKind:
        of_kind = held.filter(held_kind_q(kind))
        count = of_kind.count()
        if count:
            groups.append(
                HeldGroup(kind.value, kind.label, count, list(of_kind.order_by("created_at", "id")[:samples]))
            )
    return groups


@dataclass(frozen=True)
class PendingComparison:
    """A held operation against the current state of its target, as the console's
    detail page and the management API show it."""

    target: Any  # the User or Group as it is now; None when it no longer exists
    diff: list[AttributeChange]  # the target now (or as it was held) -> what approving makes
    drift: list[AttributeChange]  # the target when held -> the target now
    version_changed: bool


def _editable(resource, resource_type: str) -> dict | None:
    if resource is None:
        return None
    if resource_type == "User":
        return resources.user_editable_document(resource)
    return resources.group_editable_document(resource)


def pending_comparison(pending: PendingOperation) -> PendingComparison:
    """What approving ``pending`` would change, attribute by attribute, and what changed
    in its target since it was held."""
    if pending.resource_type == "User":
        target = directory_selectors.user_get(pending.resource_id)
    else:
        target = directory_selectors.group_get(pending.resource_id)
    current = _editable(target, pending.resource_type)
    # For a delete the proposal is "nothing"; compare what exists (or existed) against it.
    shown = current if current is not None else pending.before
    proposed = None if pending.action == "delete" else pending.proposed
    diff = record_diff(
        {"document": shown} if shown is not None else None,
        {"document": proposed} if proposed is not None else None,
        pending.resource_type,
    )
    drift = []
    if current is not None and pending.before is not None and current != pending.before:
        drift = record_diff(
            {"document": pending.before}, {"document": current}, pending.resource_type
        )
    return PendingComparison(
        target=target,
        diff=diff,
        drift=drift,
        version_changed=target is not None and target.version != pending.base_version,
    )
