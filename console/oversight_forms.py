"""Filters and forms for the oversight pages: pending operations, flagged changes,
quarantines, rollbacks and policies.

Filtersets declare what an operator may filter a queue on; forms parse what an
operator typed. Decisions themselves are the oversight services' (they check
transitions and four eyes); the policy forms validate attribute names against
the SCIM schemas so a rule can only name attributes a change can carry.
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
from provisioning.oversight.models import CircuitBreaker, PendingOperation, PolicyRule, Review
from provisioning.scim.errors import ScimError
from provisioning.scim.schema import GROUP_SCHEMA, USER_SCHEMA

from .filters import LiveFilterSet

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
    since = forms.DateTimeField(
        label="From",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    until = forms.DateTimeField(
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


def canonical_attribute(name: str) -> str:
    """``name`` as policy matching sees a changed attribute: a top-level core attribute
    (``active``) or an extension attribute (``urn:...:User:manager``), canonically spelled."""
    name = name.strip()
    for schema in (USER_SCHEMA, GROUP_SCHEMA):
        try:
            path = schema.resolve(name)
        except ScimError:
            continue
        if path.sub_attribute is not None:
            raise ValidationError(
                f"“{name}”: name the whole attribute ({path.attribute.name}); "
                "rules match top-level attributes."
            )
        if path.attribute.mutability == "readOnly":
            raise ValidationError(f"“{name}” is read-only; no client can change it.")
        return str(path)
    raise ValidationError(f"“{name}” is not a User or Group attribute.")


class PolicyRuleForm(forms.ModelForm):
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

    class Meta:
        model = PolicyRule
        fields = [
            "name",
            "kind",
            "action",
            "enabled",
            "clients",
            "attributes",
            "applies_to_console",
            "two_approvers",
        ]
        labels = {
            "kind": "Applies to",
            "clients": "Only for these SCIM clients",
            "applies_to_console": "Also police console actions",
        }
        help_texts = {
            "clients": "None chosen: every SCIM client.",
            "applies_to_console": "Operators' own changes in the console are checked too.",
        }
        widgets = {"clients": forms.CheckboxSelectMultiple}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["clients"].queryset = _clients()
        if self.instance.pk and not self.is_bound:
            self.initial["attributes"] = "\n".join(self.instance.attributes)

    def clean_attributes(self) -> list[str]:
        names, errors = [], []
        for line in (self.cleaned_data.get("attributes") or "").splitlines():
            if not line.strip():
                continue
            try:
                names.append(canonical_attribute(line))
            except ValidationError as error:
                errors.extend(error.messages)
        if errors:
            raise ValidationError(errors)
        return list(dict.fromkeys(names))

    def clean(self):
        data = super().clean()
        kind, action = data.get("kind"), data.get("action")
        missing = "attributes" not in self.errors and not data.get("attributes")
        if kind == PolicyRule.Kind.ATTRIBUTE_CHANGE and missing:
            self.add_error("attributes", "Name at least one attribute for this kind of rule.")
        if kind and kind != PolicyRule.Kind.ATTRIBUTE_CHANGE and data.get("attributes"):
            self.add_error("attributes", "Only “Change chosen attributes” rules name attributes.")
        if data.get("two_approvers") and action and action != "hold":
            self.add_error("two_approvers", "Two approvers apply only to rules that hold.")
        return data


class CircuitBreakerForm(forms.ModelForm):
    class Meta:
        model = CircuitBreaker
        fields = [
            "enabled",
            "max_operations",
            "window_minutes",
            "max_percent",
            "min_directory_size",
        ]
        labels = {
            "max_operations": "Operations",
            "window_minutes": "Window (minutes)",
            "max_percent": "Percent of the directory",
            "min_directory_size": "Percentage applies from",
        }

    def clean_max_operations(self) -> int:
        value = self.cleaned_data["max_operations"]
        if value < 1:
            raise ValidationError("At least 1.")
        return value

    def clean_window_minutes(self) -> int:
        value = self.cleaned_data["window_minutes"]
        if not 1 <= value <= 7 * 24 * 60:
            raise ValidationError("Between 1 minute and 7 days.")
        return value

    def clean_max_percent(self):
        value = self.cleaned_data["max_percent"]
        if not 0 < value <= 100:
            raise ValidationError("More than 0 and at most 100.")
        return value
