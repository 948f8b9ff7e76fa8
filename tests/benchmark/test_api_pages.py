"""The management API figures of the in-process stage: the pending operations queue and a
page of the audit log through the API with an operator token, next to the console's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from provisioning.access.models import OperatorToken
from provisioning.benchmark import measure, report
from provisioning.benchmark.runner import bench_token
from provisioning.benchmark.synthetic import SyntheticSpec, load_synthetic
from provisioning.directory.models import User
from provisioning.oversight.models import PendingOperation, PolicyRule

pytestmark = pytest.mark.django_db


@pytest.fixture
def loaded(db):
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    load_synthetic(
        SyntheticSpec(
            users=20, groups=2, group_sizes=(2,), nested=1, audit_entries=60, request_log=5,
            seed=5, batch_size=11, until=datetime(2025, 1, 1, tzinfo=UTC), history_days=5,
            members_per_patch=3,
        )
    )
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_the_api_pages_are_measured_next_to_the_console(loaded):
    results = measure.api_pages(measure.InProcess(bench_token()), repeat=2)
    for name in ("pending_api", "pending_console", "audit_api", "audit_console"):
        case = results[name]
        assert case["n"] == 2 and case["p50_ms"] > 0 and case["queries"] >= 1, (name, case)
    # The measuring tokens do not outlive the measurement.
    assert not OperatorToken.objects.filter(revoked_at__isnull=True, name__startswith="bench-").exists()
    # The queue is not empty: each active user has one held operation (fewer than
    # HELD_OPERATIONS users here), held through the pipeline by a rule gone since.
    active = User.objects.filter(active=True)
    assert results["pending_waiting"] == active.count() > 0
    assert set(PendingOperation.objects.values_list("resource_id", flat=True)) == set(
        active.values_list("pk", flat=True)
    )
    assert not PolicyRule.objects.filter(name__startswith="bench-hold").exists()
    assert not User.objects.filter(attributes__title__startswith="held").exists()
    # A second run finds them waiting and holds no more.
    assert measure.hold_operations(measure.InProcess(bench_token()), count=active.count()) == 0
    text = report.render({"api_pages": results})
    assert "Audit log, first page (50 rows): API (operator token) / console" in text
    assert f"p50 {results['audit_api']['p50_ms']} / {results['audit_console']['p50_ms']} ms" in text
