"""The public SCIM compliance checker (scim2-tester) run in-process over Users and Groups."""

import pytest
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_tester import Status, check_server

from provisioning.access.clients import scim_client_create
from provisioning.oversight.models import DestructiveEvent, Quarantine


@pytest.fixture
def keep_test_connection():
    """Like Django's test Client: the WSGI handler must not close the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _check(token: str):
    """Run scim2-tester once over Users and Groups with ``token``; results, failed checks."""
    client = WSGISCIMClient(
        get_wsgi_application(),
        base_url="http://localhost/scim/v2",
        headers={"Authorization": f"Bearer {token}"},
    )
    results = check_server(client, resource_types=["User", "Group"])
    failed = [
        f"{r.resource_type or '-'} {r.title}: {r.status.name} {r.reason}"
        for r in results
        if r.status != Status.SUCCESS
    ]
    return results, failed


@pytest.mark.django_db
@pytest.mark.usefixtures("keep_test_connection")
def test_scim2_tester_reports_success_for_every_check():
    # The default configuration: the circuit breaker is on with its default limits. The
    # checker creates and deletes dozens of its own resources within seconds: churn, which
    # the breaker does not count.
    _, token = scim_client_create(name="compliance", role="provisioner")
    results, not_successful = _check(token)

    assert not not_successful, "\n".join(not_successful)
    checked_types = {r.resource_type for r in results}
    assert {"User", "Group"} <= checked_types
    # The checker must have exercised every CRUD family and PATCH, for both types.
    for resource_type in ("User", "Group"):
        titles = {r.title for r in results if r.resource_type == resource_type}
        for check in (
            "object_creation",
            "object_query",
            "object_replacement",
            "object_deletion",
            "check_add_attribute",
            "check_replace_attribute",
            "check_remove_attribute",
            "search_with_attributes",
        ):
            assert check in titles, f"{check} did not run for {resource_type}"
    assert not Quarantine.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.usefixtures("keep_test_connection")
def test_scim2_tester_passes_ten_runs_in_a_row_with_the_default_breaker():
    """Ten runs by one client within minutes (its own burst far past 50 destructive
    operations): every run succeeds, nothing is counted, no quarantine, no held write."""
    from provisioning.oversight.models import PendingOperation

    _, token = scim_client_create(name="compliance", role="provisioner")
    for run in range(10):
        _results, failed = _check(token)
        assert not failed, f"run {run + 1}: " + "\n".join(failed)
    assert not Quarantine.objects.exists()
    assert not PendingOperation.objects.exists()
    assert not DestructiveEvent.objects.exists()
