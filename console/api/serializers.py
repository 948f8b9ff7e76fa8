"""Representations of the management API (read-only shapes of what selectors return)."""

from __future__ import annotations

from rest_framework import serializers

from console.oversight_forms import RejectForm


class TokenSerializer(serializers.Serializer):
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The token's public prefix (scgop_<prefix>_...).")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(
        allow_null=True, help_text="Recorded at most once a minute."
    )


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=["viewer", "approver", "administrator"])
    authentication = serializers.ChoiceField(choices=["token", "session"])
    token = TokenSerializer(allow_null=True, help_text="The token in use; null for a session.")


class ClientRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class ApprovalSerializer(serializers.Serializer):
    operator = serializers.CharField(allow_null=True)
    at = serializers.DateTimeField()


class PendingOperationSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField(help_text="pending, approved, applied, conflict, failed, rejected, expired, discarded or reheld.")
    action = serializers.CharField(help_text="replace, patch or delete.")
    resource_type = serializers.CharField(help_text="User or Group.")
    resource_id = serializers.UUIDField()
    resource_label = serializers.CharField(allow_blank=True)
    client = ClientRefSerializer(allow_null=True, help_text="The SCIM client that asked.")
    requested_by = serializers.CharField(
        allow_null=True, help_text="The operator who asked (a console action), else null."
    )
    reasons = serializers.ListField(child=serializers.CharField(), help_text="Why it was held.")
    two_approvers = serializers.BooleanField()
    approvals = ApprovalSerializer(many=True)
    members_added_count = serializers.IntegerField()
    members_removed_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    decided_by = serializers.CharField(allow_null=True)
    decision_reason = serializers.CharField(allow_blank=True)
    result_detail = serializers.CharField(allow_blank=True)


class AttributeChangeSerializer(serializers.Serializer):
    attribute = serializers.CharField()
    kind = serializers.ChoiceField(choices=["added", "removed", "changed"])
    before = serializers.CharField(allow_null=True)
    after = serializers.CharField(allow_null=True)


class MemberSerializer(serializers.Serializer):
    id = serializers.CharField()
    is_group = serializers.BooleanField()
    display = serializers.CharField(allow_null=True, allow_blank=True)


class PendingOperationDetailSerializer(PendingOperationSerializer):
    base_version = serializers.IntegerField(help_text="The target's version when it was held.")
    current_version = serializers.IntegerField(
        allow_null=True, help_text="The target's version now; null if it no longer exists."
    )
    version_changed = serializers.BooleanField()
    diff = AttributeChangeSerializer(
        many=True, help_text="What approving changes: the target now against the proposal."
    )
    drift = AttributeChangeSerializer(
        many=True, help_text="What changed in the target since the operation was held."
    )
    members_added = MemberSerializer(many=True)
    members_removed = MemberSerializer(many=True)


class ApproveSerializer(serializers.Serializer):
    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=1000, help_text="Optional, kept with the decision."
    )


class RejectSerializer(serializers.Serializer):
    """Validated by the console's own reject form: the same rule, one implementation."""

    reason = serializers.CharField(max_length=1000, help_text="Why it is rejected (required).")

    def validate(self, attrs):
        form = RejectForm({"reason": attrs.get("reason", "")})
        if not form.is_valid():
            raise serializers.ValidationError({n: list(e) for n, e in form.errors.items()})
        return form.cleaned_data
