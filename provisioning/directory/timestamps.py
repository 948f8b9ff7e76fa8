"""PostgreSQL ``timestamptz`` values read with the C ISO parser.

Django reads every ``timestamptz`` through a subclass of psycopg's Python loader, which
matches a regular expression and builds the value in three steps: about 5 µs a value,
and a page of 100 users holds 200 of them (``created``, ``lastModified``), a millisecond
of every list page. ``datetime.fromisoformat`` parses what PostgreSQL sends under its
ISO ``DateStyle`` (``2026-11-30 02:35:12.123456+00``) in C. Anything else (another
``DateStyle``, ``infinity``, years before 1 or after 9999) goes to the loader it
replaces, which reads it or raises exactly as before.
"""

from __future__ import annotations

from datetime import datetime

from django.db.backends.postgresql.psycopg_any import BaseTzLoader


class IsoTimestamptzLoader(BaseTzLoader):
    """Django's loader (the value moved to the connection's time zone, then labelled
    with Django's), with the ISO text parsed by ``datetime.fromisoformat``."""

    def load(self, data) -> datetime:
        try:
            value = datetime.fromisoformat(bytes(data).decode("ascii"))
        except ValueError:
            return super().load(data)
        if value.tzinfo is None:  # no offset: not what PostgreSQL sends for timestamptz
            return super().load(data)
        return value.astimezone(self._timezone).replace(tzinfo=self.timezone)


def use_iso_timestamptz_loader(sender, connection, **kwargs) -> None:
    """On a new PostgreSQL connection (``connection_created``), read ``timestamptz`` with
    ``IsoTimestamptzLoader``, labelled with the connection's time zone as Django does (so
    Django's own check on each cursor finds its time zone and keeps the loader)."""
    if connection.vendor != "postgresql":
        return
    loader = type(
        "IsoTimestamptzLoader", (IsoTimestamptzLoader,), {"timezone": connection.timezone}
    )
    connection.connection.adapters.register_loader("timestamptz", loader)
