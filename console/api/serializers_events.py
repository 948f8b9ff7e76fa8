"""Representations and requests of the event stream endpoints: streams, their
credentials, replays and test events, and the delivery log.

A webhook's signing secret or a poll stream's token appears only in the answer that
issues it (``CreatedStreamSerializer``, ``StreamCredentialSerializer``); no other shape
has a field for it, nor for a push stream's Authorization header. Request bodies the
console parses with a form are validated by that form here (``StreamForm``,
``ReplayForm``), so the API and the console apply one rule with one implementation; the
stream services check the rest (URL guard, unique name, filters).
"""

from __future__ import annotations

from django.utils.datastructures import MultiValueDict
from rest_framework import serializers

from console.events_forms import PAUSE_CHOICES, ReplayForm, StreamForm
from provisioning.access.models import ScimClient
from provisioning.events.models import Delivery, EventKind, EventStream
from provisioning.events.streams import FILTERABLE_KINDS
from provisioning.events.streams import RESOURCE_TYPES as STREAM_RESOURCE_TYPES

from .serializers_config import ClientNameSerializer
from .serializers_oversight import _form_errors


class StreamHealthSerializer(serializers.Serializer):
    backlog = serializers.IntegerField(help_text="Deliveries not yet delivered.")
    lag_seconds = serializers.FloatField(allow_null=True, help_text="Age of the oldest of them.")
    failed = serializers.IntegerField(help_text="Deliveries the receiver refused.")


class EventStreamSerializer(serializers.Serializer):
    """A stream's settings and state; never its secret, token or Authorization header."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    method = serializers.ChoiceField(choices=EventStream.Method.choices)
    endpoint_url = serializers.CharField(allow_blank=True)
    has_authorization = serializers.BooleanField(help_text="Push: an Authorization header is set.")
    poll_token_prefix = serializers.CharField(
        allow_blank=True, help_text="Poll: the token's prefix."
    )
    audience = serializers.CharField(allow_blank=True)
    resource_types = serializers.ListField(child=serializers.CharField())
    event_kinds = serializers.ListField(child=serializers.CharField())
    payload = serializers.ChoiceField(choices=EventStream.Payload.choices)
    client = ClientNameSerializer(allow_null=True)
    state = serializers.ChoiceField(choices=EventStream.State.choices)
    pause_after_seconds = serializers.IntegerField()
    failing_since = serializers.DateTimeField(allow_null=True)
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_failure_at = serializers.DateTimeField(allow_null=True)
    health = StreamHealthSerializer()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class EventStreamDetailSerializer(EventStreamSerializer):
    poll_url = serializers.CharField(allow_null=True, help_text="Poll streams: where to fetch.")
    last_error = serializers.CharField(allow_blank=True)


class CreatedStreamSerializer(serializers.Serializer):
    stream = EventStreamDetailSerializer()
    secret = serializers.CharField(
        allow_null=True,
        help_text="The webhook signing secret or the poll token; null for SET push. Shown "
        "once: store it now.",
    )


class StreamCreateSerializer(serializers.Serializer):
    """The console's stream form (``provisioning.events.streams`` validates it)."""

    name = serializers.CharField(max_length=100)
    method = serializers.ChoiceField(choices=EventStream.Method.choices)
    endpoint_url = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    authorization = serializers.CharField(
        max_length=4096,
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="SET push only: sent with each event. Stored encrypted, never shown.",
    )
    resource_types = serializers.ListField(
        child=serializers.ChoiceField(choices=list(STREAM_RESOURCE_TYPES)), required=False
    )
    event_kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=[k.value for k in FILTERABLE_KINDS]), required=False
    )
    payload = serializers.ChoiceField(choices=EventStream.Payload.choices, required=False)
    client = serializers.UUIDField(required=False, allow_null=True, help_text="A SCIM client id.")
    pause_after = serializers.ChoiceField(
        choices=[int(value) for value, _label in PAUSE_CHOICES],
        required=False,
        help_text="Seconds failing before the stream pauses.",
    )
    audience = serializers.CharField(max_length=2000, required=False, allow_blank=True)

    def validate_client(self, value):
        if value is None:
            return None
        client = ScimClient.objects.filter(pk=value).first()
        if client is None:
            raise serializers.ValidationError("No such SCIM client.")
        return client


# --- Changing a stream -------------------------------------------------------------------------


def _form_value(value) -> list[str]:
    """A value as a form's POST data carries it."""
    if value is None:
        return [""]
    if isinstance(value, bool):
        return ["on"] if value else []
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return [str(value)]


class StreamChangeSerializer(serializers.Serializer):
    """The console's edit form: only the fields sent change. The stream's current settings
    and the fields sent are validated together by ``StreamForm`` (its choices, including
    a ``pause_after`` set outside them that the stream already has), then by
    ``update_stream``; ``validated_data`` is what that service takes. The method cannot
    change (the credential belongs to it): delete the stream and create another.

    Needs ``context={"stream": <EventStream>}``."""

    name = serializers.CharField(max_length=100, required=False)
    endpoint_url = serializers.CharField(
        max_length=2000,
        required=False,
        allow_blank=True,
        help_text="Push and webhook streams: where events are POSTed.",
    )
    authorization = serializers.CharField(
        max_length=4096,
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="SET push only: a new Authorization header value (empty or absent: keep "
        "the stored one). Stored encrypted, never shown.",
    )
    remove_authorization = serializers.BooleanField(
        required=False, help_text="SET push only: send no Authorization header from now on."
    )
    resource_types = serializers.ListField(
        child=serializers.ChoiceField(choices=list(STREAM_RESOURCE_TYPES)),
        required=False,
        max_length=len(STREAM_RESOURCE_TYPES),
        help_text="Empty: all.",
    )
    event_kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=[k.value for k in FILTERABLE_KINDS]),
        required=False,
        max_length=len(FILTERABLE_KINDS),
        help_text="Empty: all.",
    )
    payload = serializers.ChoiceField(choices=EventStream.Payload.choices, required=False)
    client = serializers.UUIDField(
        required=False, allow_null=True, help_text="A SCIM client id; null: none."
    )
    pause_after = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=2**31 - 1,
        help_text="Seconds failing before the stream pauses: one of "
        f"{', '.join(value for value, _label in PAUSE_CHOICES)}, or the value it has.",
    )
    audience = serializers.CharField(max_length=2000, required=False, allow_blank=True)

    def validate(self, attrs):
        stream: EventStream = self.context["stream"]
        data = MultiValueDict()
        for name, value in {**StreamForm.initial_for(stream), **attrs}.items():
            data.setlist(name, _form_value(value))
        form = StreamForm(data, stream=stream)
        if not form.is_valid():
            raise serializers.ValidationError(_form_errors(form))
        fields = form.service_fields()
        # Settings the form has no field for with this method go to the service, which
        # refuses a value it does not take (a poll stream's endpoint, a webhook's header).
        for name in ("endpoint_url", "authorization"):
            if name in attrs and name not in form.fields:
                fields[name] = attrs[name]
        if attrs.get("remove_authorization") and "remove_authorization" not in form.fields:
            fields["authorization"] = ""
        return fields


# --- Replay, test event ------------------------------------------------------------------------


class ReplaySerializer(serializers.Serializer):
    """Validated by the console's replay form."""

    since = serializers.DateTimeField(
        help_text="Every retained event recorded at or after this time (not in the future) "
        "is delivered again; ISO 8601, UTC if no offset."
    )

    def validate(self, attrs):
        form = ReplayForm({"since": attrs["since"]})
        if not form.is_valid():
            raise serializers.ValidationError(_form_errors(form))
        return form.cleaned_data


class ReplayResultSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    reset = serializers.IntegerField(
        help_text="Deliveries the stream had for those events, back to pending and due now."
    )
    created = serializers.IntegerField(
        help_text="New deliveries: events it had none for (recorded before it existed, or "
        "before its filters admitted them)."
    )
    stream = EventStreamDetailSerializer()


class StreamCredentialSerializer(serializers.Serializer):
    stream = EventStreamDetailSerializer()
    secret = serializers.CharField(
        help_text="The new webhook signing secret or poll token; the old one no longer "
        "works. Shown once: store it now."
    )


# --- The delivery log --------------------------------------------------------------------------


class StreamRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    method = serializers.ChoiceField(choices=EventStream.Method.choices)


class EventRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    jti = serializers.CharField(help_text="The SET's jti (hex), the receiver's de-duplication key.")
    txn = serializers.CharField()
    kind = serializers.ChoiceField(choices=EventKind.choices)
    resource_type = serializers.CharField(help_text="User, Group, or Stream (a test event).")
    resource_id = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    client = ClientNameSerializer(
        allow_null=True, help_text="The SCIM client whose write caused it; null: none."
    )


class DeliverySerializer(serializers.Serializer):
    """One event owed to one stream."""

    id = serializers.IntegerField()
    stream = StreamRefSerializer()
    event = EventRefSerializer()
    status = serializers.ChoiceField(choices=Delivery.Status.choices)
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)


class DeliveryAttemptSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    ok = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    response = serializers.CharField(
        allow_blank=True,
        help_text="The receiver's answer (truncated) or the transport error; never credentials.",
    )


class DeliveryDetailSerializer(DeliverySerializer):
    log = DeliveryAttemptSerializer(many=True, help_text="Each try, oldest first.")
    claims = serializers.DictField(
        help_text="The claims of the SET this stream receives for the event (RFC 8417), "
        "as the console shows them."
    )
