"""Every SCIM write is one change set with exact snapshots, and a failed write leaves nothing."""

from __future__ import annotations

import uuid

import pytest
from django.utils.dateparse import parse_datetime

from provisioning.access.models import ScimClient
from provisioning.audit import selectors
from provisioning.audit.models import AuditEntry, ChangeRecord, ChangeSet, RequestLog
from provisioning.directory.models import Group, Membership, User, UserEmail
from provisioning.scim import resources
from tests.scim.conftest import GROUP_SCHEMA, USER_SCHEMA

pytestmark = pytest.mark.django_db

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def client_of(scim) -> ScimClient:
    prefix = scim.token.split("_")[1]
    return ScimClient.objects.get(tokens__prefix=prefix)


def seen() -> set[int]:
    return set(ChangeSet.objects.values_list("pk", flat=True))


def new_change_sets(before: set[int]) -> list[ChangeSet]:
    return list(ChangeSet.objects.exclude(pk__in=before).order_by("pk"))


def assert_attributed(change_set: ChangeSet, client: ScimClient) -> None:
    """A directory change is recorded once: its change record, in a change set attributed
    to the client. No django-auditlog entry repeats it, and the audit log shows the record."""
    assert change_set.scim_client == client and change_set.operator is None
    records = list(change_set.records.all())
    assert records
    assert not AuditEntry.objects.filter(change_set=change_set).exists()
    assert not AuditEntry.objects.filter(cid=str(change_set.correlation_id)).exists()
    log = selectors.audit_log(
        client=client, correlation_id=change_set.correlation_id, change_set=change_set
    )
    rows = list(log.rows())
    assert {row.kind for row in rows} == {"change_record"}
    assert sorted(row.id for row in rows) == sorted(record.pk for record in records)


def test_create_user_is_one_change_set_with_after_snapshot(scim):
    client = client_of(scim)
    before = seen()
    body = scim.create_user("ada", name={"givenName": "Ada"}, emails=[{"value": "ada@example.com"}])
    [change_set] = new_change_sets(before)
    assert change_set.source == "scim"
    assert change_set.request["method"] == "POST" and change_set.request["path"] == "/scim/v2/Users"
    assert change_set.request["body"]["userName"] == "ada"
    [record] = change_set.records.all()
    assert (record.action, record.resource_type, str(record.resource_id)) == ("create", "User", body["id"])
    assert record.before is None
    assert record.after["document"]["userName"] == "ada"
    assert record.after["version"] == 1 and record.after["source"] == str(client.pk)
    assert_attributed(change_set, client)


def test_replace_and_patch_record_before_and_after(scim):
    client = client_of(scim)
    user = scim.create_user("grace", displayName="Grace")
    before_sets = seen()

    scim.ok(scim.put(f"/Users/{user['id']}", {"schemas": [USER_SCHEMA], "userName": "grace", "displayName": "G. Hopper"}))
    [replace_set] = ChangeSet.objects.exclude(pk__in=before_sets)
    [record] = replace_set.records.all()
    assert record.action == "replace"
    assert record.before["document"]["displayName"] == "Grace"
    assert record.after["document"]["displayName"] == "G. Hopper"
    assert (record.before["version"], record.after["version"]) == (1, 2)
    assert record.changed_attributes == ["displayName"]
    assert_attributed(replace_set, client)

    earlier = seen()
    scim.ok(scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "active", "value": False}))
    [patch_set] = ChangeSet.objects.exclude(pk__in=earlier)
    [record] = patch_set.records.all()
    assert record.action == "patch" and record.after["document"]["active"] is False
    assert "active" not in record.before["document"]
    assert_attributed(patch_set, client)


def test_noop_patch_makes_no_change_set(scim):
    user = scim.create_user("noop", displayName="Same")
    count = ChangeSet.objects.count()
    scim.ok(scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "displayName", "value": "Same"}))
    assert ChangeSet.objects.count() == count


def test_group_membership_add_and_remove_are_id_deltas(scim):
    client = client_of(scim)
    alice, bob = scim.create_user("alice"), scim.create_user("bob")
    group = scim.create_group("staff", members=[{"value": alice["id"]}])
    create_record = ChangeRecord.objects.get(resource_id=group["id"], action="create")
    assert create_record.members_added == [{"value": alice["id"], "type": "User"}]

    earlier = seen()
    resp = scim.patch_ops(
        f"/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": bob["id"], "display": "Bob"}]},
        {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'},
    )
    assert resp.status_code == 204
    [change_set] = ChangeSet.objects.exclude(pk__in=earlier)
    [record] = change_set.records.all()
    assert record.members_added == [{"value": bob["id"], "type": "User", "display": "Bob"}]
    assert record.members_removed == [{"value": alice["id"], "type": "User"}]
    assert record.changed_attributes == ["members"]
    assert record.before["version"] == 1 and record.after["version"] == 2
    assert_attributed(change_set, client)


def test_bulk_makes_one_change_set_per_operation(scim):
    client = client_of(scim)
    earlier = seen()
    body = {
        "schemas": [BULK_REQUEST],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u1",
             "data": {"schemas": [USER_SCHEMA], "userName": "bulk-user", "password": "Bulk-Secret-1"}},
            {"method": "POST", "path": "/Groups", "bulkId": "g1",
             "data": {"schemas": [GROUP_SCHEMA], "displayName": "bulk-group",
                      "members": [{"value": "bulkId:u1"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "dup",
             "data": {"schemas": [USER_SCHEMA], "userName": "bulk-user"}},  # 409: no change set
        ],
    }
    result = scim.ok(scim.post("/Bulk", body))
    assert [op["status"] for op in result["Operations"]] == ["201", "201", "409"]
    sets = list(ChangeSet.objects.exclude(pk__in=earlier).order_by("pk"))
    assert len(sets) == 2
    assert {s.source for s in sets} == {"bulk"}
    assert len({s.correlation_id for s in sets}) == 1  # one request, two units
    assert [s.request["bulkId"] for s in sets] == ["u1", "g1"]
    assert sets[0].request["body"]["password"] == "[REDACTED]"
    user_id = User.objects.get(user_name="bulk-user").pk
    [group_record] = sets[1].records.all()
    assert group_record.members_added == [{"value": str(user_id), "type": "User"}]
    for change_set in sets:
        assert change_set.records.count() == 1
        assert_attributed(change_set, client)


def test_conflict_leaves_no_change_set_and_no_audit_entry(scim):
    scim.create_user("taken")
    sets, entries = ChangeSet.objects.count(), AuditEntry.objects.count()
    scim.assert_error(scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "TAKEN"}), 409, "uniqueness")
    assert (ChangeSet.objects.count(), AuditEntry.objects.count()) == (sets, entries)


def test_exception_mid_patch_leaves_nothing(scim, monkeypatch):
    alice, bob = scim.create_user("alice2"), scim.create_user("bob2")
    group = scim.create_group("mid", members=[{"value": alice["id"], "display": "A"}])
    sets, entries, records = ChangeSet.objects.count(), AuditEntry.objects.count(), ChangeRecord.objects.count()

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    # Runs after the group row is saved and the new membership inserted.
    monkeypatch.setattr("provisioning.directory.services._redisplay", explode)
    resp = scim.patch_ops(
        f"/Groups/{group['id']}",
        {"op": "replace", "path": "displayName", "value": "renamed"},
        {"op": "add", "path": "members", "value": [{"value": bob["id"]}, {"value": alice["id"], "display": "B"}]},
    )
    assert resp.status_code == 500
    assert (ChangeSet.objects.count(), AuditEntry.objects.count(), ChangeRecord.objects.count()) == (
        sets, entries, records,
    )
    stored = Group.objects.get(pk=group["id"])
    assert (stored.display_name, stored.version) == ("mid", 1)
    assert list(Membership.objects.filter(group=stored).values_list("user_id", flat=True)) == [
        uuid.UUID(alice["id"])
    ]


def test_correlation_id_is_generated_not_taken_from_headers(scim):
    spoofed = str(uuid.uuid4())
    body = {"schemas": [USER_SCHEMA], "userName": "cid"}
    scim.ok(scim.post("/Users", body, HTTP_X_CORRELATION_ID=spoofed, HTTP_X_REQUEST_ID=spoofed), 201)
    change_set = ChangeSet.objects.get(records__resource_name="cid")
    assert str(change_set.correlation_id) != spoofed
    assert not AuditEntry.objects.filter(cid=spoofed).exists()


def test_correlation_ids_are_time_ordered_and_shared_by_the_request_log(scim):
    """A request's correlation id is a UUIDv7 (``provisioning.ids``): the change set and
    the request-log row of one request carry the same one, and a later request's sorts
    after it, so that the indexes holding them grow at their end."""
    ids = []
    for name in ("cid-a", "cid-b"):
        body = {"schemas": [USER_SCHEMA], "userName": name}
        scim.ok(scim.post("/Users", body), 201)
        change_set = ChangeSet.objects.get(records__resource_name=name)
        logged = RequestLog.objects.get(correlation_id=change_set.correlation_id)
        assert logged.method == "POST" and logged.status == 201
        assert change_set.correlation_id.version == 7
        ids.append(change_set.correlation_id)
    # The first 48 bits are milliseconds: the later request's are never smaller.
    assert ids[0].int >> 80 <= ids[1].int >> 80
    assert ids[0] != ids[1]


def test_forwarded_for_is_ignored_unless_from_a_trusted_proxy(scim, settings):
    body = {"schemas": [USER_SCHEMA], "userName": "xff1"}
    scim.ok(scim.post("/Users", body, HTTP_X_FORWARDED_FOR="6.6.6.6"), 201)
    assert ChangeSet.objects.get(records__resource_name="xff1").remote_addr == "127.0.0.1"

    settings.SCIMGATE_TRUSTED_PROXIES = ["127.0.0.1/32"]
    from django.test import Client

    scim.http = Client()  # a new handler reads the setting
    # The client sent 6.6.6.6 itself; our proxy appended the real peer 203.0.113.9.
    body = {"schemas": [USER_SCHEMA], "userName": "xff2"}
    scim.ok(scim.post("/Users", body, HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9"), 201)
    assert ChangeSet.objects.get(records__resource_name="xff2").remote_addr == "203.0.113.9"


# --- Restoring from a delete's snapshot -----------------------------------------------


def _restore_user(snapshot: dict) -> User:
    """What the rollback issue will do: the user back with the same id, attributes and memberships."""
    fields = resources.user_fields(snapshot["document"])
    user = User.objects.create(
        id=snapshot["id"],
        created=parse_datetime(snapshot["created"]),
        last_modified=parse_datetime(snapshot["lastModified"]),
        version=snapshot["version"],
        source_id=snapshot["source"],
        **fields,
    )
    for email in user.attributes.get("emails", []):
        UserEmail.objects.create(user=user, value=email["value"], type=email.get("type", ""),
                                 primary=email.get("primary") is True)
    Membership.objects.bulk_create(
        Membership(group_id=m["value"], user=user, display=m["memberDisplay"]) for m in snapshot["memberOf"]
    )
    return user


def _restore_group(snapshot: dict) -> Group:
    group = Group.objects.create(
        id=snapshot["id"],
        created=parse_datetime(snapshot["created"]),
        last_modified=parse_datetime(snapshot["lastModified"]),
        version=snapshot["version"],
        source_id=snapshot["source"],
        **resources.group_fields(snapshot["document"]),
    )
    Membership.objects.bulk_create(
        [
            Membership(
                group=group,
                user_id=None if m["type"] == "Group" else m["value"],
                member_group_id=m["value"] if m["type"] == "Group" else None,
                display=m.get("display"),
            )
            for m in snapshot["members"]
        ]
        + [
            Membership(group_id=m["value"], member_group=group, display=m["memberDisplay"])
            for m in snapshot["memberOf"]
        ]
    )
    return group


def test_deleted_user_is_recreated_from_its_snapshot(scim):
    user = scim.create_user(
        "restore-me",
        externalId="ext-42",
        displayName="Restore Me",
        emails=[{"value": "r@example.com", "type": "work", "primary": True}],
        **{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "7"}},
    )
    scim.ok(scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Boss"}))
    group = scim.create_group("restorers", members=[{"value": user["id"], "display": "RM"}])
    original = scim.read(f"/Users/{user['id']}")

    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    assert scim.get(f"/Users/{user['id']}").status_code == 404
    record = ChangeRecord.objects.get(resource_id=user["id"], action="delete")
    assert record.after is None and record.before["id"] == user["id"]
    assert record.change_set.records.count() == 1

    _restore_user(record.before)
    restored = scim.read(f"/Users/{user['id']}")
    assert restored == original
    assert [g["value"] for g in restored["groups"]] == [group["id"]]
    assert scim.search("/Users", filter='emails.value eq "r@example.com"')["totalResults"] == 1
    assert Membership.objects.get(user_id=user["id"]).display == "RM"


def test_deleted_group_is_recreated_from_its_snapshot(scim):
    alice = scim.create_user("g-alice")
    child = scim.create_group("child")
    group = scim.create_group(
        "doomed", externalId="x-1",
        members=[{"value": alice["id"], "display": "Alice"}, {"value": child["id"]}],
    )
    parent = scim.create_group("parent", members=[{"value": group["id"], "display": "D"}])
    original = scim.read(f"/Groups/{group['id']}")

    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    record = ChangeRecord.objects.get(resource_id=group["id"], action="delete")
    assert {m["value"] for m in record.before["members"]} == {alice["id"], child["id"]}
    assert record.before["memberOf"] == [{"value": parent["id"], "display": "parent", "memberDisplay": "D"}]

    _restore_group(record.before)
    assert scim.read(f"/Groups/{group['id']}") == original
    parent_members = scim.read(f"/Groups/{parent['id']}")["members"]
    assert [m["value"] for m in parent_members] == [group["id"]]
