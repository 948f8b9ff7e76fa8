"""A random nonce in each new change set, hashed with it: no two change sets share a
content hash, which change records of ``hash_version`` 2 bind to (audit 0008). Change
sets already written get NULL (their hash leaves the nonce out, as it always did);
only new rows draw one.
"""

from django.db import migrations, models

import provisioning.audit.models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0008_records_bound_by_change_set_hash"),
    ]

    operations = [
        migrations.AddField(
            model_name="changeset",
            name="nonce",
            field=models.CharField(editable=False, max_length=32, null=True),
        ),
        migrations.AlterField(
            model_name="changeset",
            name="nonce",
            field=models.CharField(
                default=provisioning.audit.models.new_nonce, editable=False, max_length=32, null=True
            ),
        ),
    ]
