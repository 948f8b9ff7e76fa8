"""``/api/``: the management API (version 1), its OpenAPI schema and its docs page."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from console.permissions import require_role

from . import views, views_config, views_events, views_logs, views_oauth, views_oversight
from .base import ApiView

app_name = "api"


class SchemaView(SpectacularAPIView, ApiView):
    """The OpenAPI 3.1 document, for any operator (token or session)."""

    authentication_classes = ApiView.authentication_classes
    permission_classes = ApiView.permission_classes
    throttle_classes = ApiView.throttle_classes


urlpatterns = [
    path("v1/me", views.MeView.as_view(), name="me"),
    path("v1/pending-operations", views.PendingOperationList.as_view(), name="pending-list"),
    path(
        "v1/pending-operations/<uuid:pending_id>",
        views.PendingOperationDetail.as_view(),
        name="pending-detail",
    ),
    path(
        "v1/pending-operations/<uuid:pending_id>/approve",
        views.PendingOperationApprove.as_view(),
        name="pending-approve",
    ),
    path(
        "v1/pending-operations/<uuid:pending_id>/reject",
        views.PendingOperationReject.as_view(),
        name="pending-reject",
    ),
    # Oversight: re-apply and bulk decisions, reviews and rollback, quarantines
    # (console/api/views_oversight.py).
    path(
        "v1/pending-operations/bulk",
        views_oversight.PendingOperationBulk.as_view(),
        name="pending-bulk",
    ),
    path(
        "v1/pending-operations/<uuid:pending_id>/reapply",
        views_oversight.PendingOperationReapply.as_view(),
        name="pending-reapply",
    ),
    path("v1/reviews", views_oversight.ReviewList.as_view(), name="review-list"),
    path("v1/reviews/<int:review_id>", views_oversight.ReviewDetail.as_view(), name="review-detail"),
    path(
        "v1/reviews/<int:review_id>/accept",
        views_oversight.ReviewAccept.as_view(),
        name="review-accept",
    ),
    path(
        "v1/reviews/<int:review_id>/rollback",
        views_oversight.ReviewRollback.as_view(),
        name="review-rollback",
    ),
    path("v1/rollbacks/preview", views_oversight.RollbackPreview.as_view(), name="rollback-preview"),
    path("v1/rollbacks", views_oversight.MassRollback.as_view(), name="rollback-create"),
    path("v1/rollback-jobs", views_oversight.RollbackJobList.as_view(), name="rollback-job-list"),
    path(
        "v1/rollback-jobs/<uuid:job_id>",
        views_oversight.RollbackJobDetail.as_view(),
        name="rollback-job-detail",
    ),
    path("v1/quarantines", views_oversight.QuarantineList.as_view(), name="quarantine-list"),
    path(
        "v1/quarantines/<uuid:quarantine_id>",
        views_oversight.QuarantineDetail.as_view(),
        name="quarantine-detail",
    ),
    path(
        "v1/quarantines/<uuid:quarantine_id>/release",
        views_oversight.QuarantineRelease.as_view(),
        name="quarantine-release",
    ),
    path(
        "v1/quarantines/<uuid:quarantine_id>/discard",
        views_oversight.QuarantineDiscard.as_view(),
        name="quarantine-discard",
    ),
    # --- Read-only: the audit log, the request log, the directory (views_logs) ---
    path("v1/audit-log", views_logs.AuditLogList.as_view(), name="audit-log"),
    path("v1/audit-log/export.csv", views_logs.AuditLogExportCsv.as_view(), name="audit-export-csv"),
    path(
        "v1/audit-log/export.jsonl",
        views_logs.AuditLogExportJsonl.as_view(),
        name="audit-export-jsonl",
    ),
    # Any signed number reaches the view, which answers 404 in JSON for what no row has.
    re_path(
        r"^v1/change-sets/(?P<change_set_id>-?[0-9]+)$",
        views_logs.ChangeSetDetail.as_view(),
        name="change-set-detail",
    ),
    path("v1/request-log", views_logs.RequestLogList.as_view(), name="request-list"),
    re_path(
        r"^v1/request-log/(?P<request_id>-?[0-9]+)$",
        views_logs.RequestLogDetail.as_view(),
        name="request-detail",
    ),
    path("v1/users", views_logs.UserList.as_view(), name="user-list"),
    path("v1/users/<uuid:user_id>", views_logs.UserDetail.as_view(), name="user-detail"),
    path("v1/groups", views_logs.GroupList.as_view(), name="group-list"),
    path("v1/groups/<uuid:group_id>", views_logs.GroupDetail.as_view(), name="group-detail"),
    path(
        "v1/groups/<uuid:group_id>/members",
        views_logs.GroupMemberList.as_view(),
        name="group-members",
    ),
    # --- end of the read-only endpoints ---
    # --- Configuration: SCIM clients and their tokens, SCIM roles, policy rules, the
    # circuit breaker (views_config), event streams and their delivery log (views_events) ---
    path("v1/scim-clients", views_config.ScimClientList.as_view(), name="scim-client-list"),
    path(
        "v1/scim-clients/<uuid:client_id>",
        views_config.ScimClientDetail.as_view(),
        name="scim-client-detail",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/role",
        views_config.ScimClientSetRole.as_view(),
        name="scim-client-role",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/tokens",
        views_config.ScimTokenIssue.as_view(),
        name="scim-token-issue",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/tokens/rotate",
        views_config.ScimTokenRotate.as_view(),
        name="scim-token-rotate",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/tokens/<int:token_id>/revoke",
        views_config.ScimTokenRevoke.as_view(),
        name="scim-token-revoke",
    ),
    # A SCIM client's OAuth 2.0 credentials (views_oauth).
    path(
        "v1/scim-clients/<uuid:client_id>/oauth",
        views_oauth.OAuthCredentials.as_view(),
        name="scim-client-oauth",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/oauth/secrets",
        views_oauth.OAuthSecretIssue.as_view(),
        name="oauth-secret-issue",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/oauth/secrets/<int:secret_id>/revoke",
        views_oauth.OAuthSecretRevoke.as_view(),
        name="oauth-secret-revoke",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/oauth/keys",
        views_oauth.OAuthKeyAdd.as_view(),
        name="oauth-key-add",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/oauth/keys/<int:key_id>/revoke",
        views_oauth.OAuthKeyRevoke.as_view(),
        name="oauth-key-revoke",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/oauth/federations",
        views_oauth.OAuthFederationAdd.as_view(),
        name="oauth-federation-add",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/oauth/federations/<int:federation_id>/revoke",
        views_oauth.OAuthFederationRevoke.as_view(),
        name="oauth-federation-revoke",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/oauth/settings",
        views_oauth.OAuthSettings.as_view(),
        name="oauth-settings",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/oauth/settings/change",
        views_oauth.OAuthSettingsChange.as_view(),
        name="oauth-settings-change",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/oauth/access-tokens/revoke",
        views_oauth.OAuthAccessTokensRevoke.as_view(),
        name="oauth-access-tokens-revoke",
    ),
    path("v1/scim-roles", views_config.ScimRoleList.as_view(), name="scim-role-list"),
    path("v1/scim-roles/<int:role_id>", views_config.ScimRoleDetail.as_view(), name="scim-role-detail"),
    path(
        "v1/scim-roles/<int:role_id>/change",
        views_config.ScimRoleChange.as_view(),
        name="scim-role-change",
    ),
    path(
        "v1/scim-roles/<int:role_id>/delete",
        views_config.ScimRoleDelete.as_view(),
        name="scim-role-delete",
    ),
    path("v1/policy-rules", views_config.PolicyRuleList.as_view(), name="policy-rule-list"),
    path(
        "v1/policy-rules/<int:rule_id>",
        views_config.PolicyRuleDetail.as_view(),
        name="policy-rule-detail",
    ),
    path(
        "v1/policy-rules/<int:rule_id>/change",
        views_config.PolicyRuleChange.as_view(),
        name="policy-rule-change",
    ),
    path(
        "v1/policy-rules/<int:rule_id>/enable",
        views_config.PolicyRuleEnable.as_view(),
        name="policy-rule-enable",
    ),
    path(
        "v1/policy-rules/<int:rule_id>/disable",
        views_config.PolicyRuleDisable.as_view(),
        name="policy-rule-disable",
    ),
    path(
        "v1/policy-rules/<int:rule_id>/delete",
        views_config.PolicyRuleDelete.as_view(),
        name="policy-rule-delete",
    ),
    path("v1/circuit-breaker", views_config.CircuitBreakerDetail.as_view(), name="breaker"),
    path(
        "v1/circuit-breaker/change",
        views_config.CircuitBreakerChange.as_view(),
        name="breaker-change",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/circuit-breaker",
        views_config.ClientBreakerDetail.as_view(),
        name="client-breaker",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/circuit-breaker/change",
        views_config.ClientBreakerChange.as_view(),
        name="client-breaker-change",
    ),
    path(
        "v1/scim-clients/<uuid:client_id>/circuit-breaker/clear",
        views_config.ClientBreakerClear.as_view(),
        name="client-breaker-clear",
    ),
    path(
        "v1/event-streams",
        views_events.EventStreamList.as_view(),
        name="event-stream-list",
    ),
    path(
        "v1/event-streams/<uuid:stream_id>",
        views_events.EventStreamDetail.as_view(),
        name="event-stream-detail",
    ),
    path(
        "v1/event-streams/<uuid:stream_id>/change",
        views_events.EventStreamChange.as_view(),
        name="event-stream-change",
    ),
    path(
        "v1/event-streams/<uuid:stream_id>/pause",
        views_events.EventStreamPause.as_view(),
        name="event-stream-pause",
    ),
    path(
        "v1/event-streams/<uuid:stream_id>/resume",
        views_events.EventStreamResume.as_view(),
        name="event-stream-resume",
    ),
    path(
        "v1/event-streams/<uuid:stream_id>/credential/rotate",
        views_events.EventStreamRotateCredential.as_view(),
        name="event-stream-rotate",
    ),
    path(
        "v1/event-streams/<uuid:stream_id>/replay",
        views_events.EventStreamReplay.as_view(),
        name="event-stream-replay",
    ),
    path(
        "v1/event-streams/<uuid:stream_id>/test-event",
        views_events.EventStreamTestEvent.as_view(),
        name="event-stream-test-event",
    ),
    path(
        "v1/event-streams/<uuid:stream_id>/delete",
        views_events.EventStreamDelete.as_view(),
        name="event-stream-delete",
    ),
    path(
        "v1/event-deliveries",
        views_events.DeliveryList.as_view(),
        name="event-delivery-list",
    ),
    re_path(
        r"^v1/event-deliveries/(?P<delivery_id>-?[0-9]+)$",
        views_events.DeliveryDetail.as_view(),
        name="event-delivery-detail",
    ),
    re_path(
        r"^v1/event-deliveries/(?P<delivery_id>-?[0-9]+)/redeliver$",
        views_events.DeliveryRedeliver.as_view(),
        name="event-delivery-redeliver",
    ),
    # --- end of the configuration endpoints ---
    path("schema/", SchemaView.as_view(), name="schema"),
    # The docs page is a console page: signed-in operators only (else the login page).
    # Its script is a separate request, so the Content-Security-Policy needs no inline script.
    path(
        "docs/",
        require_role("viewer")(SpectacularSwaggerSplitView.as_view(url_name="api:schema")),
        name="docs",
    ),
]
