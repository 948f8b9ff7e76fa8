"""Server-rendered SVG charts: the geometry is computed here, the markup is a template."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    value: int
    series: str


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is >= ``value`` (at least 1)."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def grouped_bars(
    rows: list[dict],
    series: list[str],
    *,
    width: int = 1000,
    height: int = 240,
    left: int = 44,
    bottom: int = 28,
    top: int = 10,
    right: int = 8,
) -> dict:
    """Bars for ``rows`` (each a dict with ``label`` and one number per series), side by side."""
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = nice_ceiling(max((row[s] for row in rows for s in series), default=0))
    # Integer, evenly spaced ticks: 10 -> 0,2,..,10; 20 -> 0,5,..,20; 5 -> 0,1,..,5.
    leading = top_value // 10 ** math.floor(math.log10(top_value))
    tick_count = min({1: 5, 2: 4, 5: 5}[leading], top_value)
    slot = plot_w / max(len(rows), 1)
    gap = slot * 0.2
    bar_w = (slot - gap) / max(len(series), 1)
    groups = []
    for index, row in enumerate(rows):
        x0 = left + index * slot + gap / 2
        bars = []
        for position, name in enumerate(series):
            bar_h = plot_h * row[name] / top_value
            bars.append(
                Bar(
                    x=round(x0 + position * bar_w, 2),
                    y=round(top + plot_h - bar_h, 2),
                    height=round(bar_h, 2),
                    value=row[name],
                    series=name,
                )
            )
        groups.append(
            {"label": row["label"], "x": round(left + (index + 0.5) * slot, 2), "bars": bars}
        )
    grid = [
        {
            "value": top_value * i // tick_count,
            "y": round(top + plot_h - plot_h * i / tick_count, 2),
        }
        for i in range(tick_count + 1)
    ]
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "baseline": top + plot_h,
        "label_y": height - 8,
        "bar_width": round(bar_w - 1, 2),
        "groups": groups,
        "grid": grid,
    }
