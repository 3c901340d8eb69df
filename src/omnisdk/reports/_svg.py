"""Inline SVG charts: plain shapes and text, so the report needs no script and fetches nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Final

from ..analytics._funnels import FunnelStep

__all__ = ["PALETTE", "bar_chart", "funnel_chart"]

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
