"""Forms for event streams and the delivery log. They parse what an operator typed; the
stream services validate it (URL guard, unique name, filters) and raise
``ValidationError`` keyed by field, which ``actions.add_service_errors`` puts back on
the form.
"""

from __future__ import annotations

from datetime import timedelta

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models.functions import Lower
from django.utils import timezone

from provisioning.access.models import ScimClient
from provisioning.events import selectors
from provisioning.events.models import Delivery, EventKind, EventStream
from provisioning.events.streams import FILTERABLE_KINDS, RESOURCE_TYPES

from .filters import UtcDateTimeField, UtcDateTimeFilter
from .log_filters import LogFilterSet

PAUSE_CHOICES = [
    (str(int(timedelta(hours=1).total_seconds())), "1 hour"),
    (str(int(timedelta(hours=6).total_seconds())), "6 hours"),
    (str(int(timedelta(hours=24).total_seconds())), "24 hours"),
    (str(int(timedelta(days=3).total_seconds())), "3 days"),
    (str(int(timedelta(days=7).total_seconds())), "7 days"),
]
KIND_LABELS = {
    EventKind.CREATE: "create",
    EventKind.PUT: "put (replace)",
    EventKind.PATCH: "patch (update)",
    EventKind.DELETE: "delete",
    EventKind.ACTIVATE: "activate",
    EventKind.DEACTIVATE: "deactivate",
    EventKind.ASYNC_RESPONSE: "asynchronous completion (bound client only)",
}


def _datetime_widget() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def _clients():
    return ScimClient.objects.only("id", "name").order_by(Lower("name"))


class StreamForm(forms.Form):
    """A stream's settings. Creating also asks for the method; editing keeps it (the
    credential belongs to it), and leaves the push Authorization header as it is unless
    a new value is typed or "remove" is ticked: the stored value is never shown."""

    name = forms.CharField(
        max_length=100,
        help_text="The receiving application, e.g. “HR system”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    method = forms.ChoiceField(
        label="Delivery",
        choices=EventStream.Method.choices,
        widget=forms.RadioSelect,
        help_text="SET push POSTs signed tokens (RFC 8935); webhooks POST JSON signed with a "
        "shared secret (Standard Webhooks); with poll the receiver fetches signed tokens "
        "(RFC 8936).",
    )
    endpoint_url = forms.CharField(
        label="Receiver URL",
        required=False,
        max_length=2000,
        widget=forms.URLInput(attrs={"placeholder": "https://app.example.com/scim-events"}),
        help_text="Push and webhook streams: where events are POSTed (https, a public "
        "address). Poll streams have none.",
    )
    authorization = forms.CharField(
        label="Authorization header",
        required=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "placeholder": "Bearer …"}),
        help_text="SET push only: sent with each event. Stored encrypted, never shown again.",
    )
    resource_types = forms.MultipleChoiceField(
        label="Resource types",
        choices=[(t, t) for t in RESOURCE_TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: all.",
    )
    event_kinds = forms.MultipleChoiceField(
        label="Events",
        choices=[(k.value, KIND_LABELS[k]) for k in FILTERABLE_KINDS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: all.",
    )
    payload = forms.ChoiceField(
        label="Payload",
        choices=EventStream.Payload.choices,
        initial=EventStream.Payload.NOTICE,
        help_text="Full events carry the resource's data; notices name the changed attributes.",
    )
    client = forms.ModelChoiceField(
        label="Bound SCIM client",
        queryset=ScimClient.objects.none(),
        required=False,
        empty_label="None",
        help_text="Asynchronous completions of this client's held writes go to this stream.",
    )
    pause_after = forms.TypedChoiceField(
        label="Pause when failing for",
        choices=PAUSE_CHOICES,
        coerce=int,
        initial=str(24 * 3600),
    )
    audience = forms.CharField(
        label="Audience (aud)",
        required=False,
        max_length=2000,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        help_text="The SET aud claim. Empty: the receiver URL (push) or the poll URL.",
    )

    def __init__(self, *args, stream: EventStream | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.stream = stream
        self.fields["client"].queryset = _clients()
        if stream is not None:
            del self.fields["method"]
            if stream.method != EventStream.Method.PUSH:
                del self.fields["authorization"]
            else:
                self.fields["authorization"].help_text = "Leave empty to keep the stored value" + (
                    " (one is set)." if stream.authorization else " (none is set)."
                )
                self.fields["remove_authorization"] = forms.BooleanField(
                    label="Remove the Authorization header", required=False
                )
            if stream.method == EventStream.Method.POLL:
                del self.fields["endpoint_url"]
            current = str(stream.pause_after_seconds)
            field = self.fields["pause_after"]
            if current not in dict(field.choices):
                # Set by the command or an earlier version: keep it choosable.
                field.choices = [(current, f"{stream.pause_after_seconds} seconds"), *field.choices]

    @classmethod
    def initial_for(cls, stream: EventStream) -> dict:
        return {
            "name": stream.name,
            "endpoint_url": stream.endpoint_url,
            "resource_types": stream.resource_types,
            "event_kinds": stream.event_kinds,
            "payload": stream.payload,
            "client": stream.client_id,
            "pause_after": str(stream.pause_after_seconds),
            "audience": stream.audience,
        }

    def service_fields(self) -> dict:
        """The cleaned values as ``create_stream``/``update_stream`` take them."""
        data = self.cleaned_data
        fields = {
            "name": data["name"],
            "resource_types": data["resource_types"],
            "event_kinds": data["event_kinds"],
            "payload": data["payload"],
            "client": data["client"],
            "pause_after": data["pause_after"],
            "audience": data["audience"],
        }
        if "endpoint_url" in self.fields:
            fields["endpoint_url"] = data["endpoint_url"]
        if self.stream is None:
            fields["method"] = data["method"]
            fields["authorization"] = data.get("authorization", "")
        elif "authorization" in self.fields:
            if data.get("remove_authorization"):
                fields["authorization"] = ""
            elif data.get("authorization"):
                fields["authorization"] = data["authorization"]
        return fields


class ReplayForm(forms.Form):
    since = UtcDateTimeField(
        label="Replay events since (UTC)",
        widget=_datetime_widget(),
        help_text="Every retained event from this time on is delivered again.",
    )

    def clean_since(self):
        since = self.cleaned_data["since"]
        if since > timezone.now():
            raise ValidationError("The start is in the future.")
        return since


class DeliveryFilter(LogFilterSet):
    """The delivery log: by stream, status, event, resource and the event's time."""

    url_name = "console:delivery_list"
    text_fields = ("resource",)

    stream = django_filters.ModelChoiceFilter(
        label="Stream",
        queryset=EventStream.objects.only("id", "name").order_by("name"),
        empty_label="Any stream",
    )
    status = django_filters.ChoiceFilter(
        label="Status", choices=Delivery.Status.choices, empty_label="Any status"
    )
    kind = django_filters.ChoiceFilter(
        label="Event", choices=EventKind.choices, empty_label="Any event"
    )
    resource_type = django_filters.ChoiceFilter(
        label="Resource type",
        choices=[(t, t) for t in RESOURCE_TYPES],
        empty_label="Any type",
    )
    resource = django_filters.UUIDFilter(
        label="Resource id",
        widget=forms.TextInput(attrs={"placeholder": "User or group id", "autocomplete": "off"}),
    )
    since = UtcDateTimeFilter(label="From (UTC)", widget=_datetime_widget())
    until = UtcDateTimeFilter(label="Until (UTC)", widget=_datetime_widget())

    class Meta:
        model = Delivery
        fields: list[str] = []

    def filter_queryset(self, queryset):
        data = self.filter_values()
        return selectors.deliveries(
            stream=data.get("stream"),
            status=data.get("status"),
            kind=data.get("kind"),
            resource_type=data.get("resource_type"),
            resource_id=data.get("resource"),
            since=data.get("since"),
            until=data.get("until"),
        )
