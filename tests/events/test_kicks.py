"""Delivery kicks from a web process are folded per stream: the first is sent at once,
those within the interval after it become one kick sent when the interval ends, none is
dropped. Poll streams are never kicked (their receiver fetches)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.db import transaction

from provisioning.celery import app
from provisioning.events import outbox
from provisioning.events.models import EventKind, EventStream

from .delivery_support import new_stream, publish

INTERVAL = 0.2


class Sent:
    def __init__(self):
        self.calls: list[tuple[str, float]] = []
        self.event = threading.Event()

    def __call__(self, stream_id: str) -> None:
        self.calls.append((stream_id, time.monotonic()))
        self.event.set()

    def ids(self) -> list[str]:
        return [stream_id for stream_id, _ in self.calls]


@pytest.fixture
def broker():
    """Kicks as with a broker (folding applies); tests otherwise run tasks in-process."""
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = previous


def test_a_burst_is_one_kick_now_and_one_when_the_interval_ends(broker):
    sent = Sent()
    kicks = outbox.Kicks(send=sent, interval=INTERVAL)
    started = time.monotonic()
    kicks.send("a")
    assert sent.ids() == ["a"]  # a quiet stream: at once
    sent.event.clear()
    for _ in range(5):
        kicks.send("a")
    kicks.send("b")  # another stream is not held back by the first
    assert sent.ids() == ["a", "b"]
    sent.event.clear()
    assert sent.event.wait(2)
    time.sleep(INTERVAL)  # nothing more comes
    assert sent.ids() == ["a", "b", "a"]
    # The owed kick went out once the interval after the first had passed.
    assert sent.calls[2][1] - started >= INTERVAL * 0.9


def test_after_a_quiet_interval_a_kick_is_sent_at_once_again(broker):
    sent = Sent()
    kicks = outbox.Kicks(send=sent, interval=0.05)
    kicks.send("a")
    time.sleep(0.08)
    kicks.send("a")
    assert sent.ids() == ["a", "a"]


@pytest.mark.parametrize("interval", [0, INTERVAL])
def test_without_folding_every_kick_is_sent(interval):
    """Interval 0, or tasks run in-process (no broker: the background sender folds)."""
    sent = Sent()
    kicks = outbox.Kicks(send=sent, interval=interval)
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = interval != 0
    try:
        for _ in range(3):
            kicks.send("a")
    finally:
        app.conf.task_always_eager = previous
    assert sent.ids() == ["a", "a", "a"]


def test_an_owed_kick_the_broker_refuses_is_logged_not_raised(broker, caplog):
    calls = []

    def send(stream_id):
        calls.append(stream_id)
        if len(calls) > 1:
            raise ConnectionError("broker down")

    kicks = outbox.Kicks(send=send, interval=0.05)
    kicks.send("a")
    kicks.send("a")
    deadline = time.monotonic() + 2
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert calls == ["a", "a"]
    assert "could not queue the delivery of stream a" in caplog.text


def test_a_forked_child_starts_afresh(broker):
    sent = Sent()
    kicks = outbox.Kicks(send=sent, interval=60)
    kicks.send("a")
    kicks.send("a")  # owed, its timer in this process only
    kicks.reset()
    kicks.send("a")
    assert sent.ids() == ["a", "a"]


@pytest.mark.django_db(transaction=True)
def test_poll_streams_are_not_kicked_push_and_webhook_streams_are(monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr(outbox.kicks, "send", asked.append)
    poll = new_stream(EventStream.Method.POLL)
    webhook = new_stream(EventStream.Method.WEBHOOK, "https://receiver.example/hook")
    with transaction.atomic():
        publish()
    assert asked == [str(webhook.pk)]
    assert poll.deliveries.count() == webhook.deliveries.count() == 1


@pytest.mark.django_db
def test_events_and_deliveries_get_their_ids_and_each_delivery_its_event(monkeypatch):
    """Several events to several streams in one call (one statement on PostgreSQL):
    each delivery is tied to its own event, and every row has the id it was stored under."""
    monkeypatch.setattr(outbox.kicks, "send", lambda stream_id: None)
    streams = [new_stream(EventStream.Method.POLL) for _ in range(2)]
    first, second = (
        outbox.Event(
            txn="t",
            kind=EventKind.PATCH,
            resource_type="User",
            resource_id=uuid.uuid4(),
            sub_id={"format": "scim"},
            payload={"version": 'W/"1"'},
        )
        for _ in range(2)
    )
    deliveries = outbox.publish([first, second], candidates=streams)
    stored = {(d.stream_id, d.event_id): d.pk for d in outbox.Delivery.objects.all()}
    assert {(d.stream_id, d.event_id): d.pk for d in deliveries} == stored
    assert len(stored) == 4
    assert {first.pk, second.pk} == set(outbox.Event.objects.values_list("pk", flat=True))
    for event in (first, second):
        assert outbox.Event.objects.get(pk=event.pk).jti == event.jti
        assert {d.event_id for d in deliveries if d.event is event} == {event.pk}
