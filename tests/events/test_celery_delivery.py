"""Event delivery by a real Celery worker through Redis, and the sweep that delivers what
a dead broker left. Runs when DATABASE_URL is PostgreSQL and CELERY_BROKER_URL is set
(CI's second pass); the worker shares the test database."""

import json

import pytest
from django.db import transaction

from provisioning.events import tasks
from provisioning.events.models import Delivery, EventStream
from tests.oversight.test_celery_worker import (  # noqa: F401 - the worker fixture
    use_broker,
    wait_for,
    worker,
    worker_output,
)

from .delivery_support import new_stream, publish

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def webhook_stream(receiver) -> EventStream:
    from provisioning.events import crypto

    from .delivery_support import WEBHOOK_SECRET

    return new_stream(EventStream.Method.WEBHOOK, receiver.url, secret=crypto.seal(WEBHOOK_SECRET))


def delivered(stream) -> int:
    return Delivery.objects.filter(stream=stream, status=Delivery.Status.DELIVERED).count()


def test_a_real_worker_delivers_to_the_receiver(worker, receiver):  # noqa: F811
    stream = webhook_stream(receiver)
    with transaction.atomic():
        event = publish()
    assert wait_for(lambda: delivered(stream) == 1), worker_output(worker)
    [request] = receiver.received
    assert request.headers["webhook-id"] == event.jti.hex


def test_the_sweep_delivers_what_a_dead_broker_lost(worker, receiver, settings):  # noqa: F811
    from provisioning.celery import app

    # Every kick sent as its transaction commits (none folded into one sent later, when
    # the broker is back): the dead broker loses them all.
    settings.SCIMGATE_EVENTS_KICK_INTERVAL = 0
    stream = webhook_stream(receiver)
    broker = app.conf.broker_write_url
    use_broker(app, "redis://127.0.0.1:1/0")  # nothing listens there
    try:
        with transaction.atomic():
            events = [publish() for _ in range(5)]
    finally:
        use_broker(app, broker)

    # The events and deliveries committed; the kick was lost; nothing was sent.
    assert Delivery.objects.filter(stream=stream, status=Delivery.Status.PENDING).count() == 5
    assert receiver.received == []

    # Beat's periodic sweep is this same task; send it as beat would, twice.
    tasks.sweep_deliveries.delay()
    assert wait_for(lambda: delivered(stream) == 5), worker_output(worker)
    tasks.sweep_deliveries.delay()
    wait_for(lambda: False, timeout=2)
    ids = [json.loads(r.body)["data"]["id"] for r in receiver.received]
    assert ids == [e.jti.hex for e in events]
