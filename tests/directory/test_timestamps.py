"""PostgreSQL: ``timestamptz`` values read with ``datetime.fromisoformat`` are the values
Django's own loader reads, and what it cannot read fails as it did
(``provisioning/directory/timestamps.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import DataError, connection, transaction
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg.pq import Format

from provisioning.directory.timestamps import IsoTimestamptzLoader

pytestmark = pytest.mark.django_db

TEXTS = [
    "2026-11-30 02:35:12.123456+00",
    "2026-11-30 02:35:12.1+00",
    "2026-11-30 02:35:12+00",
    "2026-11-30 02:35:12.5+05:30",
    "2026-11-30 02:35:12-09:30:15",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "2026-02-28 23:00:00-03",
]


def _read(loader: type, text: str, timezone: str = "UTC"):
    connection.ensure_connection()
    adapters = connection.connection.adapters
    previous = adapters.get_loader(1184, Format.TEXT)
    adapters.register_loader("timestamptz", loader)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('TimeZone', %s, true)", [timezone])
            cursor.execute("SELECT %s::text::timestamptz", [text])
            return cursor.fetchone()[0]
    finally:
        adapters.register_loader("timestamptz", previous)


def test_every_connection_reads_timestamps_with_the_iso_loader(on_postgres):
    from provisioning.directory.models import User

    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(1184, Format.TEXT)
    assert issubclass(loader, IsoTimestamptzLoader) and loader.timezone == connection.timezone
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        now = cursor.fetchone()[0]
    assert now.tzinfo is connection.timezone and abs((datetime.now(UTC) - now).total_seconds()) < 60
    # Django keeps it for its cursors: a model's timestamps come through it.
    assert User.objects.none().count() == 0


def _outcome(loader: type, text: str, timezone: str = "UTC"):
    """The value read, or the error's type and message."""
    try:
        value = _read(loader, text, timezone)
    except Exception as exc:  # noqa: BLE001 - compared, not handled
        return type(exc), str(exc)
    return value, value.tzinfo, value.utcoffset()


def _loaders() -> tuple[type, type]:
    zone = connection.timezone
    return (
        type("Fast", (IsoTimestamptzLoader,), {"timezone": zone}),
        type("Django", (BaseTzLoader,), {"timezone": zone}),
    )


@pytest.mark.parametrize("timezone", ["UTC", "Asia/Kathmandu", "America/St_Johns"])
@pytest.mark.parametrize("text", TEXTS)
def test_the_values_are_those_of_djangos_loader(on_postgres, text, timezone):
    """The server sends each value in the session's time zone; both loaders move it to the
    connection's and label it with Django's. Values Python cannot hold in that zone (year 1
    west of Greenwich is a BC date) fail alike."""
    fast, django = _loaders()
    outcome = _outcome(fast, text, timezone)
    assert outcome == _outcome(django, text, timezone)
    if timezone == "UTC":
        assert outcome[1] is connection.timezone


@pytest.mark.parametrize("text", ["infinity", "-infinity", "2026-01-01 00:00:00+00 BC"])
def test_what_python_cannot_hold_fails_as_before(on_postgres, text):
    fast, django = _loaders()
    outcome = _outcome(fast, text)
    assert outcome == _outcome(django, text) and outcome[0] is DataError


def test_another_datestyle_goes_to_djangos_loader(on_postgres):
    """Under a DateStyle other than ISO the text is not ISO: the loader Django uses reads
    it, or refuses it, as it did."""
    fast, django = _loaders()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL DateStyle = 'German'")
        outcome = _outcome(fast, "2026-11-30 02:35:12.25+00")
        assert outcome == _outcome(django, "2026-11-30 02:35:12.25+00")
        assert outcome[0] is NotImplementedError
