"""Rollbacks too large for one web request: a job row, a task that runs it in
chunks, and a sweep that recovers jobs a lost message or a dead worker left behind.

The job's row is the truth. Creating it checks what can be checked at once
(four eyes, already rolled back, itself a rollback, already in another job) and
enqueues the task after commit; a broker outage leaves the row queued for the
sweep. The task undoes the change sets newest first, a chunk per transaction,
through ``reviews.change_sets_rollback``: a chunk is all or nothing, progress is
committed after each one, and a rerun (task retry, sweep, duplicate message)
starts from what the database says is still to do. A change set that cannot be
undone (a conflict without force, a blocked step) stops the job with the reason;
the chunks before it stay undone, and no change set is ever half undone.

Status moves queued -> running -> done | failed (queued -> failed when a run
cannot start); any other transition is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from provisioning.audit.context import change_set_scope
from provisioning.audit.models import ChangeRecord, ChangeSet
from provisioning.scim.errors import ScimError

from . import reviews
from .models import Rollback, RollbackJob, RollbackJobItem
from .services import as_operator, queued_task

logger = logging.getLogger(__name__)

Status = RollbackJob.Status

# A rollback of more change sets than this, or of more change records, runs as a job.
INLINE_LIMIT = settings.SCIMGATE_INLINE_ROLLBACK_LIMIT
INLINE_RECORDS = settings.SCIMGATE_INLINE_ROLLBACK_RECORDS
# Change sets undone per transaction (one step of progress on the job page).
CHUNK = settings.SCIMGATE_ROLLBACK_CHUNK
# A queued job not started this long after it was enqueued is enqueued again (lost message).
QUEUED_GRACE = timedelta(minutes=1)
# A running job without a heartbeat for this long lost its worker; a chunk takes seconds.
STALE_AFTER = timedelta(minutes=5)
# Runs begun (first run, retries, sweeps) before the job is failed for good.
MAX_ATTEMPTS = 8

_TRANSITIONS = {
    Status.QUEUED: {Status.RUNNING, Status.FAILED},
    Status.RUNNING: {Status.DONE, Status.FAILED},
}


def _transition(job: RollbackJob, status: str) -> None:
    """Move ``job`` to ``status`` (not saved); refuses a transition the state machine lacks."""
    if status not in _TRANSITIONS.get(job.status, set()):
        raise ValidationError(
            f"A {job.get_status_display().lower()} rollback job cannot become "
            f"{Status(status).label.lower()}"
        )
    job.status = status


# --- Starting a rollback ------------------------------------------------------------------


def runs_inline(change_set_ids: list[int]) -> bool:
    """Whether a rollback of these change sets is small enough for one web request."""
    if len(set(change_set_ids)) > INLINE_LIMIT:
        return False
    records = ChangeRecord.objects.filter(change_set_id__in=change_set_ids)
    return not records[INLINE_RECORDS : INLINE_RECORDS + 1].exists()


@dataclass
class RollbackStart:
    """What starting a rollback came to: undone now, or a job to follow."""

    job: RollbackJob | None = None
    rollbacks: list[ChangeSet] = field(default_factory=list)


def rollback_start(*, change_set_ids: list[int], operator, force: bool = False) -> RollbackStart:
    """Roll back now when small (``runs_inline``), else create a job for the task."""
    ids = [int(pk) for pk in change_set_ids]
    if not runs_inline(ids):
        return RollbackStart(
            job=rollback_job_create(change_set_ids=ids, operator=operator, force=force)
        )
    with transaction.atomic():
        _refuse_active(ids)
        rollbacks = reviews.change_sets_rollback(change_set_ids=ids, operator=operator, force=force)
    return RollbackStart(rollbacks=rollbacks)


def _refuse_active(ids: list[int]) -> None:
    busy = list(
        RollbackJobItem.objects.filter(change_set_id__in=ids, active=True)
        .order_by("change_set_id")
        .values_list("change_set_id", flat=True)
    )
    if busy:
        listed = ", ".join(str(pk) for pk in busy[:10])
        raise ValidationError(
            f"Change set{'s' if len(busy) > 1 else ''} {listed} "
            f"{'are' if len(busy) > 1 else 'is'} already being rolled back by a rollback job"
        )


def _check_rollbackable(ids: list[int], operator) -> None:
    """The up-front checks of ``reviews.change_sets_rollback`` (existence, four eyes,
    already rolled back, itself a rollback), in four queries for any number of ids."""
    found = ChangeSet.objects.filter(pk__in=ids)
    if found.count() != len(ids):
        raise ValidationError("Some change sets do not exist")
    own = found.filter(operator_id=operator.pk).values_list("pk", flat=True).first()
    if own is not None:
        raise PermissionDenied(f"You made change set {own}; another approver must roll it back")
    undone = Rollback.objects.filter(original_id__in=ids).order_by("original_id")
    if (pk := undone.values_list("original_id", flat=True).first()) is not None:
        raise ValidationError(f"Change set {pk} has already been rolled back")
    rollbacks = Rollback.objects.filter(rollback_id__in=ids).order_by("rollback_id")
    if (pk := rollbacks.values_list("rollback_id", flat=True).first()) is not None:
        raise ValidationError(f"Change set {pk} is itself a rollback")


@as_operator
@transaction.atomic
def rollback_job_create(*, change_set_ids: list[int], operator, force: bool = False) -> RollbackJob:
    """Create a job undoing these change sets (newest first) and enqueue it after commit.

    Refuses at once what the task would refuse for every change set: the
    operator's own change sets, change sets already rolled back or that are
    rollbacks, and change sets another queued or running job is undoing (the
    last is also a database constraint, so two concurrent requests cannot both
    succeed). Conflicts with later changes are found as the job runs.
    """
    ids = sorted({int(pk) for pk in change_set_ids}, reverse=True)
    if not ids:
        raise ValidationError("Choose at least one change set to roll back")
    _check_rollbackable(ids, operator)
    _refuse_active(ids)
    now = timezone.now()
    job = RollbackJob.objects.create(
        operator=operator, force=force, total=len(ids), created_at=now, enqueued_at=now
    )
    try:
        with transaction.atomic():
            RollbackJobItem.objects.bulk_create(
                RollbackJobItem(job=job, position=n, change_set_id=pk) for n, pk in enumerate(ids)
            )
    except IntegrityError as error:  # another job took one of them since _refuse_active
        raise ValidationError(
            "Some of these change sets are already being rolled back by a rollback job"
        ) from error
    _enqueue(job)
    return job


def _enqueue(job: RollbackJob) -> None:
    run_rollback_job = queued_task("run_rollback_job")
    job_id = str(job.pk)
    # robust: a broker outage must not fail the request; the job stays queued and
    # the sweep enqueues it again.
    transaction.on_commit(lambda: run_rollback_job.delay(job_id), robust=True)


# --- Running a job (the task's body) ------------------------------------------------------


class _Refused(Exception):
    """A chunk of several change sets could not be undone (conflict, blocked step...)."""


def rollback_job_run(job_id) -> RollbackJob | None:
    """Run a job to its end, or resume it; safe to call again at any moment.

    Chunks of ``CHUNK`` change sets each commit on their own. When a chunk is
    refused, its change sets are retried one at a time, so the job stops exactly
    at the change set that cannot be undone, and the failure names it.
    """
    job = RollbackJob.objects.select_related("operator").filter(pk=job_id).first()
    if job is None:
        logger.warning("Rollback job %s does not exist", job_id)
        return None
    request = {"rollback_job": str(job.pk)}
    with change_set_scope(operator=job.operator, source=ChangeSet.Source.CONSOLE, request=request):
        if not _begin(job.pk):
            return RollbackJob.objects.get(pk=job.pk)
        one_at_a_time = 0
        while True:
            size = 1 if one_at_a_time else CHUNK
            try:
                more = _run_chunk(job.pk, size)
            except _Refused:
                one_at_a_time = CHUNK  # find the change set that cannot be undone
                continue
            if not more:
                return RollbackJob.objects.get(pk=job.pk)
            one_at_a_time = max(0, one_at_a_time - 1)


def _lock(job_id) -> RollbackJob:
    # Only the job's row: locking the operator's row too would stall their sign-in meanwhile.
    return (
        RollbackJob.objects.select_for_update(of=("self",))
        .select_related("operator")
        .get(pk=job_id)
    )


@transaction.atomic
def _begin(job_id) -> bool:
    """Mark the job running (or resumed); False when there is nothing to run."""
    job = _lock(job_id)
    if not job.active:
        return False
    now = timezone.now()
    if job.attempts >= MAX_ATTEMPTS:
        _finish(job, Status.FAILED, f"Stopped after {job.attempts} attempts. {job.error}".strip())
        return False
    if job.status == Status.QUEUED:
        _transition(job, Status.RUNNING)
        job.started_at = now
    job.attempts += 1
    job.heartbeat_at = now
    job.save()
    return True


@transaction.atomic
def _run_chunk(job_id, size: int) -> bool:
    """Undo the next ``size`` change sets in one transaction; False once the job has ended."""
    job = _lock(job_id)
    if job.status != Status.RUNNING:
        return False
    items = list(job.items.filter(rollback__isnull=True).order_by("position")[:size])
    if not items:
        _finish(job, Status.DONE)
        return False
    # Undone meanwhile by someone else (an inline rollback racing the job): not twice.
    undone = dict(
        Rollback.objects.filter(original_id__in=[i.change_set_id for i in items]).values_list(
            "original_id", "rollback_id"
        )
    )
    todo = [item.change_set_id for item in items if item.change_set_id not in undone]
    if todo:
        try:
            with transaction.atomic():
                rollbacks = reviews.change_sets_rollback(
                    change_set_ids=todo, operator=job.operator, force=job.force
                )
        except _refusals() as error:
            message = _message(error)
            if len(todo) > 1:
                raise _Refused(message) from error
            _fail_at(job, todo[0], message)
            return False
        undone.update(
            Rollback.objects.filter(original_id__in=todo).values_list("original_id", "rollback_id")
        )
        held = {r.pk: [str(p.pk) for p in r.held_operations] for r in rollbacks}
    else:
        held = {}
    finished = [item for item in items if item.change_set_id in undone]
    for item in finished:
        item.rollback_id = undone[item.change_set_id]
        item.held_operations = held.get(item.rollback_id, [])
    RollbackJobItem.objects.bulk_update(finished, ["rollback", "held_operations"])
    if len(finished) < len(items):
        missing = next(i.change_set_id for i in items if i.change_set_id not in undone)
        _fail_at(job, missing, "the rollback recorded no change set for it")
        return False
    job.done = job.items.filter(rollback__isnull=False).count()
    job.heartbeat_at = timezone.now()
    job.save(update_fields=["done", "heartbeat_at"])
    return True


def _refusals() -> tuple[type[Exception], ...]:

    # Decided by the data, not by luck: running the chunk again would end the same way.
    return (ValidationError, PermissionDenied, ScimError)


def _message(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return getattr(error, "detail", "") or str(error) or type(error).__name__


def _fail_at(job: RollbackJob, change_set_id: int, message: str) -> None:
    job.failed_change_set_id = change_set_id
    _finish(job, Status.FAILED, f"Change set {change_set_id} could not be rolled back: {message}")


def _finish(job: RollbackJob, status: str, error: str = "") -> None:
    """End the job (in the caller's transaction): its change sets are free again."""
    _transition(job, status)
    job.error = error
    job.finished_at = timezone.now()
    job.save()
    job.items.filter(active=True).update(active=False)
    if error:
        logger.warning("Rollback job %s failed: %s", job.pk, error)


def rollback_job_note_error(job_id, error: str) -> None:
    """Remember why a run broke off (a database error, say); the next run resumes."""
    try:
        RollbackJob.objects.filter(pk=job_id, status__in=RollbackJob.ACTIVE).update(
            error=f"Last attempt broke off: {error}"[:2000]
        )
    except DatabaseError:  # the database itself is what broke; the retry is what matters
        logger.warning("Could not note the error of rollback job %s", job_id)


# --- The sweep ----------------------------------------------------------------------------


def rollback_jobs_sweep(now=None) -> int:
    """Enqueue again the jobs that should be moving and are not; returns how many.

    Queued jobs not started within ``QUEUED_GRACE`` of being enqueued (the message
    was lost, or the broker was down when they were created) and running jobs
    whose heartbeat is older than ``STALE_AFTER`` (their worker died). Running a
    job twice is harmless: chunks take the job's row lock and skip what is done.
    """
    now = now or timezone.now()
    stale = Q(status=Status.QUEUED, enqueued_at__lt=now - QUEUED_GRACE) | Q(
        status=Status.RUNNING, heartbeat_at__lt=now - STALE_AFTER
    )
    count = 0
    for job_id in list(RollbackJob.objects.filter(stale).values_list("pk", flat=True)):
        with transaction.atomic():
            job = _lock(job_id)
            if not job.active:
                continue
            job.enqueued_at = now
            job.save(update_fields=["enqueued_at"])
            _enqueue(job)
        count += 1
    if count:
        logger.info("Rollback sweep enqueued %d job(s) again", count)
    return count


# --- Reading ------------------------------------------------------------------------------


def rollback_job_get(job_id) -> RollbackJob | None:
    return RollbackJob.objects.select_related("operator").filter(pk=job_id).first()


def rollback_job_items(job: RollbackJob, *, limit: int) -> list[RollbackJobItem]:
    """The job's change sets in the order it undoes them, each with what undid it."""
    return list(job.items.order_by("position")[:limit])


def rollback_jobs_recent(*, limit: int) -> list[RollbackJob]:
    return list(RollbackJob.objects.select_related("operator").order_by("-created_at")[:limit])


def active_job_for(change_set_id: int) -> RollbackJob | None:
    """The queued or running job that is undoing this change set, if any."""
    item = (
        RollbackJobItem.objects.filter(change_set_id=change_set_id, active=True)
        .select_related("job")
        .first()
    )
    return item.job if item is not None else None
