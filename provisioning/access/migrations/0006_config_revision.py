import uuid

from django.db import migrations, models


def create_revision(apps, schema_editor):
    apps.get_model("access", "ConfigRevision").objects.get_or_create(
        pk=1, defaults={"token": uuid.uuid4()}
    )


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0005_oauth"),
    ]

    operations = [
        migrations.CreateModel(
            name="ConfigRevision",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False),
                ),
                ("token", models.UUIDField(default=uuid.uuid4)),
            ],
        ),
        migrations.RunPython(create_revision, migrations.RunPython.noop),
    ]
