"""Large rollbacks from the console: a job instead of a long request, its page polled
with htmx until it ends, its result linking the new change sets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from provisioning.audit.models import ChangeSet
from provisioning.directory import services as directory
from provisioning.directory.models import User
from provisioning.oversight import rollback_jobs
from provisioning.oversight.models import Rollback, RollbackJob
from provisioning.scim.patch import PatchOperation
from tests.factories import ProvisionedUserFactory

from .conftest import XSS, csrf_token

pytestmark = pytest.mark.django_db

MASS = reverse("console:mass_rollback")
HTMX = {"HTTP_HX_REQUEST": "true"}


def deactivate(user, client) -> int:
    directory.user_patch(
        user_id=user.pk,
        operations=[PatchOperation(op="replace", path="active", value=False)],
        client=client,
    )
    return ChangeSet.objects.order_by("-id").first().pk


@pytest.fixture
def deactivated(idp):
    """Seven users the IdP deactivated, one change set each; more than a request undoes."""
    users = [
        ProvisionedUserFactory(userName=f"u{i}@example.com", client=idp, active=True)
        for i in range(7)
    ]
    return users, [deactivate(user, idp) for user in users]


def range_params(idp) -> dict:
    now = timezone.localtime()
    return {
        "client": str(idp.pk),
        "since": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "until": (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"),
    }


def confirm_mass_rollback(client, idp):
    """Preview the IdP's change sets, then confirm the rollback the preview showed."""
    params = range_params(idp)
    preview = client.get(MASS, params)
    assert preview.status_code == 200
    ids = [str(pk) for pk in preview.context["change_set_ids"]]
    token = csrf_token(client, MASS)
    return preview, client.post(MASS, {**params, "change_sets": ids, "csrfmiddlewaretoken": token})


def job_url(job) -> str:
    return reverse("console:rollback_job_detail", args=[job.pk])


def test_a_large_mass_rollback_runs_as_a_job_and_links_the_new_change_sets(
    idp, deactivated, approver_client, approver, django_capture_on_commit_callbacks
):
    users, _ = deactivated
    with django_capture_on_commit_callbacks(execute=True):  # the task runs in-process
        preview, response = confirm_mass_rollback(approver_client, idp)

    assert preview.context["runs_as_job"]
    assert "runs in the background" in preview.content.decode()
    job = RollbackJob.objects.get()
    assert response.status_code == 302 and response["Location"] == job_url(job)
    assert job.operator == approver and job.total == 14  # 7 creates and 7 deactivations
    assert not User.objects.filter(pk__in=[u.pk for u in users]).exists()

    page = approver_client.get(job_url(job))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Every change set was rolled back" in body
    assert 'hx-trigger="every 2s"' not in body  # finished: nothing to poll
    assert 'value="14"' in body
    for rollback in Rollback.objects.all():
        assert reverse("console:change_set_detail", args=[rollback.rollback_id]) in body
        assert reverse("console:change_set_detail", args=[rollback.original_id]) in body


def test_the_job_page_polls_while_the_job_runs_and_stops_when_it_ends(
    deactivated, approver, viewer_client
):
    _, ids = deactivated
    job = rollback_jobs.rollback_job_create(change_set_ids=ids, operator=approver)

    page = viewer_client.get(job_url(job))  # viewers may follow a job
    assert page.status_code == 200
    body = page.content.decode()
    assert 'hx-trigger="every 2s"' in body and f'hx-get="{job_url(job)}"' in body
    assert "Queued" in body and "Waiting for a worker" in body
    assert "HX-Request" in page["Vary"]

    poll = viewer_client.get(job_url(job), **HTMX)
    assert poll.content.lstrip().startswith(b'<section id="job-status"')
    assert b"<html" not in poll.content and b'hx-trigger="every 2s"' in poll.content

    rollback_jobs.rollback_job_run(job.pk)

    poll = viewer_client.get(job_url(job), **HTMX)
    assert b"hx-trigger" not in poll.content  # the swapped-in section stops the polling
    assert b"Every change set was rolled back" in poll.content
    rollbacks = Rollback.objects.values_list("rollback_id", flat=True)
    assert len(rollbacks) == 7
    for pk in rollbacks:
        assert reverse("console:change_set_detail", args=[pk]).encode() in poll.content

    listing = viewer_client.get(reverse("console:rollback_job_list"))
    assert listing.status_code == 200 and job_url(job) in listing.content.decode()


def test_the_same_rollback_cannot_be_started_twice(idp, deactivated, approver_client):
    _, ids = deactivated
    _, first = confirm_mass_rollback(approver_client, idp)  # queued: its task never runs here
    assert first.status_code == 302

    _, second = confirm_mass_rollback(approver_client, idp)

    assert second.status_code == 400
    assert "already being rolled back" in second.content.decode()
    assert RollbackJob.objects.count() == 1
    job = RollbackJob.objects.get()
    # The single change set page points at the job instead of offering a second rollback.
    single = reverse("console:change_set_rollback", args=[ids[0]])
    page = approver_client.get(single)
    assert job_url(job) in page.content.decode() and 'name="force"' not in page.content.decode()
    token = csrf_token(approver_client, single)
    refused = approver_client.post(single, {"csrfmiddlewaretoken": token})
    assert refused.status_code == 400 and not Rollback.objects.exists()


def test_a_change_set_with_many_records_rolls_back_as_a_job(
    idp, approver_client, monkeypatch, django_capture_on_commit_callbacks
):
    from provisioning.audit.context import change_set_scope

    monkeypatch.setattr(rollback_jobs, "INLINE_RECORDS", 2)
    with change_set_scope(client=idp, source="scim"):
        for i in range(3):
            ProvisionedUserFactory(userName=f"bulk{i}@example.com", client=idp)
    change_set = ChangeSet.objects.order_by("-id").first()
    url = reverse("console:change_set_rollback", args=[change_set.pk])
    token = csrf_token(approver_client, url)

    with django_capture_on_commit_callbacks(execute=True):
        response = approver_client.post(url, {"csrfmiddlewaretoken": token})

    job = RollbackJob.objects.get()
    assert response.status_code == 302 and response["Location"] == job_url(job)
    assert job.status == RollbackJob.Status.DONE
    assert not User.objects.filter(user_name__startswith="bulk").exists()


def test_a_failed_job_says_where_and_why_it_stopped(
    idp, approver, viewer_client, django_capture_on_commit_callbacks
):
    users = [
        ProvisionedUserFactory(userName=f"f{i}@example.com", client=idp, active=True)
        for i in range(7)
    ]
    ids = [deactivate(user, idp) for user in users]
    # The oldest user changes afterwards (to a name that must be shown escaped).
    directory.user_patch(
        user_id=users[0].pk,
        operations=[PatchOperation(op="replace", path="displayName", value=XSS)],
        client=idp,
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = rollback_jobs.rollback_job_create(change_set_ids=ids, operator=approver)

    body = viewer_client.get(job_url(job)).content.decode()

    job.refresh_from_db()
    assert job.status == RollbackJob.Status.FAILED and job.failed_change_set_id == ids[0]
    assert "Failed" in body and f"Change set {ids[0]} could not be rolled back" in body
    assert reverse("console:change_set_rollback", args=[ids[0]]) in body
    assert "could not be rolled back</span>" in body
    assert "The 6 change sets before it stay rolled back" in body
    assert XSS not in body
    assert 'hx-trigger="every 2s"' not in body


def test_small_rollbacks_still_run_in_the_request(idp, approver_client):
    user = ProvisionedUserFactory(userName="small@example.com", client=idp, active=True)
    change_set = deactivate(user, idp)
    url = reverse("console:change_set_rollback", args=[change_set])
    token = csrf_token(approver_client, url)

    response = approver_client.post(url, {"csrfmiddlewaretoken": token})

    assert response.status_code == 302 and "/rollbacks/jobs/" not in response["Location"]
    assert User.objects.get(pk=user.pk).active is True
    assert not RollbackJob.objects.exists()


def test_viewers_cannot_start_a_rollback_job(idp, deactivated, viewer_client):
    params = range_params(idp)
    response = viewer_client.post(MASS, {**params, "change_sets": deactivated[1]})
    assert response.status_code == 403
    assert not RollbackJob.objects.exists()


def test_an_unknown_job_is_404(viewer_client):
    import uuid

    assert (
        viewer_client.get(reverse("console:rollback_job_detail", args=[uuid.uuid4()])).status_code
        == 404
    )
