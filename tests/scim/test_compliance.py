"""The public SCIM compliance checker (scim2-tester) run in-process over Users and Groups."""

import pytest
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_tester import Status, check_server

from provisioning.access.clients import scim_client_create
from provisioning.oversight.models import CircuitBreaker


@pytest.fixture
def keep_test_connection():
    """Like Django's test Client: the WSGI handler must not close the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@pytest.mark.usefixtures("keep_test_connection")
def test_scim2_tester_reports_success_for_every_check():
    # The checker creates and deletes dozens of resources within seconds: exactly what
    # the mass-change circuit breaker exists to stop. Lift its limit for this client.
    CircuitBreaker.objects.update(max_operations=100_000)
    _, token = scim_client_create(name="compliance", role="provisioner")
    client = WSGISCIMClient(
        get_wsgi_application(),
        base_url="http://localhost/scim/v2",
        headers={"Authorization": f"Bearer {token}"},
    )

    results = check_server(client, resource_types=["User", "Group"])

    not_successful = [
        f"{r.resource_type or '-'} {r.title}: {r.status.name} {r.reason}"
        for r in results
        if r.status != Status.SUCCESS
    ]
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
