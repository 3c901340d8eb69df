"""The report's tables as data: one `Table` per section, raw values for CSV, formatted cells for display.

The terminal, HTML and CSV outputs all read these, so they always show the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import attrs

from ..analytics._kpis import KPITable
from ..experiments import ExperimentResult, VariantResult
from ._data import ReportData

__all__ = ["Table", "decision_text", "duration", "format_value", "tables"]

_KPI_COLUMNS = ("messages", "sent", "delivered", "opened", "clicked", "converted", "unsubscribed", "bounced",
                "failed", "skipped", "cost", "revenue", "delivery_rate", "open_rate", "click_rate", "conversion_rate")
_MONEY = frozenset({"revenue", "value", "unattributed_revenue", "revenue_per_exposed"})
#: Differences of conversion rates, shown in percentage points; an unbounded end reads as infinity.
_LIFT_POINTS = frozenset({"lift", "lift_lower", "lift_upper", "fixed_lower", "fixed_upper"})
_LIFT_COLUMNS = ("lift", "lift_lower", "lift_upper", "relative_lift", "decision")


@attrs.frozen(kw_only=True)
class Table:
    """`key` names the CSV file and the HTML section's id."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def cells(self) -> list[list[str]]:
        return [[format_value(column, value) for column, value in zip(self.columns, row, strict=True)]
                for row in self.rows]


def format_value(column: str, value: Any) -> str:
    """How a value reads in a table: rates as percentages, money with cents, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, float) and column in _LIFT_POINTS:
        return f"{'-' if value < 0 else '+'}∞" if math.isinf(value) else f"{value * 100:+.2f} pp"
    if isinstance(value, float) and column == "relative_lift":
        return f"{value:+.1%}"
    if isinstance(value, float):
        if column.endswith(("_rate", "from_previous", "from_first", "removal_effect")):
            return f"{value:.1%}"
        if column in _MONEY or column.endswith("_value"):
            return f"{value:,.2f}"
        if column.startswith("cost"):  # SMS segments cost fractions of a cent
            return f"{value:,.4f}"
        if column.endswith("_seconds"):
            return _span(value)
        if column.endswith("_conversions"):  # attributed shares of conversions
            return f"{value:,.1f}"
        return f"{value:,.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _span(seconds: float) -> str:
    """A measured time between steps, to the unit people read: "45 s", "12 min", "3.5 h", "2.1 days"."""
    for unit, size in (("days", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:,.0f} s"


def duration(span: timedelta) -> str:
    """A window as people say it: "7 days", "36 hours", "90 minutes"."""
    seconds = span.total_seconds()
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} seconds"


def _kpi_table(key: str, title: str, table: KPITable) -> Table:
    columns = (*table.by, *_KPI_COLUMNS)
    rows = [tuple(row.as_dict()[c] for c in columns) for row in table.rows]
    total = table.total.as_dict()
    rows.append(("total", *([""] * (len(table.by) - 1)), *(total[c] for c in _KPI_COLUMNS)))
    return Table(key=key, title=title, columns=columns, rows=tuple(rows))


def _reason_table(report: ReportData) -> Table:
    rows: list[tuple[Any, ...]] = []
    for status, reasons in (("skipped", report.channels.total.skip_reasons),
                            ("failed", report.channels.total.failure_reasons)):
        rows.extend((status, reason, count) for reason, count in sorted(reasons.items(), key=lambda r: -r[1]))
    return Table(key="reasons", title="Why messages were skipped or failed", columns=("status", "reason", "messages"),
                 rows=tuple(rows))


def _funnel_table(report: ReportData) -> Table:
    rows = [tuple(row.values()) for row in report.funnel.as_dicts()]
    columns = tuple(report.funnel.as_dicts()[0]) if rows else ("group", "step", "event", "customers")
    return Table(key="funnel", title=f"Funnel within {duration(report.funnel.within)}", columns=columns,
                 rows=tuple(rows))


def _attribution_table(report: ReportData) -> Table:
    channels = _channels(report)
    models = tuple(report.attribution)
    rows = []
    for channel in channels:
        row: list[Any] = [channel]
        for model in models:
            result = report.attribution[model]
            row += [result.conversions.get(channel, 0.0), result.value.get(channel, 0.0)]
        rows.append(tuple(row))
    columns = ("channel", *(f"{model}_{kind}" for model in models for kind in ("conversions", "value")))
    return Table(key="attribution", title="Attribution by model (conversions and revenue credited)",
                 columns=columns, rows=tuple(rows))


def _channels(report: ReportData) -> Sequence[str]:
    """Channels credited by any model, most credited (by the first model) first."""
    seen: dict[str, float] = {}
    for result in report.attribution.values():
        for channel in result.conversions:
            seen.setdefault(channel, 0.0)
    first = next(iter(report.attribution.values()), None)
    return sorted(seen, key=lambda c: (-(first.conversions.get(c, 0.0) if first else 0.0), c))


def _lift_cells(variant: VariantResult) -> tuple[Any, ...]:
    """Against control: the conversion-rate difference, its always-valid interval, the relative lift."""
    lift = variant.conversion_lift
    if lift is None:
        return None, None, None, None, "control" if variant.decision is None else str(variant.decision)
    return (lift.absolute, lift.absolute_interval.lower, lift.absolute_interval.upper, lift.relative,
            str(variant.decision))


def _experiment_table(report: ReportData) -> Table:
    rows = []
    for series in report.experiments:
        for variant in series.variants:
            lifts = _lift_cells(variant) if series.looks else (None, None, None, None, "one variant so far")
            rows.append((series.name, variant.name, variant.exposures, variant.conversions, variant.conversion_rate,
                         variant.revenue_per_exposed, *lifts))
    return Table(key="experiments", title="Experiments (lift against control, always-valid 95% intervals)",
                 columns=("experiment", "variant", "exposures", "conversions", "conversion_rate",
                          "revenue_per_exposed", *_LIFT_COLUMNS), rows=tuple(rows))


def _marketing_table(report: ReportData) -> Table:
    rows = []
    for scope, result in report.marketing_lift.items():
        control, marketed = result.variants
        rows.append((scope, control.exposures, control.conversion_rate, marketed.exposures, marketed.conversion_rate,
                     marketed.revenue_per_exposed, *_lift_cells(marketed)))
    return Table(key="marketing_lift", title="Marketing against the global control group",
                 columns=("scope", "control_customers", "control_conversion_rate", "marketed_customers",
                          "marketed_conversion_rate", "revenue_per_exposed", *_LIFT_COLUMNS), rows=tuple(rows))


def decision_text(result: ExperimentResult) -> str:
    """"winner b", "keep running", ... as a reader says it."""
    return f"{result.decision} {result.winner}" if result.winner else str(result.decision)


def tables(report: ReportData) -> list[Table]:
    """Every section's table, in report order; experiments and the global control group only when the
    store has them."""
    found = [
        _kpi_table("channels", "Channel mix", report.channels),
        _funnel_table(report),
        _attribution_table(report),
        _kpi_table("journeys", "Journey performance", report.journeys),
        _reason_table(report),
    ]
    if report.experiments:
        found.append(_experiment_table(report))
    if report.marketing_lift:
        found.append(_marketing_table(report))
    return found
