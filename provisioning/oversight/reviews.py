"""Flagged change sets and rollback.

A rollback computes the inverse of every record in a change set from its
snapshots (a delete is restored with the same id, attributes and memberships; a
create is deleted; an update is put back; membership deltas are inverted),
applies it through the directory services as a new change set linked to the
original, and refuses when a resource changed since, unless forced.

A rollback is a change by its operator and passes the write pipeline like any
other: each step meets the rules for console actions and the rules covering the
client whose change it undoes. A step that policy holds (deleting a user whose
deletion is held, re-adding a member to a privileged group) becomes a pending
operation that another approver decides; the other steps are applied.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from provisioning.audit import deltas
from provisioning.audit.context import change_set_scope, source_or
from provisioning.audit.models import ChangeRecord, ChangeSet
from provisioning.directory import pipeline, services
from provisioning.directory.changes import member_q
from provisioning.directory.models import Group, Membership, User
from provisioning.directory.services import Via
from provisioning.scim.errors import ScimError

from .models import PendingOperation, Review, Rollback
from .services import as_operator

# A user awaiting its scheduled deletion is still stored: ``with_retired`` sees it.
_MANAGERS = {"User": User.with_retired, "Group": Group.objects}


def flag_recorder(write: pipeline.Write) -> None:
    """The pipeline recorder that puts a flagged change's change set in the review queue."""
    if write.flags and write.record is not None:
        flag_change_set(write.record.change_set, write.flags)


def flag_change_set(change_set: ChangeSet, reasons: list[str]) -> Review:
    """Put a change set in the review queue (called in the transaction that applied it)."""
    review, created = Review.objects.get_or_create(
        change_set=change_set, defaults={"reasons": reasons, "created_at": timezone.now()}
    )
    if not created:
        review.reasons = sorted(set(review.reasons) | set(reasons))
        review.save(update_fields=["reasons"])
    return review


def _four_eyes(change_set: ChangeSet, operator) -> None:
    if change_set.operator_id is not None and change_set.operator_id == operator.pk:
        raise PermissionDenied("You made this change; another approver must review it")


@as_operator
@transaction.atomic
def review_accept(*, review_id, operator) -> Review:
    review = Review.objects.select_for_update().get(pk=review_id)
    if review.status != Review.Status.OPEN:
        raise ValidationError(f"This change set is already {review.get_status_display().lower()}")
    _four_eyes(review.change_set, operator)
    review.status = Review.Status.ACCEPTED
    review.decided_at = timezone.now()
    review.decided_by = operator
    review.save()
    return review


@dataclass
class InverseStep:
    """What undoing one change record does, and why it may conflict."""

    record: ChangeRecord
    description: str
    conflict: str = ""
    blocked: bool = False  # a conflict that even force cannot override


def _current(record: ChangeRecord) -> tuple[dict | None, str | None]:
    """The resource's document as stored now, and its ETag (None, None once deleted)."""
    from provisioning.scim import resources

    resource = _MANAGERS[record.resource_type].filter(pk=record.resource_id).first()
    if resource is None:
        return None, None
    if record.resource_type == "User":
        return resources.user_editable_document(resource), resource.etag
    return resources.group_editable_document(resource), resource.etag


def _awaiting_deletion(record: ChangeRecord) -> bool:
    return record.resource_type == "User" and (
        User.with_retired.filter(pk=record.resource_id, deletion_due__isnull=False).exists()
    )


def _scheduled_the_deletion(record: ChangeRecord) -> bool:
    """The user awaits its scheduled deletion and this record, its latest, scheduled it
    (SCIM writes nothing to a user awaiting deletion): undoing it is a restore."""
    return _awaiting_deletion(record) and not (
        ChangeRecord.objects.filter(resource_id=record.resource_id, id__gt=record.id).exists()
    )


def _current_document(record: ChangeRecord) -> dict | None:
    return _current(record)[0]


def _present(group_id, entries: list[dict]) -> set[str]:
    ids = [entry["value"] for entry in entries]
    if not ids:
        return set()
    rows = Membership.objects.filter(group_id=group_id).filter(member_q(ids))
    return {str(u or g) for u, g in rows.values_list("user_id", "member_group_id")}


def _members_still_as_left(record: ChangeRecord) -> bool:
    """The members the change added are still there and those it removed are still gone."""
    added = {entry["value"] for entry in record.members_added}
    return _present(record.resource_id, record.members_added) == added and not _present(
        record.resource_id, record.members_removed
    )


_LOAD = object()


def inverse_step(record: ChangeRecord, current=_LOAD) -> InverseStep:
    """The inverse of one record; ``current`` is the resource's document as it will be
    when this step runs (by default, as stored now), or that document's digest
    (``deltas.state``), None when it will not exist."""
    label = f"{record.resource_type} {record.resource_name or record.resource_id}"
    check_members = current is _LOAD
    if current is _LOAD:
        current = _current_document(record)
    # An update's record keeps what it changed and a digest of the whole document it
    # left: the resource is as the change left it when the digests agree.
    left_as_it_was = deltas.document_state(current) == deltas.state(record.after)
    if record.action == "create":
        step = InverseStep(record, f"Delete {label}, which this change created")
        if current is None:
            step.conflict, step.blocked = "It has already been deleted.", True
        elif not left_as_it_was:
            step.conflict = "It changed after it was created."
        return step
    if record.action == "delete":
        step = InverseStep(record, f"Restore {label} with its id, attributes and memberships")
        if current is not None:
            step.conflict, step.blocked = "A resource with this id exists again.", True
        else:
            step.conflict, step.blocked = _restore_blocker(record)
        return step
    restore = check_members and _scheduled_the_deletion(record)
    parts = [f"Restore {label} (cancel its scheduled deletion) and put it back as it was"]
    if not restore:
        parts = [f"Put {label} back as it was"]
    if record.members_added:
        parts.append(f"remove {len(record.members_added)} member(s) it added")
    if record.members_removed:
        parts.append(f"re-add {len(record.members_removed)} member(s) it removed")
    step = InverseStep(record, ", ".join(parts))
    if current is None:
        step.conflict, step.blocked = "It has been deleted since.", True
    elif check_members and not restore and _awaiting_deletion(record):
        step.conflict = "It awaits its scheduled deletion since; restore it first."
        step.blocked = True
    elif not left_as_it_was or (
        check_members and record.resource_type == "Group" and not _members_still_as_left(record)
    ):
        step.conflict = "It changed after this change set."
    return step


def _restore_blocker(record: ChangeRecord) -> tuple[str, bool]:
    document = record.before.get("document", {})
    if record.resource_type == "User":
        name = document.get("userName", "")
        if User.objects.filter(user_name__iexact=name).exists():
            return f"userName '{name}' has been taken by another user.", True
    else:
        name = document.get("displayName", "")
        if Group.objects.filter(display_name__iexact=name).exists():
            return f"displayName '{name}' has been taken by another group.", True
    return "", False


def rollback_preview(change_set_ids: list[int]) -> list[InverseStep]:
    """The steps a rollback of these change sets would take, newest change first.

    Each step is judged against the state the newer steps leave behind, not the
    stored state: undoing "create, then deactivate" is not a conflict.
    """
    records = ChangeRecord.objects.filter(change_set_id__in=change_set_ids).order_by("-id")
    leaves: dict[tuple[str, object], dict | None] = {}
    steps = []
    for record in records:
        key = (record.resource_type, record.resource_id)
        steps.append(inverse_step(record, leaves[key]) if key in leaves else inverse_step(record))
        leaves[key] = deltas.state(record.before)
    return steps


def _apply(step: InverseStep, via) -> list[PendingOperation]:
    """Apply one inverse step; returns the pending operations of what policy held."""
    record = step.record
    try:
        if record.action == "create":
            services.perform(
                record.resource_type,
                "delete",
                resource_id=record.resource_id,
                request={},
                client=None,
                via=via,
            )
        elif record.action == "delete":
            _restored, held = services.resource_restore(
                resource_type=record.resource_type, snapshot=record.before, via=via
            )
            return held
        else:
            if _scheduled_the_deletion(record):
                # The inverse of a scheduled deletion: the user rejoins the directory
                # (the restore's own change), then gets its attributes back.
                services.user_restore(user_id=record.resource_id, via=via)
            # Rebuilt from the resource as it is now, which the revert then requires to
            # be unchanged (a concurrent write makes it fail rather than be overwritten).
            current, etag = _current(record)
            services.resource_revert(
                resource_type=record.resource_type,
                resource_id=record.resource_id,
                document=deltas.document_before(record.before, record.after, current or {}),
                members_add=record.members_removed,
                members_remove=record.members_added,
                if_match=etag,
                via=via,
            )
    except pipeline.OperationHeld as held:
        return [held.pending]
    return []


def change_set_rollback(*, change_set_id, operator, force: bool = False) -> ChangeSet:
    """Undo one change set as a new change set; conflicts refuse unless ``force``."""
    return change_sets_rollback(change_set_ids=[change_set_id], operator=operator, force=force)[0]


def change_sets_rollback(*, change_set_ids: list, operator, force: bool = False) -> list[ChangeSet]:
    """Undo change sets newest first, each as a new linked change set, all or nothing.

    Each returned change set carries ``held_operations``: the pending operations
    its steps became where policy held them (not applied, awaiting another approver).
    """
    originals = list(ChangeSet.objects.filter(pk__in=change_set_ids).order_by("-id"))
    if len(originals) != len(set(change_set_ids)):
        raise ValidationError("Some change sets do not exist")
    _check_rollbackable(originals, operator)
    with transaction.atomic():
        return [_rollback_one(original, operator, force) for original in originals]


def _check_rollbackable(originals: list[ChangeSet], operator) -> None:
    for original in originals:
        _four_eyes(original, operator)
        if Rollback.objects.filter(original=original).exists():
            raise ValidationError(f"Change set {original.pk} has already been rolled back")
        if Rollback.objects.filter(rollback=original).exists():
            raise ValidationError(f"Change set {original.pk} is itself a rollback")


def _rollback_one(original: ChangeSet, operator, force: bool) -> ChangeSet:
    steps = [inverse_step(r) for r in original.records.order_by("-id")]
    blocked = [s for s in steps if s.blocked]
    conflicts = [s for s in steps if s.conflict and not s.blocked]
    if blocked:
        raise ValidationError("; ".join(f"{s.description}: {s.conflict}" for s in blocked))
    if conflicts and not force:
        raise ValidationError(
            "Changed since (roll back with force to overwrite): "
            + "; ".join(f"{s.description}: {s.conflict}" for s in conflicts)
        )
    request = {"rollback_of": original.pk, "forced": bool(conflicts)}
    via = Via(operator=operator, origin=pipeline.ROLLBACK, on_behalf_of=original.scim_client)
    with change_set_scope(
        operator=operator,
        source=source_or(ChangeSet.Source.CONSOLE),
        request=request,
        separate=True,
    ) as scope:
        held = []
        for step in steps:
            try:
                held += _apply(step, via)
            except ScimError as refused:  # e.g. a membership cycle: nothing is applied
                raise ValidationError(f"{step.description}: {refused.detail}") from None
        rollback = scope.ensure_change_set()
    rollback.held_operations = held
    try:
        with transaction.atomic():
            Rollback.objects.create(
                original=original,
                rollback=rollback,
                operator=operator,
                forced=bool(conflicts),
                created_at=timezone.now(),
            )
    except IntegrityError:  # another rollback of the same change set committed first
        raise ValidationError(f"Change set {original.pk} has already been rolled back") from None
    Review.objects.filter(change_set=original, status=Review.Status.OPEN).update(
        status=Review.Status.ROLLED_BACK, decided_at=timezone.now(), decided_by=operator
    )
    return rollback


def client_change_sets(*, client, since, until) -> list[int]:
    """Change sets a SCIM client made in a time range (for mass rollback), newest first."""
    return list(
        ChangeSet.objects.filter(scim_client=client, created_at__gte=since, created_at__lt=until)
        .exclude(rolls_back__isnull=False)
        .exclude(rollbacks__isnull=False)
        .order_by("-id")
        .values_list("pk", flat=True)
    )
