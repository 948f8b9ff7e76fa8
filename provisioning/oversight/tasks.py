"""Celery tasks for oversight. Each is idempotent and safe to retry: the database
says what is still to do, so a lost message or a killed worker only delays work
until the periodic sweep runs the same task again."""

from __future__ import annotations

import json
import logging
import urllib.request

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db.models import Q

from . import services

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=5, default_retry_delay=30, acks_late=True)
def apply_approved_operations(self) -> int:
    """Apply every approved operation, oldest first; returns how many were handled."""
    handled, seen = 0, set()
    try:
        while (pending_id := services.next_approved_id()) is not None and pending_id not in seen:
            seen.add(pending_id)
            services.pending_apply(pending_id)
            handled += 1
    except Exception as exc:  # a database hiccup: retry later; applying twice is harmless
        logger.exception("Applying approved operations failed")
        raise self.retry(exc=exc) from exc
    return handled


@shared_task
def expire_pending_operations() -> int:
    return services.pending_expire_stale()


@shared_task(bind=True, max_retries=3, default_retry_delay=60)
def notify_approvers(self, event: str, object_id: str) -> None:
    """Tell approvers that something needs them: email, and the webhook if one is set."""
    subject, body = _message(event, object_id)
    approvers = (
        get_user_model()
        .objects.filter(
            Q(is_superuser=True) | Q(groups__name__in=["approver", "administrator"]),
            is_active=True,
        )
        .exclude(email="")
    )
    recipients = sorted({user.email for user in approvers})
    try:
        if recipients:
            send_mail(subject, body, None, recipients, fail_silently=False)
        webhook = getattr(settings, "SCIMGATE_WEBHOOK_URL", "")
        if webhook:
            payload = json.dumps({"event": event, "id": object_id, "text": subject}).encode()
            request = urllib.request.Request(  # noqa: S310 - an administrator-configured https URL
                webhook, data=payload, headers={"Content-Type": "application/json"}
            )
            urllib.request.urlopen(request, timeout=10).close()  # noqa: S310
    except Exception as exc:
        raise self.retry(exc=exc) from exc


def _message(event: str, object_id: str) -> tuple[str, str]:
    base = getattr(settings, "SCIMGATE_CONSOLE_URL", "").rstrip("/")
    if event == "operation_held":
        return (
            "scimgate: an operation is waiting for approval",
            f"A provisioning operation was held by policy.\n{base}/pending/{object_id}/",
        )
    if event == "quarantine_started":
        return (
            "scimgate: a SCIM client was quarantined",
            "The circuit breaker quarantined a SCIM client after a burst of destructive "
            f"operations. Its destructive operations are held until released.\n{base}/quarantines/{object_id}/",
        )
    return (f"scimgate: {event.replace('_', ' ')}", f"{base}/quarantines/{object_id}/")


@shared_task(bind=True, max_retries=3, default_retry_delay=30, acks_late=True)
def rollback_change_sets(self, change_set_ids: list[int], operator_id: int, force: bool = False):
    """A large rollback, run off the request. Idempotent: change sets already rolled
    back (by an earlier attempt) are skipped, the rest are undone all or nothing."""
    from .models import Rollback
    from .reviews import change_sets_rollback

    operator = get_user_model().objects.get(pk=operator_id)
    done = set(
        Rollback.objects.filter(original_id__in=change_set_ids).values_list(
            "original_id", flat=True
        )
    )
    remaining = [pk for pk in change_set_ids if pk not in done]
    if remaining:
        change_sets_rollback(change_set_ids=remaining, operator=operator, force=force)
    return len(remaining)
