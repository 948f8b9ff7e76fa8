"""The write overhead of the audit trail and request log: one load-generator run that
sends to both servers (with the trail, without it) in alternating turns of a few seconds."""

from __future__ import annotations

import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from provisioning.benchmark import loadgen
from provisioning.benchmark.history import TITLES
from provisioning.benchmark.report import render, targets
from provisioning.benchmark.runner import OVERHEAD_BLOCK_SLOTS, write_overhead
from provisioning.benchmark.runner import loadgen as run_loadgen


def _side(rps: float, p50: float, seconds: float = 60.0) -> dict:
    return {
        "rps": rps, "p50_ms": p50, "p95_ms": p50 * 2, "p99_ms": p50 * 3,
        "requests": int(rps * seconds), "errors": 0, "duration_s": seconds,
    }  # fmt: skip


def _run(with_rps: float, without_rps: float, slots: list[int] | None = None, p50=(30.0, 25.0)) -> dict:
    return {
        "duration_s": 120.0,
        "slot_s": 2.0,
        "sides": [_side(with_rps, p50[0]), _side(without_rps, p50[1])],
        "slots": slots if slots is not None else [],
    }


def test_the_overhead_is_the_ratio_of_the_two_sides_over_the_whole_run():
    overhead = write_overhead(_run(200.0, 240.0))
    assert overhead["throughput_overhead_pct"] == 20.0
    assert overhead["p50_overhead_pct"] == 20.0  # 30 / 25 ms
    assert overhead["with_audit"]["rps"] == 200.0 and overhead["without_audit"]["rps"] == 240.0


def test_each_block_of_turns_shows_its_own_overhead():
    # Turns alternate with (even) and without (odd); a slow moment in the second block
    # slows both of its sides, and its overhead stays that of the others.
    first = [400, 480] * (OVERHEAD_BLOCK_SLOTS // 2)
    slow = [200, 240] * (OVERHEAD_BLOCK_SLOTS // 2)
    last = [400, 440] * (OVERHEAD_BLOCK_SLOTS // 2)
    overhead = write_overhead(_run(200.0, 240.0, first + slow + last))
    assert overhead["blocks"] == [20.0, 20.0, 10.0]


def test_a_last_block_of_a_single_turn_is_left_out():
    slots = [400, 480] * (OVERHEAD_BLOCK_SLOTS // 2) + [400]
    assert write_overhead(_run(200.0, 240.0, slots))["blocks"] == [20.0]


@pytest.mark.parametrize(
    ("elapsed", "slot"),
    [(0.0, 0), (1.999, 0), (2.0, 1), (3.5, 1), (4.0, 2), (-0.5, -1), (-2.5, -2)],
)
def test_a_moment_falls_in_the_turn_of_its_slot(elapsed, slot):
    assert loadgen.slot_of(elapsed, 2.0) == slot


def test_the_target_is_read_from_the_whole_run():
    def verdict(run):
        [check] = [c for c in targets({"write_overhead": write_overhead(run)}) if "overhead on a write" in c.label]
        return check.met

    assert verdict(_run(200.0, 250.0)) is True  # 25 %
    assert verdict(_run(200.0, 251.0)) is False


def test_the_sides_and_blocks_are_printed():
    text = render({"write_overhead": write_overhead(_run(200.0, 240.0, [400, 480] * 5))})
    assert "200.0 / 240.0 req/s" in text
    assert "overhead 20.0 % throughput" in text
    assert "blocks of 10 turns: 20.0 %" in text


class _Counting(BaseHTTPRequestHandler):
    def do_PATCH(self):  # noqa: N802 - the handler's protocol
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received += 1
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/scim+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def two_servers():
    servers = []
    for _ in range(2):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
        server.received = 0
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def target_file(tmp_path):
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({"user_ids": ["u1", "u2"], "user_names": [], "external_ids": [], "group_ids": []}))
    return path


def test_the_load_generator_sends_to_each_server_in_its_turns(two_servers, target_file):
    """Through the command the runner starts (``loadgen --alternate URL --slot S``)."""
    first, second = two_servers
    report = run_loadgen(
        f"http://127.0.0.1:{first.server_port}", "token", target_file, mix="write",
        duration=1.2, warmup=0.2, concurrency=2, seed=1,
        alternate=f"http://127.0.0.1:{second.server_port}", slot=0.2,
    )  # fmt: skip
    sides, slots = report["sides"], report["slots"]
    assert len(slots) == 6 and all(slots)
    # A request counts for the turn it was sent in, and for that turn's server.
    assert sum(slots[0::2]) == sides[0]["requests"] > 0
    assert sum(slots[1::2]) == sides[1]["requests"] > 0
    # Each server saw its side's requests (and some of the warm-up's).
    assert first.received >= sides[0]["requests"] and second.received >= sides[1]["requests"]
    # Each side had half the measured time.
    assert sides[0]["duration_s"] == pytest.approx(0.6) and sides[1]["duration_s"] == pytest.approx(0.6)
    assert sides[0]["errors"] == sides[1]["errors"] == 0


def test_without_a_second_server_the_report_is_one_run(two_servers, target_file):
    first, _ = two_servers
    report = run_loadgen(
        f"http://127.0.0.1:{first.server_port}", "token", target_file, mix="write",
        duration=0.3, warmup=0.0, concurrency=1, seed=1,
    )  # fmt: skip
    assert "sides" not in report
    assert report["requests"] > 0 and report["rps"] == round(report["requests"] / 0.3, 1)
    assert first.received >= report["requests"]


def test_a_benchmark_patch_writes_a_title_of_the_synthetic_directory_never_sent_before():
    """The PATCHes of every run become change records the audit search reads: their titles
    are the directory's (the search's common term keeps its share of the newest records),
    and each is new (a repeated value would be a no-op that writes nothing)."""
    rng, again = random.Random(7), random.Random(7)
    bodies = [loadgen.patch_user_body(rng) for _ in range(400)]
    values = [body["Operations"][0]["value"] for body in bodies]
    assert all(body["Operations"][0]["path"] == "title" for body in bodies)
    assert {value.rsplit(" ", 1)[0] for value in values} == set(TITLES)
    share = sum("Engineer" in value for value in values) / len(values)
    assert 0.15 < share < 0.35  # three titles of twelve
    assert len(set(values)) == len(values)
    assert loadgen.patch_user_body(again)["Operations"][0]["value"] != values[0]
