"""The write overhead of the audit trail and request log: the median of back-to-back pairs
of rounds (with, without), as the floor's share is."""

from __future__ import annotations

from provisioning.benchmark.report import render, targets
from provisioning.benchmark.runner import overhead_pairs, write_overhead


def _run(rps: float, p50: float) -> dict:
    return {"rps": rps, "p50_ms": p50, "p95_ms": p50 * 2, "p99_ms": p50 * 3, "requests": int(rps * 10), "errors": 0}


def test_the_overhead_is_the_median_of_the_pairs():
    pairs = [
        (_run(200.0, 30.0), _run(240.0, 25.0)),  # 20 %
        (_run(100.0, 60.0), _run(250.0, 24.0)),  # a slow moment on one side: 150 %
        (_run(210.0, 28.0), _run(231.0, 26.0)),  # 10 %
        (_run(220.0, 27.0), _run(242.0, 27.0)),  # 10 %
    ]
    overhead = write_overhead(pairs)
    assert [p["throughput_overhead_pct"] for p in overhead["pairs"]] == [20.0, 150.0, 10.0, 10.0]
    # One split pair moves the median by half a pair, where the means would say 32 %.
    assert overhead["throughput_overhead_pct"] == 15.0
    assert overhead["p50_overhead_pct"] == 13.8  # 20, 150, 7.7 and 0 %
    assert overhead["with_audit"]["rps"] == 182.5 and overhead["without_audit"]["rps"] == 240.75
    assert overhead["rounds"] == 4


def test_every_round_starts_from_the_same_state_and_the_first_side_alternates():
    """``quiesce`` (a checkpoint, vacuumed tables) before each round of each side, so
    that a checkpoint never falls into one side's round and not the other's."""
    calls = []

    def run(side: str, i: int) -> dict:
        calls.append((side, i))
        return {"side": side, "round": i}

    pairs = overhead_pairs(3, run, lambda: calls.append("start"))
    assert calls == [
        "start", ("with", 0), "start", ("without", 0),
        "start", ("without", 1), "start", ("with", 1),
        "start", ("with", 2), "start", ("without", 2),
    ]  # fmt: skip
    assert pairs == [
        ({"side": "with", "round": i}, {"side": "without", "round": i}) for i in range(3)
    ]


def test_the_target_is_read_from_the_median():
    def verdict(pairs):
        [check] = [c for c in targets({"write_overhead": write_overhead(pairs)}) if "overhead on a write" in c.label]
        return check.met

    assert verdict([(_run(200.0, 30.0), _run(250.0, 25.0))]) is True  # 25 %
    assert verdict([(_run(200.0, 30.0), _run(251.0, 25.0))]) is False
    assert verdict([(_run(200.0, 30.0), _run(220.0, 25.0))] * 2 + [(_run(100.0, 30.0), _run(300.0, 25.0))]) is True


def test_the_pairs_are_printed():
    text = render({"write_overhead": write_overhead([(_run(200.0, 30.0), _run(240.0, 25.0))])})
    assert "200.0 / 240.0 = 20.0 %" in text
