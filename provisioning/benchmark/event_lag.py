"""Event delivery lag for ``make bench``: changes published at a steady rate (100 per
second) to one SET push stream whose receiver is a local HTTP server; the lag of an
event is the time from its commit to its arrival at the receiver, signed SET and all.

Events enter the outbox through ``outbox.publish``, each in its own transaction (what the
pipeline's recorder does for a write), from four threads as from concurrent requests; delivery is the product's path without a broker:
the kick after commit hands the stream to the in-process sender thread, which claims,
signs (RS256), POSTs and records each delivery. The receiver is a separate process. The
stream and its events are removed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from django.db import connection, transaction
from django.test import override_settings

from provisioning.events import outbox, signing
from provisioning.events.models import Delivery, Event, EventKind, EventStream

from .measure import percentile

TXN_PREFIX = "bench-lag-"
PUBLISHERS = 4


# The receiver runs in its own process (as a real one would), answers 202 with keep-alive,
# and writes {jti: arrival time} to the file named by its second argument on SIGTERM.
RECEIVER = r"""
import base64, json, signal, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
arrivals = {}
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        part = body.split(b".")[1]
        jti = json.loads(base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)))["jti"]
        arrivals.setdefault(jti, time.time())
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
def stop(*_):
    with open(sys.argv[2], "w") as out:
        json.dump(arrivals, out)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
server.serve_forever(0.1)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _event(resource_id: uuid.UUID) -> Event:
    return Event(
        txn=f"{TXN_PREFIX}{uuid.uuid4().hex}",
        kind=EventKind.PATCH,
        resource_type="User",
        resource_id=resource_id,
        sub_id={"format": "scim", "uri": f"/Users/{resource_id}", "id": str(resource_id)},
        payload={"version": 'W/"2"', "attributes": ["title"]},
    )


@contextlib.contextmanager
def _receiver(path: Path):
    """The receiver process on a free port; yields its URL; its arrivals land in ``path``."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", RECEIVER, str(port), str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        process.stdout.readline()
        yield f"http://127.0.0.1:{port}/events"
    finally:
        process.terminate()
        process.wait(timeout=30)


def event_lag(
    *, rate: float = 100.0, seconds: float = 20.0, resources: int = 500, log=print
) -> dict:
    """Publish ``rate`` events per second for ``seconds`` to a push stream; the lag from
    commit to arrival at the receiver (p50, p99, max) and the rate reached."""
    from provisioning.celery import app

    pool = [uuid.uuid4() for _ in range(resources)]
    published: dict[str, float] = {}
    total = int(rate * seconds)
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    signing.active_key()
    stream = None
    with tempfile.TemporaryDirectory() as scratch:
        arrivals_file = Path(scratch) / "arrivals.json"
        try:
            with (
                _receiver(arrivals_file) as url,
                override_settings(
                    SCIMGATE_EVENTS_ALLOW_HTTP=True,
                    SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES=True,
                    SCIMGATE_EVENTS_EAGER_DELIVERY="thread",
                ),
            ):
                stream = EventStream.objects.create(
                    name=f"bench-lag-{uuid.uuid4().hex[:8]}",
                    method=EventStream.Method.PUSH,
                    endpoint_url=url,
                )
                started = time.perf_counter()

                def publisher(offset: int) -> None:
                    # Changes come from concurrent requests: each publisher takes every
                    # PUBLISHERS-th slot of the schedule, in its own connection.
                    try:
                        for i in range(offset, total, PUBLISHERS):
                            pause = started + i / rate - time.perf_counter()
                            if pause > 0:
                                time.sleep(pause)
                            event = _event(pool[i % len(pool)])
                            with transaction.atomic():
                                outbox.publish([event], candidates=[stream])
                            published[event.jti.hex] = event.created_at.timestamp()
                    finally:
                        connection.close()

                threads = [threading.Thread(target=publisher, args=(n,)) for n in range(PUBLISHERS)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                publish_seconds = time.perf_counter() - started
                open_ = Delivery.objects.filter(stream=stream).exclude(
                    status=Delivery.Status.DELIVERED
                )
                deadline = time.monotonic() + 180
                while open_.exists() and time.monotonic() < deadline:
                    time.sleep(0.2)
            arrivals = json.loads(arrivals_file.read_text())
        finally:
            app.conf.task_always_eager = eager
            if stream is not None:
                stream.delete()
            Event.objects.filter(txn__startswith=TXN_PREFIX).delete()
    lags = [(arrivals[jti] - at) * 1000 for jti, at in published.items() if jti in arrivals]
    result = {
        "events": total,
        "arrived": len(lags),
        "rate_per_s": round(total / publish_seconds, 1),
        "p50_ms": round(percentile(lags, 50), 1),
        "p99_ms": round(percentile(lags, 99), 1),
        "max_ms": round(max(lags), 1) if lags else None,
    }
    log(f"event lag: {result}")
    return result
