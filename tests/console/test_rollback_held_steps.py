"""A rollback step that policy holds: the console says so and links the pending operation,
inline and from a rollback job."""

from __future__ import annotations

import pytest
from django.urls import reverse

from provisioning.audit.models import ChangeSet
from provisioning.directory.models import User
from provisioning.oversight import rollback_jobs
from provisioning.oversight.models import PendingOperation, PolicyRule, RollbackJob
from tests.factories import ScimClientFactory
from tests.scim.conftest import ScimApi

from .conftest import XSS, csrf_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def scim(db) -> ScimApi:
    return ScimApi(ScimClientFactory(name="okta-prod").raw_token)


def created_change_set(user_id) -> ChangeSet:
    return ChangeSet.objects.get(records__resource_id=user_id, records__action="create")


def test_an_inline_rollback_names_the_step_policy_held(scim, approver_client):
    PolicyRule.objects.create(name="Hold deletions", kind="delete_user", action="hold")
    user = scim.create_user(f"held-{XSS}@example.com")
    url = reverse("console:change_set_rollback", args=[created_change_set(user["id"]).pk])

    response = approver_client.post(
        url, {"csrfmiddlewaretoken": csrf_token(approver_client, url)}, follow=True
    )

    assert response.status_code == 200
    pending = PendingOperation.objects.get(status=PendingOperation.Status.PENDING)
    body = response.content.decode()
    assert "Policy held 1 step of the rollback" in body
    assert reverse("console:pending_detail", args=[pending.pk]) in body
    assert XSS not in body  # the IdP's userName is escaped in the message
    assert User.objects.filter(pk=user["id"]).exists()


def test_a_rollback_job_lists_the_steps_policy_held(
    scim, approver, approver_client, django_capture_on_commit_callbacks
):
    PolicyRule.objects.create(name="Hold deletions", kind="delete_user", action="hold")
    users = [scim.create_user(f"job{i}@example.com") for i in range(6)]
    ids = [created_change_set(u["id"]).pk for u in users]

    with django_capture_on_commit_callbacks(execute=True):
        job = rollback_jobs.rollback_job_create(change_set_ids=ids, operator=approver)

    job.refresh_from_db()
    assert job.status == RollbackJob.Status.DONE
    held = PendingOperation.objects.filter(status=PendingOperation.Status.PENDING)
    assert held.count() == 6 and User.objects.count() == 6
    assert sorted(p for item in job.items.all() for p in item.held_operations) == sorted(
        str(p.pk) for p in held
    )
    body = approver_client.get(reverse("console:rollback_job_detail", args=[job.pk])).content
    for pending in held:
        assert reverse("console:pending_detail", args=[pending.pk]).encode() in body
