"""Audit entries (django-auditlog rows): each is stamped, as it is saved, with its actor,
SCIM client, correlation id, address and change set from the current scope, with
secret values dropped and its searchable text filled in.
"""

from __future__ import annotations

from . import context
from .change_sets import flatten_values, normalise_ip, search_text
from .models import AuditEntry
from .redaction import is_secret_key

# Fields of audited models named like a secret that hold none: an entry keeps their
# changes (any other field whose name looks like a secret is dropped as it is saved).
# tests/audit/test_registered_fields.py makes every such field of an audited model be
# excluded or listed here.
NAMED_LIKE_SECRETS = frozenset(
    {
        "access_token_lifetime",  # seconds an OAuth access token lasts
        "poll_token_prefix",  # the public prefix of a poll stream's token
    }
)


def stamp_audit_entry(sender, instance: AuditEntry, **kwargs) -> None:
    """``pre_save`` on AuditEntry: attribution, change set, searchable text; secrets dropped.

    The actor is the operator or the SCIM client of the current scope; the
    change set is created lazily here when the first entry of a unit is written.
    """
    if not instance._state.adding:
        return
    attribution = context.actor_for_entry()
    if instance.actor_id is None and attribution.get("actor") is not None:
        instance.actor = attribution["actor"]
        instance.actor_email = getattr(attribution["actor"], "email", None) or None
    if instance.scim_client_id is None and attribution.get("scim_client") is not None:
        instance.scim_client = attribution["scim_client"]
    # Only the server's correlation id: auditlog could otherwise read a request header.
    instance.cid = attribution.get("cid")
    if instance.remote_addr is None:
        instance.remote_addr = normalise_ip(attribution.get("remote_addr"))
    scope = context.current_scope()
    if scope is not None and instance.change_set_id is None:
        instance.change_set = scope.ensure_change_set()
    if isinstance(instance.changes, dict):
        instance.changes = {
            k: v
            for k, v in instance.changes.items()
            if k in NAMED_LIKE_SECRETS or not is_secret_key(k)
        }
    instance.serialized_data = None
    parts = [instance.object_repr, str(instance.object_pk)]
    for key, values in (instance.changes or {}).items():
        parts.append(key)
        flatten_values(values, parts)
    instance.search_text = search_text(parts)
