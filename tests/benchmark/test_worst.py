"""The worst-request stage of make bench builds requests at the limits in force and weighs
the audit trail they leave; run here in process, with small limits."""

from __future__ import annotations

import httpx
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone

from provisioning.access.clients import scim_client_create
from provisioning.benchmark import report, worst
from provisioning.directory.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_process(db):
    """The WSGI application in this process, keeping the test's database connection open
    between requests (as Django's test client does)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield httpx.WSGITransport(app=WSGIHandler())
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_every_case_runs_and_is_weighed(in_process, settings):
    settings.SCIM_MAX_MULTI_VALUES = 4
    settings.SCIM_MAX_MEMBERS_PER_REQUEST = 6
    settings.SCIM_MAX_PATCH_OPERATIONS = 12
    settings.SCIM_MAX_DOCUMENT_BYTES = 6_000
    settings.SCIM = {
        **settings.SCIM,
        "BULK_MAX_OPERATIONS": 3,
        "BULK_MAX_PAYLOAD_SIZE": 20_000,
        "MAX_RESULTS": 5,
    }
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 40_000
    # The list time budget is not under test here: on a busy machine the deepest filter
    # can exceed the default 750 ms and be answered 400 (tests/scim/test_limits.py covers it).
    settings.SCIM_LIST_TIMEOUT_MS = 30_000
    now = timezone.now()
    User.objects.bulk_create(
        User(user_name=f"spare-{n}", created=now, last_modified=now) for n in range(12)
    )
    _client, token = scim_client_create(name="worst", role="provisioner")

    results = worst.worst_requests("http://testserver", token, repeat=1, log=lambda line: None, transport=in_process)

    cases = results["cases"]
    statuses = {name: case["status"] for name, case in cases.items()}
    assert all(code < 500 for codes in statuses.values() for code in codes), statuses
    # At the limits, accepted; over them, refused.
    assert statuses["create_full_user"] == [201]
    assert statuses["patch_eq_filters"] == statuses["put_full_user"] == [200]
    assert statuses["group_add_members"] == statuses["group_member_operations"] == [204]
    assert statuses["bulk_creates"] == statuses["bulk_patches"] == [200]
    assert statuses["oversized_body"] == [413]
    assert statuses["filter_deepest"] == [200]
    assert 0 < results["title_patch_audit_bytes"] < 4096
    assert results["slowest"]["case"] in cases
    assert statuses["list_full_users"] == [200]
    # Everything the cases created is deleted again, but the page of full users (kept for
    # the next run).
    left = User.objects.filter(user_name__startswith="worst-")
    assert left.count() == left.filter(user_name__startswith=worst.FULL_USERS).count() == 5
    assert "Worst single requests" in report.render({"worst_requests": results})
