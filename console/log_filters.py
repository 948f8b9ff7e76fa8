"""Filter forms for the audit log and the request log (django-filter), validated on the server.

The queries are ``provisioning.audit.selectors``'s; a filterset only parses the
form and passes the values on, so the page, its htmx results and its exports
read exactly the same rows.
"""

from __future__ import annotations

import uuid

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models.functions import Lower

from provisioning.access.models import ScimClient
from provisioning.audit import selectors
from provisioning.audit.models import AuditEntry, RequestLog

from .filters import LiveFilterSet, UtcDateTimeFilter

# What an audit entry may be about: directory resources first, then configuration.
RESOURCE_TYPE_CHOICES = [
    ("User", "User"),
    ("Group", "Group"),
    ("directory.membership", "Group membership"),
    ("access.scimclient", "SCIM client"),
    ("access.scimtoken", "SCIM token"),
    ("access.role", "SCIM role"),
    ("oversight.policyrule", "Policy rule"),
    ("oversight.circuitbreaker", "Circuit breaker"),
    ("oversight.quarantine", "Quarantine"),
    ("events.eventstream", "Event stream"),
    ("auth.user", "Operator"),
    ("auth.group", "Operator role"),
]
ACTION_CHOICES = [
    ("create", "Create"),
    ("update", "Update"),
    ("delete", "Delete"),
    # Operator sign-in events (provisioning/access/operator_signin.py).
    ("access", "Sign-in and security"),
]
STATUS_CLASS_CHOICES = [
    ("2", "2xx success"),
    ("3", "3xx"),
    ("4", "4xx client error"),
    ("5", "5xx server error"),
]
METHOD_CHOICES = [(m, m) for m in ("GET", "POST", "PUT", "PATCH", "DELETE")]
# Text boxes refresh after a pause in typing, like the listings' search box.
TYPING_TRIGGER = "input changed delay:400ms, search"


def _datetime_widget() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def _clients():
    return ScimClient.objects.only("id", "name").order_by(Lower("name"))


class LogFilterSet(LiveFilterSet):
    """Text fields wait for a pause in typing; everything else refreshes on change."""

    text_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.text_fields:
            self.form.fields[name].widget.attrs["hx-trigger"] = TYPING_TRIGGER

    def filter_values(self) -> dict:
        """The cleaned filters that are set (invalid ones are absent and shown as errors)."""
        return {k: v for k, v in self.form.cleaned_data.items() if v not in (None, "")}


class AuditFilter(LogFilterSet):
    url_name = "console:audit_list"
    text_fields = ("q", "actor", "resource")

    q = django_filters.CharFilter(
        label="Search",
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "Changed values, names, ids",
                "autocomplete": "off",
            }
        ),
    )
    actor = django_filters.CharFilter(
        label="Operator",
        widget=forms.TextInput(attrs={"placeholder": "username", "autocomplete": "off"}),
    )
    client = django_filters.ModelChoiceFilter(
        label="SCIM client", queryset=_clients(), empty_label="Any client"
    )
    resource_type = django_filters.ChoiceFilter(
        label="Resource type", choices=RESOURCE_TYPE_CHOICES, empty_label="Any type"
    )
    resource = django_filters.CharFilter(
        label="Resource",
        widget=forms.TextInput(
            attrs={"placeholder": "id, userName or displayName", "autocomplete": "off"}
        ),
    )
    action = django_filters.ChoiceFilter(
        label="Action", choices=ACTION_CHOICES, empty_label="Any action"
    )
    since = UtcDateTimeFilter(label="From (UTC)", widget=_datetime_widget())
    until = UtcDateTimeFilter(label="Until (UTC)", widget=_datetime_widget())

    class Meta:
        model = AuditEntry
        fields: list[str] = []

    def arguments(self) -> dict | None:
        """The selector arguments of the valid filters; None when nothing can match
        (an operator name that is no operator)."""
        data = self.filter_values()
        arguments: dict = {
            "client": data.get("client"),
            "resource_type": data.get("resource_type"),
            "action": data.get("action"),
            "since": data.get("since"),
            "until": data.get("until"),
            "text": data.get("q", "").strip() or None,
        }
        if data.get("actor"):
            operator = (
                get_user_model()
                .objects.filter(username__iexact=data["actor"].strip())
                .values_list("pk", flat=True)
                .first()
            )
            if operator is None:
                return None
            arguments["actor"] = operator
        resource = data.get("resource", "").strip()
        if resource:
            # An id (a UUID, or a number for roles and tokens) or a userName/displayName.
            try:
                arguments["resource_id"] = str(uuid.UUID(resource))
            except ValueError:
                if resource.isdecimal():
                    arguments["resource_id"] = resource
                else:
                    arguments["resource_name"] = resource
        return arguments

    def log(self) -> selectors.AuditLog:
        """The audit log under the valid filters: entries and directory change records."""
        self.is_valid()
        arguments = self.arguments()
        if arguments is None:
            return selectors.AuditLog(None, None)
        return selectors.audit_log(**arguments)

    def filter_queryset(self, queryset):
        arguments = self.arguments()
        if arguments is None:
            return queryset.none()
        return selectors.audit_entries(**arguments)


class RequestLogFilter(LogFilterSet):
    url_name = "console:request_list"
    text_fields = ("path",)

    client = django_filters.ModelChoiceFilter(
        label="SCIM client", queryset=_clients(), empty_label="Any client"
    )
    status = django_filters.ChoiceFilter(
        label="Status", choices=STATUS_CLASS_CHOICES, empty_label="Any status"
    )
    method = django_filters.ChoiceFilter(
        label="Method", choices=METHOD_CHOICES, empty_label="Any method"
    )
    path = django_filters.CharFilter(
        label="Path contains",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "/Users", "autocomplete": "off"}
        ),
    )
    since = UtcDateTimeFilter(label="From (UTC)", widget=_datetime_widget())
    until = UtcDateTimeFilter(label="Until (UTC)", widget=_datetime_widget())

    class Meta:
        model = RequestLog
        fields: list[str] = []

    def filter_queryset(self, queryset):
        data = self.filter_values()
        return selectors.request_logs(
            client=data.get("client"),
            status_class=data.get("status"),
            method=data.get("method"),
            path=data.get("path", "").strip() or None,
            since=data.get("since"),
            until=data.get("until"),
        )
