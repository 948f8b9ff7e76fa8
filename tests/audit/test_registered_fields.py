"""Every field of an audited model whose name looks like a secret is decided: excluded
from the audit log (its value never written), or listed in ``NAMED_LIKE_SECRETS``
(kept: it holds none). A new field named like a secret fails here until it is one or
the other, instead of vanishing silently from every entry."""

from __future__ import annotations

from auditlog.registry import auditlog

from provisioning.audit.entries import NAMED_LIKE_SECRETS, stamp_audit_entry
from provisioning.audit.models import AuditEntry
from provisioning.audit.redaction import is_secret_key


def test_every_audited_field_named_like_a_secret_is_excluded_or_declared_public():
    undecided = []
    for model, options in auditlog._registry.items():
        excluded = set(options.get("exclude_fields") or ())
        for field in model._meta.concrete_fields:
            if is_secret_key(field.name) and field.name not in excluded | NAMED_LIKE_SECRETS:
                undecided.append(f"{model._meta.label}.{field.name}")
    assert undecided == []


def test_declared_names_are_fields_of_audited_models():
    names = {f.name for model in auditlog._registry for f in model._meta.concrete_fields}
    assert names >= NAMED_LIKE_SECRETS


def test_an_entry_keeps_a_declared_field_and_drops_a_secret_name():
    entry = AuditEntry(
        object_repr="okta",
        object_pk="1",
        changes={"access_token_lifetime": ["3600", "7200"], "client_secret": ["a", "b"], "name": ["x", "y"]},
    )
    stamp_audit_entry(AuditEntry, entry)
    assert entry.changes == {"access_token_lifetime": ["3600", "7200"], "name": ["x", "y"]}
