"""Representations and requests of the configuration endpoints: SCIM clients, their
tokens, SCIM roles, policy rules and the circuit breaker (event streams:
``serializers_events``). A raw token appears only in the answer that creates it
(``IssuedTokenSerializer``); no other shape has a field for it, or for a digest."""

from __future__ import annotations

from rest_framework import serializers

from console.access_forms import GRACE_CHOICES
from provisioning.access.models import ALL_PERMISSIONS, ScimClient
from provisioning.oversight.models import CircuitBreaker, PolicyRule, RuleAction


def networks_field(help_text: str) -> serializers.ListField:
    """The CIDRs a credential may be used from, as a changing call takes them (at most
    100, each as long as an IPv6 network can be written)."""
    return serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=100, help_text=help_text
    )


class RoleRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    built_in = serializers.BooleanField()


class ClientHealthSerializer(serializers.Serializer):
    requests = serializers.IntegerField(help_text="Requests in the last 24 hours.")
    errors = serializers.IntegerField(help_text="Of those, answered 400 or above.")
    error_rate = serializers.FloatField(
        allow_null=True, help_text="Percent; null without requests."
    )
    last_error_at = serializers.DateTimeField(
        allow_null=True, help_text="The latest error ever logged."
    )
    last_error_status = serializers.IntegerField(allow_null=True)


class ScimClientSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    role = RoleRefSerializer()
    auth_methods = serializers.ListField(child=serializers.CharField())
    active_tokens = serializers.IntegerField(help_text="Tokens neither revoked nor expired.")
    denied_requests = serializers.IntegerField(help_text="Requests refused with 403.")
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    last_request_at = serializers.DateTimeField(allow_null=True)
    health = ClientHealthSerializer()


class ScimTokenSerializer(serializers.Serializer):
    """A token as it is listed: its public prefix, never the token or its digest."""

    id = serializers.IntegerField()
    prefix = serializers.CharField(help_text="The token's public prefix, as in the request log.")
    state = serializers.ChoiceField(choices=["active", "expired", "revoked"])
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    allowed_networks = serializers.ListField(child=serializers.CharField())
    last_used_at = serializers.DateTimeField(allow_null=True)
    last_used_address = serializers.CharField(allow_null=True)


class ScimClientDetailSerializer(ScimClientSerializer):
    tokens = ScimTokenSerializer(many=True, help_text="Newest first.")


class IssuedTokenSerializer(serializers.Serializer):
    """The one answer that carries a raw token: it is not stored and cannot be read again."""

    client = ScimClientDetailSerializer()
    token = ScimTokenSerializer()
    raw_token = serializers.CharField(
        help_text="The bearer token for the IdP. Shown once: store it now."
    )


class ClientCreateSerializer(serializers.Serializer):
    name = serializers.CharField(
        max_length=100, help_text="The IdP connection, e.g. Okta production."
    )
    role = serializers.IntegerField(help_text="The id of the SCIM role the client holds.")
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When the first token expires; null: never."
    )
    allowed_networks = networks_field("CIDRs the first token works from; empty: anywhere.")


class ClientRoleSerializer(serializers.Serializer):
    role = serializers.IntegerField(help_text="The id of the SCIM role the client now holds.")


class TokenIssueSerializer(serializers.Serializer):
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When the token expires; null: never."
    )
    allowed_networks = networks_field("CIDRs the token works from; empty: anywhere.")


GRACE_SECONDS = [int(value) for value, _label in GRACE_CHOICES if value]


class TokenRotateSerializer(serializers.Serializer):
    expire_old_in = serializers.ChoiceField(
        choices=GRACE_SECONDS,
        required=False,
        allow_null=True,
        help_text="Seconds the client's other active tokens keep working (the console's "
        "choices); null or absent: until revoked.",
    )


class ScimRoleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    built_in = serializers.BooleanField(help_text="Built-in: only its description changes.")
    permissions = serializers.ListField(
        child=serializers.CharField(), help_text='"User:read" style.'
    )
    own_resources_only = serializers.BooleanField()
    forbidden_attributes = serializers.ListField(child=serializers.CharField())
    protected_group_names = serializers.ListField(child=serializers.CharField())
    protect_privileged_groups = serializers.BooleanField()
    client_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ScimRoleDetailSerializer(ScimRoleSerializer):
    clients = serializers.ListField(
        child=serializers.DictField(child=serializers.CharField()),
        help_text="Clients holding the role ({id, name}), by name, at most 100.",
    )


class RoleWriteSerializer(serializers.Serializer):
    """What the console's role form edits (the services validate the values)."""

    name = serializers.CharField(max_length=64)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10000)
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=list(ALL_PERMISSIONS)), required=False, max_length=20
    )
    own_resources_only = serializers.BooleanField(required=False)
    forbidden_attributes = serializers.ListField(
        child=serializers.CharField(max_length=300), required=False, max_length=200
    )
    protected_group_names = serializers.ListField(
        child=serializers.CharField(max_length=300), required=False, max_length=200
    )


class RoleChangeSerializer(RoleWriteSerializer):
    """Only the fields sent change; a built-in role takes only ``description``."""

    name = serializers.CharField(max_length=64, required=False)


# --- Policy rules and the circuit breaker ------------------------------------------------------------


class ClientNameSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class PolicyRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=PolicyRule.Kind.choices)
    action = serializers.ChoiceField(choices=RuleAction.choices)
    enabled = serializers.BooleanField()
    clients = ClientNameSerializer(
        many=True, help_text="Only writes by these; empty: every client."
    )
    attributes = serializers.ListField(
        child=serializers.CharField(), help_text="For attribute_change rules: canonical names."
    )
    applies_to_console = serializers.BooleanField()
    two_approvers = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PolicyRuleWriteSerializer(serializers.Serializer):
    """What the console's rule form edits (``provisioning.oversight.rules`` validates it)."""

    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=PolicyRule.Kind.choices)
    action = serializers.ChoiceField(choices=RuleAction.choices, required=False)
    enabled = serializers.BooleanField(required=False)
    clients = serializers.ListField(
        child=serializers.UUIDField(), required=False, max_length=500, help_text="SCIM client ids."
    )
    attributes = serializers.ListField(
        child=serializers.CharField(max_length=300), required=False, max_length=100
    )
    applies_to_console = serializers.BooleanField(required=False)
    two_approvers = serializers.BooleanField(required=False)

    def validate_clients(self, value):
        found = {c.pk: c for c in ScimClient.objects.filter(pk__in=value)}
        missing = [str(pk) for pk in value if pk not in found]
        if missing:
            raise serializers.ValidationError(f"No SCIM client {', '.join(missing)}.")
        return [found[pk] for pk in dict.fromkeys(value)]


class PolicyRuleChangeSerializer(PolicyRuleWriteSerializer):
    """Only the fields sent change; the rule is validated as a whole."""

    name = serializers.CharField(max_length=100, required=False)
    kind = serializers.ChoiceField(choices=PolicyRule.Kind.choices, required=False)


class CircuitBreakerSerializer(serializers.Serializer):
    client = ClientNameSerializer(allow_null=True, help_text="Null: the default settings.")
    own = serializers.BooleanField(
        help_text="For a client: whether it has settings of its own (else the defaults apply)."
    )
    enabled = serializers.BooleanField()
    max_operations = serializers.IntegerField()
    window_minutes = serializers.IntegerField()
    max_percent = serializers.DecimalField(max_digits=5, decimal_places=2, coerce_to_string=False)
    percent_window_minutes = serializers.IntegerField()
    percent_of = serializers.ChoiceField(choices=CircuitBreaker.Base.choices)
    min_directory_size = serializers.IntegerField()
    churn_window_minutes = serializers.IntegerField(
        allow_null=True, help_text="Null: the breaker's window."
    )
    deletion_delay_days = serializers.IntegerField(help_text="0: delete at once.")
    updated_at = serializers.DateTimeField(allow_null=True)


class CircuitBreakerChangeSerializer(serializers.Serializer):
    """The console's breaker form; only the fields sent change (the service checks ranges)."""

    enabled = serializers.BooleanField(required=False)
    max_operations = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    window_minutes = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    max_percent = serializers.DecimalField(
        max_digits=5, decimal_places=2, required=False, coerce_to_string=False
    )
    percent_window_minutes = serializers.IntegerField(
        required=False, min_value=0, max_value=2**31 - 1
    )
    percent_of = serializers.ChoiceField(choices=CircuitBreaker.Base.choices, required=False)
    min_directory_size = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    churn_window_minutes = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=2**31 - 1
    )
    deletion_delay_days = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
