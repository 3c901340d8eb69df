"""The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched."""

from __future__ import annotations

from html import escape

from ..experiments import ExperimentResult, Lift
from ._data import ReportData
from ._experiments import ExperimentSeries
from ._svg import IntervalPoint, bar_chart, funnel_chart, interval_chart
from ._tables import Table, decision_text, duration, tables

__all__ = ["render_html"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.8rem 0; }
.scroll { overflow-x: auto; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
tr:last-child td { font-weight: 600; }
.summary { display: flex; gap: 2rem; flex-wrap: wrap; }
.summary div { background: #f5f7fb; padding: 0.6rem 1rem; border-radius: 6px; }
.summary b { display: block; font-size: 1.3rem; }
.note { color: #8a4b00; }
figure { margin: 1rem 0; }
"""


def _table(table: Table) -> str:
    if not table.rows:
        return "<p>No data for this period.</p>"
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in table.cells())
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _summary(report: ReportData) -> str:
    total = report.channels.total
    figures = [
        ("messages sent", f"{total.sent:,}"),
        ("delivered", f"{total.delivered:,}"),
        ("conversions after a message", f"{total.converted:,}"),
        ("revenue after a message", f"{total.revenue:,.2f}"),
        ("conversions with no message", f"{report.channels.unattributed_conversions:,}"),
        ("cost", f"{total.cost:,.2f}"),
    ]
    return '<div class="summary">' + "".join(
        f"<div><b>{escape(value)}</b>{escape(label)}</div>" for label, value in figures) + "</div>"


def _charts(report: ReportData, key: str) -> str:
    if key == "channels":
        rows = report.channels.rows
        labels = [str(r.group["channel"] or "-") for r in rows]
        return (bar_chart("Messages by channel", labels, {"sent": [r.sent for r in rows],
                                                           "delivered": [r.delivered for r in rows],
                                                           "clicked": [r.clicked for r in rows],
                                                           "converted": [r.converted for r in rows]})
                + bar_chart("Revenue after a message, by channel", labels, {"revenue": [r.revenue for r in rows]},
                            lambda v: f"{v:,.2f}"))
    if key == "funnel":
        return funnel_chart(" → ".join(report.funnel.events), report.funnel.steps)
    if key == "attribution":
        channels = sorted({c for r in report.attribution.values() for c in r.conversions})
        series = {model: [result.conversions.get(c, 0.0) for c in channels]
                  for model, result in report.attribution.items()}
        return bar_chart("Conversions credited to each channel, by model", channels, series)
    if key == "journeys":
        rows = report.journeys.rows
        labels = [f"{r.group['journey'] or '-'} / {r.group['step'] or '-'}" for r in rows]
        return bar_chart("Journey steps: conversion rate (conversions per sent message)", labels,
                         {"conversion rate": [r.conversion_rate or 0.0 for r in rows]}, lambda v: f"{v:.1%}")
    if key == "experiments":
        return "".join(_experiment_chart(series) for series in report.experiments if series.looks)
    return ""


def _lift(result: ExperimentResult, variant: str) -> Lift | None:
    """The variant's lift at this look; None until both it and control have someone exposed."""
    found = [v for v in result.variants if v.name == variant]
    if not found or not (found[0].exposures and result.variants[0].exposures):
        return None
    return found[0].conversion_lift


def _experiment_chart(series: ExperimentSeries) -> str:
    """Each variant's conversion-rate lift against control at every look, with both intervals."""
    assert series.result is not None
    lines: dict[str, list[IntervalPoint]] = {}
    for variant in series.result.variants[1:]:
        points = lines.setdefault(variant.name, [])
        for look in series.looks:
            sequential, fixed = _lift(look.sequential, variant.name), _lift(look.fixed, variant.name)
            if sequential is None:
                continue  # nobody exposed to it (or to control) yet at this look
            points.append(IntervalPoint(
                look.at, sequential.absolute, sequential.absolute_interval.lower, sequential.absolute_interval.upper,
                fixed.absolute_interval.lower if fixed else None, fixed.absolute_interval.upper if fixed else None))
    title = f"{series.name}: conversion-rate lift against {series.control} ({decision_text(series.result)})"
    return f'<figure data-experiment="{escape(series.name)}">{interval_chart(title, lines)}</figure>'


_NO_EXPERIMENTS = ('<section id="experiments"><h2>Experiments</h2><p>No experiment has exposures yet '
                   "(<code>ctx.experiment</code> or <code>omni.assign</code> records them).</p></section>")


def render_html(report: ReportData) -> str:
    period = f"{report.since or 'the beginning'} to {report.until or report.generated_at}"
    sections = []
    for table in tables(report):
        sections.append(f'<section id="{table.key}"><h2>{escape(table.title)}</h2>{_charts(report, table.key)}'
                        f"{_table(table)}</section>")
    if not report.experiments:
        sections.append(_NO_EXPERIMENTS)
    notes = "".join(f'<p class="note">{escape(note)}</p>' for note in report.notes)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>omnisdk report</title><style>{_STYLE}</style></head><body>"
        f"<h1>omnisdk report</h1><p>{escape(period)} · conversion: {escape(', '.join(report.conversion))} · "
        f"credited to the latest message within {escape(duration(report.channels.window))}</p>"
        f'<section id="summary">{_summary(report)}</section>{notes}{"".join(sections)}'
        "</body></html>\n"
    )
