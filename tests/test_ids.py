"""Time-ordered identifiers (UUIDv7, RFC 9562 §5.7): what the request correlation ids
and the events' ``jti`` are made of, so that their indexes grow at one end."""

from __future__ import annotations

import uuid

from provisioning import ids
from provisioning.ids import time_ordered_uuid


def test_layout_is_rfc_9562_version_7():
    made = time_ordered_uuid()
    assert made.version == 7
    assert made.variant == uuid.RFC_4122  # the "10" variant bits (RFC 9562 §4.1)


def test_the_first_48_bits_are_the_unix_time_in_milliseconds(monkeypatch):
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_796_050_000_123_456_789)
    assert time_ordered_uuid().int >> 80 == 1_796_050_000_123


def test_ids_of_a_later_millisecond_sort_after_earlier_ones(monkeypatch):
    now = [1_796_050_000_000_000_000]
    monkeypatch.setattr(ids.time, "time_ns", lambda: now[0])
    made = []
    for _ in range(50):
        made.append(time_ordered_uuid())
        now[0] += 1_000_000  # one millisecond
    assert made == sorted(made)
    assert [str(u) for u in made] == sorted(str(u) for u in made)  # as text columns sort too


def test_ids_of_one_millisecond_differ_in_their_74_random_bits(monkeypatch):
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_796_050_000_000_000_000)
    made = {time_ordered_uuid() for _ in range(2000)}
    assert len(made) == 2000
    randoms = {u.int & ((1 << 62) - 1) for u in made}
    assert len(randoms) == 2000
    assert len({(u.int >> 64) & 0xFFF for u in made}) > 1  # rand_a varies too
