"""Approved operations applied by a real Celery worker through Redis, and the sweep that
recovers from a broker outage. Runs when DATABASE_URL is PostgreSQL and CELERY_BROKER_URL
is set (CI's second pass); the worker shares the test database."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from provisioning.access.clients import scim_client_create
from provisioning.audit.models import ChangeRecord
from provisioning.directory import services as directory
from provisioning.directory.models import User
from provisioning.directory.pipeline import OperationHeld
from provisioning.oversight import services
from provisioning.oversight.models import PendingOperation, PolicyRule
from provisioning.oversight.tasks import apply_approved_operations

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker():
    if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL:
        pytest.skip("needs PostgreSQL (DATABASE_URL) and a broker (CELERY_BROKER_URL)")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    # A queue of its own, so a stale worker from elsewhere never takes these messages.
    queue = f"test-{os.getpid()}-{time.monotonic_ns()}"
    from provisioning.celery import app

    previous_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "provisioning",
            "worker",
            "--pool",
            "solo",
            "-Q",
            queue,
            "--without-mingle",
            "--without-gossip",
            "-l",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        app.conf.task_default_queue = previous_queue
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for(predicate, timeout: float = 45.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def held_delete(user_name: str):
    from django.contrib.auth import get_user_model

    PolicyRule.objects.create(name=f"hold {user_name}", kind="delete_user", action="hold")
    client, _ = scim_client_create(name=f"idp-{user_name}", role="provisioner")
    user = directory.user_create(document={"userName": user_name}, client=client)
    with pytest.raises(OperationHeld) as raised:
        directory.user_delete(user_id=user.pk, client=client)
    approver = get_user_model().objects.create_user(username=f"approver-{user_name}")
    return user, raised.value.pending, approver


def test_a_real_worker_applies_an_approved_operation(worker):
    user, pending, approver = held_delete("worker@x.example")

    services.pending_approve(pending_id=pending.pk, operator=approver)

    applied = wait_for(
        lambda: (
            PendingOperation.objects.get(pk=pending.pk).status == PendingOperation.Status.APPLIED
        )
    )
    assert applied, worker_output(worker)
    assert not User.objects.filter(pk=user.pk).exists()


def test_the_sweep_applies_what_a_broker_outage_left_approved_exactly_once(worker):
    from provisioning.celery import app

    user, pending, approver = held_delete("outage@x.example")
    broker = app.conf.broker_write_url
    use_broker(app, "redis://127.0.0.1:1/0")  # nothing listens there
    try:
        services.pending_approve(pending_id=pending.pk, operator=approver)
    finally:
        use_broker(app, broker)

    # The approval committed even though its message was lost; nothing was applied.
    time.sleep(2)
    assert PendingOperation.objects.get(pk=pending.pk).status == PendingOperation.Status.APPROVED
    assert User.objects.filter(pk=user.pk).exists()

    # Beat's periodic sweep is this same task; send it as beat would, twice.
    apply_approved_operations.delay()
    applied = wait_for(
        lambda: (
            PendingOperation.objects.get(pk=pending.pk).status == PendingOperation.Status.APPLIED
        )
    )
    assert applied, worker_output(worker)
    apply_approved_operations.delay()
    time.sleep(2)
    assert not User.objects.filter(pk=user.pk).exists()
    deletes = ChangeRecord.objects.filter(resource_id=user.pk, action="delete")
    assert deletes.count() == 1


def test_a_scheduled_deletion_survives_a_broker_outage(worker):
    """Deactivate before delete with a real worker: the sweep sent while the broker is
    down is lost; the one after it deletes the user exactly once."""

    from django.utils import timezone
    from kombu.exceptions import OperationalError

    from provisioning.celery import app
    from provisioning.oversight.models import CircuitBreaker
    from provisioning.oversight.tasks import delete_scheduled_users

    CircuitBreaker.objects.create(deletion_delay_days=7)
    client, _ = scim_client_create(name="idp-deferring", role="provisioner")
    user = directory.user_create(document={"userName": "deferred@x.example"}, client=client)
    directory.user_delete(user_id=user.pk, client=client)
    assert User.with_retired.get(pk=user.pk).retired
    User.with_retired.filter(pk=user.pk).update(deletion_due=timezone.now())

    broker = app.conf.broker_write_url
    use_broker(app, "redis://127.0.0.1:1/0")  # nothing listens there
    try:
        with pytest.raises(OperationalError):
            delete_scheduled_users.apply_async(retry=False)
    finally:
        use_broker(app, broker)
    time.sleep(1)
    assert User.with_retired.filter(pk=user.pk).exists()

    delete_scheduled_users.delay()  # beat's next sweep
    gone = wait_for(lambda: not User.with_retired.filter(pk=user.pk).exists())
    assert gone, worker_output(worker)
    delete_scheduled_users.delay()
    time.sleep(2)
    assert ChangeRecord.objects.filter(resource_id=user.pk, action="delete").count() == 1


def use_broker(app, url: str) -> None:
    """Point the publishing side at ``url``; connection pools are rebuilt on next use."""
    app.conf.broker_url = app.conf.broker_write_url = url
    # Dropped, not closed: kombu's global producer pools still hold the old connections.
    app._pool = None
    app.amqp._producer_pool = None


def worker_output(process) -> str:
    process.terminate()
    try:
        out, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out.decode(errors="replace")[-3000:]
