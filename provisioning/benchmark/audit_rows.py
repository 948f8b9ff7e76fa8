"""The audit rows of one synthetic write: its change set (with the request as the
middleware stores it) and its change record (snapshots, membership delta, search text),
the one record of a directory change, each with the content hash the model computes on save.
"""

from __future__ import annotations

import uuid

from django.db.models import Model

from provisioning.audit.change_sets import member_json, record_search_text, record_snapshots
from provisioning.audit.models import ChangeRecord, ChangeSet
from provisioning.directory.changes import Change

from .history import IDP_ADDRESS, Event, ReplayContext


def audit_rows(
    context: ReplayContext,
    event: Event,
    change: Change,
    *,
    correlation_id: uuid.UUID,
    method: str,
    path: str,
    body: dict,
    raw: bytes,
    old: Model | None,
) -> tuple[ChangeSet, ChangeRecord]:
    """The change set and change record the request path writes for ``change``.

    ``old`` is the row before the write (None for a create); ``raw`` is ``body`` as sent.
    """
    resource = change.resource
    change_set = ChangeSet(
        id=context.change_set_base + event.index,
        correlation_id=correlation_id,
        # Drawn from the seeded history like the correlation id: the same seed, the same rows.
        nonce=correlation_id.hex,
        created_at=event.at,
        source=ChangeSet.Source.SCIM,
        scim_client_id=context.client_id,
        actor_repr=context.client_name,
        remote_addr=IDP_ADDRESS,
        # What the middleware stores is redact_body(raw)[0]: these bodies carry no
        # secrets, so it is the body itself (tests check the two agree).
        request={"method": method, "path": path, "query": "", "body": body, "body_size": len(raw)},
    )
    # As audit.change_sets._record builds them (an update keeps what it changed).
    before, after = record_snapshots(change)
    document = change.after if change.after is not None else change.before or {}
    name = document.get("userName") or document.get("displayName") or ""
    record = ChangeRecord(
        id=context.record_base + event.index,
        change_set_id=change_set.id,
        created_at=event.at,
        action=change.action,
        resource_type=change.resource_type,
        resource_id=resource.pk,
        resource_name=str(name)[:255],
        before=before,
        after=after,
        changed_attributes=sorted(change.changed_attributes),
        members_added=[member_json(ref) for ref in change.members_added],
        members_removed=[member_json(ref) for ref in change.members_removed],
    )
    record.search_text = record_search_text(record, change)
    # Its hash covers its change set's (hash_version 2), computed first below.
    record.change_set = change_set
    # Times are at millisecond precision and JSON values JSON-native by construction, so
    # the hash is the one the model computes on save (normalise_for_hash changes nothing).
    for row in (change_set, record):
        row.content_hash = row.compute_hash()
    return change_set, record
