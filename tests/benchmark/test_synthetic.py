"""loadsynthetic: consistent, verifiable, deterministic data shaped like real traffic."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from provisioning.audit import deltas
from provisioning.audit.models import AuditEntry, AuditSeal, ChangeRecord, ChangeSet, RequestLog
from provisioning.audit.redaction import redact_body
from provisioning.audit.sealing import audit_verify
from provisioning.benchmark.history import Plan, ReplayContext, scale_group_name
from provisioning.benchmark.replay import PartReplay
from provisioning.benchmark.runner import synthetic_present
from provisioning.benchmark.synthetic import SyntheticSpec, load_synthetic
from provisioning.directory import selectors
from provisioning.directory.models import Group, Membership, User, UserEmail
from provisioning.scim import resources

UNTIL = datetime(2025, 1, 1, tzinfo=UTC)


def tiny(**overrides) -> SyntheticSpec:
    values = dict(
        users=40,
        groups=6,
        group_sizes=(3, 25),
        nested=2,
        audit_entries=200,
        request_log=21,
        seed=3,
        batch_size=17,
        until=UNTIL,
        history_days=30,
        members_per_patch=10,
    )
    values.update(overrides)
    return SyntheticSpec(**values)


class _Collect:
    """A RowWriter stand-in that keeps what would be inserted."""

    def __init__(self):
        self.rows: dict[type, list] = {}

    def insert(self, model, objects, *, with_pk=True):
        self.rows.setdefault(model, []).extend(objects)


def _replay(spec: SyntheticSpec, parts: int = 1):
    plan = Plan(spec)
    context = ReplayContext(
        uuid.UUID(int=1), "synthetic-idp", "abcdEFGH", 1, 2, 1, 1
    )
    writer = _Collect()
    results = [PartReplay(plan, context, part, parts, writer, lambda m: None).run() for part in range(parts)]
    return plan, writer, results


@pytest.mark.django_db
def test_load_is_consistent_and_verifies():
    spec = tiny()
    report = load_synthetic(spec)

    assert User.objects.count() == 40 == report.users
    # The counters behind unfiltered list totals agree with the tables.
    assert (selectors.resource_total(User), selectors.resource_total(Group)) == (40, 8)
    assert UserEmail.objects.count() == 40
    assert Group.objects.count() == 6 + 2 == report.groups
    for size in spec.group_sizes:
        group = Group.objects.get(display_name=scale_group_name(size))
        assert Membership.objects.filter(group=group).count() == size
        # One version per recorded write: the create and one PATCH per 10 members.
        assert group.version == 1 + -(-size // 10)
    assert Membership.objects.filter(member_group__isnull=False).count() <= spec.nested
    assert Membership.objects.count() == report.memberships
    # Every write left exactly one change set and one change record, and no audit entry
    # repeats it (a directory change is recorded once).
    synthetic_sets = ChangeSet.objects.filter(actor_repr="synthetic-idp", source="scim")
    assert synthetic_sets.count() == 200 == report.change_sets
    assert ChangeRecord.objects.filter(change_set__in=synthetic_sets).count() == 200
    assert not AuditEntry.objects.filter(change_set__in=synthetic_sets).exists()
    assert RequestLog.objects.count() == 21 == report.request_log
    # Each user's version and last change agree with its history.
    for user in User.objects.all()[:10]:
        records = ChangeRecord.objects.filter(resource_id=user.pk).order_by("id")
        assert records.count() == user.version
        assert records.last().after["version"] == user.version
        # The last record's digest is the user's document as stored.
        current = resources.user_editable_document(user)
        assert deltas.state(records.last().after) == deltas.document_state(current)
        assert records.last().resource_name == user.user_name
    assert AuditSeal.objects.exists()
    verification = audit_verify()
    assert verification.ok, verification.problems[:5]
    assert synthetic_present(spec)


@pytest.mark.django_db
def test_command_loads_once_and_verifyaudit_passes(capsys):
    args = ["--users", "12", "--groups", "3", "--group-sizes", "2,12", "--nested", "1",
            "--audit-entries", "60", "--request-log", "10", "--seed", "5", "--until", "2025-01-01"]
    call_command("loadsynthetic", *args)
    assert "Loaded 12 users" in capsys.readouterr().out
    call_command("verifyaudit")
    with pytest.raises(CommandError, match="already loaded"):
        call_command("loadsynthetic", *args)


def test_same_seed_same_data_different_seed_different_data():
    _plan, first, _ = _replay(tiny())
    _plan, again, _ = _replay(tiny())
    _plan, other, _ = _replay(tiny(seed=4))

    def fingerprint(writer):
        return [row.content_hash for model in (ChangeSet, ChangeRecord) for row in writer.rows[model]]

    assert fingerprint(first) == fingerprint(again)
    assert fingerprint(first) != fingerprint(other)


def test_partitioned_replay_produces_the_same_rows():
    """Workers each build the rows of the resources they own: together, the same history."""
    _plan, whole, _ = _replay(tiny())
    _plan, split, _ = _replay(tiny(), parts=3)
    for model in (ChangeSet, ChangeRecord):
        by_id = {row.id: row.content_hash for row in split.rows[model]}
        assert by_id == {row.id: row.content_hash for row in whole.rows[model]}
    times = [row.created_at for row in sorted(whole.rows[ChangeSet], key=lambda r: r.id)]
    assert times == sorted(times), "ids follow time, as on a real server"


def test_stored_request_is_what_the_middleware_stores():
    _plan, writer, _ = _replay(tiny())
    for change_set in writer.rows[ChangeSet][:50]:
        raw = json.dumps(change_set.request["body"]).encode()
        assert redact_body(raw)[0] == change_set.request["body"]
        assert change_set.request["body_size"] == len(raw)


@pytest.mark.django_db
def test_synthetic_rows_have_the_shape_of_real_traffic():
    """Replay a synthetic user's history through the real SCIM API: same documents,
    same changed attributes, same search text (ids aside), and no audit entry on either side."""
    from provisioning.access.clients import scim_client_create

    _plan, writer, results = _replay(tiny(users=5, groups=0, group_sizes=(), nested=0, audit_entries=40))
    target = next(iter(results[0].users.values())).user.pk
    records = [r for r in writer.rows[ChangeRecord] if r.resource_id == target]
    sets = {s.id: s for s in writer.rows[ChangeSet]}
    assert len(records) >= 2, "the user was created and patched"

    _client, token = scim_client_create(name="real-idp", role="provisioner")
    http = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    real_id = None
    for synthetic_record in records:
        request = sets[synthetic_record.change_set_id].request
        path = request["path"].replace(str(target), str(real_id))
        response = http.generic(request["method"], path, json.dumps(request["body"]), content_type="application/scim+json")
        assert response.status_code in (200, 201), response.content
        real_id = real_id or json.loads(response.content)["id"]
        real = ChangeRecord.objects.filter(resource_id=real_id).order_by("-id").first()
        assert real.action == synthetic_record.action
        assert real.changed_attributes == synthetic_record.changed_attributes
        assert real.after["document"] == synthetic_record.after["document"]
        assert (real.before or {}).get("document") == (synthetic_record.before or {}).get("document")
        assert set(real.after) == set(synthetic_record.after)
        assert real.search_text.replace(str(real_id), "") == synthetic_record.search_text.replace(str(target), "")
        assert real.resource_name == synthetic_record.resource_name
        assert not AuditEntry.objects.filter(change_set=real.change_set).exists()
