"""Event streams on console pages: the dashboard's notice of streams not delivering, and
short durations (a stream's lag)."""

from __future__ import annotations

from datetime import timedelta

from django import template

from provisioning.events import selectors

register = template.Library()


@register.filter
def duration_short(value: timedelta | None) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    if value is None:
        return ""
    seconds = max(int(value.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{seconds} s"


@register.inclusion_tag("console/events/dashboard_panel.html")
def events_panel() -> dict:
    """Streams paused by an operator or for failing, or failing now (nothing when none)."""
    streams = selectors.streams_needing_attention()
    failing = any(s.state == s.State.FAILING or s.failing_since for s in streams)
    return {"streams": streams, "failing": failing}


@register.filter
def seconds_short(value: int | None) -> str:
    return "" if value is None else duration_short(timedelta(seconds=int(value)))
