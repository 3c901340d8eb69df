"""`Report`: the measurement of one period, gathered once, then printed, written as HTML or as CSV."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from os import PathLike
from pathlib import Path
from typing import Any, Final

import attrs

from .._clock import to_datetime
from ..analytics._attribution import AttributionResult
from ..analytics._funnels import funnel as funnel_of
from ..analytics._kpis import check_names, kpis
from ..analytics._stored import REPORT_MODELS, attributions
from ..experiments import GlobalControl
from ..store import SQLStore
from ._csv import write_csv
from ._data import ReportData
from ._experiments import experiment_series, marketing_lifts
from ._html import render_html
from ._terminal import render_text

__all__ = ["DEFAULT_FUNNEL", "Report", "build_report", "create_report"]

#: The ecommerce funnel a report shows unless told otherwise; the conversion event ends it.
DEFAULT_FUNNEL: Final = ("Product Viewed", "Product Added", "Checkout Started")


@attrs.frozen(kw_only=True)
class Report(ReportData):
    """KPIs by channel and by journey step, a funnel, attribution by several models side by side, and
    experiments with their lift over time."""

    def text(self) -> str:
        """The report as plain-text tables, for a terminal."""
        return render_text(self)

    def html(self) -> str:
        """One self-contained HTML page: inline CSS and SVG charts, no script, nothing fetched."""
        return render_html(self)

    def write_html(self, path: str | PathLike[str]) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.html(), encoding="utf-8")
        return target

    def write_csv(self, directory: str | PathLike[str]) -> list[Path]:
        """One CSV file per table (channels, funnel, attribution, journeys, reasons) in `directory`."""
        return write_csv(self, Path(directory))


def _attribution(
    store: SQLStore, models: Sequence[str], notes: list[str], **kwargs: Any
) -> dict[str, AttributionResult]:
    try:
        return attributions(store, models, **kwargs)
    except ModuleNotFoundError as exc:  # markov needs the `analytics` extra
        if "markov" not in models:
            raise
        notes.append(f"markov left out: {exc}")
        return attributions(store, [m for m in models if m != "markov"], **kwargs)


def build_report(
    store: SQLStore,
    *,
    now: float,
    since: datetime | float | None = None,
    until: datetime | float | None = None,
    conversion: str | Collection[str] = "Order Completed",
    window: timedelta = timedelta(days=7),
    lookback: timedelta = timedelta(days=30),
    funnel: Sequence[str] | None = None,
    within: timedelta = timedelta(days=7),
    models: Sequence[str] = REPORT_MODELS,
    global_control: GlobalControl | None = None,
) -> Report:
    """Gather everything a report shows; each part reads the store in bounded memory. Experiments are
    shown over their whole life up to `until` (else `now`), converting on `conversion` within `window`."""
    names = check_names(conversion, "conversion")
    steps = tuple(funnel) if funnel is not None else (*DEFAULT_FUNNEL, names[0])
    notes: list[str] = []
    channels = kpis(store, "channel", since=since, until=until, conversion=names, window=window)
    journeys = kpis(store, ("journey", "step"), since=since, until=until, conversion=names, window=window)
    end = channels.until.timestamp() if channels.until is not None else now
    return Report(
        generated_at=to_datetime(now), since=channels.since, until=channels.until, conversion=names,
        channels=channels,
        journeys=journeys,
        funnel=funnel_of(store, steps, within=within, by="channel", since=since, until=until),
        attribution=_attribution(store, models, notes, conversion=names, lookback=lookback, since=since,
                                 until=until),
        experiments=experiment_series(store, goal=names, window=window, end=end),
        marketing_lift=marketing_lifts(
            store, global_control, goal=names, window=window, since=since, until=until,
            journeys={str(r.group["journey"]) for r in journeys.rows if r.group["journey"]},
            channels={str(r.group["channel"]) for r in channels.rows if r.group["channel"]}),
        notes=tuple(notes),
    )


def create_report(
    store: SQLStore,
    *,
    now: float,
    html: str | PathLike[str] | None = None,
    csv: str | PathLike[str] | None = None,
    **options: Any,
) -> Report:
    """`build_report`, then write the HTML page to `html` and the CSV files into the folder `csv` if given."""
    report = build_report(store, now=now, **options)
    if html is not None:
        report.write_html(html)
    if csv is not None:
        report.write_csv(csv)
    return report
