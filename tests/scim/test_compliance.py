"""The public SCIM compliance checker (scim2-tester) run in-process over Users and Groups."""

import pytest
from django.core.wsgi import get_wsgi_application
from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_tester import Status, check_server

from provisioning.access.services import scim_client_create


@pytest.mark.django_db
def test_scim2_tester_reports_success_for_every_check():
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
    # The checker must have exercised every CRUD family and PATCH for both types.
    titles = " ".join(r.title for r in results)
    for family in ("create", "query", "replace", "delete", "patch"):
        assert family in titles.lower(), f"no {family} check ran"
