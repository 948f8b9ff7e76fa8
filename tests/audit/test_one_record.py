"""A directory change is recorded once, as its change record (issue 17), and the audit
entries that repeated change records before are retired without breaking the sealed chain.

The migration test runs the real migration (audit 0006) on a trail of the old shape:
change sets with both a change record and a django-auditlog entry for the same change.
"""

from __future__ import annotations

import importlib
import json

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from provisioning.audit import selectors
from provisioning.audit.models import AuditEntry, ChangeRecord, ChangeSet, RetiredEntry
from provisioning.directory import extensions
from provisioning.directory.models import Group, Membership, User
from provisioning.scim import schema as scim_schema
from provisioning.scim.resources import HIDDEN_VALUE
from tests.factories import OperatorFactory
from tests.scim.conftest import USER_SCHEMA


def old_entry(model, object_pk, name, change_set, changes) -> AuditEntry:
    """An entry as django-auditlog wrote one for a directory change before (hashed on save)."""
    entry = AuditEntry(
        content_type=ContentType.objects.get_for_model(model),
        object_pk=str(object_pk),
        object_repr=name,
        action=AuditEntry.Action.UPDATE,
        changes=changes,
        change_set=change_set,
        scim_client_id=change_set.scim_client_id if change_set else None,
    )
    entry.save()
    return entry


@pytest.mark.django_db
def test_a_scim_write_writes_no_auditlog_entry(scim):
    before = AuditEntry.objects.count()
    user = scim.create_user("once", title="A")
    scim.ok(scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "B"}))
    group = scim.create_group("g-once", members=[{"value": user["id"]}])
    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    assert AuditEntry.objects.count() == before
    assert ChangeRecord.objects.filter(resource_id=user["id"]).count() == 2
    assert ChangeRecord.objects.filter(resource_id=group["id"]).count() == 2


@pytest.mark.django_db
def test_the_log_pages_both_kinds_in_one_order_across_equal_timestamps(scim):
    user = scim.create_user("paged")
    for n in range(4):
        scim.ok(scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": f"T{n}"}))
        OperatorFactory(username=f"op-{n}")
    # Rows written in the same millisecond: order is (time, kind, id), newest first.
    record = ChangeRecord.objects.order_by("id").first()
    ChangeRecord.objects.update(created_at=record.created_at)
    AuditEntry.objects.update(timestamp=record.created_at)
    log = selectors.audit_log()
    everything = [row.key for row in log.rows()]
    assert len(everything) == len(set(everything)) == AuditEntry.objects.count() + ChangeRecord.objects.count()
    walked, page = [], log.page(size=3)
    while True:
        walked += [row.key for row in page.items]
        if page.next_after is None:
            break
        page = log.page(after=page.next_after, size=3)
    assert walked == everything
    # And back: "before" the first row of the third page is the second page (the
    # reversed keyset walk), and "before" the second page's first row the first page.
    second = log.page(after=log.page(size=3).next_after, size=3)
    third = log.page(after=second.next_after, size=3)
    back = log.page(before=third.previous_before, size=3)
    assert [row.key for row in back.items] == everything[3:6]
    assert (back.next_after, back.previous_before) == (everything[5], everything[3])
    assert [row.key for row in log.page(before=second.previous_before, size=3).items] == everything[:3]
    assert log.count(1000) == (len(everything), False)
    assert log.count(2) == (2, True)
    # A cursor that names no row starts again at the first page.
    assert [row.key for row in log.page(after="r999999", size=3).items] == everything[:3]
    assert [row.key for row in log.page(after="x1", size=3).items] == everything[:3]


@pytest.mark.django_db
def test_membership_filter_finds_group_changes_that_moved_members(scim):
    user = scim.create_user("member")
    group = scim.create_group("crew")
    resp = scim.patch_ops(f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": user["id"]}]})
    assert resp.status_code == 204
    rows = list(selectors.audit_log(resource_type="directory.membership").rows())
    assert [(row.record.resource_type, row.record.action) for row in rows] == [("Group", "patch")]


def _migration(name: str):
    """A function of audit migration ``name`` and the models as that migration sees them."""
    executor = MigrationExecutor(connection)
    state = executor.loader.project_state(("audit", name))
    module = importlib.import_module(f"provisioning.audit.migrations.{name}")
    return module, state.apps


@pytest.mark.django_db
def test_migration_retires_repeated_entries_and_the_chain_still_verifies(scim, capsys):
    """Old shape: each directory change has a change record and an auditlog entry. The
    migration's own functions run on it with the models as of audit 0006."""
    user = scim.create_user("legacy", displayName="Before")
    scim.ok(scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "displayName", "value": "After"}))
    group = scim.create_group("legacy-team", members=[{"value": user["id"]}])
    user_sets = list(ChangeSet.objects.filter(records__resource_id=user["id"]).order_by("id"))
    group_set = ChangeSet.objects.get(records__resource_id=group["id"])
    membership = Membership.objects.get(group_id=group["id"])
    twins = [
        old_entry(User, user["id"], "legacy", user_sets[0], {"userName": ["None", "legacy"]}),
        old_entry(User, user["id"], "legacy", user_sets[1], {"displayName": ["Before", "After"]}),
        old_entry(Group, group["id"], "legacy-team", group_set, {"displayName": ["None", "legacy-team"]}),
        old_entry(Membership, membership.pk, "m", group_set, {"group": ["None", group["id"]]}),
    ]
    # Kept: a directory entry no record repeats, and a configuration entry.
    orphan = old_entry(User, user["id"], "legacy", None, {"title": ["x", "y"]})
    config = AuditEntry.objects.exclude(pk__in=[e.pk for e in [*twins, orphan]]).order_by("id").first()
    assert config is not None
    call_command("verifyaudit", "--seal", "--grace", "0")
    # One more repeated entry after the last seal: retired unsealed, sealed later.
    late = old_entry(User, user["id"], "legacy", user_sets[1], {"displayName": ["Before", "After"]})
    twins.append(late)
    hashes = {entry.pk: entry.content_hash for entry in twins}

    migration, apps = _migration("0006_retired_entries")
    migration.retire(apps, None)  # the function uses the models, not the schema editor

    assert dict(RetiredEntry.objects.values_list("id", "content_hash")) == hashes
    remaining = set(AuditEntry.objects.values_list("id", flat=True))
    assert orphan.pk in remaining and config.pk in remaining and not remaining & set(hashes)
    # The log shows each directory change once: its record (and the orphan entry).
    rows = list(selectors.audit_log(resource_id=user["id"]).rows())
    assert sorted(row.kind for row in rows) == ["change_record", "change_record", "entry"]
    call_command("verifyaudit")
    call_command("verifyaudit", "--seal", "--grace", "0")
    assert "verified" in capsys.readouterr().out

    # A retired row keeps its tamper evidence.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_retiredentry SET payload = REPLACE(payload, 'After', 'Evil') WHERE id = %s", [twins[1].pk])
    with pytest.raises(CommandError):
        call_command("verifyaudit")
    assert f"entries row {twins[1].pk}: content modified" in capsys.readouterr().err
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_retiredentry SET payload = REPLACE(payload, 'Evil', 'After') WHERE id = %s", [twins[1].pk])

    # Moving any other entry out of the log is reported, though its hash still fits.
    fields = [f for f in AuditEntry._meta.concrete_fields if f.attname not in ("id", "content_hash")]
    moved = AuditEntry.objects.get(pk=config.pk)
    RetiredEntry.objects.create(
        id=moved.pk,
        timestamp=moved.timestamp,
        payload=migration._payload(moved, fields),
        content_hash=moved.content_hash,
    )
    AuditEntry.objects.filter(pk=moved.pk).delete()
    with pytest.raises(CommandError):
        call_command("verifyaudit")
    assert f"entries row {config.pk}: retired, but no change record repeats it" in capsys.readouterr().err
    RetiredEntry.objects.filter(pk=config.pk).delete()
    migration.restore(apps, None)  # the repeated entries back, then the configuration one
    AuditEntry.objects.bulk_create([moved])
    call_command("verifyaudit")
    migration.retire(apps, None)

    # And the migration reverses: the entries come back as they were.
    migration.restore(apps, None)
    assert not RetiredEntry.objects.exists()
    assert dict(AuditEntry.objects.filter(pk__in=hashes).values_list("id", "content_hash")) == hashes
    call_command("verifyaudit")


@pytest.mark.django_db(transaction=True)
def test_the_migrations_run_forward_and_back_on_an_empty_trail():
    call_command("migrate", "audit", "0005_request_log_escaped", verbosity=0)
    call_command("migrate", "audit", verbosity=0)


SECRET_URN = "urn:example:params:scim:schemas:extension:secret:2.0:User"


@pytest.fixture
def secret_extension(db):
    extensions.extension_schema_save(
        document={
            "id": SECRET_URN,
            "name": "Secret",
            "attributes": [
                {"name": "pin", "type": "string", "mutability": "writeOnly", "returned": "never"},
                {"name": "team", "type": "string"},
            ],
        }
    )
    yield SECRET_URN
    scim_schema.install_extensions(())
    scim_schema.forget_extensions()


@pytest.mark.django_db
def test_the_log_shows_a_hidden_value_changed_never_what_it_is(scim, secret_extension):
    """RFC 7643 §7 ``returned: never``: the export names the change, masks the values;
    a change to the hidden value alone is still listed."""
    urn = secret_extension
    # Values no id, hash or time of the export could spell by chance (digits could: a
    # content hash once held "9999").
    old, new = "kq-old-pin-value", "kq-new-pin-value"
    user = scim.create_user("pin@x.example", schemas=[USER_SCHEMA, urn], **{urn: {"pin": old, "team": "red"}})
    scim.ok(scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": f"{urn}:pin", "value": new}))
    lines = [json.loads(line) for line in selectors.export_log_jsonl(selectors.audit_log(resource_id=user["id"]))]
    patch, create = lines
    assert urn in patch["changes"]
    assert old not in str(lines) and new not in str(lines)
    assert create["changes"][urn][1]["team"] == "red"


def test_values_of_an_extension_no_longer_registered_are_hidden():
    gone = "urn:example:params:scim:schemas:extension:gone:1.0:User"
    record = ChangeRecord(
        resource_type="User",
        before={"document": {gone: {"code": "a"}, "title": "x"}},
        after={"document": {gone: {"code": "b"}, "title": "y"}},
        members_added=[],
        members_removed=[],
    )
    assert selectors.record_changes(record) == {
        "title": ["x", "y"],
        gone: [{"code": HIDDEN_VALUE}, {"code": HIDDEN_VALUE}],
    }
