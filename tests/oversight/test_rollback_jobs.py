"""Large rollbacks as jobs: created with the up-front checks, run in chunks by a task,
recovered by the sweep, never run twice, failing whole change sets only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerDown

from provisioning.access.clients import scim_client_create
from provisioning.audit.context import change_set_scope
from provisioning.audit.models import AuditEntry, ChangeSet
from provisioning.directory import services as directory
from provisioning.directory.models import User
from provisioning.oversight import reviews, rollback_jobs, tasks
from provisioning.oversight.models import Rollback, RollbackJob, RollbackJobItem
from provisioning.scim.patch import PatchOperation
from tests.oversight.test_celery_worker import worker  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

Status = RollbackJob.Status


def deactivate(user_id, client) -> ChangeSet:
    directory.user_patch(
        user_id=user_id,
        operations=[PatchOperation(op="replace", path="active", value=False)],
        client=client,
    )
    return ChangeSet.objects.order_by("-id").first()


@pytest.fixture
def idp(db):
    client, _ = scim_client_create(name="idp-jobs", role="provisioner")
    return client


@pytest.fixture
def deactivations(idp):
    """Seven users deactivated by the IdP, one change set each (oldest first)."""
    users = [
        directory.user_create(
            document={"userName": f"job{i}@x.example", "active": True}, client=idp
        )
        for i in range(7)
    ]
    return users, [deactivate(user.pk, idp).pk for user in users]


@pytest.fixture
def chunk(monkeypatch):
    monkeypatch.setattr(rollback_jobs, "CHUNK", 3)
    return 3


def start(decide, ids, operator, **kwargs) -> RollbackJob:
    """Create a job and run what it queued after commit (the task, in-process)."""
    return decide(
        rollback_jobs.rollback_job_create, change_set_ids=ids, operator=operator, **kwargs
    )


def fresh(job: RollbackJob) -> RollbackJob:
    return RollbackJob.objects.get(pk=job.pk)


def test_a_large_rollback_runs_as_a_job_in_chunks(
    deactivations, operators, chunk, decide, monkeypatch
):
    users, ids = deactivations
    assert not rollback_jobs.runs_inline(ids)
    progress = []
    rollback = reviews.change_sets_rollback

    def spy(**kwargs):
        progress.append(RollbackJob.objects.get().done)  # what the job page reads meanwhile
        return rollback(**kwargs)

    monkeypatch.setattr(reviews, "change_sets_rollback", spy)

    job = fresh(start(decide, ids, operators["alice"]))

    assert job.status == Status.DONE and job.done == job.total == 7
    assert progress == [0, 3, 6]
    assert job.started_at <= job.finished_at and job.attempts == 1 and not job.error
    assert User.objects.filter(pk__in=[u.pk for u in users], active=True).count() == 7
    items = list(job.items.order_by("position"))
    assert [item.change_set_id for item in items] == sorted(ids, reverse=True)  # newest first
    for item in items:
        assert Rollback.objects.get(original_id=item.change_set_id).rollback_id == item.rollback_id
        assert not item.active
    # Who started it and how it ended are in the audit log, attributed to the operator.
    entries = AuditEntry.objects.filter(object_pk=str(job.pk))
    assert entries.count() >= 2 and {e.actor_id for e in entries} == {operators["alice"].pk}


def test_small_rollbacks_still_run_in_the_request(deactivations, operators):
    _, ids = deactivations

    started = rollback_jobs.rollback_start(change_set_ids=ids[:2], operator=operators["alice"])

    assert started.job is None and len(started.rollbacks) == 2
    assert not RollbackJob.objects.exists()


def test_a_single_change_set_with_many_records_runs_as_a_job(idp, operators, decide, monkeypatch):
    monkeypatch.setattr(rollback_jobs, "INLINE_RECORDS", 3)
    with change_set_scope(client=idp, source="scim"):
        for i in range(4):
            directory.user_create(document={"userName": f"bulk{i}@x.example"}, client=idp)
    change_set = ChangeSet.objects.order_by("-id").first()
    assert change_set.records.count() == 4

    started = decide(
        rollback_jobs.rollback_start, change_set_ids=[change_set.pk], operator=operators["alice"]
    )

    assert fresh(started.job).status == Status.DONE
    assert not User.objects.filter(user_name__startswith="bulk").exists()


def test_the_same_rollback_cannot_run_twice(deactivations, operators):
    _, ids = deactivations
    job = rollback_jobs.rollback_job_create(change_set_ids=ids, operator=operators["alice"])
    assert fresh(job).status == Status.QUEUED  # its task runs after commit, never here

    with pytest.raises(ValidationError, match="already being rolled back"):
        rollback_jobs.rollback_job_create(change_set_ids=ids[2:], operator=operators["bob"])
    with pytest.raises(ValidationError, match="already being rolled back"):
        rollback_jobs.rollback_start(change_set_ids=[ids[0]], operator=operators["bob"])
    # The database refuses it too, whatever the code checked.
    with pytest.raises(IntegrityError), transaction.atomic():
        other = RollbackJob.objects.create(
            operator=operators["bob"],
            total=1,
            created_at=timezone.now(),
            enqueued_at=timezone.now(),
        )
        RollbackJobItem.objects.create(job=other, position=0, change_set_id=ids[0])
    assert not Rollback.objects.exists()


def test_what_the_task_would_refuse_is_refused_up_front(deactivations, idp, operators):
    _, ids = deactivations
    with change_set_scope(operator=operators["alice"], source="console"):
        deactivate(
            directory.user_create(document={"userName": "own@x.example"}, client=None).pk, None
        )
    own = ChangeSet.objects.order_by("-id").first().pk
    with pytest.raises(PermissionDenied):
        rollback_jobs.rollback_job_create(change_set_ids=[*ids, own], operator=operators["alice"])

    rollback = reviews.change_set_rollback(change_set_id=ids[0], operator=operators["alice"])
    with pytest.raises(ValidationError, match=f"Change set {ids[0]} has already been rolled back"):
        rollback_jobs.rollback_job_create(change_set_ids=ids, operator=operators["bob"])
    with pytest.raises(ValidationError, match="is itself a rollback"):
        rollback_jobs.rollback_job_create(
            change_set_ids=[*ids[1:], rollback.pk], operator=operators["bob"]
        )
    with pytest.raises(ValidationError, match="do not exist"):
        rollback_jobs.rollback_job_create(
            change_set_ids=[*ids[1:], 999999], operator=operators["bob"]
        )
    assert not RollbackJob.objects.exists()


def test_a_broker_outage_loses_no_job_and_the_sweep_runs_it(
    deactivations, operators, decide, monkeypatch
):
    users, ids = deactivations

    def broker_down(*args, **kwargs):
        raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with monkeypatch.context() as patched:
        patched.setattr(tasks.run_rollback_job, "delay", broker_down)
        job = start(decide, ids, operators["alice"])  # the request succeeds all the same
        # Within the grace period the sweep leaves it alone (the message may be on its way).
        assert decide(rollback_jobs.rollback_jobs_sweep) == 0

    assert fresh(job).status == Status.QUEUED
    assert User.objects.filter(pk__in=[u.pk for u in users], active=True).count() == 0

    later = timezone.now() + timedelta(minutes=2)
    assert decide(rollback_jobs.rollback_jobs_sweep, now=later) == 1

    assert fresh(job).status == Status.DONE
    assert User.objects.filter(pk__in=[u.pk for u in users], active=True).count() == 7
    assert decide(rollback_jobs.rollback_jobs_sweep, now=later + timedelta(minutes=10)) == 0
    assert Rollback.objects.count() == 7


def test_a_run_that_crashed_midway_resumes_without_undoing_anything_twice(
    deactivations, operators, chunk, monkeypatch
):
    users, ids = deactivations
    job = rollback_jobs.rollback_job_create(change_set_ids=ids, operator=operators["alice"])
    rollback = reviews.change_sets_rollback
    calls = []

    def crash_on_the_second_chunk(**kwargs):
        calls.append(kwargs["change_set_ids"])
        if len(calls) == 2:
            raise OperationalError("server closed the connection unexpectedly")
        return rollback(**kwargs)

    monkeypatch.setattr(reviews, "change_sets_rollback", crash_on_the_second_chunk)
    with pytest.raises(OperationalError):
        rollback_jobs.rollback_job_run(job.pk)

    crashed = fresh(job)
    assert crashed.status == Status.RUNNING and crashed.done == 3
    assert Rollback.objects.count() == 3

    # The task's retry (or the sweep) runs it again: it starts at the fourth change set.
    assert tasks.run_rollback_job.apply(args=[str(job.pk)]).get() == Status.DONE

    assert calls[2][0] == calls[1][0] == sorted(ids, reverse=True)[3]
    done = fresh(job)
    assert done.status == Status.DONE and done.done == 7 and done.attempts == 2
    assert Rollback.objects.count() == 7
    assert sorted(Rollback.objects.values_list("original_id", flat=True)) == sorted(ids)
    assert User.objects.filter(pk__in=[u.pk for u in users], active=True).count() == 7
    # A duplicate message for a finished job changes nothing.
    assert tasks.run_rollback_job.apply(args=[str(job.pk)]).get() == Status.DONE
    assert Rollback.objects.count() == 7


def test_a_change_set_undone_meanwhile_by_someone_else_is_not_undone_again(
    deactivations, operators, chunk
):
    _, ids = deactivations
    job = rollback_jobs.rollback_job_create(change_set_ids=ids, operator=operators["alice"])
    # reviews.change_set_rollback does not look at jobs (the console's paths do).
    meanwhile = reviews.change_set_rollback(change_set_id=ids[2], operator=operators["bob"])

    rollback_jobs.rollback_job_run(job.pk)

    assert fresh(job).status == Status.DONE
    assert Rollback.objects.count() == 7
    assert job.items.get(change_set_id=ids[2]).rollback == meanwhile


def test_the_task_notes_why_a_run_broke_off_and_asks_for_a_retry(
    deactivations, operators, chunk, monkeypatch
):
    from celery.exceptions import Retry

    _, ids = deactivations
    job = rollback_jobs.rollback_job_create(change_set_ids=ids, operator=operators["alice"])
    rollback = reviews.change_sets_rollback
    calls = []

    def fail_once(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("deadlock detected")
        return rollback(**kwargs)

    monkeypatch.setattr(reviews, "change_sets_rollback", fail_once)

    with pytest.raises(Retry):
        tasks.run_rollback_job.apply(args=[str(job.pk)])
    broken = fresh(job)
    assert broken.status == Status.RUNNING and broken.done == 3
    assert broken.error == "Last attempt broke off: OperationalError: deadlock detected"

    assert tasks.run_rollback_job.apply(args=[str(job.pk)]).get() == Status.DONE
    done = fresh(job)
    assert done.attempts == 2 and not done.error
    assert Rollback.objects.count() == 7


def test_the_sweep_resumes_a_job_whose_worker_died(deactivations, operators, decide):
    _, ids = deactivations
    now = timezone.now()
    dead = rollback_jobs.rollback_job_create(change_set_ids=ids[3:], operator=operators["alice"])
    alive = rollback_jobs.rollback_job_create(change_set_ids=ids[:3], operator=operators["alice"])
    RollbackJob.objects.filter(pk=dead.pk).update(
        status=Status.RUNNING, started_at=now, heartbeat_at=now - timedelta(minutes=20), attempts=1
    )
    RollbackJob.objects.filter(pk=alive.pk).update(
        status=Status.RUNNING, started_at=now, heartbeat_at=now, attempts=1
    )

    assert decide(rollback_jobs.rollback_jobs_sweep) == 1

    assert fresh(dead).status == Status.DONE and fresh(dead).attempts == 2
    assert (
        fresh(alive).status == Status.RUNNING
        and not Rollback.objects.filter(original_id__in=ids[:3]).exists()
    )


def test_a_job_that_keeps_breaking_off_is_failed_in_the_end(deactivations, operators, monkeypatch):
    _, ids = deactivations
    job = rollback_jobs.rollback_job_create(change_set_ids=ids, operator=operators["alice"])
    RollbackJob.objects.filter(pk=job.pk).update(
        status=Status.RUNNING,
        attempts=rollback_jobs.MAX_ATTEMPTS,
        error="Last attempt broke off: X",
    )

    rollback_jobs.rollback_job_run(job.pk)

    failed = fresh(job)
    assert failed.status == Status.FAILED and "Stopped after" in failed.error
    assert not failed.items.filter(active=True).exists()
    assert not Rollback.objects.exists()


def test_a_conflict_stops_the_job_at_that_change_set_and_nothing_is_half_undone(
    idp, operators, chunk, decide
):
    users = [
        directory.user_create(document={"userName": f"c{i}@x.example", "active": True}, client=idp)
        for i in range(8)
    ]
    ids = [deactivate(user.pk, idp).pk for user in users[:5]]
    # One change set of two records: it deactivates users 5 and 6 together.
    with change_set_scope(client=idp, source="scim"):
        deactivate(users[5].pk, idp)
        deactivate(users[6].pk, idp)
    pair = ChangeSet.objects.order_by("-id").first()
    assert pair.records.count() == 2
    ids.append(pair.pk)
    ids.append(deactivate(users[7].pk, idp).pk)
    # User 5 changes after its deactivation: undoing the pair conflicts.
    directory.user_patch(
        user_id=users[5].pk,
        operations=[PatchOperation(op="replace", path="title", value="Later")],
        client=idp,
    )

    job = fresh(start(decide, ids, operators["alice"]))

    assert job.status == Status.FAILED
    assert job.failed_change_set_id == pair.pk
    assert f"Change set {pair.pk} could not be rolled back" in job.error
    assert "Changed since" in job.error
    # Newest first: the change set after the pair was undone, the pair and the rest were not.
    assert job.done == 1
    assert list(Rollback.objects.values_list("original_id", flat=True)) == [ids[-1]]
    active = dict(User.objects.filter(pk__in=[u.pk for u in users]).values_list("pk", "active"))
    assert active[users[7].pk] is True
    assert active[users[6].pk] is False and active[users[5].pk] is False  # not half undone
    assert all(active[u.pk] is False for u in users[:5])
    # Its change sets are free again: a forced job undoes the rest.
    left = [pk for pk in ids if pk != ids[-1]]
    again = fresh(start(decide, left, operators["alice"], force=True))
    assert again.status == Status.DONE
    assert User.objects.filter(pk__in=[u.pk for u in users], active=True).count() == 8


def test_illegal_transitions_are_refused(deactivations, operators):
    _, ids = deactivations
    job = rollback_jobs.rollback_job_create(change_set_ids=ids, operator=operators["alice"])
    with pytest.raises(ValidationError):
        rollback_jobs._transition(job, Status.DONE)  # queued jobs have not run
    job.status = Status.DONE
    with pytest.raises(ValidationError, match="A done rollback job cannot become running"):
        rollback_jobs._transition(job, Status.RUNNING)
    RollbackJob.objects.filter(pk=job.pk).update(status=Status.FAILED)
    assert rollback_jobs.rollback_job_run(job.pk).status == Status.FAILED  # a late message
    assert not Rollback.objects.exists()


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_job_that_a_broker_outage_left_to_the_sweep(request):
    import time

    from django.contrib.auth import get_user_model

    from provisioning.celery import app
    from tests.oversight.test_celery_worker import use_broker, wait_for, worker_output

    process = request.getfixturevalue("worker")  # skips without PostgreSQL and a broker
    client, _ = scim_client_create(name="idp-worker-jobs", role="provisioner")
    users = [
        directory.user_create(
            document={"userName": f"w{i}@x.example", "active": True}, client=client
        )
        for i in range(7)
    ]
    ids = [deactivate(user.pk, client).pk for user in users]
    operator = get_user_model().objects.create_user(username="rollback-operator")

    broker = app.conf.broker_write_url
    use_broker(app, "redis://127.0.0.1:1/0")  # nothing listens there
    try:
        job = rollback_jobs.rollback_job_create(change_set_ids=ids, operator=operator)
    finally:
        use_broker(app, broker)
    time.sleep(2)
    assert fresh(job).status == Status.QUEUED  # committed, its message lost

    # Beat's sweep, a minute later, sends it through the real broker to the worker.
    assert rollback_jobs.rollback_jobs_sweep(now=timezone.now() + timedelta(minutes=2)) == 1

    finished = wait_for(lambda: fresh(job).status == Status.DONE)
    assert finished, (fresh(job).status, fresh(job).error, worker_output(process))
    assert fresh(job).done == 7
    assert User.objects.filter(pk__in=[u.pk for u in users], active=True).count() == 7
    assert Rollback.objects.filter(original_id__in=ids).count() == 7
