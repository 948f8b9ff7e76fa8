"""Periodic audit tasks (Celery beat; in-process when no broker is configured). Idempotent."""

from celery import shared_task

from .request_log import request_log_prune
from .sealing import audit_seal


@shared_task
def seal_audit_log() -> int:
    """Seal audit rows older than the grace period into chained batches; returns batches sealed."""
    return len(audit_seal())


@shared_task
def prune_request_log() -> int:
    """Delete request-log rows older than REQUEST_LOG_RETENTION_DAYS; returns rows deleted."""
    return request_log_prune()
