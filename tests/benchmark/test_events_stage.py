"""The events stage of make bench (PATCH with the outbox off / no stream / one stream, and
membership changes on the scaling groups with a stream active), run in process on a tiny
synthetic load."""

from __future__ import annotations

import pytest
from django.db import connection

from provisioning.benchmark import report
from provisioning.benchmark.events import PATCH_ROUNDS, STREAM_NAME, events_figures, stream_figures
from provisioning.benchmark.runner import STAGES, bench_token
from provisioning.celery import app as celery_app
from provisioning.directory import pipeline
from provisioning.events.models import Event, EventStream
from tests.benchmark.test_json_filters import loaded  # noqa: F401, F811 (a fixture)

pytestmark = pytest.mark.django_db


def test_the_stage_measures_the_outbox_and_leaves_no_stream(loaded):  # noqa: F811
    results = events_figures(bench_token(), [2], repeat=4)

    assert "events" in STAGES
    patch = results["patch_user"]
    for side in ("recorder_off", "no_stream", "one_stream"):
        # Alternating rounds of at least five PATCHes each.
        assert patch[side]["n"] == PATCH_ROUNDS * 5 and patch[side]["p50_ms"] > 0, side
    # The event row (the stream list is the process's copy); then one statement for the
    # deliveries.
    assert patch["no_stream"]["queries"] - patch["recorder_off"]["queries"] == 1
    # The deliveries: in the events' statement on PostgreSQL, one more elsewhere.
    one_more = 1 if connection.vendor == "postgresql" else 2
    assert patch["one_stream"]["queries"] - patch["recorder_off"]["queries"] == one_more
    membership = results["membership_with_stream"]
    assert membership["2"]["patch_add"]["n"] == 4 and membership["2"]["members"] == 2
    assert membership["deliveries"] == 2 * (4 + 2) + 2  # add and remove, warm-up and probe
    assert Event.objects.filter(kind="patch", resource_type="Group").exists()
    # The events recorder is back and the bench stream is gone.
    assert "events" in pipeline.recorders()
    assert not EventStream.objects.filter(name=STREAM_NAME).exists()
    text = report.render({"events": results})
    assert "one stream vs none" in text and "a full stream active" in text
    # Kicks went to a broker (in-memory here: tests run tasks in-process), then back.
    assert results["delivery_kicks"] == "in-memory broker, no worker consuming"
    assert celery_app.conf.task_always_eager


def test_the_stream_figure_is_the_median_of_rounds_so_one_slow_round_does_not_move_it():
    """Each side's throughput is the inverse of the median of its rounds' means: a round a
    checkpoint slowed tenfold is one round of many (the mean of every request moved by a
    fifth when one did)."""
    sides = {side: {"n": 50, "p50_ms": 5.0} for side in ("recorder_off", "no_stream", "one_stream")}
    rounds = {
        "recorder_off": [4.0] * 5,
        "no_stream": [5.0, 5.0, 50.0, 5.0, 5.0],  # one slow round
        "one_stream": [5.0, 5.25, 5.5, 5.25, 5.0],
    }
    figures = stream_figures(sides, rounds)
    assert figures["no_stream"]["per_s"] == 200.0
    assert figures["one_stream"]["per_s"] == round(1000 / 5.25, 1)
    # 190.5 against 200 and 250 req/s (the mean of every request would give 14.5 against 200).
    assert 4.6 <= figures["stream_throughput_drop_pct"] <= 4.8
    assert 23.7 <= figures["outbox_throughput_drop_pct"] <= 23.9
    assert figures["no_stream"]["p50_ms"] == 5.0  # the summary is kept
