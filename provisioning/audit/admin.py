"""Read-only admin views of the audit trail, until the console's audit pages exist."""

from auditlog import get_logentry_model
from django.contrib import admin

from .models import AuditSeal, ChangeRecord, ChangeSet, RequestLog


class ReadOnlyAdmin(admin.ModelAdmin):
    """The audit trail is evidence: nobody edits or deletes it through the admin."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ChangeRecordInline(admin.TabularInline):
    model = ChangeRecord
    extra = 0
    can_delete = False
    fields = ["action", "resource_type", "resource_id", "resource_name", "changed_attributes"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ChangeSet)
class ChangeSetAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "source", "actor_repr", "scim_client", "operator", "correlation_id"]
    list_filter = ["source", "created_at"]
    search_fields = ["=correlation_id", "actor_repr", "records__resource_name"]
    list_select_related = ["scim_client", "operator"]
    inlines = [ChangeRecordInline]
    show_full_result_count = False


@admin.register(ChangeRecord)
class ChangeRecordAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "action", "resource_type", "resource_name", "resource_id", "change_set"]
    list_filter = ["action", "resource_type", "created_at"]
    search_fields = ["resource_name", "=resource_id"]
    show_full_result_count = False


# auditlog registers its own admin for the entry model; ours shows our fields and is read-only.
_entry_model = get_logentry_model()
if admin.site.is_registered(_entry_model):
    admin.site.unregister(_entry_model)


@admin.register(_entry_model)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "timestamp", "action", "content_type", "object_repr", "actor", "scim_client", "cid"]
    list_filter = ["action", "content_type", "timestamp"]
    search_fields = ["object_repr", "=object_pk", "=cid"]
    list_select_related = ["content_type", "actor", "scim_client"]
    show_full_result_count = False


@admin.register(RequestLog)
class RequestLogAdmin(ReadOnlyAdmin):
    list_display = ["id", "timestamp", "method", "path", "status", "latency_ms", "scim_client", "token_prefix"]
    list_filter = ["method", "status", "timestamp"]
    search_fields = ["path", "=token_prefix", "=correlation_id"]
    show_full_result_count = False


@admin.register(AuditSeal)
class AuditSealAdmin(ReadOnlyAdmin):
    list_display = ["stream", "first_id", "last_id", "row_count", "batch_hash", "sealed_at"]
    list_filter = ["stream"]
