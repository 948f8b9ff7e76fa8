"""Every index on the audit and request-log tables serves a query the product runs;
every insert maintains every index, so the others are dropped here.

Dropped (no query of the product filters or orders by them):
- ``changeset_created_idx`` (created_at): the audit log orders and filters by the time of
  its change records and entries, not of change sets; sealing walks change sets by id.
- ``changeset_source_idx`` (source, created_at): nothing filters change sets by source.
- ``auditentry_cid_idx`` (cid): the change set page finds its entries by change set;
  nothing looks entries up by correlation id.

Kept, and the query each serves:
- audit_changeset: primary key (change set page, rollback, sealing walk); correlation_id
  (the request-log page's "change sets of this request"); (scim_client, created_at)
  (rollback of a client's changes in a time range, the audit log's client filter);
  (operator, created_at) (the audit log's operator filter).
- audit_changerecord: primary key (sealing walk); change_set_id (change set page,
  rollback, reviews); (resource_id, id) (a user's or group's history, the audit log's
  resource filter); LOWER(resource_name) (the audit log's userName/displayName filter);
  (action, created_at) (the audit log's action filter); created_at (the audit log's
  order and time range); trigram on UPPER(search_text), PostgreSQL (free-text search).
- audit_auditentry (configuration, operators, decisions): primary key (sealing walk);
  change_set_id (change set page); timestamp (the audit log's order and time range);
  (content_type, object_pk, timestamp) (the resource filter with a type, an object's
  history); object_pk (the resource filter without a type); (scim_client, timestamp),
  (actor, timestamp), (action, timestamp) (the audit log's client, operator and action
  filters); LOWER(object_repr) (the name filter); trigram on UPPER(search_text),
  PostgreSQL (free-text search).
- audit_requestlog: timestamp (the request log's order and time range, retention);
  (scim_client, timestamp), (status, timestamp), (method, timestamp) (its client,
  status and method filters); correlation_id (the change set page's request link).
- audit_retiredentry: primary key only (verification walks it in id order).
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0006_retired_entries'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='auditentry',
            name='auditentry_cid_idx',
        ),
        migrations.RemoveIndex(
            model_name='changeset',
            name='changeset_created_idx',
        ),
        migrations.RemoveIndex(
            model_name='changeset',
            name='changeset_source_idx',
        ),
    ]
