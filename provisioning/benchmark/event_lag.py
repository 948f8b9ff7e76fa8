"""Event delivery lag for ``make bench``: changes published at a steady rate (100 per
second) to one SET push stream whose receiver is a local HTTP server; the lag of an
event is the time from its commit to its arrival at the receiver, signed SET and all.

Events enter the outbox through ``outbox.publish``, each in its own transaction (what the
pipeline's recorder does for a write), from four threads as from concurrent requests; delivery is the product's path without a broker:
the kick after commit is a Celery message to a worker process (Redis at CELERY_BROKER_URL,
else the local default), which claims, signs (RS256), POSTs and records each delivery.
Without a reachable Redis the in-process sender thread of ``make run`` delivers instead
(the result names which). The receiver is a separate process. The stream and its events
are removed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from django.conf import settings
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


def _broker_url() -> str | None:
    """A Redis broker that answers: CELERY_BROKER_URL, else the local default."""
    import redis

    url = settings.CELERY_BROKER_URL or "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError):
        return None
    return url


@contextlib.contextmanager
def _sender(log):
    """Who delivers: a Celery worker process fed through Redis (production's path: the
    kick after commit is a message), or, without a broker, the in-process sender thread
    of ``make run``. Yields the name of the path."""
    from provisioning.celery import app

    saved = {
        key: app.conf[key]
        for key in ("task_always_eager", "broker_url", "broker_write_url", "task_default_queue")
    }
    url = _broker_url()
    if url is None:
        app.conf.task_always_eager = True
        try:
            with override_settings(SCIMGATE_EVENTS_EAGER_DELIVERY="thread"):
                yield "in-process sender thread (no broker)"
        finally:
            app.conf.update(saved)
        return
    queue = f"bench-lag-{uuid.uuid4().hex[:8]}"
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "CELERY_BROKER_URL": url,
        "SCIMGATE_EVENTS_ALLOW_HTTP": "true",
        "SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES": "true",
        "LOG_LEVEL": "WARNING",
    }
    if db.get("PASSWORD"):
        env["DATABASE_URL"] = env["DATABASE_URL"].replace("@", f":{db['PASSWORD']}@", 1)
    worker = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
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
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    app.conf.update(
        task_always_eager=False, broker_url=url, broker_write_url=url, task_default_queue=queue
    )
    app._pool = None
    app.amqp._producer_pool = None
    try:
        time.sleep(3)  # the worker connects
        yield "Celery worker through Redis"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        app.conf.update(saved)
        app._pool = None
        app.amqp._producer_pool = None


def event_lag(
    *, rate: float = 100.0, seconds: float = 20.0, resources: int = 500, log=print
) -> dict:
    """Publish ``rate`` events per second for ``seconds`` to a push stream; the lag from
    commit to arrival at the receiver (p50, p99, max) and the rate reached."""
    pool = [uuid.uuid4() for _ in range(resources)]
    published: dict[str, float] = {}
    total = int(rate * seconds)
    signing.active_key()
    stream = None
    with tempfile.TemporaryDirectory() as scratch:
        arrivals_file = Path(scratch) / "arrivals.json"
        try:
            with (
                _receiver(arrivals_file) as url,
                override_settings(
                    SCIMGATE_EVENTS_ALLOW_HTTP=True, SCIMGATE_EVENTS_ALLOW_PRIVATE_ADDRESSES=True
                ),
                _sender(log) as sender,
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
            if stream is not None:
                stream.delete()
            Event.objects.filter(txn__startswith=TXN_PREFIX).delete()
    lags = [(arrivals[jti] - at) * 1000 for jti, at in published.items() if jti in arrivals]
    result = {
        "events": total,
        "sender": sender,
        "arrived": len(lags),
        "rate_per_s": round(total / publish_seconds, 1),
        "p50_ms": round(percentile(lags, 50), 1),
        "p99_ms": round(percentile(lags, 99), 1),
        "max_ms": round(max(lags), 1) if lags else None,
    }
    log(f"event lag: {result}")
    return result
