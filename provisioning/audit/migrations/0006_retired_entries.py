"""A directory change is recorded once, as its change record.

Until now each change to a directory user, group or membership also left a
django-auditlog entry repeating what its change record holds. This migration moves
those entries (the ones whose change set has a record of the same resource) out of
the audit log into ``RetiredEntry``, keeping each one's id, content hash and the
exact canonical text the hash covers: the sealed chain of entries still verifies
row by row and batch by batch (``sealing``), and a row altered before the move still
shows as altered. Entries of directory resources that no change record repeats are
left in the log as they are.
"""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import migrations, models

BATCH = 2000
_UNHASHED = ("id", "content_hash")


def _payload(entry, fields) -> str:
    """The text the entry's content hash covers (``models.Sealed.hash_payload``)."""
    values = {f.attname: getattr(entry, f.attname) for f in fields}
    return json.dumps(values, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"))


def _group_ids(entry) -> set[str]:
    changes = entry.changes if isinstance(entry.changes, dict) else {}
    values = changes.get("group") or []
    return {str(value) for value in values if value not in (None, "None")}


def retire(apps, schema_editor):
    AuditEntry = apps.get_model("audit", "AuditEntry")
    ChangeRecord = apps.get_model("audit", "ChangeRecord")
    RetiredEntry = apps.get_model("audit", "RetiredEntry")
    ContentType = apps.get_model("contenttypes", "ContentType")
    types = dict(
        ContentType.objects.filter(app_label="directory", model__in=("user", "group", "membership"))
        .values_list("model", "pk")
    )
    if not types:
        return
    membership = types.get("membership")
    fields = [f for f in AuditEntry._meta.concrete_fields if f.attname not in _UNHASHED]
    last = 0
    while True:
        batch = list(
            AuditEntry.objects.filter(
                pk__gt=last, content_type_id__in=types.values(), change_set_id__isnull=False
            ).order_by("pk")[:BATCH]
        )
        if not batch:
            return
        last = batch[-1].pk
        recorded: set[tuple[int, str]] = set()
        groups: dict[int, set[str]] = {}
        for set_id, resource_id, resource_type in ChangeRecord.objects.filter(
            change_set_id__in={entry.change_set_id for entry in batch}
        ).values_list("change_set_id", "resource_id", "resource_type"):
            recorded.add((set_id, str(resource_id)))
            if resource_type == "Group":
                groups.setdefault(set_id, set()).add(str(resource_id))
        twins = []
        for entry in batch:
            if entry.content_type_id == membership:
                touched = groups.get(entry.change_set_id, set())
                named = _group_ids(entry)
                if touched and (not named or named & touched):
                    twins.append(entry)
            elif (entry.change_set_id, entry.object_pk) in recorded:
                twins.append(entry)
        RetiredEntry.objects.bulk_create(
            RetiredEntry(
                id=entry.pk,
                timestamp=entry.timestamp,
                payload=_payload(entry, fields),
                content_hash=entry.content_hash,
            )
            for entry in twins
        )
        AuditEntry.objects.filter(pk__in=[entry.pk for entry in twins]).delete()


def restore(apps, schema_editor):
    AuditEntry = apps.get_model("audit", "AuditEntry")
    RetiredEntry = apps.get_model("audit", "RetiredEntry")
    last = 0
    while True:
        batch = list(RetiredEntry.objects.filter(pk__gt=last).order_by("pk")[:BATCH])
        if not batch:
            return
        last = batch[-1].pk
        AuditEntry.objects.bulk_create(
            AuditEntry(id=row.pk, content_hash=row.content_hash, **json.loads(row.payload))
            for row in batch
        )
        RetiredEntry.objects.filter(pk__in=[row.pk for row in batch]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0005_request_log_escaped"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.CreateModel(
            name="RetiredEntry",
            fields=[
                ("id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("timestamp", models.DateTimeField()),
                ("payload", models.TextField()),
                ("content_hash", models.CharField(max_length=64)),
            ],
            options={"ordering": ["id"]},
        ),
        migrations.RunPython(retire, restore, elidable=False),
    ]
