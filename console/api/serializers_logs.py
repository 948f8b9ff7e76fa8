"""Representations of the audit log, the request log and the directory (read-only shapes
of what the console's selectors return)."""

from __future__ import annotations

from rest_framework import serializers

from .serializers import AttributeChangeSerializer, ClientRefSerializer


class KeysetPageSerializer(serializers.Serializer):
    next = serializers.URLField(
        allow_null=True, help_text="The next page (older rows, or further in the order); null at the end."
    )
    previous = serializers.URLField(allow_null=True, help_text="The previous page; null on the first.")


# --- Audit log --------------------------------------------------------------------------


class LogObjectSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="User, Group, SCIM client, Policy rule, Operator, ...")
    id = serializers.CharField(help_text="The object's id (a UUID, or a number for some configuration).")
    name = serializers.CharField(allow_blank=True, help_text="userName, displayName or the object's name.")


class AuditLogRowSerializer(serializers.Serializer):
    cursor = serializers.CharField(
        help_text="The row's place in the log (e12: an audit entry, r34: a change record); "
        "pass it as after/before to page, or as newer_than to the export."
    )
    kind = serializers.ChoiceField(
        choices=["entry", "change_record"],
        help_text="entry: a configuration or operator change (django-auditlog); change_record: "
        "a directory change (one resource of a change set).",
    )
    id = serializers.IntegerField()
    timestamp = serializers.DateTimeField()
    action = serializers.ChoiceField(choices=["create", "update", "delete", "access"])
    operation = serializers.CharField(
        allow_null=True,
        help_text="A change record's operation (create, replace, patch, delete); null for entries.",
    )
    object = LogObjectSerializer()
    operator = serializers.CharField(allow_null=True, help_text="The console operator, else null.")
    client = ClientRefSerializer(allow_null=True, help_text="The SCIM client, else null.")
    change_set_id = serializers.IntegerField(allow_null=True)
    correlation_id = serializers.CharField(allow_null=True)
    changes = serializers.DictField(
        help_text="{attribute: [old, new]} (values never returned are masked); a group's "
        "member changes as members: {added, removed}; a sign-in event as event."
    )


class AuditLogPageSerializer(KeysetPageSerializer):
    results = AuditLogRowSerializer(many=True)


class MemberDeltaSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField(help_text="User or Group.")
    display = serializers.CharField(allow_blank=True)
    exists = serializers.BooleanField(help_text="Whether the member still exists.")


class ChangeSetRecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    cursor = serializers.CharField()
    action = serializers.CharField(help_text="create, replace, patch or delete.")
    resource_type = serializers.CharField(help_text="User or Group.")
    resource_id = serializers.UUIDField()
    resource_name = serializers.CharField(allow_blank=True)
    exists = serializers.BooleanField(help_text="Whether the resource still exists.")
    diff = AttributeChangeSerializer(many=True, help_text="Attribute by attribute, before and after.")
    members_added = MemberDeltaSerializer(many=True, help_text="The first 200 members added.")
    members_added_count = serializers.IntegerField()
    members_removed = MemberDeltaSerializer(many=True, help_text="The first 200 members removed.")
    members_removed_count = serializers.IntegerField()


class ChangeSetEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    cursor = serializers.CharField()
    action = serializers.ChoiceField(choices=["create", "update", "delete", "access"])
    object = LogObjectSerializer()
    diff = AttributeChangeSerializer(many=True)


class RequestRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    method = serializers.CharField()
    path = serializers.CharField()
    status = serializers.IntegerField()
    timestamp = serializers.DateTimeField()


class ChangeSetSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    source = serializers.CharField(help_text="scim, bulk, console, api, admin, system or signin.")
    source_label = serializers.CharField()
    actor = serializers.CharField(allow_blank=True, help_text="Who, as recorded at the time.")
    operator = serializers.CharField(allow_null=True)
    client = ClientRefSerializer(allow_null=True)
    correlation_id = serializers.UUIDField()
    remote_addr = serializers.CharField(allow_null=True)
    request = serializers.DictField(allow_null=True, help_text="What was asked (secrets redacted).")
    request_log = RequestRefSerializer(allow_null=True, help_text="The logged SCIM request, if any.")
    records = ChangeSetRecordSerializer(many=True, help_text="Each directory resource it touched.")
    entries = ChangeSetEntrySerializer(many=True, help_text="Each configuration change it made.")


# --- Request log ------------------------------------------------------------------------


class RequestLogSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    timestamp = serializers.DateTimeField()
    correlation_id = serializers.UUIDField()
    client = ClientRefSerializer(allow_null=True, help_text="The authenticated SCIM client.")
    client_id = serializers.UUIDField(
        allow_null=True, help_text="Kept when the client has since been deleted."
    )
    token_prefix = serializers.CharField(
        allow_blank=True, help_text="The public prefix of a token that failed authentication."
    )
    method = serializers.CharField()
    path = serializers.CharField()
    query = serializers.CharField(allow_blank=True)
    status = serializers.IntegerField()
    latency_ms = serializers.FloatField()
    remote_addr = serializers.CharField(allow_null=True)
    request_size = serializers.IntegerField(help_text="Bytes before truncation.")
    response_size = serializers.IntegerField(help_text="Bytes before truncation.")


class RequestLogPageSerializer(KeysetPageSerializer):
    results = RequestLogSerializer(many=True)


class RequestChangeSetSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    source = serializers.CharField()

    class Meta:
        # The oversight endpoints' ChangeSetRef carries more; two shapes, two names.
        ref_name = "RequestChangeSetRef"


class RequestLogDetailSerializer(RequestLogSerializer):
    request_body = serializers.CharField(
        allow_blank=True, help_text="As stored: secrets redacted, JSON indented, maybe truncated."
    )
    request_truncated = serializers.BooleanField()
    response_body = serializers.CharField(allow_blank=True, help_text="As stored, redacted.")
    response_truncated = serializers.BooleanField()
    escaped = serializers.BooleanField(
        help_text="Characters that could not be stored as sent are backslash escapes."
    )
    change_sets = RequestChangeSetSerializer(many=True, help_text="What the request changed.")


# --- Directory (read-only) --------------------------------------------------------------


class SourceRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class DirectoryUserSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    user_name = serializers.CharField()
    display_name = serializers.CharField(allow_null=True, allow_blank=True)
    given_name = serializers.CharField(allow_null=True, allow_blank=True)
    family_name = serializers.CharField(allow_null=True, allow_blank=True)
    email = serializers.CharField(allow_null=True, allow_blank=True, help_text="The primary email.")
    external_id = serializers.CharField(allow_null=True, allow_blank=True)
    active = serializers.BooleanField(help_text="An absent active counts as active.")
    source = SourceRefSerializer(allow_null=True, help_text="The SCIM client that created it.")
    created = serializers.DateTimeField()
    last_modified = serializers.DateTimeField()


class UserPageSerializer(KeysetPageSerializer):
    results = DirectoryUserSerializer(many=True)


class UserGroupSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    display_name = serializers.CharField()
    kind = serializers.ChoiceField(
        choices=["direct", "indirect"], help_text="indirect: through a nested group."
    )


class HistorySerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The change record.")
    created_at = serializers.DateTimeField()
    action = serializers.CharField()
    changed_attributes = serializers.ListField(child=serializers.CharField())
    members_added_count = serializers.IntegerField()
    members_removed_count = serializers.IntegerField()
    actor = serializers.CharField(allow_blank=True)
    source = serializers.CharField()
    change_set_id = serializers.IntegerField()


class HeldSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    action = serializers.CharField()
    client = ClientRefSerializer(allow_null=True)
    created_at = serializers.DateTimeField()


class DirectoryUserDetailSerializer(DirectoryUserSerializer):
    version = serializers.IntegerField()
    scheduled_deletion = serializers.DateTimeField(
        allow_null=True, help_text="Deactivated and due for deletion at this time, else null."
    )
    manager = serializers.CharField(
        allow_null=True, help_text="The manager's id as the identity provider sent it."
    )
    groups = UserGroupSerializer(many=True)
    scim = serializers.JSONField(help_text="The SCIM document, as the SCIM API serves it.")
    history = HistorySerializer(many=True, help_text="The latest 20 changes, newest first.")
    held = HeldSerializer(many=True, help_text="Identity providers' held changes, newest first.")
    held_count = serializers.IntegerField()


class DirectoryGroupSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    display_name = serializers.CharField()
    external_id = serializers.CharField(allow_null=True, allow_blank=True)
    users = serializers.IntegerField(help_text="Direct user members.")
    nested_groups = serializers.IntegerField(help_text="Direct group members.")
    source = SourceRefSerializer(allow_null=True)
    created = serializers.DateTimeField()
    last_modified = serializers.DateTimeField()


class GroupPageSerializer(KeysetPageSerializer):
    results = DirectoryGroupSerializer(many=True)


class GroupRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    display_name = serializers.CharField()


class DirectoryGroupDetailSerializer(DirectoryGroupSerializer):
    version = serializers.IntegerField()
    member_groups = GroupRefSerializer(many=True, help_text="Nested groups (first 200, by name).")
    parent_groups = GroupRefSerializer(many=True, help_text="Groups it is a member of (first 200).")
    history = HistorySerializer(many=True)
    held = HeldSerializer(many=True)
    held_count = serializers.IntegerField()


class GroupMemberSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The member's id.")
    type = serializers.ChoiceField(choices=["User", "Group"])
    name = serializers.CharField(help_text="userName or displayName.")
    display = serializers.CharField(allow_null=True, allow_blank=True)
    active = serializers.BooleanField(allow_null=True, help_text="A user's active; null for a group.")
    added = serializers.DateTimeField()


class GroupMemberPageSerializer(KeysetPageSerializer):
    results = GroupMemberSerializer(many=True)

