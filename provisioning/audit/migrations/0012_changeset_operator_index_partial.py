"""``changeset_operator_idx`` holds the console's change sets only.

It serves the audit log's operator filter (``change_set__operator_id = %s``, which
implies ``operator_id IS NOT NULL``, so PostgreSQL and SQLite use the partial index) and
the deletion of an operator (its change sets' ``SET NULL``). A SCIM client's change set
has no operator: every SCIM write inserted a NULL entry no query reads, nearly every
entry of the index (all 1,000,000 in the benchmark's database, 31 MB).
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('access', '0007_operator_token'),
        ('audit', '0011_request_log_time_ordered_ids'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='changeset',
            name='changeset_operator_idx',
        ),
        migrations.AddIndex(
            model_name='changeset',
            index=models.Index(condition=models.Q(('operator__isnull', False)), fields=['operator', 'created_at'], name='changeset_operator_idx'),
        ),
    ]
