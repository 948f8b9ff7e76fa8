"""Change records written from now on bind to their change set by its content hash
(``hash_version`` 2), so a change set and its first record are inserted in one statement
on PostgreSQL. Every record already written keeps its hash, over its change set's id
(``hash_version`` 1): the column is added with 1 for them (a constant default: no table
rewrite on PostgreSQL), then new rows default to 2.
"""

from django.db import migrations, models


def refuse_when_bound_by_hash(apps, schema_editor):
    """Without the column every record is hashed over its change set's id: the ones
    written since this migration would no longer verify."""
    ChangeRecord = apps.get_model("audit", "ChangeRecord")
    if ChangeRecord.objects.exclude(hash_version=1).exists():
        raise RuntimeError(
            "Change records written since audit 0008 are bound to their change set by its "
            "hash; without hash_version they would no longer verify. Not reversing."
        )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0007_indexes_that_earn_their_cost"),
    ]

    operations = [
        migrations.AddField(
            model_name="changerecord",
            name="hash_version",
            field=models.PositiveSmallIntegerField(default=1, editable=False),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="changerecord",
            name="hash_version",
            field=models.PositiveSmallIntegerField(default=2, editable=False),
        ),
        # Reversed first, before the column goes.
        migrations.RunPython(migrations.RunPython.noop, refuse_when_bound_by_hash),
    ]
