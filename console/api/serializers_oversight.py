"""Representations and request bodies of the oversight endpoints: re-applying and bulk
decisions on pending operations, flagged reviews and rollback (one change set, or a
client's change sets in a time range, with rollback jobs), and quarantines.

Request bodies that the console parses with a form are validated by that form here, so
the API and the console apply one rule with one implementation.
"""

from __future__ import annotations

from django.utils.datastructures import MultiValueDict
from rest_framework import serializers

from console.oversight_forms import BulkDecisionForm, MassRollbackForm
from console.views_pending import BULK_LIMIT

from .serializers import (
    AttributeChangeSerializer,
    ClientRefSerializer,
    PendingOperationSerializer,
)


def _form_errors(form) -> dict[str, list[str]]:
    return {
        ("non_field_errors" if name == "__all__" else name): list(errors)
        for name, errors in form.errors.items()
    }


# --- Pending operations: re-apply and bulk decisions ------------------------------------------


class ReapplySerializer(serializers.Serializer):
    confirm = serializers.BooleanField(
        help_text="Must be true: you reviewed the target's current state (the detail's "
        "diff and drift) and apply the operation over it deliberately."
    )
    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=1000, help_text="Optional, kept with the decision."
    )

    def validate_confirm(self, value: bool) -> bool:
        if not value:
            raise serializers.ValidationError(
                "Confirm that you reviewed the current state first (confirm: true)."
            )
        return value


class BulkDecisionSerializer(serializers.Serializer):
    """Validated by the console's bulk form (the selection, and a reason to reject)."""

    decision = serializers.ChoiceField(choices=["approve", "reject"])
    ids = serializers.ListField(
        child=serializers.UUIDField(),
        min_length=1,
        max_length=BULK_LIMIT,
        help_text=f"The pending operations to decide (at most {BULK_LIMIT}); repeats count once.",
    )
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=1000,
        help_text="Required to reject; ignored when approving (as in the console).",
    )

    def validate(self, attrs):
        form = BulkDecisionForm(
            MultiValueDict(
                {
                    "decision": [attrs["decision"]],
                    "ids": [str(pk) for pk in attrs["ids"]],
                    "reason": [attrs.get("reason", "")],
                }
            )
        )
        if not form.is_valid():
            raise serializers.ValidationError(_form_errors(form))
        return form.cleaned_data


class BulkOutcomeSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    outcome = serializers.ChoiceField(
        choices=["decided", "refused", "not_found"],
        help_text="decided: the service took the decision (see operation_status); refused: "
        "a rule refused it (four eyes, already decided); not_found: no such operation.",
    )
    http_status = serializers.IntegerField(
        help_text="The status the single-operation endpoint would have answered: 200, "
        "403, 404, 409 (refused, or approved but not applied: conflict or failure)."
    )
    detail = serializers.CharField(help_text="What happened, for a person (the console's message).")
    operation_status = serializers.CharField(
        allow_null=True, help_text="The operation's status afterwards; null if it does not exist."
    )


class BulkResultSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject"])
    results = BulkOutcomeSerializer(many=True, help_text="One per distinct id, in the order sent.")
    done = serializers.IntegerField(help_text="Decided without a problem.")
    failed = serializers.IntegerField(help_text="Refused, or approved but not applied.")
    missing = serializers.IntegerField(help_text="Ids of no pending operation.")


# --- Flagged reviews -----------------------------------------------------------------------------


class ChangeSetRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    source = serializers.CharField(help_text="scim, bulk, console, api, admin, system or signin.")
    client = ClientRefSerializer(allow_null=True, help_text="The SCIM client that made it.")
    operator = serializers.CharField(allow_null=True, help_text="The operator who made it.")
    actor = serializers.CharField(allow_blank=True, help_text="Who made it, as recorded.")


class RecordSummarySerializer(serializers.Serializer):
    action = serializers.CharField(help_text="create, replace, patch or delete.")
    resource_type = serializers.CharField()
    resource_id = serializers.UUIDField()
    resource_name = serializers.CharField(allow_blank=True)


class ReviewSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField(help_text="open, accepted or rolled_back.")
    reasons = serializers.ListField(child=serializers.CharField(), help_text="Why it was flagged.")
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    decided_by = serializers.CharField(allow_null=True)
    change_set = ChangeSetRefSerializer()
    record_count = serializers.IntegerField(help_text="Resources the change set touched.")
    first_record = RecordSummarySerializer(allow_null=True)


class ChangeMemberSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.ChoiceField(choices=["User", "Group"])
    display = serializers.CharField(
        allow_blank=True, help_text="The name the change carried, else the current one."
    )


class ChangeRecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.CharField(help_text="create, replace, patch or delete.")
    resource_type = serializers.CharField()
    resource_id = serializers.UUIDField()
    resource_name = serializers.CharField(allow_blank=True)
    diff = AttributeChangeSerializer(many=True, help_text="Before against after, attribute by attribute.")
    members_added = ChangeMemberSerializer(many=True, help_text="The first 200.")
    members_added_count = serializers.IntegerField()
    members_removed = ChangeMemberSerializer(many=True, help_text="The first 200.")
    members_removed_count = serializers.IntegerField()


class RollbackStepSerializer(serializers.Serializer):
    change_set = serializers.IntegerField(help_text="The change set this step undoes.")
    record = serializers.IntegerField(help_text="The change record this step undoes.")
    description = serializers.CharField()
    conflict = serializers.CharField(
        allow_blank=True, help_text="Why the step meets a changed state; rolling back needs force."
    )
    blocked = serializers.BooleanField(help_text="A conflict even force cannot override.")


class RolledBackBySerializer(serializers.Serializer):
    rollback = serializers.IntegerField(help_text="The change set that undid it.")
    forced = serializers.BooleanField()


class ReviewDetailSerializer(ReviewSerializer):
    records = ChangeRecordSerializer(many=True)
    rolled_back_by = RolledBackBySerializer(allow_null=True)
    rollback_of = serializers.IntegerField(
        allow_null=True, help_text="The change set this one rolled back, if it is a rollback."
    )
    rollback_job = serializers.UUIDField(
        allow_null=True, help_text="The rollback job undoing it now, if any."
    )
    rollback_steps = RollbackStepSerializer(
        many=True, help_text="What rolling it back would do now (empty once rolled back)."
    )
    rollback_conflicts = serializers.IntegerField(help_text="Steps that need force.")
    rollback_blocked = serializers.IntegerField(help_text="Steps that refuse the rollback.")


class RollbackSerializer(serializers.Serializer):
    force = serializers.BooleanField(
        default=False, help_text="Overwrite later changes to the resources (conflicts)."
    )


class RolledBackSerializer(serializers.Serializer):
    change_set = serializers.IntegerField(help_text="The change set undone.")
    rollback = serializers.IntegerField(help_text="The new change set that undid it.")
    forced = serializers.BooleanField()
    held_operations = serializers.ListField(
        child=serializers.UUIDField(),
        help_text="Steps policy held as pending operations (another approver decides them).",
    )


class RollbackJobSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField(help_text="queued, running, done or failed.")
    operator = serializers.CharField()
    force = serializers.BooleanField()
    total = serializers.IntegerField(help_text="Change sets to undo.")
    done = serializers.IntegerField(help_text="Change sets undone so far.")
    percent = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True, help_text="Why it stopped (failed).")
    failed_change_set = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class RollbackJobItemSerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="0 is undone first (the newest change set).")
    change_set = serializers.IntegerField()
    rollback = serializers.IntegerField(allow_null=True, help_text="The change set that undid it.")
    held_operations = serializers.ListField(child=serializers.UUIDField())


class RollbackJobDetailSerializer(RollbackJobSerializer):
    items = RollbackJobItemSerializer(
        many=True, help_text="Once the job has ended: its first 500 change sets; empty while it runs."
    )


class RollbackResultSerializer(serializers.Serializer):
    rolled_back = RolledBackSerializer(
        many=True, help_text="Undone in this request (empty when a job runs it)."
    )
    job = RollbackJobSerializer(
        allow_null=True, help_text="The background job of a large rollback (202); follow its Location."
    )


class RollbackRangeSerializer(serializers.Serializer):
    """A SCIM client and a time range, validated by the console's mass rollback form."""

    client = serializers.UUIDField(help_text="The SCIM client whose change sets to undo.")
    since = serializers.DateTimeField(help_text="Change sets made at or after this time …")
    until = serializers.DateTimeField(help_text="… and before this one.")

    def validate(self, attrs):
        form = MassRollbackForm(
            {"client": str(attrs["client"]), "since": attrs["since"], "until": attrs["until"]}
        )
        if not form.is_valid():
            raise serializers.ValidationError(_form_errors(form))
        return form.cleaned_data


class RollbackPreviewSerializer(serializers.Serializer):
    client = ClientRefSerializer()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    change_sets = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Every change set the rollback would undo, newest first: send them back to confirm.",
    )
    steps = RollbackStepSerializer(many=True, help_text="The steps of the first 200 change sets.")
    more_steps = serializers.BooleanField(help_text="More change sets than the steps show.")
    conflicts = serializers.IntegerField(help_text="Steps that need force.")
    blocked = serializers.IntegerField(help_text="Steps that refuse the rollback.")
    runs_as_job = serializers.BooleanField(help_text="Confirming starts a background job (202).")


class MassRollbackSerializer(RollbackRangeSerializer):
    change_sets = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        allow_empty=True,
        help_text="The change sets the preview listed; if the range holds others now: 409.",
    )
    force = serializers.BooleanField(default=False, help_text="Overwrite later changes (conflicts).")

    def validate(self, attrs):
        data = super().validate(attrs)
        return {**data, "change_sets": attrs["change_sets"], "force": attrs["force"]}


# --- Quarantines --------------------------------------------------------------------------------


class QuarantineSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField(help_text="active, released or discarded.")
    client = ClientRefSerializer()
    reason = serializers.CharField(help_text="Why the circuit breaker tripped.")
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    ended_by = serializers.CharField(allow_null=True)
    held = serializers.IntegerField(help_text="Operations it still holds.")


class HeldKindSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["deletion", "deactivation", "member_removal"])
    label = serializers.CharField()
    count = serializers.IntegerField()


class QuarantineDetailSerializer(QuarantineSerializer):
    held_operations = PendingOperationSerializer(
        many=True, help_text="What it holds, in the order it arrived (the order a release applies)."
    )
    decided_operations = PendingOperationSerializer(many=True, help_text="The first 200 decided.")
    by_kind = HeldKindSerializer(many=True)


class QuarantineReleaseSerializer(serializers.Serializer):
    all = serializers.BooleanField(
        default=False, help_text="Apply every held operation (the ETag you send names them)."
    )
    pending = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        help_text="Or: exactly the held operations to apply; the others are discarded.",
    )

    def validate(self, attrs):
        pending = list(dict.fromkeys(attrs.get("pending") or []))
        if attrs["all"] == bool(pending):
            raise serializers.ValidationError(
                {"pending": ["Send either all: true or the held operations to apply (pending)."]}
            )
        return {"all": attrs["all"], "pending": pending}


class QuarantineReleaseResultSerializer(serializers.Serializer):
    quarantine = QuarantineDetailSerializer()
    approved = serializers.ListField(child=serializers.UUIDField(), help_text="Approved, to be applied.")
    awaiting_second_approver = serializers.ListField(
        child=serializers.UUIDField(),
        help_text="Held by a rule that asks for two approvers: this release is one approval.",
    )
    discarded = serializers.ListField(child=serializers.UUIDField())
