"""Reads for the oversight counts the navigation and the dashboard show.

Each count is one ``COUNT`` served by a partial index on the waiting rows
(``pending_queue_idx``, ``review_queue_idx``, ``one_active_quarantine``), so
the navigation costs the same three cheap queries however long the history is.
"""

from __future__ import annotations

from django.db.models import Count, Min, Q

from provisioning.oversight.models import PendingOperation, Quarantine, Review


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
