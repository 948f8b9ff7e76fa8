"""Held operations, approvals, quarantines: every state transition is checked here.

Each transition is legal only from the right state, refuses the operator who
initiated the change (four eyes), and is audited. Applying an approved operation
happens in a Celery task (``tasks.apply_approved_operations``) that is idempotent:
the database row, not the broker, says what still has to be applied.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from provisioning.audit.context import change_set_scope, source_or
from provisioning.audit.redaction import redact
from provisioning.directory import pipeline, services
from provisioning.events import asyncresp
from provisioning.scim.errors import NotFound, PreconditionFailed, ScimError

from .models import Approval, DestructiveEvent, PendingOperation, Quarantine, held_kind_q

logger = logging.getLogger(__name__)


def as_operator(service):
    """Run a decision in a change set attributed to the deciding operator.

    Inside a console request the scope joins the request's own; from a script it
    opens one, so every transition is audited with who made it.
    """

    @functools.wraps(service)
    def wrapper(*args, operator, **kwargs):
        with change_set_scope(operator=operator, source="console"):
            return service(*args, operator=operator, **kwargs)

    return wrapper


PENDING_TTL = timedelta(days=getattr(settings, "PENDING_OPERATION_TTL_DAYS", 7))


def _ref(ref) -> dict:
    return {"id": str(ref.id), "is_group": ref.is_group, "display": ref.display}


def _fingerprint(write: pipeline.Write) -> str:
    """Who asks what of which resource, from which state, with which effect."""
    change = write.change
    client, operator = change.client, change.operator
    material = {
        "client": str(client.pk) if client is not None else None,
        "operator": getattr(operator, "pk", None),
        "target": [change.resource_type, str(change.resource.pk)],
        "action": change.action,
        "before": change.before,
        "after": change.after,
        "added": sorted(str(r.id) for r in change.members_added),
        "removed": sorted(str(r.id) for r in change.members_removed),
    }
    encoded = json.dumps(material, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def _remembering_async_requests(holder):
    """The held write's ``Prefer: respond-async`` (RFC 9967 §2.5.1) is stored with its
    pending operation, in the same transaction, whichever way the holder found it."""

    @functools.wraps(holder)
    def wrapper(write: pipeline.Write) -> PendingOperation:
        pending = holder(write)
        asyncresp.request_held(write, pending)
        return pending

    return wrapper


@_remembering_async_requests
def hold_operation(write: pipeline.Write) -> PendingOperation:
    """Store a held write (its parsed request, target, version); the pipeline's holder.

    Idempotent: a repeat of a write that is already pending from the same client (or
    operator) for the same target, state and effect returns the existing pending
    operation, so an IdP retrying a held DELETE gets the same ``Location``. Starts a
    quarantine if the circuit breaker tripped.
    """
    change = write.change
    fingerprint = _fingerprint(write)
    existing = PendingOperation.objects.filter(
        fingerprint=fingerprint, status=PendingOperation.Status.PENDING
    ).first()
    if existing is not None:
        return existing
    now = timezone.now()
    quarantine = write.notes.get("quarantine")
    trip_reason = write.notes.get("trip_reason")
    if quarantine is None and trip_reason:
        quarantine, _ = Quarantine.objects.get_or_create(
            client=change.client,
            status=Quarantine.Status.ACTIVE,
            defaults={"started_at": now, "reason": trip_reason},
        )
        logger.warning("Quarantined SCIM client %s: %s", change.client, trip_reason)
        _notify_later("quarantine_started", str(quarantine.pk))
    holds = [*write.passed, *write.holds]
    resource = change.resource
    try:
        with transaction.atomic():
            pending = PendingOperation.objects.create(
                client=change.client,
                operator=change.operator,
                resource_type=change.resource_type,
                resource_id=resource.pk,
                resource_label=str(resource),
                action=change.requested_action,
                request=redact(change.request),
                before=change.before,
                proposed=change.after,
                members_added=[_ref(r) for r in change.members_added],
                members_removed=[_ref(r) for r in change.members_removed],
                base_version=resource.version,
                reasons=[hold.reason for hold in holds] + write.flags,
                hold_keys=sorted({hold.key for hold in holds}),
                fingerprint=fingerprint,
                two_approvers=bool(write.notes.get("two_approvers")),
                quarantine=quarantine,
                created_at=now,
                expires_at=now + PENDING_TTL,
            )
    except IntegrityError:
        # The same write, held a moment ago by a concurrent retry.
        return PendingOperation.objects.get(
            fingerprint=fingerprint, status=PendingOperation.Status.PENDING
        )
    _notify_later("operation_held", str(pending.pk))
    return pending


def queued_task(name: str):
    """An oversight Celery task by name, from the app's registry.

    The tasks call these services; looking them up by name keeps the imports one way.
    ``delay()`` on it queues the task, or runs it in-process when no broker is set.
    """
    return current_app.tasks[f"provisioning.oversight.tasks.{name}"]


def _notify_later(event: str, object_id: str) -> None:
    notify_approvers = queued_task("notify_approvers")
    # robust: a broker outage must not undo or fail the decision already committed.
    transaction.on_commit(lambda: notify_approvers.delay(event, object_id), robust=True)


def _lock_pending(pending_id) -> PendingOperation:
    return PendingOperation.objects.select_for_update().get(pk=pending_id)


def _require(pending: PendingOperation, *states: str) -> None:
    if pending.status not in states:
        raise ValidationError(
            f"Operation is {pending.get_status_display().lower()}; this needs it to be "
            + " or ".join(PendingOperation.Status(s).label.lower() for s in states)
        )


def _four_eyes(pending: PendingOperation, operator) -> None:
    if pending.operator_id is not None and pending.operator_id == operator.pk:
        raise PermissionDenied("You initiated this change; another approver must decide it")


@as_operator
@transaction.atomic
def pending_approve(*, pending_id, operator, reason: str = "") -> PendingOperation:
    """Approve a held operation; it is applied by a task once enough approvers agreed."""
    pending = _lock_pending(pending_id)
    _require(pending, PendingOperation.Status.PENDING)
    _approve(pending, operator, reason)
    return pending


def _approve(pending: PendingOperation, operator, reason: str) -> bool:
    """Record ``operator``'s approval; mark the operation approved (to be applied) once
    enough approvers agreed. False while it still awaits a second approver."""
    _four_eyes(pending, operator)
    if pending.approvals.filter(operator=operator).exists():
        raise ValidationError(f"You already approved operation {pending.pk}")
    Approval.objects.create(operation=pending, operator=operator, at=timezone.now())
    if pending.two_approvers and pending.approvals.count() < 2:
        return False
    _mark_approved(pending, operator, reason)
    return True


def _mark_approved(
    pending: PendingOperation, operator, reason: str, *, force: bool = False
) -> None:
    pending.status = PendingOperation.Status.APPROVED
    pending.decided_at = timezone.now()
    pending.decided_by = operator
    pending.decision_reason = reason
    pending.force = force
    pending.decided_via = source_or("console")
    pending.save()
    _apply_later()


def _apply_later() -> None:
    apply_approved_operations = queued_task("apply_approved_operations")
    # robust: if the broker is down the approval stays committed, and the periodic
    # sweep (the same task, from beat) applies it once the broker is back.
    transaction.on_commit(apply_approved_operations.delay, robust=True)


def next_approved_id():
    """The oldest approved, unapplied operation: operations are applied in the order held."""
    return (
        PendingOperation.objects.filter(status=PendingOperation.Status.APPROVED)
        .order_by("created_at", "id")
        .values_list("pk", flat=True)
        .first()
    )


@as_operator
@transaction.atomic
def pending_reapply(*, pending_id, operator, reason: str = "") -> PendingOperation:
    """Apply an operation that conflicted, deliberately, against the current state."""
    pending = _lock_pending(pending_id)
    _require(pending, PendingOperation.Status.CONFLICT)
    _four_eyes(pending, operator)
    _mark_approved(pending, operator, reason or "re-applied after conflict", force=True)
    return pending


@as_operator
@transaction.atomic
def pending_reject(*, pending_id, operator, reason: str) -> PendingOperation:
    if not reason.strip():
        raise ValidationError("Give a reason for rejecting")
    pending = _lock_pending(pending_id)
    _require(pending, PendingOperation.Status.PENDING, PendingOperation.Status.CONFLICT)
    _four_eyes(pending, operator)
    pending.status = PendingOperation.Status.REJECTED
    pending.decided_at = timezone.now()
    pending.decided_by = operator
    pending.decision_reason = reason.strip()
    pending.save()
    asyncresp.pending_ended([pending])
    return pending


@transaction.atomic
def pending_expire_stale(now=None) -> int:
    """Expire pending operations past their expiry; returns how many."""
    now = now or timezone.now()
    expired = PendingOperation.objects.filter(
        status=PendingOperation.Status.PENDING, expires_at__lt=now, quarantine__isnull=True
    ).update(status=PendingOperation.Status.EXPIRED, decided_at=now)
    asyncresp.pending_ended(
        PendingOperation.objects.filter(status=PendingOperation.Status.EXPIRED, decided_at=now)
    )
    return expired


def pending_apply(pending_id) -> PendingOperation | None:
    """Apply an approved operation exactly once (the task's body; safe to call again).

    It passes the write pipeline like any write, with an ``Approval`` naming the holds
    it was approved for: those pass, nothing else does. A hold it was not approved for
    (a rule added since, a quarantine) holds it again as a new pending operation.
    """
    with transaction.atomic():
        pending = _lock_pending(pending_id)
        if pending.status != PendingOperation.Status.APPROVED:
            return pending  # already applied, or decided otherwise: nothing to do
        via = services.Via(
            operator=pending.operator,
            approval=pipeline.Approval(pending.pk, frozenset(pending.hold_keys)),
        )
        # Its own change set, attributed to the approver, the door the approval came by
        # and the client that asked, whether a worker or the approver's request applies it.
        scope = change_set_scope(
            operator=pending.decided_by,
            client=pending.client,
            source=pending.decided_via or source_or("console"),
            request={"pending_operation": str(pending.pk)},
            separate=True,
        )
        resource = error = reheld_as = None
        try:
            with scope:
                resource = services.perform(
                    pending.resource_type,
                    pending.action,
                    resource_id=pending.resource_id,
                    request=pending.request,
                    client=pending.client,
                    if_match=None if pending.force else f'W/"{pending.base_version}"',
                    via=via,
                )
        except pipeline.OperationHeld as held:
            reheld_as = held.pending
            pending.status = PendingOperation.Status.REHELD
            pending.result_detail = (
                "Held again for a reason it was not approved for: "
                + "; ".join(held.pending.reasons)
                + f". See pending operation {held.pending.pk}."
            )
        except PreconditionFailed as exc:
            error = exc
            pending.status = PendingOperation.Status.CONFLICT
            pending.result_detail = (
                f"The {pending.resource_type.lower()} changed after the operation was held "
                f"(version {pending.base_version}); review it and re-apply deliberately."
            )
        except NotFound as exc:
            error = exc
            pending.status = PendingOperation.Status.FAILED
            pending.result_detail = f"The {pending.resource_type.lower()} no longer exists."
        except ScimError as exc:
            error = exc
            pending.status = PendingOperation.Status.FAILED
            pending.result_detail = exc.detail
        else:
            pending.status = PendingOperation.Status.APPLIED
            pending.applied_at = timezone.now()
        pending.save()
        asyncresp.pending_ended([pending], resource=resource, error=error, reheld_as=reheld_as)
        return pending


@as_operator
@transaction.atomic
def quarantine_release(
    *, quarantine_id, operator, pending_ids=None, kinds: list[str] | None = None
) -> Quarantine:
    """End a quarantine ("allow these deletions"), approving its held operations in the
    order they arrived: all of them, those of the chosen ``kinds`` (``HeldKind``), or the
    chosen ``pending_ids``; the rest are discarded. Four eyes: an operator cannot release
    an operation they requested, and an operation held for two approvers stays pending
    (with this approval recorded) until a second operator approves it."""
    quarantine = Quarantine.objects.select_for_update().get(pk=quarantine_id)
    if quarantine.status != Quarantine.Status.ACTIVE:
        raise ValidationError("This quarantine has already ended")
    held = quarantine.operations.filter(status=PendingOperation.Status.PENDING).order_by(
        "created_at", "id"
    )
    chosen = held
    if kinds is not None:
        if not kinds:
            raise ValidationError("Choose a kind of operation to release")
        condition = Q(pk__in=[])
        for kind in kinds:
            try:
                condition |= held_kind_q(kind)
            except ValueError as exc:
                raise ValidationError(str(exc)) from None
        chosen = chosen.filter(condition)
    if pending_ids is not None:
        chosen = chosen.filter(pk__in=pending_ids)
    chosen_ids = list(chosen.values_list("pk", flat=True))
    for pending in PendingOperation.objects.filter(pk__in=chosen_ids).order_by("created_at", "id"):
        # A rule that asked for two approvers still does: releasing is one approval.
        _approve(pending, operator, "released from quarantine")
    held.exclude(pk__in=chosen_ids).update(
        status=PendingOperation.Status.DISCARDED, decided_at=timezone.now(), decided_by=operator
    )
    asyncresp.pending_ended(quarantine.operations.filter(status=PendingOperation.Status.DISCARDED))
    _end_quarantine(quarantine, operator, Quarantine.Status.RELEASED)
    return quarantine


@as_operator
@transaction.atomic
def quarantine_discard(*, quarantine_id, operator) -> Quarantine:
    """End a quarantine and drop every operation it held."""
    quarantine = Quarantine.objects.select_for_update().get(pk=quarantine_id)
    if quarantine.status != Quarantine.Status.ACTIVE:
        raise ValidationError("This quarantine has already ended")
    quarantine.operations.filter(status=PendingOperation.Status.PENDING).update(
        status=PendingOperation.Status.DISCARDED, decided_at=timezone.now(), decided_by=operator
    )
    asyncresp.pending_ended(quarantine.operations.filter(status=PendingOperation.Status.DISCARDED))
    _end_quarantine(quarantine, operator, Quarantine.Status.DISCARDED)
    return quarantine


def _end_quarantine(quarantine: Quarantine, operator, status: str) -> None:
    quarantine.status = status
    quarantine.ended_at = timezone.now()
    quarantine.ended_by = operator
    quarantine.save()
    # The window starts afresh: what tripped the breaker has now been decided by a person.
    DestructiveEvent.objects.filter(client=quarantine.client).delete()
    _notify_later("quarantine_ended", str(quarantine.pk))
