"""HTML building blocks for the dashboard: every value is escaped unless it is `Safe` (HTML we wrote)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

__all__ = ["NAV", "Safe", "ago", "button_form", "e", "layout", "link", "table", "when"]

#: (path, label) of the top navigation.
NAV = (("/", "Overview"), ("/customers", "Customers"), ("/journeys", "Journeys"), ("/outbox", "Outbox"),
       ("/quarantine", "Quarantine"), ("/experiments", "Experiments"), ("/kpis", "KPIs"))

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fff}
header{background:#1d3a6e;color:#fff;padding:.5rem 1rem}header a{color:#fff;margin-right:1rem}
header a[aria-current=page]{font-weight:bold;text-decoration:underline}
main{padding:1rem;max-width:78rem}h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.6rem}
table{border-collapse:collapse;margin:.4rem 0}th,td{border:1px solid #bbb;padding:.2rem .5rem;text-align:left;
vertical-align:top}th{background:#eef1f6}td.n{text-align:right}.scroll{overflow-x:auto}
.bad{color:#a4000f;font-weight:bold}.ok{color:#176b2c}.note{color:#444}
form.inline{display:inline}button{font:inherit;padding:.1rem .6rem}a{color:#1a4fb0}
code{font-size:.9em;word-break:break-all}
"""


class Safe(str):
    """HTML we built ourselves (every value in it already escaped)."""


def e(value: Any) -> str:
    """A value as HTML text; `Safe` HTML passes through."""
    if isinstance(value, Safe):
        return value
    return escape("-" if value is None else str(value), quote=True)


def link(root: str, path: str, text: Any, **query: str) -> Safe:
    href = root + path + ("?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items()) if query else "")
    return Safe(f'<a href="{e(href)}">{e(text)}</a>')


def path_part(value: str) -> str:
    """An id as one path segment (a hostile id cannot add segments or a query)."""
    return quote(value, safe="")


def when(at: datetime | float | None) -> str:
    if at is None:
        return "-"
    moment = at if isinstance(at, datetime) else datetime.fromtimestamp(at, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(seconds: float | None) -> str:
    """A duration as a person reads it: 45 s, 12 min, 3.5 h, 2.1 d."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None,
          numeric: Sequence[int] = (), empty: str = "None.") -> Safe:
    body = "".join(
        "<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{e(cell)}</td>' for i, cell in enumerate(row))
        + "</tr>" for row in rows)
    if not body:
        return Safe(f'<p class="note">{e(empty)}</p>')
    head = "".join(f'<th scope="col">{e(c)}</th>' for c in columns)
    cap = f"<caption>{e(caption)}</caption>" if caption else ""
    name = caption or "table of " + ", ".join(columns)
    # a scrolling box is reachable by keyboard and named (axe: scrollable-region-focusable)
    return Safe(f'<div class="scroll" tabindex="0" role="region" aria-label="{e(name)}"><table>{cap}'
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def button_form(action: str, label: str, csrf: str, *, name: str) -> Safe:
    """A POST form of one button (works without JavaScript), carrying the CSRF token."""
    return Safe(f'<form class="inline" method="post" action="{e(action)}">'
                f'<input type="hidden" name="csrf" value="{e(csrf)}">'
                f'<button type="submit" aria-label="{e(label + " " + name)}">{e(label)}</button></form>')


def layout(root: str, current: str, title: str, body: str, *, banner: str = "") -> str:
    nav = "".join(
        f'<a href="{e(root + path)}"{" aria-current=page" if path == current else ""}>{e(label)}</a>'
        for path, label in NAV)
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)} · omnisdk</title><style>{_STYLE}</style></head><body>"
            f'<header><nav aria-label="Sections">{nav}</nav></header>'
            f"<main><h1>{e(title)}</h1>{banner}{body}</main></body></html>")
