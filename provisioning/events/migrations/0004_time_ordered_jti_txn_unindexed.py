"""The events outbox: a time-ordered ``jti`` and no index on ``txn``.

- ``jti`` defaults to a UUIDv7 (``provisioning.ids``), so that each new event goes to
  the last leaf of its unique index instead of a random one (a page image in the WAL per
  leaf after each checkpoint). Events already stored keep their ``jti``.
- ``txn`` loses its two indexes (on PostgreSQL a B-tree and a ``varchar_pattern_ops``
  one; on SQLite one): no query of the product looks an event up by its ``txn``, and
  each was one more write per event in the change's transaction.
"""

from django.db import migrations, models

import provisioning.ids


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0003_verify_kind'),
    ]

    operations = [
        migrations.AlterField(
            model_name='event',
            name='jti',
            field=models.UUIDField(default=provisioning.ids.time_ordered_uuid, editable=False, unique=True),
        ),
        migrations.AlterField(
            model_name='event',
            name='txn',
            field=models.CharField(max_length=100),
        ),
    ]
