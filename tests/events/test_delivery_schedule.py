"""Retries with backoff and jitter, pausing a failing stream, the sweep, retention, and
in-process delivery without a broker."""

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from provisioning.events import delivery, tasks
from provisioning.events.models import Delivery, DeliveryAttempt, Event, EventStream
from provisioning.events.retention import prune_delivered

from .delivery_support import deliver, make_all_due, publish

pytestmark = pytest.mark.django_db


def test_backoff_doubles_with_jitter_up_to_the_cap(settings):
    settings.SCIMGATE_EVENTS_RETRY_BASE_SECONDS = 10
    settings.SCIMGATE_EVENTS_RETRY_MAX_SECONDS = 300
    for attempts, ceiling in [(1, 10), (2, 20), (3, 40), (5, 160), (6, 300), (50, 300)]:
        delays = [delivery.retry_delay(attempts) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), attempts
        # Jitter: the delays are spread, not one value.
        assert max(delays) - min(delays) > ceiling / 10


def test_a_failed_try_is_scheduled_by_backoff_in_the_database(receiver, push_stream, settings):
    settings.SCIMGATE_EVENTS_RETRY_BASE_SECONDS = 100
    stream = push_stream()
    receiver.always(500)
    publish()
    for attempt in (1, 2, 3):
        before = timezone.now()
        deliver(stream)
        row = Delivery.objects.get(stream=stream)
        assert row.attempts == attempt
        wait = (row.next_attempt_at - before).total_seconds()
        ceiling = 100 * 2 ** (attempt - 1)
        assert ceiling / 2 - 1 <= wait <= ceiling + 1
        # Not due yet: another run sends nothing.
        assert deliver(stream) == 0
        make_all_due(stream)
    assert len(receiver.received) == 3


def test_a_stream_failing_longer_than_its_limit_is_paused(receiver, push_stream):
    stream = push_stream(pause_after_seconds=3600)
    receiver.always(503)
    publish()
    deliver(stream)
    stream.refresh_from_db()
    assert stream.state == EventStream.State.ACTIVE and stream.failing_since is not None
    # An hour of failures later:
    EventStream.objects.filter(pk=stream.pk).update(
        failing_since=timezone.now() - timedelta(seconds=3601)
    )
    make_all_due(stream)
    deliver(stream)
    stream.refresh_from_db()
    assert stream.state == EventStream.State.FAILING
    # Paused: nothing more is sent, and the sweep leaves it alone.
    make_all_due(stream)
    sent = len(receiver.received)
    assert deliver(stream) == 0 and len(receiver.received) == sent
    assert stream.pk not in delivery.streams_due()


def test_the_sweep_pauses_a_stream_whose_retries_are_far_apart(receiver, push_stream):
    stream = push_stream(pause_after_seconds=60)
    EventStream.objects.filter(pk=stream.pk).update(
        failing_since=timezone.now() - timedelta(seconds=61)
    )
    delivery.streams_due()
    stream.refresh_from_db()
    assert stream.state == EventStream.State.FAILING


def test_a_success_ends_the_failing_period(receiver, push_stream):
    stream = push_stream()
    receiver.always(503)
    publish()
    deliver(stream)
    receiver.always(202)
    make_all_due(stream)
    deliver(stream)
    stream.refresh_from_db()
    assert stream.failing_since is None and stream.last_success_at is not None


def test_resume_makes_backed_off_deliveries_due_now(
    receiver, push_stream, django_capture_on_commit_callbacks
):
    stream = push_stream()
    receiver.always(503)
    publish()
    deliver(stream)
    receiver.always(202)
    assert delivery.streams_due() == []  # backing off
    with django_capture_on_commit_callbacks(execute=True):
        assert delivery.deliveries_due_now(stream.pk) == 1
    assert Delivery.objects.get(stream=stream).status == Delivery.Status.DELIVERED


def test_the_sweep_kicks_streams_with_due_deliveries(
    receiver, push_stream, webhook_stream, poll_stream
):
    push, hook, idle = push_stream(), webhook_stream(), push_stream()
    poll = poll_stream()
    publish()
    Delivery.objects.filter(stream=idle).delete()
    assert sorted(map(str, delivery.streams_due())) == sorted([str(push.pk), str(hook.pk)])
    assert poll.pk not in delivery.streams_due()
    # The beat task queues (here: runs) a delivery of each.
    assert tasks.sweep_deliveries() == 2
    assert Delivery.objects.filter(status=Delivery.Status.DELIVERED).count() == 2
    assert delivery.streams_due() == []


def test_retention_deletes_finished_old_events_and_keeps_undelivered_ones(
    receiver, push_stream, settings
):
    settings.SCIMGATE_EVENTS_RETENTION_DAYS = 30
    stream = push_stream()
    old_delivered, old_pending, old_refused, recent = publish(), publish(), publish(), publish()
    unheard = publish()
    Delivery.objects.filter(event=unheard).delete()
    deliver(stream)
    Delivery.objects.filter(event=old_pending).update(status=Delivery.Status.PENDING)
    Delivery.objects.filter(event=old_refused).update(status=Delivery.Status.FAILED)
    old = timezone.now() - timedelta(days=31)
    Event.objects.exclude(pk=recent.pk).update(created_at=old)

    assert prune_delivered() == 3

    assert set(Event.objects.values_list("pk", flat=True)) == {old_pending.pk, recent.pk}
    assert not DeliveryAttempt.objects.filter(delivery__event=old_delivered.pk).exists()
    assert Delivery.objects.filter(event=old_pending).exists()
    assert tasks.prune_events() == 0


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_sends_run_on_a_background_thread(receiver, push_stream, settings):
    """``make run``: the task runs in-process, the request must not wait for a slow
    receiver."""
    settings.SCIMGATE_EVENTS_EAGER_DELIVERY = "thread"
    stream = push_stream()
    receiver.always(202, delay=1.0)
    publish()
    started = time.monotonic()
    tasks.deliver_stream.delay(str(stream.pk))
    assert time.monotonic() - started < 0.5
    deadline = time.monotonic() + 10
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.received
    for thread in threading.enumerate():
        if thread.name.startswith("events-"):
            thread.join(timeout=10)


def test_deliver_due_ignores_poll_and_missing_streams(poll_stream):
    stream = poll_stream()
    publish()
    assert delivery.deliver_due(stream.pk) == 0
    assert delivery.deliver_due(uuid.uuid4()) == 0
