"""Event delivery support: a real HTTP receiver on 127.0.0.1 (http.server in a thread),
streams of each method, and events published through the outbox."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from provisioning.access.token_check import token_digest
from provisioning.events import crypto, delivery, outbox
from provisioning.events.models import Event, EventKind, EventStream


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Answer:
    status: int = 202
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    trickle: float = 0.0  # seconds between the body's bytes (a slow receiver)


@dataclass
class Receiver:
    """Records every request; ``answer(request) -> Answer`` decides what it says."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answer: Callable[[Received], Answer] = lambda request: Answer()
    lock: threading.Lock = field(default_factory=threading.Lock)

    def always(self, status: int, body: bytes = b"", delay: float = 0.0) -> None:
        self.answer = lambda request: Answer(status=status, body=body, delay=delay)

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [r.body for r in self.received]


@pytest.fixture
def receiver():
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            request = Received(
                self.path, dict(self.headers.items()), self.rfile.read(length), time.monotonic()
            )
            answer = state.answer(request)
            with state.lock:
                state.received.append(request)
            if answer.delay:
                time.sleep(answer.delay)
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                if 300 <= answer.status < 400:
                    self.send_header("Location", state.url + "/elsewhere")
                self.end_headers()
                if answer.trickle:
                    for byte in answer.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(answer.trickle)
                else:
                    self.wfile.write(answer.body)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/events"
    yield state
    httpd.shutdown()
    httpd.server_close()


def new_stream(method: str, url: str = "", **fields) -> EventStream:
    fields.setdefault("name", f"{method}-{uuid.uuid4().hex[:8]}")
    return EventStream.objects.create(method=method, endpoint_url=url, **fields)


@pytest.fixture
def push_stream(receiver):
    def make(**fields) -> EventStream:
        authorization = fields.pop("authorization", "")
        return new_stream(
            EventStream.Method.PUSH,
            receiver.url,
            authorization=crypto.seal(authorization),
            **fields,
        )

    return make


WEBHOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def webhook_stream(receiver):
    def make(**fields) -> EventStream:
        secret = fields.pop("secret", WEBHOOK_SECRET)
        return new_stream(
            EventStream.Method.WEBHOOK, receiver.url, secret=crypto.seal(secret), **fields
        )

    return make


POLL_TOKEN = "evp_" + "x" * 43


@pytest.fixture
def poll_stream():
    def make(token: str = POLL_TOKEN, **fields) -> EventStream:
        return new_stream(
            EventStream.Method.POLL,
            poll_token_hash=token_digest(token),
            poll_token_prefix=token[:8],
            **fields,
        )

    return make


def publish(resource_id=None, kind=EventKind.PATCH, resource_type="User", **payload) -> Event:
    """One event through the outbox (as the recorder would write it)."""
    resource_id = resource_id or uuid.uuid4()
    path = "Users" if resource_type == "User" else "Groups"
    event = Event(
        txn=uuid.uuid4().hex,
        kind=kind,
        resource_type=resource_type,
        resource_id=resource_id,
        sub_id={"format": "scim", "uri": f"/{path}/{resource_id}", "id": str(resource_id)},
        payload={"version": 'W/"2"', "attributes": ["displayName"], **payload},
        created_at=timezone.now(),
    )
    outbox.publish([event])
    return event


def deliver(stream: EventStream) -> int:
    return delivery.deliver_due(stream.pk)


def make_all_due(stream: EventStream) -> None:
    """Let backoff delays pass (the clock of the database is the truth)."""
    from provisioning.events.models import Delivery

    Delivery.objects.filter(stream=stream, status__in=Delivery.OPEN).update(
        next_attempt_at=timezone.now()
    )


def jsonbody(received: Received) -> dict:
    return json.loads(received.body)
