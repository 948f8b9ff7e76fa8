from django.apps import AppConfig, apps
from django.conf import settings
from django.db.models import ManyToManyField
from django.db.models.signals import pre_delete, pre_save

# Models whose every change django-auditlog records, with fields it must never
# store. Models that another app has not created yet are skipped, so a model
# added later only needs its label here.
#
# Directory users, groups and memberships are not among them: every change to
# them passes the write pipeline, whose audit recorder stores it once, as a change
# record (snapshots, changed attributes, membership delta) in the change's own
# transaction. An auditlog entry would repeat it.
AUDITED_MODELS: dict[str, dict] = {
    "directory.ExtensionSchema": {},
    "access.ScimClient": {},
    "access.ScimToken": {"exclude_fields": ["digest"]},
    # OAuth credentials (access tokens are issued by the token endpoint, not audited).
    "access.ClientSecret": {"exclude_fields": ["digest"]},
    "access.ClientKey": {},
    "access.FederatedIssuer": {},
    # Operators' API tokens: created, named and revoked by their operator.
    "access.OperatorToken": {"exclude_fields": ["digest", "last_used_at"]},
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
        )
        from .entries import stamp_audit_entry
        from .models import AuditEntry

        def audit_recorder(write) -> None:
            write.record = record_change(write.change)

        # The first recorder: later ones (review flags) point at its change record.
        pipeline.register_recorder("audit", audit_recorder, order=100)

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
