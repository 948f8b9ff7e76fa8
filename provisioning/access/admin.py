"""Django admin for SCIM clients and roles. Tokens are listed read-only; digests are never shown.

Clients are created with ``manage.py createscimclient`` (or the console), which
issues the first token through the service layer and shows it once; the admin
cannot add clients or tokens. Roles and role assignments change through the
services (console), which validate and audit them, so they are read-only here.
"""

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from .clients import scim_token_revoke
from .models import Role, ScimClient, ScimToken


class ScimTokenInline(admin.TabularInline):
    model = ScimToken
    fields = (
        "prefix",
        "created_at",
        "expires_at",
        "allowed_networks",
        "last_used_at",
        "last_used_address",
        "revoked_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: ScimClient | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ScimClient | None = None) -> bool:
        return False


@admin.register(ScimClient)
class ScimClientAdmin(admin.ModelAdmin):
    list_display = ("name", "role", "active_tokens", "created_at", "last_used_at")
    list_filter = ("role",)
    search_fields = ("name",)
    fields = ("name", "role", "created_at", "last_used_at", "denied_requests")
    readonly_fields = ("role", "created_at", "last_used_at", "denied_requests")
    inlines = [ScimTokenInline]
    actions = ["revoke_tokens"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ScimClient]:
        return (
            super()
            .get_queryset(request)
            .annotate(_active_tokens=Count("tokens", filter=Q(tokens__revoked_at__isnull=True)))
        )

    @admin.display(description="Active tokens", ordering="_active_tokens")
    def active_tokens(self, obj: ScimClient) -> int:
        return obj._active_tokens

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke all tokens of the selected clients", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ScimClient]) -> None:
        tokens = ScimToken.objects.filter(client__in=queryset, revoked_at__isnull=True)
        count = 0
        for token in tokens:
            scim_token_revoke(token=token)
            count += 1
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ("name", "built_in", "own_resources_only", "description")
    fields = (
        "name",
        "description",
        "built_in",
        "permissions",
        "forbidden_attributes",
        "own_resources_only",
        "protected_group_names",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Role | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Role | None = None) -> bool:
        return False
