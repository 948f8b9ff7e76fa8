"""Deactivate before delete: the scheduled hard deletes, and restoring a user before it.

A SCIM DELETE of a client whose deletion-safety settings have a delay
(``CircuitBreaker.deletion_delay_days``) deactivates the user and schedules its
deletion (``directory.services.user_delete``, through the write pipeline). The user
row's ``deletion_due`` is the truth: the periodic sweep (``tasks.delete_scheduled_users``)
deletes every user that is due, each in its own transaction and change set, so a lost
message, a dead broker or a killed worker only delays a deletion until the next sweep,
and a second sweep finds nothing left to do.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone

from provisioning.audit.context import change_set_scope
from provisioning.directory import selectors, services
from provisioning.directory.models import User

from .services import as_operator

logger = logging.getLogger(__name__)


def scheduled_deletions_run(now: datetime | None = None, batch: int = 500) -> int:
    """Delete for good every user whose scheduled deletion is due by ``now``; returns how
    many were deleted. Each deletion is a change set of its own, attributed to the system."""
    now = now or timezone.now()
    deleted, seen = 0, set()
    while ids := [i for i in selectors.users_due_for_deletion(now, batch) if i not in seen]:
        for user_id in ids:
            seen.add(user_id)
            with change_set_scope(
                source="system", request={"scheduled_deletion": str(user_id)}, separate=True
            ):
                if services.user_delete_scheduled(user_id=user_id, now=now):
                    deleted += 1
    if deleted:
        logger.info("Deleted %d user(s) whose scheduled deletion was due", deleted)
    return deleted


@as_operator
def user_restore(*, user_id, operator) -> User:
    """Cancel a user's scheduled deletion, as ``operator`` (audited in their change set)."""
    return services.user_restore(user_id=user_id, operator=operator)
