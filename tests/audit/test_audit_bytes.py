"""One change adds a bounded number of bytes to the audit trail, and rollback still restores
exactly: an update keeps what it changed (provisioning/audit/deltas.py), not the resource."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

from console.diff import record_diff
from provisioning.audit import deltas
from provisioning.audit.models import AuditEntry, ChangeRecord, ChangeSet
from provisioning.audit.selectors import record_changes
from provisioning.directory.models import Group, User
from provisioning.oversight import reviews
from provisioning.scim import resources
from tests.factories import OperatorFactory
from tests.scim.conftest import ENTERPRISE_SCHEMA, PATCH_SCHEMA

pytestmark = pytest.mark.django_db


@pytest.fixture
def operators(db):
    return {name: OperatorFactory(username=name, role=None) for name in ("alice", "bob")}

AUDIT_TABLES = (ChangeSet, ChangeRecord, AuditEntry)


def audit_marks() -> dict:
    return {model: model.objects.order_by("-id").values_list("id", flat=True).first() or 0 for model in AUDIT_TABLES}


def audit_bytes_since(marks: dict) -> int:
    """Characters in every column of the audit rows written since ``marks``, as text."""
    total = 0
    with connection.cursor() as cursor:
        for model in AUDIT_TABLES:
            columns = [f.column for f in model._meta.concrete_fields]
            text = " + ".join(
                f"COALESCE(LENGTH(CAST({connection.ops.quote_name(c)} AS TEXT)), 0)" for c in columns
            )
            cursor.execute(
                f"SELECT COALESCE(SUM({text}), 0) FROM {model._meta.db_table} WHERE id > %s",
                [marks[model]],
            )
            total += cursor.fetchone()[0]
    return total


def stored_user(emails: int) -> User:
    """A user holding ``emails`` emails, stored directly (a limit set low or lowered later
    cannot refuse what is already stored)."""
    now = timezone.now()
    return User.objects.create(
        user_name=f"many-{uuid.uuid4().hex[:8]}",
        created=now,
        last_modified=now,
        attributes={"emails": [{"value": f"u{i}@x.io", "type": "work"} for i in range(emails)]},
    )


def title_patch(title: str) -> dict:
    body = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "title", "value": title}]}
    return body


@pytest.mark.parametrize("emails", [1, 100, 60_000])
def test_a_title_patch_adds_the_same_bytes_whatever_the_user_holds(scim, emails):
    """Issue 12: three 129-byte title PATCHes on a user with 60,000 emails added 19.6 MB
    to the audit tables (whole documents in the change record, the whole attributes
    JSON twice in the audit entry). Now each adds what a title change is."""
    user = stored_user(emails)
    added = []
    for n in range(3):
        marks = audit_marks()
        body = title_patch(f"Title {n}xx")
        assert len(json.dumps(body, separators=(",", ":"))) <= 129
        assert scim.patch(f"/Users/{user.pk}", body).status_code == 200
        added.append(audit_bytes_since(marks))
    # Change set (request, actor) and change record (title before and after, two digests):
    # well under 2 KiB, whatever the emails. No audit entry repeats the record.
    assert max(added) < 2_048, added
    record = ChangeRecord.objects.order_by("-id").first()
    assert record.before["document"] == {"title": "Title 1xx"}
    assert record.after["document"] == {"title": "Title 2xx"}
    assert not AuditEntry.objects.filter(change_set=record.change_set).exists()
    # The audit log and its exports read the change from the record.
    assert record_changes(record) == {"title": ["Title 1xx", "Title 2xx"]}


def test_one_changed_email_keeps_that_email_not_the_list(scim):
    user = scim.create_user(emails=[{"value": f"u{i}@x.io", "type": "work"} for i in range(100)])
    marks = audit_marks()
    resp = scim.patch_ops(
        f"/Users/{user['id']}",
        {"op": "replace", "path": 'emails[value eq "u42@x.io"].type', "value": "home"},
    )
    assert resp.status_code == 200
    assert audit_bytes_since(marks) < 4_096
    record = ChangeRecord.objects.order_by("-id").first()
    assert record.before["document"] == {"emails": [{"value": "u42@x.io", "type": "work"}]}
    assert record.after["document"] == {"emails": [{"value": "u42@x.io", "type": "home"}]}
    assert record.after["changes"] == [{"path": ["emails"], "edits": [[42, 43, 42, 43]]}]
    # The console reads it as before and after.
    [row] = record_diff(record.before, record.after)[:1]
    assert row.name == "emails" and "work" in row.before and "home" in row.after
    assert record_changes(record) == {
        "emails": [[{"value": "u42@x.io", "type": "work"}], [{"value": "u42@x.io", "type": "home"}]]
    }


def test_a_membership_change_keeps_the_delta_whatever_the_group_size(scim):
    now = timezone.now()
    members = User.objects.bulk_create(
        User(user_name=f"m-{uuid.uuid4().hex}", created=now, last_modified=now) for _ in range(2_001)
    )
    small = scim.create_group("small", members=[{"value": str(members[0].pk)}])
    large = scim.create_group("large", members=[{"value": str(u.pk)} for u in members[:2_000]])
    added = []
    for group in (small, large):
        marks = audit_marks()
        resp = scim.patch_ops(
            f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": str(members[-1].pk)}]}
        )
        assert resp.status_code == 204
        added.append(audit_bytes_since(marks))
        record = ChangeRecord.objects.order_by("-id").first()
        assert record.members_added == [{"value": str(members[-1].pk), "type": "User"}]
        assert record.before["document"] == {} and record.after["document"] == {}
    assert abs(added[0] - added[1]) < 64, added


# --- Rollback from what an update kept -----------------------------------------------------


def editable(user_id) -> dict:
    return resources.user_editable_document(User.objects.get(pk=user_id))


def test_rolling_back_an_update_restores_the_user_exactly(scim, operators):
    user = scim.create_user(
        title="Engineer",
        name={"givenName": "Ada", "familyName": "Lovelace"},
        emails=[{"value": f"u{i}@x.io", "type": "work", "primary": i == 3} for i in range(12)],
        phoneNumbers=[{"value": "+1 555 0100"}],
        **{ENTERPRISE_SCHEMA: {"department": "R&D", "employeeNumber": "7"}},
    )
    original = editable(user["id"])
    resp = scim.patch_ops(
        f"/Users/{user['id']}",
        {"op": "replace", "path": "title", "value": "Director"},
        {"op": "remove", "path": 'emails[value eq "u5@x.io"]'},
        {"op": "replace", "path": 'emails[value eq "u9@x.io"].primary', "value": True},
        {"op": "add", "path": "emails", "value": [{"value": "new@x.io"}]},
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": "phoneNumbers"},
        {"op": "add", "path": "nickName", "value": "Countess"},
        {"op": "replace", "path": f"{ENTERPRISE_SCHEMA}:department", "value": "Board"},
        {"op": "add", "path": f"{ENTERPRISE_SCHEMA}:costCenter", "value": "CC-1"},
    )
    assert resp.status_code == 200
    change_set = ChangeSet.objects.order_by("-id").first()
    record = change_set.records.get()
    assert deltas.is_partial(record.before) and "userName" not in record.after["document"]
    assert deltas.state(record.before) == deltas.digest(original)

    reviews.change_set_rollback(change_set_id=change_set.pk, operator=operators["alice"])

    assert editable(user["id"]) == original


def test_rolling_back_a_whole_extension_added_or_removed(scim, operators):
    user = scim.create_user(title="x")
    original = editable(user["id"])
    scim.patch_ops(f"/Users/{user['id']}", {"op": "add", "path": ENTERPRISE_SCHEMA, "value": {"division": "North"}})
    added = ChangeSet.objects.order_by("-id").first()
    reviews.change_set_rollback(change_set_id=added.pk, operator=operators["alice"])
    assert editable(user["id"]) == original


def test_a_forced_rollback_puts_back_what_the_change_touched_and_keeps_later_changes(scim, operators):
    user = scim.create_user(title="Engineer", displayName="Ada")
    path = f"/Users/{user['id']}"
    scim.patch_ops(path, {"op": "replace", "path": "title", "value": "Director"})
    first = ChangeSet.objects.order_by("-id").first()
    scim.patch_ops(path, {"op": "replace", "path": "displayName", "value": "Ada L."})

    assert reviews.rollback_preview([first.pk])[0].conflict
    reviews.change_set_rollback(change_set_id=first.pk, operator=operators["alice"], force=True)

    current = editable(user["id"])
    assert (current["title"], current["displayName"]) == ("Engineer", "Ada L.")


def test_a_rollback_meeting_a_concurrent_write_is_refused_not_merged(scim, operators, monkeypatch):
    user = scim.create_user(title="Engineer")
    scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Director"})
    change_set = ChangeSet.objects.order_by("-id").first()
    read = reviews._current

    def read_then_someone_writes(record):
        found = read(record)
        User.objects.filter(pk=record.resource_id).update(version=F("version") + 1)
        return found

    monkeypatch.setattr(reviews, "_current", read_then_someone_writes)
    with pytest.raises(reviews.ValidationError, match="version"):
        reviews.change_set_rollback(change_set_id=change_set.pk, operator=operators["alice"], force=True)
    assert editable(user["id"])["title"] == "Director"


def test_records_with_whole_documents_still_roll_back(scim, operators):
    """Change records written before updates kept deltas hold whole documents."""
    user = scim.create_user(title="Engineer", emails=[{"value": "a@x.io"}])
    original = editable(user["id"])
    scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Director"})
    change_set = ChangeSet.objects.order_by("-id").first()
    record = change_set.records.get()
    after = editable(user["id"])
    whole_before = {k: v for k, v in record.before.items() if k not in ("partial", "digest")}
    whole_after = {k: v for k, v in record.after.items() if k not in ("partial", "digest", "changes")}
    ChangeRecord.objects.filter(pk=record.pk).update(
        before={**whole_before, "document": original}, after={**whole_after, "document": after}
    )
    assert not reviews.rollback_preview([change_set.pk])[0].conflict
    reviews.change_set_rollback(change_set_id=change_set.pk, operator=operators["alice"])
    assert editable(user["id"]) == original


def test_rolling_back_a_group_rename_and_members(scim, operators):
    now = timezone.now()
    people = User.objects.bulk_create(
        User(user_name=f"p-{uuid.uuid4().hex}", created=now, last_modified=now) for _ in range(3)
    )
    group = scim.create_group("Team", members=[{"value": str(people[0].pk)}])
    resp = scim.patch_ops(
        f"/Groups/{group['id']}",
        {"op": "replace", "path": "displayName", "value": "Team 2"},
        {"op": "add", "path": "members", "value": [{"value": str(people[1].pk)}]},
        {"op": "remove", "path": f'members[value eq "{people[0].pk}"]'},
    )
    assert resp.status_code == 204
    change_set = ChangeSet.objects.order_by("-id").first()
    reviews.change_set_rollback(change_set_id=change_set.pk, operator=operators["alice"])
    restored = Group.objects.get(pk=group["id"])
    assert restored.display_name == "Team"
    assert [str(m.user_id) for m in restored.memberships.all()] == [str(people[0].pk)]
