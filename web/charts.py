"""Small SVG charts drawn on the server: no chart library, no script, nothing from a CDN.

Each mark carries its label and value (`data-label`, `data-value`, and a <title> shown on hover), so the numbers
behind a chart can be read by a person, a screen reader or a test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 640, 200
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 64, 34, 12
COLORS = ("#3b6fd8", "#d8753b", "#2e9e6b", "#b33b6f")


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:.2f}"


def _top(values: Sequence[float]) -> float:
    """The axis maximum: a little above the largest value, a multiple of 4 for counts (whole-number ticks)."""
    peak = max(max(values), 1e-9) * 1.1
    return float(math.ceil(peak / 4) * 4) if all(float(v).is_integer() for v in values) else peak


def _axis(top: float, unit: str) -> list[str]:
    parts = []
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    for i in range(5):
        value = top * i / 4
        y = HEIGHT - PAD_BOTTOM - plot_h * i / 4
        parts.append(f'<line x1="{PAD_LEFT}" y1="{y:.1f}" x2="{WIDTH}" y2="{y:.1f}" class="grid"/>')
        parts.append(
            f'<text x="{PAD_LEFT - 4}" y="{y + 4:.1f}" class="tick" text-anchor="end">{_fmt(value)}{unit}</text>'
        )
    return parts


def _labels(labels: Sequence[str], slot: float) -> list[str]:
    every = max(1, len(labels) // 8)
    return [
        f'<text x="{PAD_LEFT + slot * (i + 0.5):.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" class="tick" '
        f'text-anchor="middle">{escape(label[-5:] if len(label) == 10 else label[:12])}</text>'
        for i, label in enumerate(labels)
        if i % every == 0
    ]


def bar_chart(name: str, points: Sequence[tuple[str, float]], *, unit: str = "", top: float | None = None) -> Markup:
    """Vertical bars, one per (label, value)."""
    if not points:
        return Markup(f'<p class="empty" data-chart="{escape(name)}">No data yet.</p>')
    top = top or _top([v for _, v in points])
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = (WIDTH - PAD_LEFT) / len(points)
    parts = _axis(top, unit)
    for i, (label, value) in enumerate(points):
        h = plot_h * min(value, top) / top
        width = min(slot * 0.7, 48.0)  # one day's bar stays a bar, not a wall
        x = PAD_LEFT + slot * (i + 0.5) - width / 2
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{HEIGHT - PAD_BOTTOM - h:.1f}" width="{width:.1f}" '
            f'height="{h:.1f}" '
            f'fill="{COLORS[0]}" data-label="{escape(label)}" data-value="{value}">'
            f"<title>{escape(label)}: {_fmt(value)}{unit}</title></rect>"
        )
    parts += _labels([p[0] for p in points], slot)
    return _svg(name, parts)


def line_chart(
    name: str, labels: Sequence[str], series: dict[str, Sequence[float | None]], *, unit: str = ""
) -> Markup:
    """One line per series over shared labels; None values leave a gap."""
    values = [v for s in series.values() for v in s if v is not None]
    if not labels or not values:
        return Markup(f'<p class="empty" data-chart="{escape(name)}">No data yet.</p>')
    top = _top(values)
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = (WIDTH - PAD_LEFT) / len(labels)
    parts = _axis(top, unit)
    for color, (series_name, points) in zip(COLORS, series.items(), strict=False):
        coords = [
            (PAD_LEFT + slot * (i + 0.5), HEIGHT - PAD_BOTTOM - plot_h * v / top, labels[i], v)
            for i, v in enumerate(points)
            if v is not None
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts += [
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}" data-series="{escape(series_name)}" '
            f'data-label="{escape(label)}" data-value="{v}"><title>{escape(series_name)} {escape(label)}: '
            f"{_fmt(v)}{unit}</title></circle>"
            for x, y, label, v in coords
        ]
    legend = [
        f'<text x="{PAD_LEFT + 8 + 110 * i}" y="{PAD_TOP + 2}" class="legend" fill="{color}">{escape(n)}</text>'
        for i, (color, n) in enumerate(zip(COLORS, series, strict=False))
    ]
    parts += legend + _labels(labels, slot)
    return _svg(name, parts)


def _svg(name: str, parts: list[str]) -> Markup:
    body = "".join(parts)
    return Markup(
        f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(name)}" xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )
