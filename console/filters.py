"""Filter forms for the console listings (django-filter), validated on the server.

A filterset declares what an operator may filter on; the query itself is the
directory selector's, so the console and any later API read the same way.
"""

from __future__ import annotations

import uuid
from datetime import UTC

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models.functions import Lower
from django.urls import reverse

from provisioning.access.models import ScimClient
from provisioning.directory import selectors
from provisioning.directory.models import Group, User

ACTIVE_CHOICES = [("yes", "Active"), ("no", "Deactivated")]


class LiveFilterSet(django_filters.FilterSet):
    """Filters that refresh the results as the operator types or chooses, via htmx.

    The search box waits for a pause in typing; a select refreshes on change; a
    newer request replaces one still in flight. Without JavaScript the form's
    submit button does the same with a full page.
    """

    url_name: str

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        live = {
            "hx-get": reverse(self.url_name),
            "hx-include": "closest form",
            "hx-sync": "closest form:replace",
        }
        for name, field in self.form.fields.items():
            trigger = "input changed delay:300ms, search" if name == "q" else "change"
            field.widget.attrs.update(live, **{"hx-trigger": trigger})


class GroupField(forms.CharField):
    """A group named by its id or its displayName (case-insensitively); unknown: an error."""

    def clean(self, value):
        text = (super().clean(value) or "").strip()
        if not text:
            return None
        try:
            group = selectors.group_get(uuid.UUID(text))
        except ValueError:
            group = selectors.group_named(text)
        if group is None:
            raise forms.ValidationError("No group with this id or displayName.")
        return group


class GroupReferenceFilter(django_filters.Filter):
    field_class = GroupField


class UserFilter(LiveFilterSet):
    url_name = "console:user_list"

    q = django_filters.CharFilter(
        label="Search",
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "userName, name, email or externalId",
                "autocomplete": "off",
            }
        ),
    )
    active = django_filters.ChoiceFilter(label="Status", choices=ACTIVE_CHOICES, empty_label="Any")
    source = django_filters.ModelChoiceFilter(
        label="Source client",
        queryset=ScimClient.objects.only("id", "name").order_by(Lower("name")),
        empty_label="Any client",
    )
    # A text field, not a list of every group: a directory can hold thousands of them.
    group = GroupReferenceFilter(
        label="Group",
        widget=forms.TextInput(attrs={"placeholder": "displayName or id", "autocomplete": "off"}),
    )

    class Meta:
        model = User
        fields: list[str] = []

    def filter_queryset(self, queryset):
        # Invalid fields are absent from cleaned_data: they are ignored and shown as errors.
        data = self.form.cleaned_data
        active = {"yes": True, "no": False}.get(data.get("active") or "")
        return selectors.user_listing(
            search=data.get("q") or "",
            active=active,
            source_id=data["source"].pk if data.get("source") else None,
            group_id=data["group"].pk if data.get("group") else None,
        )


class GroupFilter(LiveFilterSet):
    url_name = "console:group_list"

    q = django_filters.CharFilter(
        label="Search",
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "displayName or externalId",
                "autocomplete": "off",
            }
        ),
    )

    class Meta:
        model = Group
        fields: list[str] = []

    def filter_queryset(self, queryset):
        return selectors.group_listing(search=self.form.cleaned_data.get("q") or "")


class UtcDateTimeField(forms.DateTimeField):
    """A date and time, as UTC. An offset the database cannot store (PostgreSQL takes at
    most ±15:59) or a time that leaves the calendar once moved to UTC is a form error,
    not a server error."""

    def to_python(self, value):
        result = super().to_python(value)
        if result is None:
            return result
        try:
            return result.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValidationError(
                "Enter a date and time that can be expressed in UTC.", code="invalid"
            ) from None


class UtcDateTimeFilter(django_filters.DateTimeFilter):
    field_class = UtcDateTimeField
