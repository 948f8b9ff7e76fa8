"""The json stage of make bench (filters and sortBy on JSON-held attributes) runs against
synthetic data, which carries the attributes it filters on; run here in process, on a
tiny load."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from provisioning.benchmark import report
from provisioning.benchmark.history import CITIES
from provisioning.benchmark.json_filters import json_filters
from provisioning.benchmark.measure import InProcess
from provisioning.benchmark.runner import STAGES, bench_token
from provisioning.benchmark.synthetic import SyntheticSpec, load_synthetic, top_up
from provisioning.directory.models import User
from provisioning.scim.schema import ENTERPRISE_USER

pytestmark = pytest.mark.django_db


@pytest.fixture
def loaded(db):
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    load_synthetic(
        SyntheticSpec(
            users=30, groups=3, group_sizes=(2,), nested=1, audit_entries=80, request_log=5,
            seed=3, batch_size=11, until=datetime(2025, 1, 1, tzinfo=UTC), history_days=10,
            members_per_patch=5,
        )
    )
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_synthetic_users_carry_the_filtered_attributes(loaded):
    user = User.objects.order_by("employee_number").first()
    index = int(user.employee_number) - 100000
    assert user.attributes["title"]
    assert user.attributes[ENTERPRISE_USER]["department"]
    assert user.attributes["addresses"] == [
        {"type": "work", "locality": CITIES[index % len(CITIES)], "country": "US"}
    ]
    assert user.attributes["phoneNumbers"][0]["value"] == f"+1 555 {index:07d}"
    assert top_up() == 0  # nothing to add (and PostgreSQL only)


def test_the_stage_measures_every_case(loaded):
    results = json_filters(InProcess(bench_token()), repeat=2)
    assert "json" in STAGES
    assert results["users"] == 30
    for name in ("filter_title_eq", "sort_title", "filter_locality_eq", "filter_phone_eq"):
        case = results[name]
        assert case["n"] == 2 and case["p50_ms"] > 0 and case["queries"] >= 1, (name, case)
    text = report.render({"json_filters": results})
    assert "JSON filter title eq" in text and "filter_locality_eq" in text
