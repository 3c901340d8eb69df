"""Inline SVG charts: plain shapes and text, so the report needs no script and fetches nothing."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Final

import attrs

from ..analytics._funnels import FunnelStep

__all__ = ["PALETTE", "IntervalPoint", "bar_chart", "funnel_chart", "interval_chart"]

PALETTE: Final = ("#2f6fdf", "#e0792b", "#2a9d5c", "#c2415d", "#7b5cc4", "#8a6d3b", "#1aa3a3", "#666666")
WIDTH: Final = 720
LABEL: Final = 150
BAR: Final = 14


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 12, weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}">'
            f"{escape(text)}</text>")


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    value_format: Callable[[float], str] = lambda v: f"{v:,.4g}",
) -> str:
    """Horizontal bars: one group per label, one bar per series (with a legend when there are several)."""
    names = list(series)
    top = 28 + (18 if len(names) > 1 else 0)
    group = BAR * len(names) + 10
    height = top + group * max(len(labels), 1) + 8
    largest = max((v for values in series.values() for v in values), default=0.0) or 1.0
    span = WIDTH - LABEL - 70
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
             f"<title>{escape(title)}</title>", _text(0, 16, title, size=14, weight="bold")]
    if len(names) > 1:
        x = 0.0
        for index, name in enumerate(names):
            parts.append(f'<rect x="{x:.1f}" y="26" width="10" height="10" fill="{PALETTE[index % len(PALETTE)]}"/>')
            parts.append(_text(x + 14, 35, name, size=11))
            x += 24 + 7 * len(name)
    if not labels:
        parts.append(_text(LABEL, top + 12, "no data"))
    for row, label in enumerate(labels):
        y = top + row * group
        parts.append(_text(LABEL - 6, y + group / 2, label, anchor="end"))
        for index, name in enumerate(names):
            value = series[name][row]
            width = span * max(value, 0.0) / largest
            colour = PALETTE[index % len(PALETTE)]
            parts.append(f'<rect x="{LABEL}" y="{y + index * BAR}" width="{width:.1f}" height="{BAR - 2}" '
                         f'fill="{colour}"><title>{escape(f"{label} · {name}: {value_format(value)}")}</title></rect>')
            parts.append(_text(LABEL + width + 4, y + index * BAR + BAR - 4, value_format(value), size=10))
    parts.append("</svg>")
    return "".join(parts)


def funnel_chart(title: str, steps: Sequence[FunnelStep]) -> str:
    """Centred bars as wide as each step's share of the first step's customers."""
    height = 30 + 34 * len(steps)
    first = steps[0].customers if steps else 0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
             f"<title>{escape(title)}</title>", _text(0, 16, title, size=14, weight="bold")]
    for index, step in enumerate(steps):
        share = step.customers / first if first else 0.0
        width = max((WIDTH - 40) * share, 2.0)
        y = 28 + index * 34
        parts.append(f'<rect x="{(WIDTH - width) / 2:.1f}" y="{y}" width="{width:.1f}" height="28" '
                     f'fill="{PALETTE[0]}" opacity="{0.45 - index * 0.05:.2f}"/>')
        label = f"{step.event}: {step.customers:,}" + (f" ({share:.0%})" if index else "")
        parts.append(_text(WIDTH / 2, y + 18, label, anchor="middle"))
    parts.append("</svg>")
    return "".join(parts)


@attrs.frozen
class IntervalPoint:
    """One look at one variant: the estimate, its always-valid interval and (if any) the fixed-horizon one."""

    at: datetime
    estimate: float
    lower: float
    upper: float
    fixed_lower: float | None = None
    fixed_upper: float | None = None


def _polyline(points: Sequence[tuple[float, float]], colour: str, extra: str = "") -> str:
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.6"{extra}/>'


def interval_chart(title: str, series: Mapping[str, Sequence[IntervalPoint]], *, limit: float = 1.0,
                   value_format: Callable[[float], str] = lambda v: f"{v * 100:+.1f} pp") -> str:
    """Estimates over time, one line per series, each with a shaded band (its always-valid interval) and
    dashed lines (its fixed-horizon interval). Values are clipped to +-`limit` (an unbounded end is drawn
    at the edge); every point carries its exact values as data-* attributes and a tooltip."""
    names = list(series)
    height, left, top, bottom = 260, 64, 48, 224
    right = WIDTH - 12
    points = [p for values in series.values() for p in values]
    times = [p.at.timestamp() for p in points]
    start, end = (min(times), max(times)) if times else (0.0, 0.0)

    def clip(value: float) -> float:
        return max(-limit, min(limit, value))

    shown = [clip(v) for p in points for v in (p.estimate, p.lower, p.upper, p.fixed_lower, p.fixed_upper)
             if v is not None and math.isfinite(v)]
    low, high = min([0.0, *shown]), max([0.0, *shown])
    if high - low < 1e-9:
        low, high = low - 0.01, high + 0.01
    pad = (high - low) * 0.05
    low, high = max(-limit, low - pad), min(limit, high + pad)

    def x_of(at: datetime) -> float:
        return (left + right) / 2 if end == start else left + (right - left) * (at.timestamp() - start) / (end - start)

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * (min(high, max(low, value)) - low) / (high - low)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" class="interval-chart">',
             f"<title>{escape(title)}</title>", _text(0, 16, title, size=14, weight="bold")]
    x = 0.0
    for index, name in enumerate(names):
        colour = PALETTE[(index + 1) % len(PALETTE)]
        parts.append(f'<rect x="{x:.1f}" y="26" width="10" height="10" fill="{colour}"/>')
        parts.append(_text(x + 14, 35, name, size=11))
        x += 24 + 7 * len(name)
    parts.append(_text(x + 6, 35, "band: always-valid interval · dashed: fixed-horizon", size=11))
    for value in (low, 0.0, high):
        y = y_of(value)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#bbb" '
                     f'stroke-width="{1.2 if value == 0 else 0.5}"/>')
        parts.append(_text(left - 6, y + 4, value_format(value), anchor="end", size=10))
    if points:
        first, last = min(points, key=lambda p: p.at).at, max(points, key=lambda p: p.at).at
        parts.append(_text(left, height - 12, first.strftime("%Y-%m-%d"), size=10))
        parts.append(_text(right, height - 12, last.strftime("%Y-%m-%d"), anchor="end", size=10))
    else:
        parts.append(_text(left + 10, (top + bottom) / 2, "no data"))
    for index, (name, values) in enumerate(series.items()):
        colour = PALETTE[(index + 1) % len(PALETTE)]
        band = [(x_of(p.at), y_of(p.upper)) for p in values] + [(x_of(p.at), y_of(p.lower)) for p in reversed(values)]
        if band:
            parts.append(f'<polygon points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in band)}" fill="{colour}" '
                         'fill-opacity="0.15" stroke="none"/>')
        parts.append(_polyline([(x_of(p.at), y_of(p.estimate)) for p in values], colour))
        for bound in ("fixed_lower", "fixed_upper"):
            run = [(x_of(p.at), y_of(v)) for p in values if (v := getattr(p, bound)) is not None]
            if run:
                parts.append(_polyline(run, colour, ' stroke-dasharray="4 3" stroke-opacity="0.8"'))
        for p in values:
            fixed = ("" if p.fixed_lower is None or p.fixed_upper is None
                     else f", fixed-horizon [{value_format(p.fixed_lower)}, {value_format(p.fixed_upper)}]")
            tip = (f"{name} {p.at:%Y-%m-%d %H:%M}: {value_format(p.estimate)}, always-valid "
                   f"[{_bound(p.lower, value_format)}, {_bound(p.upper, value_format)}]{fixed}")
            data = {"variant": name, "at": p.at.isoformat(), "estimate": p.estimate, "lower": p.lower,
                    "upper": p.upper, "fixed-lower": p.fixed_lower, "fixed-upper": p.fixed_upper}
            attributes = " ".join(f'data-{key}="{escape(repr(value) if isinstance(value, float) else str(value))}"'
                                  for key, value in data.items() if value is not None)
            parts.append(f'<circle cx="{x_of(p.at):.1f}" cy="{y_of(p.estimate):.1f}" r="2.5" fill="{colour}" '
                         f"{attributes}><title>{escape(tip)}</title></circle>")
    parts.append("</svg>")
    return "".join(parts)


def _bound(value: float, value_format: Callable[[float], str]) -> str:
    return ("-" if value < 0 else "+") + "∞" if math.isinf(value) else value_format(value)
