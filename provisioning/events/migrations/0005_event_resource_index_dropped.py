"""The events outbox loses ``event_resource_idx`` (resource type, resource id, id).

No query reads events by resource: the delivery log filters deliveries (joined to their
event by its primary key), and the per-resource order of deliveries is served by
``delivery_resource_open_idx`` on the deliveries themselves. Keyed by a resource's id,
each new entry landed on a random leaf: one more write per event, and after each
checkpoint a page image in the WAL for most of them (0.92 per audited PATCH).
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0004_time_ordered_jti_txn_unindexed'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='event',
            name='event_resource_idx',
        ),
    ]
