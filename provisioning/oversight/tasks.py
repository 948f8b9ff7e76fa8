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


@shared_task(bind=True, max_retries=5, default_retry_delay=60, acks_late=True)
def delete_scheduled_users(self) -> int:
    """Beat's sweep: delete for good the users whose deferred deletion is due (deactivate
    before delete). Idempotent: the user rows say what is due, so a lost message only
    delays the deletions until the next sweep."""
    from . import deletions

    try:
        return deletions.scheduled_deletions_run()
    except Exception as exc:  # a database hiccup: the next attempt continues
        logger.exception("Scheduled deletions broke off")
        raise self.retry(exc=exc) from exc


@shared_task(bind=True, max_retries=3, default_retry_delay=30, acks_late=True)
def run_rollback_job(self, job_id: str) -> str | None:
    """Run (or resume) a rollback job. Idempotent: the job's rows say what is left, so a
    duplicate message, a retry or the sweep only continues where the last run stopped."""
    from . import rollback_jobs

    try:
        job = rollback_jobs.rollback_job_run(job_id)
    except Exception as exc:  # a database hiccup or a killed connection: resume later
        logger.exception("Rollback job %s broke off", job_id)
        rollback_jobs.rollback_job_note_error(job_id, f"{type(exc).__name__}: {exc}")
        raise self.retry(exc=exc) from exc
    return job.status if job is not None else None


@shared_task
def sweep_rollback_jobs() -> int:
    """Beat's sweep: enqueue rollback jobs a lost message or a dead worker left behind."""
    from . import rollback_jobs

    return rollback_jobs.rollback_jobs_sweep()
