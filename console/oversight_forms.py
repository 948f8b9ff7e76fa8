"""Filters and forms for the oversight pages: pending operations, flagged changes,
quarantines, rollbacks and policies.

Filtersets declare what an operator may filter a queue on; forms parse what an
operator typed. Decisions themselves are the oversight services' (they check
transitions and four eyes); policy rules and thresholds are validated by
``provisioning.oversight.rules``, whose errors the views put on the form fields.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef
from django.db.models.functions import Lower
from django.utils import timezone

from provisioning.access.models import ScimClient
from provisioning.audit.models import ChangeRecord
from provisioning.oversight import rules
from provisioning.oversight.models import (
    CircuitBreaker,
    PendingOperation,
    PolicyRule,
    Review,
    RuleAction,
)

from .filters import LiveFilterSet, UtcDateTimeField

RESOURCE_TYPE_CHOICES = [("User", "User"), ("Group", "Group")]
PENDING_ACTION_CHOICES = [("delete", "Delete"), ("patch", "Patch"), ("replace", "Replace")]


def _clients():
    return ScimClient.objects.only("id", "name").order_by(Lower("name"))


class PendingFilter(LiveFilterSet):
    """The pending-operations queue. Without a status in the query it shows what waits."""

    url_name = "console:pending_list"

    status = django_filters.ChoiceFilter(
        choices=PendingOperation.Status.choices, empty_label="Any status"
    )
    client = django_filters.ModelChoiceFilter(
        label="SCIM client", queryset=_clients(), empty_label="Any client"
    )
    resource_type = django_filters.ChoiceFilter(
        label="Resource", choices=RESOURCE_TYPE_CHOICES, empty_label="Users and groups"
    )
    action = django_filters.ChoiceFilter(choices=PENDING_ACTION_CHOICES, empty_label="Any action")

    class Meta:
        model = PendingOperation
        fields: list[str] = []

    def __init__(self, data=None, *args, **kwargs):
        if data is not None and "status" not in data:
            data = data.copy()
            data["status"] = PendingOperation.Status.PENDING
        super().__init__(data, *args, **kwargs)

    @property
    def waiting_only(self) -> bool:
        self.is_valid()  # validates once; an invalid status is left out
        return self.form.cleaned_data.get("status") == PendingOperation.Status.PENDING

    def filter_queryset(self, queryset):
        data = self.form.cleaned_data
        queryset = PendingOperation.objects.select_related("client", "operator", "decided_by")
        if data.get("status"):
            queryset = queryset.filter(status=data["status"])
        if data.get("client"):
            queryset = queryset.filter(client=data["client"])
        if data.get("resource_type"):
            queryset = queryset.filter(resource_type=data["resource_type"])
        if data.get("action"):
            queryset = queryset.filter(action=data["action"])
        return queryset.prefetch_related("approvals__operator")


class ReviewFilter(LiveFilterSet):
    """The flagged-changes queue; without a status in the query, the open reviews."""

    url_name = "console:review_list"

    status = django_filters.ChoiceFilter(choices=Review.Status.choices, empty_label="Any status")
    client = django_filters.ModelChoiceFilter(
        label="SCIM client", queryset=_clients(), empty_label="Any client"
    )
    resource_type = django_filters.ChoiceFilter(
        label="Resource", choices=RESOURCE_TYPE_CHOICES, empty_label="Users and groups"
    )

    class Meta:
        model = Review
        fields: list[str] = []

    def __init__(self, data=None, *args, **kwargs):
        if data is not None and "status" not in data:
            data = data.copy()
            data["status"] = Review.Status.OPEN
        super().__init__(data, *args, **kwargs)

    @property
    def open_only(self) -> bool:
        self.is_valid()  # validates once; an invalid status is left out
        return self.form.cleaned_data.get("status") == Review.Status.OPEN

    def filter_queryset(self, queryset):
        data = self.form.cleaned_data
        queryset = Review.objects.select_related(
            "change_set", "change_set__scim_client", "change_set__operator", "decided_by"
        )
        if data.get("status"):
            queryset = queryset.filter(status=data["status"])
        if data.get("client"):
            queryset = queryset.filter(change_set__scim_client=data["client"])
        if data.get("resource_type"):
            records = ChangeRecord.objects.filter(
                change_set=OuterRef("change_set_id"), resource_type=data["resource_type"]
            )
            queryset = queryset.filter(Exists(records.order_by()))
        return queryset


class RejectForm(forms.Form):
    reason = forms.CharField(
        max_length=1000,
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "Why not?"}),
        error_messages={"required": "Give a reason for rejecting."},
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("Give a reason for rejecting.")
        return reason


class BulkDecisionForm(forms.Form):
    """A selection of pending operations and what to do with all of them."""

    DECISIONS = [("approve", "Approve"), ("reject", "Reject")]

    decision = forms.ChoiceField(choices=DECISIONS)
    ids = forms.TypedMultipleChoiceField(coerce=str, required=True)
    reason = forms.CharField(max_length=1000, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Any UUID may be chosen; what exists and may be decided is the service's to say.
        self.fields["ids"].valid_value = lambda value: True
        self.fields["ids"].error_messages["required"] = "Select at least one operation."

    def clean_ids(self) -> list:
        ids = []
        for value in self.cleaned_data["ids"]:
            try:
                ids.append(uuid.UUID(value))
            except ValueError:
                raise ValidationError("The selection is not valid.") from None
        return list(dict.fromkeys(ids))

    def clean(self):
        data = super().clean()
        if data.get("decision") == "reject" and not (data.get("reason") or "").strip():
            self.add_error("reason", "Give a reason for rejecting.")
        return data


class MassRollbackForm(forms.Form):
    """A SCIM client and a time range: every change set it made in that range."""

    client = forms.ModelChoiceField(label="SCIM client", queryset=_clients())
    since = UtcDateTimeField(
        label="From",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    until = UtcDateTimeField(
        label="Until",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Change sets made at or after “From” and before “Until”.",
    )

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            self.add_error("until", "“Until” must be after “From”.")
        return data

    @classmethod
    def initial_range(cls) -> dict:
        now = timezone.localtime().replace(second=0, microsecond=0)
        return {"since": now - timedelta(hours=1), "until": now + timedelta(minutes=1)}


class PolicyRuleForm(forms.Form):
    """A policy rule as the operator typed it; ``provisioning.oversight.rules`` validates it."""

    name = forms.CharField(max_length=PolicyRule._meta.get_field("name").max_length)
    kind = forms.ChoiceField(
        label="Applies to", choices=[("", "---------"), *PolicyRule.Kind.choices]
    )
    attributes = forms.CharField(
        label="Attributes",
        required=False,
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "placeholder": "title\nurn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            }
        ),
        help_text="For “Change chosen attributes”: one attribute per line (active, emails, "
        "members, or an enterprise extension attribute).",
    )
    action = forms.ChoiceField(choices=RuleAction.choices, initial=RuleAction.FLAG)
    enabled = forms.BooleanField(required=False, initial=True)
    clients = forms.ModelMultipleChoiceField(
        label="Only for these SCIM clients",
        queryset=_clients(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None chosen: every SCIM client.",
    )
    applies_to_console = forms.BooleanField(
        label="Also police console actions",
        required=False,
        help_text="Operators' own changes in the console are checked too.",
    )
    two_approvers = forms.BooleanField(
        required=False,
        help_text="Require two different approvers for operations this rule holds.",
    )

    @staticmethod
    def initial_for(rule: PolicyRule) -> dict:
        return {
            "name": rule.name,
            "kind": rule.kind,
            "attributes": "\n".join(rule.attributes),
            "action": rule.action,
            "enabled": rule.enabled,
            "clients": [client.pk for client in rule.clients.all()],
            "applies_to_console": rule.applies_to_console,
            "two_approvers": rule.two_approvers,
        }

    def service_fields(self) -> dict:
        """The keyword arguments of ``policy_rule_create`` / ``policy_rule_update``."""
        data = dict(self.cleaned_data)
        data["attributes"] = [line for line in data["attributes"].splitlines() if line.strip()]
        return data


class CircuitBreakerForm(forms.Form):
    """Deletion-safety settings (the defaults, or one client's); ``provisioning.oversight.
    rules`` checks their ranges."""

    enabled = forms.BooleanField(required=False, initial=True, label="Circuit breaker on")
    max_operations = forms.IntegerField(
        label="Operations",
        min_value=0,
        help_text="Destructive operations (deletions, deactivations, member removals) per "
        "client within the window.",
    )
    window_minutes = forms.IntegerField(label="Window (minutes)", min_value=0)
    max_percent = forms.DecimalField(
        label="Percent",
        max_digits=5,
        decimal_places=2,
        help_text="Destructive operations as a percentage of the base below.",
    )
    percent_of = forms.ChoiceField(label="Percent of", choices=CircuitBreaker.Base.choices)
    percent_window_minutes = forms.IntegerField(label="Percentage window (minutes)", min_value=0)
    min_directory_size = forms.IntegerField(
        label="Percentage applies from",
        min_value=0,
        help_text="The percentage applies only once the base has this many users.",
    )
    churn_window_minutes = forms.IntegerField(
        label="Churn window (minutes)",
        min_value=0,
        required=False,
        help_text="Destroying what the same client created (or a membership it added) this "
        "recently does not count. Empty: the window above.",
    )
    deletion_delay_days = forms.IntegerField(
        label="Deactivate before delete (days)",
        min_value=0,
        help_text="A SCIM DELETE of a user deactivates it; the hard delete follows after this "
        "many days unless an operator restores the user. 0: delete at once.",
    )

    @staticmethod
    def initial_for(breaker: CircuitBreaker) -> dict:
        return {name: getattr(breaker, name) for name in rules.BREAKER_FIELDS}
