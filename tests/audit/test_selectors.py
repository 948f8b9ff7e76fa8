"""Search and streamed export over the audit trail."""

from __future__ import annotations

import csv
import json
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from provisioning.access.models import ScimClient
from provisioning.audit import selectors
from provisioning.audit.models import AuditEntry, ChangeSet
from provisioning.directory.models import User

pytestmark = pytest.mark.django_db


def client_of(scim) -> ScimClient:
    return ScimClient.objects.get(tokens__prefix=scim.token.split("_")[1])


def test_search_by_client_resource_action_text_and_time(scim, readonly_scim):
    client = client_of(scim)
    user = scim.create_user("searchable", displayName="Zanzibar Quokka")
    scim.ok(scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Chief Otter"}))
    other = scim.create_user("other")

    def log(**filters) -> list:
        return list(selectors.audit_log(**filters).rows())

    # A directory change is its change record in the audit log, attributed through its change set.
    mine = log(client=client, resource_type="User")
    assert {row.kind for row in mine} == {"change_record"}
    assert {str(row.record.resource_id) for row in mine} == {user["id"], other["id"]}
    assert [row.record.action for row in log(resource_id=user["id"])] == ["patch", "create"]
    assert [row.record.action for row in log(resource_id=user["id"], action="update")] == ["patch"]
    assert len(log(resource_name="SEARCHABLE")) == 2
    assert [str(row.record.resource_id) for row in log(text="chief ott")] == [user["id"]]
    assert len(log(text="quokka", action="create")) == 1
    assert not log(client=client_of(readonly_scim), resource_type="User")
    assert not log(since=timezone.now() + timedelta(minutes=1))
    assert not log(resource_type="User", action="access")
    assert not log(resource_type="access.role", resource_id=user["id"])
    # Configuration changes are django-auditlog entries, in the same timeline.
    clients = log(resource_type="access.scimclient")
    assert clients and {row.kind for row in clients} == {"entry"}
    assert not AuditEntry.objects.filter(content_type=ContentType.objects.get_for_model(User)).exists()

    sets = selectors.change_sets(client=client, resource_name="searchable")
    assert [s.records.get().action for s in sets] == ["patch", "create"]
    assert selectors.change_sets(text="otter").count() == 1
    history = selectors.change_records(resource_id=user["id"])
    assert [r.action for r in history] == ["create", "patch"]


def test_csv_and_jsonl_exports_are_lazy_line_streams(scim):
    scim.create_user("=HYPERLINK(1)")
    lines = selectors.export_log_csv(selectors.audit_log(resource_type="User"))
    assert isinstance(lines, Iterator)
    rows = list(csv.reader("".join(lines).splitlines()))
    assert rows[0][:3] == ["id", "timestamp", "action"] and rows[0][-2:] == ["kind", "cursor"]
    assert rows[1][rows[0].index("object_repr")] == "'=HYPERLINK(1)"  # not a formula in a spreadsheet
    [line] = list(selectors.export_log_jsonl(selectors.audit_log(resource_type="User")))
    exported = json.loads(line)
    assert exported["object_repr"] == "=HYPERLINK(1)" and exported["kind"] == "change_record"
    assert exported["changes"]["userName"] == [None, "=HYPERLINK(1)"]
    assert exported["scim_client"] and exported["content_hash"]
    lines = list(selectors.export_jsonl(selectors.audit_entries(resource_type="access.scimclient")))
    assert json.loads(lines[0])["model"] == "scimclient"
    change_set_lines = list(selectors.export_jsonl(selectors.change_sets(resource_name="=HYPERLINK(1)")))
    assert json.loads(change_set_lines[0])["request"]["method"] == "POST"


def test_export_of_100k_entries_streams_in_constant_memory():
    content_type = ContentType.objects.get_for_model(User)
    change_set = ChangeSet.objects.create(correlation_id="00000000-0000-0000-0000-000000000001", source="system")
    now = timezone.now()
    AuditEntry.objects.bulk_create(
        (
            AuditEntry(
                content_type=content_type,
                object_pk=f"{i:08d}",
                object_repr=f"user-{i}",
                action=1,
                changes={"displayName": [f"old {i} " + "x" * 100, f"new {i} " + "y" * 100]},
                timestamp=now,
                change_set=change_set,
            )
            for i in range(100_000)
        ),
        batch_size=5000,
    )
    stream = selectors.export_jsonl(selectors.audit_entries(), chunk_size=2000)
    tracemalloc.start()
    count, size = 0, 0
    for line in stream:
        count += 1
        size += len(line)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 100_000
    # ~40 MB of output; loading the rows would hold all of it (and far more in objects).
    assert size > 30_000_000
    assert peak < 10_000_000, f"peak {peak} bytes"
