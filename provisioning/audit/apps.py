from django.apps import AppConfig, apps
from django.conf import settings
from django.db.models import ManyToManyField
from django.db.models.signals import post_delete, pre_delete, pre_save

# Models whose every change django-auditlog records, with fields it must never
# store. Models that another app has not created yet are skipped, so a model
# added later only needs its label here.
AUDITED_MODELS: dict[str, dict] = {
    "directory.User": {},
    "directory.Group": {},
    "directory.ExtensionSchema": {},
    "access.ScimClient": {},
    "access.ScimToken": {"exclude_fields": ["digest"]},
    # OAuth credentials (access tokens are issued by the token endpoint, not audited).
    "access.ClientSecret": {"exclude_fields": ["digest"]},
    "access.ClientKey": {},
    "access.FederatedIssuer": {},
    "access.Role": {},
    "access.Permission": {},
    "oversight.PolicyRule": {},
    "oversight.CircuitBreaker": {},
    "oversight.Quarantine": {},
    # Every state transition of held operations and reviews, with its operator.
    "oversight.PendingOperation": {"exclude_fields": ["request", "before", "proposed"]},
    "oversight.Approval": {},
    "oversight.Review": {},
    "oversight.Rollback": {},
    # Who started a rollback job and how it ended; its progress counters are not history.
    "oversight.RollbackJob": {
        "exclude_fields": ["done", "attempts", "enqueued_at", "heartbeat_at"]
    },
    # Outbound event streams: never their credentials (sealed secret and Authorization
    # header, poll token digest), nor the delivery bookkeeping the sender updates.
    "events.EventStream": {
        "exclude_fields": [
            "secret",
            "authorization",
            "poll_token_hash",
            "failing_since",
            "last_success_at",
            "last_failure_at",
            "last_error",
            "updated_at",
        ]
    },
    "auth.User": {"exclude_fields": ["password"]},
    "auth.Group": {},
}
# Field names that hold credentials, excluded wherever they appear.
SECRET_FIELDS = {"password", "digest", "secret", "token_hash", "secret_hash"}


def _register_audited_models() -> None:
    from auditlog.receivers import log_delete, log_update
    from auditlog.registry import auditlog

    for label, options in AUDITED_MODELS.items():
        try:
            model = apps.get_model(label)
        except LookupError:
            continue
        fields = [f.name for f in model._meta.get_fields()]
        exclude = sorted(set(options.get("exclude_fields", [])) | (SECRET_FIELDS & set(fields)))
        m2m = [
            f.name
            for f in model._meta.get_fields()
            if isinstance(f, ManyToManyField) and not f.auto_created
        ]
        auditlog.register(model, exclude_fields=exclude, m2m_fields=m2m)

    # Users and groups: updates are diffed against the row the directory service locked
    # (no second read of the row), and of the ``attributes`` JSON (every email, phone
    # number, address...) an entry keeps only the attributes that changed; see
    # ``change_sets.log_directory_update``.
    from .change_sets import log_directory_update

    for label in ("directory.User", "directory.Group"):
        model = apps.get_model(label)
        pre_save.disconnect(sender=model, dispatch_uid=auditlog._dispatch_uid(pre_save, log_update))
        pre_save.connect(
            log_directory_update, sender=model, dispatch_uid=f"scimgate-audit-update-{model.__name__}"
        )

    # Memberships: creates and updates of single rows are logged, deletes are
    # not. A post_delete receiver would make Django load every row of a
    # set-based delete (deleting a 100,000-member group would load and log
    # 100,000 rows); membership deltas are recorded in the change set instead.
    membership = apps.get_model("directory.Membership")
    auditlog.register(membership)
    post_delete.disconnect(sender=membership, dispatch_uid=auditlog._dispatch_uid(post_delete, log_delete))


class AuditConfig(AppConfig):
    name = "provisioning.audit"
    label = "audit"
    verbose_name = "Audit"

    def ready(self) -> None:
        from provisioning.access.units import register_unit_of_change
        from provisioning.directory import pipeline
        from provisioning.directory.models import Group, User

        from . import context
        from .change_sets import (
            capture_relations,
            change_set_create,
            record_change,
            remember_loaded,
        )
        from .entries import stamp_audit_entry
        from .models import AuditEntry

        def audit_recorder(write) -> None:
            write.record = record_change(write.change)

        # The first recorder: later ones (review flags) point at its change record.
        pipeline.register_recorder("audit", audit_recorder, order=100)
        pipeline.register_loader(remember_loaded)

        context.connect_change_set_creator(change_set_create)
        register_unit_of_change(context.change_set_scope)
        # SCIMGATE_AUDIT_ENABLED is a benchmarking switch (make bench), never off in production.
        if settings.SCIMGATE_AUDIT_ENABLED:
            _register_audited_models()
        pre_save.connect(stamp_audit_entry, sender=AuditEntry, dispatch_uid="scimgate-audit-stamp")
        for model in (User, Group):
            pre_delete.connect(
                capture_relations, sender=model, dispatch_uid=f"scimgate-audit-relations-{model.__name__}"
            )
