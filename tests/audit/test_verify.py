"""verifyaudit: silent on an untouched trail, loud on a modified, deleted or inserted row."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from provisioning.audit.models import AuditEntry, AuditSeal, ChangeRecord, audit_hmac
from tests.factories import OperatorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail(scim):
    user = scim.create_user("audited", displayName="Before")
    scim.ok(scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "displayName", "value": "After"}))
    group = scim.create_group("team", members=[{"value": user["id"]}])
    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    return user


def verify(*args) -> str:
    call_command("verifyaudit", *args)


def raw(sql: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_untouched_trail_verifies_sealed_and_unsealed(trail, capsys):
    verify()
    verify("--seal", "--grace", "0")
    assert AuditSeal.objects.filter(stream="entries").exists()
    assert "verified" in capsys.readouterr().out


def test_raw_update_of_an_unsealed_entry_fails(trail):
    entry = AuditEntry.objects.order_by("-id").first()
    raw("UPDATE audit_auditentry SET object_repr = %s WHERE id = %s", ["mallory", entry.pk])
    with pytest.raises(CommandError, match="FAILED"):
        verify()


def test_raw_update_of_a_sealed_snapshot_fails(trail, capsys):
    verify("--seal", "--grace", "0")
    record = ChangeRecord.objects.filter(action="patch").first()
    raw("UPDATE audit_changerecord SET resource_name = %s WHERE id = %s", ["someone", record.pk])
    with pytest.raises(CommandError):
        verify()
    assert f"records row {record.pk}: content modified" in capsys.readouterr().err


def test_raw_delete_of_a_sealed_entry_fails(trail, capsys):
    verify("--seal", "--grace", "0")
    victim = AuditEntry.objects.order_by("id")[1]
    raw("DELETE FROM audit_auditentry WHERE id = %s", [victim.pk])
    with pytest.raises(CommandError):
        verify()
    assert "rows deleted or inserted" in capsys.readouterr().err


def test_row_inserted_out_of_order_into_a_sealed_range_fails(trail, capsys):
    verify("--seal", "--grace", "0")
    first, second = AuditEntry.objects.order_by("id")[:2]
    # Free an id inside the sealed range, then put a forged row (hash recomputed by save) into it.
    raw("DELETE FROM audit_auditentry WHERE id = %s", [second.pk])
    second.pk = second.id = second.pk
    second._state.adding = True
    second.object_repr = "forged"
    second.save(force_insert=True)
    with pytest.raises(CommandError):
        verify()
    assert "batch hash mismatch" in capsys.readouterr().err


def test_seal_task_chains_batches(trail, scim, settings):
    from provisioning.audit.tasks import seal_audit_log

    settings.SCIMGATE_AUDIT_SEAL_GRACE_SECONDS = 0
    assert seal_audit_log.delay().get() >= 3
    scim.create_user("later")
    OperatorFactory(username="later")  # an audited configuration change: a new entry
    assert seal_audit_log.delay().get() >= 2
    first, second = AuditSeal.objects.filter(stream="entries").order_by("last_id")
    assert second.previous_hash == first.batch_hash
    verify()


# --- How a change record is bound to its change set -------------------------------------


def test_a_record_moved_to_another_change_set_fails(trail, capsys):
    """A record written with its change set in one statement hashes the change set's
    content hash (hash_version 2): pointing it at another change set is detected."""
    first, second = ChangeRecord.objects.order_by("id")[:2]
    assert (first.hash_version, second.hash_version) == (2, 2)
    raw("UPDATE audit_changerecord SET change_set_id = %s WHERE id = %s", [second.change_set_id, first.pk])
    with pytest.raises(CommandError):
        verify()
    assert f"records row {first.pk}: content modified" in capsys.readouterr().err


def test_changing_a_records_hash_version_fails(trail, capsys):
    record = ChangeRecord.objects.order_by("id").first()
    raw("UPDATE audit_changerecord SET hash_version = 1 WHERE id = %s", [record.pk])
    with pytest.raises(CommandError):
        verify()
    assert f"records row {record.pk}: content modified" in capsys.readouterr().err


def test_records_written_before_keep_verifying_by_change_set_id(trail, capsys):
    """Records of hash_version 1 (written before audit 0008) hash their change set's id."""
    record = ChangeRecord.objects.order_by("id").first()
    record.pk, record.hash_version = None, 1
    record._state.adding = True
    record.save()
    assert record.content_hash == audit_hmac(record.hash_payload())
    assert f'"change_set_id":{record.change_set_id}' in record.hash_payload()
    verify()
    other = ChangeRecord.objects.exclude(change_set_id=record.change_set_id).first()
    raw("UPDATE audit_changerecord SET change_set_id = %s WHERE id = %s", [other.change_set_id, record.pk])
    with pytest.raises(CommandError):
        verify()
    assert f"records row {record.pk}: content modified" in capsys.readouterr().err


def test_change_sets_of_one_request_never_share_a_hash(trail):
    """Two change sets alike in everything (one Bulk request, the same millisecond): their
    nonces differ, so a record bound to one cannot be moved to the other unnoticed."""
    from provisioning.audit.change_sets import change_set_build

    arguments = {"correlation_id": "00000000-0000-0000-0000-000000000042", "source": "bulk"}
    first, second = change_set_build(**arguments), change_set_build(**arguments)
    second.created_at = first.created_at
    for change_set in (first, second):
        change_set.normalise_for_hash()
    assert first.nonce != second.nonce
    assert first.compute_hash() != second.compute_hash()


def test_change_sets_written_before_keep_their_hash_without_a_nonce(trail):
    change_set = ChangeRecord.objects.order_by("id").first().change_set
    raw("UPDATE audit_changeset SET nonce = NULL WHERE id = %s", [change_set.pk])
    with pytest.raises(CommandError):
        verify()  # this one was hashed with its nonce
    change_set.refresh_from_db()
    assert '"nonce"' not in change_set.hash_payload()
