"""PRISM's own small drawing code: SVG gauges and bar charts, rendered on the server as markup.

Only numbers and escaped labels go into the markup, so nothing here can carry a script; the SVG uses
presentation attributes, not inline styles, to stay inside the dashboard's content security policy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

__all__ = ["hourly_chart", "level_bars", "ring_gauge", "severity"]

RADIUS = 42.0
CIRCUMFERENCE = 2 * math.pi * RADIUS
LEVEL_ORDER = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def severity(value: float, warning: float, critical: float) -> str:
    """``ok``, ``warn`` or ``crit``: the CSS class of a reading against its thresholds."""
    return "crit" if value >= critical else "warn" if value >= warning else "ok"


def _tick(percent: float, cls: str) -> str:
    angle = math.radians(percent * 3.6 - 90)
    inner, outer = RADIUS - 9, RADIUS + 9
    x1, y1 = 50 + inner * math.cos(angle), 50 + inner * math.sin(angle)
    x2, y2 = 50 + outer * math.cos(angle), 50 + outer * math.sin(angle)
    return f'<line class="tick {cls}" x1="{x1:.2f}" y1="{y1:.2f}" x2="{x2:.2f}" y2="{y2:.2f}"/>'


def ring_gauge(label: str, value: float, warning: float, critical: float) -> Markup:
    """A ring filled to ``value`` percent, coloured by threshold, with ticks at the warning and critical marks."""
    shown = max(0.0, min(100.0, float(value)))
    filled = CIRCUMFERENCE * shown / 100
    cls = severity(shown, warning, critical)
    name = escape(label)
    svg = (
        f'<svg class="gauge {cls}" viewBox="0 0 100 100" role="img" '
        f'aria-label="{name} {shown:.1f} percent; warning {warning:g}, critical {critical:g}">'
        f'<circle class="track" cx="50" cy="50" r="{RADIUS}"/>'
        f'<circle class="fill" cx="50" cy="50" r="{RADIUS}" stroke-dasharray="{filled:.2f} {CIRCUMFERENCE:.2f}" '
        f'transform="rotate(-90 50 50)"/>'
        f"{_tick(warning, 'warn')}{_tick(critical, 'crit')}"
        f'<text class="value" x="50" y="52" text-anchor="middle">{shown:.1f}%</text>'
        f'<text class="label" x="50" y="66" text-anchor="middle">{name}</text>'
        "</svg>"
    )
    return Markup(svg)  # noqa: S704 - built from numbers and escaped text only


def hourly_chart(hourly: Sequence[Mapping[str, Any]]) -> Markup:
    """Bars per hour: all records, with the ERROR and CRITICAL share drawn over them in red."""
    top = max((int(h.get("total", 0)) for h in hourly), default=0)
    if top == 0:
        return Markup('<p class="muted">No records in this window.</p>')
    width, height, pad = 720, 160, 22
    step = (width - pad) / len(hourly)
    bars = []
    for i, hour in enumerate(hourly):
        total, errors = int(hour.get("total", 0)), int(hour.get("errors", 0))
        x = pad + i * step + 1
        w = max(step - 2, 1)
        h_total = (height - pad) * total / top
        h_err = (height - pad) * errors / top
        when = escape(str(hour.get("hour", ""))[11:16])
        bars.append(
            f"<g><title>{when} UTC: {total} records, {errors} errors</title>"
            f'<rect class="bar" x="{x:.1f}" y="{height - pad - h_total:.1f}" width="{w:.1f}" height="{h_total:.1f}"/>'
            f'<rect class="bar err" x="{x:.1f}" y="{height - pad - h_err:.1f}" width="{w:.1f}" height="{h_err:.1f}"/>'
            "</g>"
        )
        if i % max(1, len(hourly) // 6) == 0:
            bars.append(f'<text class="axis" x="{x:.1f}" y="{height - 6}">{when}</text>')
    axis = f'<text class="axis" x="0" y="12">{top}</text><line class="base" x1="{pad}" y1="{height - pad}" '
    axis += f'x2="{width}" y2="{height - pad}"/>'
    svg = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Log records per hour, errors in red">{axis}{"".join(bars)}</svg>'
    )
    return Markup(svg)  # noqa: S704 - built from numbers and escaped text only


def level_bars(by_level: Mapping[str, Any]) -> Markup:
    """One horizontal bar per log level, scaled to the largest count."""
    levels = sorted(by_level, key=lambda name: (LEVEL_ORDER.index(name) if name in LEVEL_ORDER else 99, name))
    if not levels:
        return Markup("")
    top = max(int(by_level[name]) for name in levels) or 1
    rows = []
    for i, name in enumerate(levels):
        count = int(by_level[name])
        w = 520 * count / top
        y = i * 24
        label = escape(name)
        rows.append(
            f'<text class="axis" x="0" y="{y + 15}">{label}</text>'
            f'<rect class="bar lvl-{label.lower()}" x="90" y="{y + 3}" width="{w:.1f}" height="16"/>'
            f'<text class="axis" x="{96 + w:.1f}" y="{y + 15}">{count}</text>'
        )
    svg = (
        f'<svg class="chart levels" viewBox="0 0 680 {len(levels) * 24}" role="img" '
        f'aria-label="Records by level">{"".join(rows)}</svg>'
    )
    return Markup(svg)  # noqa: S704 - built from numbers and escaped text only
