"""Identifiers that sort by the time they were made: UUIDv7 (RFC 9562 §5.7).

The correlation id of every request, and the ``jti`` of every event, are written to
indexed columns of tables that grow with each write (change sets, the request log, the
events outbox). A random (version 4) UUID lands each new entry on a random leaf of its
index: after each checkpoint PostgreSQL writes a whole 8 KiB page image to the WAL for
the first change of every leaf, and the leaves of the whole index compete for the buffer
cache. A UUIDv7 starts with the time in milliseconds, so new entries go to the index's
last leaf, as a sequence's would.

Such an id still cannot be guessed (74 random bits from the operating system's source),
and a client still cannot choose one; it shows when it was made, to the millisecond,
which every row holding it records anyway.
"""

from __future__ import annotations

import os
import time
import uuid

_RAND_B = (1 << 62) - 1


def time_ordered_uuid() -> uuid.UUID:
    """A new UUIDv7: 48 bits of Unix time in milliseconds, the version (7), 12 random
    bits, the RFC variant (``10``), 62 random bits (RFC 9562 §5.7). Ids made in the same
    millisecond are in no particular order between themselves."""
    millis = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")
    value = (
        (millis & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | ((random >> 62) & 0xFFF) << 64
        | 0b10 << 62
        | (random & _RAND_B)
    )
    return uuid.UUID(int=value)
