"""The bench's event-lag stage, small: every published event arrives at the receiver
process and its lag is measured (PostgreSQL: concurrent publishers)."""

import pytest

from provisioning.benchmark.event_lag import event_lag
from provisioning.events.models import Event, EventStream


@pytest.mark.django_db(transaction=True)
def test_event_lag_stage_measures_every_event(on_postgres):
    result = event_lag(rate=20, seconds=1, log=lambda *_: None)
    assert result["events"] == 20 and result["arrived"] == 20
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    # It cleans up after itself.
    assert not EventStream.objects.exists() and not Event.objects.exists()
