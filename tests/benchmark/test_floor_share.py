"""The mix's share of the framework floor: the median of back-to-back pairs of rounds."""

from __future__ import annotations

from provisioning.benchmark.report import render, targets
from provisioning.benchmark.runner import floor_share


def test_the_share_is_the_median_of_the_pairs():
    share = floor_share([(100.0, 300.0), (90.0, 250.0), (120.0, 300.0), (50.0, 300.0)])
    assert [p["share"] for p in share["pairs"]] == [0.333, 0.36, 0.4, 0.167]
    # A pair that a slow moment split (50 / 300) moves the median, not the verdict alone.
    assert (share["median"], share["min"], share["max"]) == (0.347, 0.167, 0.4)


def test_the_target_is_met_at_a_share_of_0_35_or_more():
    def verdict(pairs):
        [check] = [c for c in targets({"floor_share": floor_share(pairs)}) if "share of the framework floor" in c.label]
        return check.met

    assert verdict([(35.0, 100.0)]) is True
    assert verdict([(40.0, 100.0), (36.0, 100.0), (20.0, 100.0)]) is True  # median 0.36
    assert verdict([(34.0, 100.0)]) is False
    [check] = [c for c in targets({}) if "share of the framework floor" in c.label]
    assert check.met is None  # not measured: neither met nor missed


def test_the_pairs_are_printed():
    text = render({"floor_share": floor_share([(80.0, 230.0), (82.0, 240.0)])})
    assert "80.0 / 230.0 = 0.348" in text and "median 0.345" in text
