from django.contrib.auth import views as auth_views
from django.urls import path

from . import (
    views,
    views_access,
    views_api_tokens,
    views_audit,
    views_events,
    views_oauth,
    views_pending,
    views_policies,
    views_quarantines,
    views_reviews,
    views_rollback,
    views_schemas,
)
from .signin import views as signin_views

app_name = "console"

urlpatterns = [
    # Public: the only console views without require_role (see tests/console/test_url_permissions.py).
    # Sign-in is allauth's login with single sign-on beside it (console/signin).
    path("login/", signin_views.login, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    # The operator's own API tokens for the management API (console/views_api_tokens.py).
    path("account/api-tokens/", views_api_tokens.api_token_list, name="api_token_list"),
    path("account/api-tokens/new/", views_api_tokens.api_token_create, name="api_token_create"),
    path(
        "account/api-tokens/<int:token_id>/revoke/",
        views_api_tokens.api_token_revoke,
        name="api_token_revoke",
    ),
    path("users/", views.user_list, name="user_list"),
    path("users/<uuid:user_id>/", views.user_detail, name="user_detail"),
    path(
        "users/<uuid:user_id>/deactivate/confirm/",
        views.user_deactivate_confirm,
        name="user_deactivate_confirm",
    ),
    path("users/<uuid:user_id>/deactivate/", views.user_deactivate, name="user_deactivate"),
    path("users/<uuid:user_id>/reactivate/", views.user_reactivate, name="user_reactivate"),
    path("users/<uuid:user_id>/restore/", views.user_restore, name="user_restore"),
    path("groups/", views.group_list, name="group_list"),
    path("groups/<uuid:group_id>/", views.group_detail, name="group_detail"),
    # Registered SCIM extension schemas (console/views_schemas.py).
    path("schemas/", views_schemas.schema_list, name="schema_list"),
    path("schemas/new/", views_schemas.schema_create, name="schema_create"),
    path("schemas/<int:schema_id>/", views_schemas.schema_detail, name="schema_detail"),
    path("schemas/<int:schema_id>/edit/", views_schemas.schema_edit, name="schema_edit"),
    path(
        "schemas/<int:schema_id>/delete/confirm/",
        views_schemas.schema_delete_confirm,
        name="schema_delete_confirm",
    ),
    path("schemas/<int:schema_id>/delete/", views_schemas.schema_delete, name="schema_delete"),
    # Pending operations (console/views_pending.py).
    path("pending/", views_pending.pending_list, name="pending_list"),
    path("pending/bulk/", views_pending.pending_bulk, name="pending_bulk"),
    path("pending/<uuid:pending_id>/", views_pending.pending_detail, name="pending_detail"),
    path(
        "pending/<uuid:pending_id>/approve/",
        views_pending.pending_approve,
        name="pending_approve",
    ),
    path("pending/<uuid:pending_id>/reject/", views_pending.pending_reject, name="pending_reject"),
    path(
        "pending/<uuid:pending_id>/reapply/",
        views_pending.pending_reapply,
        name="pending_reapply",
    ),
    # Flagged changes (console/views_reviews.py).
    path("reviews/", views_reviews.review_list, name="review_list"),
    path("reviews/<int:review_id>/", views_reviews.review_detail, name="review_detail"),
    path("reviews/<int:review_id>/accept/", views_reviews.review_accept, name="review_accept"),
    # Rollback, and the jobs that run large ones (console/views_rollback.py).
    path(
        "changesets/<int:change_set_id>/rollback/",
        views_rollback.change_set_rollback,
        name="change_set_rollback",
    ),
    path("rollback/", views_rollback.mass_rollback, name="mass_rollback"),
    path("rollbacks/jobs/", views_rollback.rollback_job_list, name="rollback_job_list"),
    path(
        "rollbacks/jobs/<uuid:job_id>/",
        views_rollback.rollback_job_detail,
        name="rollback_job_detail",
    ),
    # Quarantines (console/views_quarantines.py).
    path("quarantines/", views_quarantines.quarantine_list, name="quarantine_list"),
    path(
        "quarantines/<uuid:quarantine_id>/",
        views_quarantines.quarantine_detail,
        name="quarantine_detail",
    ),
    path(
        "quarantines/<uuid:quarantine_id>/release/",
        views_quarantines.quarantine_release,
        name="quarantine_release",
    ),
    path(
        "quarantines/<uuid:quarantine_id>/discard/",
        views_quarantines.quarantine_discard,
        name="quarantine_discard",
    ),
    # Policy rules and the circuit breaker (console/views_policies.py).
    path("policies/", views_policies.policy_list, name="policy_list"),
    path("policies/new/", views_policies.policy_create, name="policy_create"),
    path("policies/<int:rule_id>/edit/", views_policies.policy_edit, name="policy_edit"),
    path("policies/<int:rule_id>/toggle/", views_policies.policy_toggle, name="policy_toggle"),
    path("policies/<int:rule_id>/delete/", views_policies.policy_delete, name="policy_delete"),
    path(
        "policies/circuit-breaker/",
        views_policies.circuit_breaker_edit,
        name="circuit_breaker_edit",
    ),
    path(
        "policies/circuit-breaker/clients/<uuid:client_id>/",
        views_policies.client_breaker_edit,
        name="client_breaker_edit",
    ),
    # SCIM clients, tokens and roles (console/views_access.py).
    path("clients/", views_access.client_list, name="client_list"),
    path("clients/new/", views_access.client_create, name="client_create"),
    path("clients/<uuid:client_id>/", views_access.client_detail, name="client_detail"),
    path("clients/<uuid:client_id>/role/", views_access.client_set_role, name="client_set_role"),
    path("clients/<uuid:client_id>/tokens/rotate/", views_access.token_rotate, name="token_rotate"),
    # OAuth 2.0 credentials of a SCIM client (console/views_oauth.py).
    path("clients/<uuid:client_id>/oauth/secrets/", views_oauth.secret_issue, name="oauth_secret_issue"),
    path(
        "clients/<uuid:client_id>/oauth/secrets/<int:secret_id>/revoke/",
        views_oauth.secret_revoke,
        name="oauth_secret_revoke",
    ),
    path("clients/<uuid:client_id>/oauth/keys/", views_oauth.key_add, name="oauth_key_add"),
    path(
        "clients/<uuid:client_id>/oauth/keys/<int:key_id>/revoke/",
        views_oauth.key_revoke,
        name="oauth_key_revoke",
    ),
    path(
        "clients/<uuid:client_id>/oauth/federations/",
        views_oauth.federation_add,
        name="oauth_federation_add",
    ),
    path(
        "clients/<uuid:client_id>/oauth/federations/<int:federation_id>/revoke/",
        views_oauth.federation_revoke,
        name="oauth_federation_revoke",
    ),
    path("clients/<uuid:client_id>/oauth/settings/", views_oauth.oauth_settings, name="oauth_settings"),
    path(
        "clients/<uuid:client_id>/oauth/access-tokens/revoke/",
        views_oauth.access_tokens_revoke,
        name="oauth_access_tokens_revoke",
    ),
    path(
        "clients/<uuid:client_id>/tokens/<int:token_id>/revoke/confirm/",
        views_access.token_revoke_confirm,
        name="token_revoke_confirm",
    ),
    path(
        "clients/<uuid:client_id>/tokens/<int:token_id>/revoke/",
        views_access.token_revoke,
        name="token_revoke",
    ),
    path("roles/", views_access.role_list, name="role_list"),
    path("roles/new/", views_access.role_create, name="role_create"),
    path("roles/<int:role_id>/", views_access.role_detail, name="role_detail"),
    path("roles/<int:role_id>/edit/", views_access.role_edit, name="role_edit"),
    path(
        "roles/<int:role_id>/delete/confirm/",
        views_access.role_delete_confirm,
        name="role_delete_confirm",
    ),
    path("roles/<int:role_id>/delete/", views_access.role_delete, name="role_delete"),
    # Outbound event streams and their delivery log (console/views_events.py).
    path("event-streams/", views_events.stream_list, name="stream_list"),
    path("event-streams/new/", views_events.stream_create, name="stream_create"),
    path("event-deliveries/", views_events.delivery_list, name="delivery_list"),
    path(
        "event-deliveries/<int:delivery_id>/",
        views_events.delivery_detail,
        name="delivery_detail",
    ),
    path(
        "event-deliveries/<int:delivery_id>/redeliver/",
        views_events.delivery_redeliver,
        name="delivery_redeliver",
    ),
    path("event-deliveries/events/<int:event_id>/", views_events.event_detail, name="event_detail"),
    path("event-streams/<uuid:stream_id>/", views_events.stream_detail, name="stream_detail"),
    path("event-streams/<uuid:stream_id>/edit/", views_events.stream_edit, name="stream_edit"),
    path("event-streams/<uuid:stream_id>/pause/", views_events.stream_pause, name="stream_pause"),
    path(
        "event-streams/<uuid:stream_id>/resume/", views_events.stream_resume, name="stream_resume"
    ),
    path(
        "event-streams/<uuid:stream_id>/replay/", views_events.stream_replay, name="stream_replay"
    ),
    path(
        "event-streams/<uuid:stream_id>/test-event/",
        views_events.stream_test_event,
        name="stream_test_event",
    ),
    path(
        "event-streams/<uuid:stream_id>/credential/",
        views_events.stream_rotate,
        name="stream_rotate",
    ),
    path(
        "event-streams/<uuid:stream_id>/delete/confirm/",
        views_events.stream_delete_confirm,
        name="stream_delete_confirm",
    ),
    path(
        "event-streams/<uuid:stream_id>/delete/", views_events.stream_delete, name="stream_delete"
    ),
    # Audit log, change sets and the request log (console/views_audit.py).
    path("audit/", views_audit.audit_list, name="audit_list"),
    path("audit/export.csv", views_audit.audit_export_csv, name="audit_export_csv"),
    path("audit/export.jsonl", views_audit.audit_export_jsonl, name="audit_export_jsonl"),
    path(
        "audit/changesets/<int:change_set_id>/",
        views_audit.change_set_detail,
        name="change_set_detail",
    ),
    path("requests/", views_audit.request_list, name="request_list"),
    path("requests/<int:request_id>/", views_audit.request_detail, name="request_detail"),
]
