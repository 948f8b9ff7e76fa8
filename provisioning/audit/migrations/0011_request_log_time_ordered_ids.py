"""Request-log rows made outside a request (a test's, a command's) get a time-ordered
correlation id (UUIDv7, ``provisioning.ids``), as the middleware now gives every request:
new entries of ``requestlog_cid_idx`` go to its last leaf. A default only; nothing is
written to the table. Rows already stored keep their ids, which read alike.
"""

from django.db import migrations, models

import provisioning.ids


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0010_request_log_bodies_lz4'),
    ]

    operations = [
        migrations.AlterField(
            model_name='requestlog',
            name='correlation_id',
            field=models.UUIDField(default=provisioning.ids.time_ordered_uuid),
        ),
    ]
