"""Experiments in the report, on both stores and the virtual clock: a table per experiment, a chart of each
variant's lift with its always-valid and fixed-horizon intervals at every daily look (each point what
`omni.experiment(..., until=that day, previous=the day before)` answers), and marketing against the
global control group."""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from omnisdk import Email, JourneyContext, Message, Omni, journey
from omnisdk.experiments import Conclusion, ExperimentResult, Split
from omnisdk.reports import Report
from omnisdk.testing import JourneyTester

SHARES = {"a": 0.5, "b": 0.5}
CHANNELS = {"email": {"provider": "memory"}}


@journey("subject", version="1", trigger="Signed Up")
async def subject(ctx: JourneyContext) -> None:
    variant = await ctx.experiment("subject-test", SHARES)
    await ctx.send("hello", f"hello-{variant}", channel="email")


class _Chart(HTMLParser):
    """The report's experiment figures: per experiment, the data-* of every point, and the tables."""

    def __init__(self) -> None:
        super().__init__()
        self.points: dict[str, list[dict[str, str]]] = {}
        self.sections: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._figure: str | None = None
        self._section = ""
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "section":
            self._section = found.get("id", "")
            self.sections.append(self._section)
        elif tag == "figure":
            self._figure = found["data-experiment"]
            self.points[self._figure] = []
        elif tag == "circle" and self._figure is not None:
            self.points[self._figure].append({k.removeprefix("data-"): v for k, v in found.items()
                                              if k.startswith("data-")})
        elif tag == "tr":
            self.tables.setdefault(self._section, []).append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._figure = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[self._section][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _page(path: Path) -> _Chart:
    page = _Chart()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture
def tester(store_url: str) -> Iterator[JourneyTester]:
    t = JourneyTester(subject, store=store_url, config={"channels": CHANNELS},
                      start=datetime.fromisoformat("2026-03-02T09:00:00+00:00"))
    for name in ("hello-a", "hello-b"):
        t.omni.templates.add(Message(name, email=Email(subject=name, text=name)))
    yield t
    t.close()


def _sign_up(t: JourneyTester, customers: list[str]) -> None:
    for cid in customers:
        t.omni.identify(cid, email=f"{cid}@example.com")
        t.omni.consent(cid, channel="email", granted=True)
    t.omni.track_many([(cid, "Signed Up", {}) for cid in customers])


def _run_four_days(t: JourneyTester) -> None:
    """150 sign-ups a day for four days; b's subject line sells far better (45% against 8%)."""
    rng = random.Random(4)
    for day in range(4):
        customers = [f"d{day}-{i}" for i in range(150)]
        _sign_up(t, customers)
        t.advance(hours=2)
        for cid in customers:
            if rng.random() < (0.45 if Split(SHARES).variant("subject-test", cid) == "b" else 0.08):
                t.omni.track(cid, "Order Completed", {"revenue": 25.0}, channel="pos")
        t.advance(hours=22)


def _float(value: str) -> float:
    return float(value)  # repr of the float: exact, "inf" and "-inf" included


def test_the_chart_points_are_the_daily_looks_of_omni_experiment(tester: JourneyTester, tmp_path: Path) -> None:
    _run_four_days(tester)
    report = tester.omni.report(html=tmp_path / "r.html", csv=tmp_path / "csv")
    page = _page(tmp_path / "r.html")

    points = page.points["subject-test"]
    assert {p["variant"] for p in points} == {"b"}  # one line per variant against control a
    [series] = report.experiments
    assert (series.control, len(series.looks)) == ("a", 5)  # four midnights, then now
    assert [p["at"] for p in points] == [look.at.isoformat() for look in series.looks]
    previous: ExperimentResult | None = None
    for point in points:
        at = datetime.fromisoformat(point["at"])
        previous = tester.omni.experiment("subject-test", control="a", until=at, previous=previous)
        fixed = tester.omni.experiment("subject-test", control="a", until=at, method="fixed")
        always, once = previous.variant("b").conversion_lift, fixed.variant("b").conversion_lift
        assert always is not None and once is not None
        assert (_float(point["estimate"]), _float(point["lower"]), _float(point["upper"])) == (
            always.absolute, always.absolute_interval.lower, always.absolute_interval.upper)
        assert (_float(point["fixed-lower"]), _float(point["fixed-upper"])) == (
            once.absolute_interval.lower, once.absolute_interval.upper)
        assert once.absolute_interval.lower > always.absolute_interval.lower  # the fixed one is narrower
    assert previous is not None and report.experiments[0].result == previous
    assert previous.decision is Conclusion.WINNER and previous.winner == "b"

    header, *rows = page.tables["experiments"]
    assert header[:3] == ["experiment", "variant", "exposures"] and header[-1] == "decision"
    b = previous.variant("b")
    assert b.conversion_lift is not None
    assert rows[1][:4] == ["subject-test", "b", str(b.exposures), str(b.conversions)]
    assert rows[1][6] == f"{b.conversion_lift.absolute * 100:+.2f} pp" and rows[1][-1] == "winner"
    assert rows[0][-1] == "control"
    with (tmp_path / "csv" / "experiments.csv").open(newline="", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert float(written[1]["lift_lower"]) == b.conversion_lift.absolute_interval.lower
    assert "Experiments (lift against control" in report.text()


def test_an_experiment_nobody_converted_in_and_one_with_a_single_variant(omni: Omni, tmp_path: Path) -> None:
    for i in range(10):
        omni.assign("quiet", f"q{i}", SHARES)
        omni.assign("solo", f"q{i}", {"only": 1.0})
    report = omni.report(html=tmp_path / "r.html")
    page = _page(tmp_path / "r.html")

    assert set(page.points) == {"quiet"}  # no chart without a second variant
    [point] = page.points["quiet"]  # exposed today: one look
    assert (_float(point["lower"]), _float(point["upper"])) == (-math.inf, math.inf)  # no spread: no evidence
    rows = {(r[0], r[1]): r for r in page.tables["experiments"][1:]}
    assert rows["quiet", "b"][7:9] == ["-∞", "+∞"] and rows["quiet", "b"][-1] == "keep running"
    assert rows["solo", "only"][2:5] == ["10", "0", "0.0%"] and rows["solo", "only"][-1] == "one variant so far"
    quiet, solo = report.experiments
    assert solo.looks == () and solo.result is None and quiet.result is not None


def test_a_store_without_experiments_says_so(omni: Omni, tmp_path: Path) -> None:
    report: Report = omni.report(html=tmp_path / "r.html", csv=tmp_path / "csv")
    page = _page(tmp_path / "r.html")
    assert "experiments" in page.sections and page.points == {}
    assert "No experiment has exposures yet" in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert report.experiments == () and report.marketing_lift == {}
    assert not (tmp_path / "csv" / "experiments.csv").exists()


def test_the_report_shows_marketing_against_the_global_control_group(store_url: str, tmp_path: Path) -> None:
    config: dict[str, Any] = {"channels": CHANNELS, "experiments": {"global_control": 0.25}}
    with JourneyTester(subject, store=store_url, config=config) as t:
        for name in ("hello-a", "hello-b"):
            t.omni.templates.add(Message(name, email=Email(subject=name, text=name)))
        customers = [f"m{i}" for i in range(80)]
        _sign_up(t, customers)
        t.advance(hours=1)
        for cid in customers[::3]:
            t.omni.track(cid, "Order Completed", {"revenue": 10.0}, channel="web")
        report = t.omni.report(html=tmp_path / "r.html")

        assert list(report.marketing_lift) == ["all marketing", "journey subject", "channel email"]
        expected = t.omni.marketing_lift()
        assert report.marketing_lift["all marketing"] == expected
        assert report.marketing_lift["journey subject"] == t.omni.marketing_lift(journey="subject")
        header, everyone, *_ = _page(tmp_path / "r.html").tables["marketing_lift"]
        control, marketed = expected.variants
        assert header[0] == "scope" and everyone[:4] == ["all marketing", str(control.exposures),
                                                         f"{control.conversion_rate:.1%}", str(marketed.exposures)]
        assert control.exposures + marketed.exposures == 80 and control.exposures > 0


def test_a_long_experiment_is_looked_at_every_few_days(omni: Omni, clock: Any) -> None:
    omni.assign("long", "c-1", SHARES)
    omni.assign("long", "c-2", {"a": 0.0, "b": 1.0} if Split(SHARES).variant("long", "c-1") == "a" else
                {"a": 1.0, "b": 0.0})
    clock.advance(timedelta(days=800))
    [series] = omni.report().experiments
    assert len(series.looks) <= 367
    gaps = {(later.at - earlier.at).days for earlier, later in zip(series.looks, series.looks[1:-1], strict=False)}
    assert gaps == {3}  # 800 days in at most 366 looks


def _one_of(variant: str, experiment: str) -> str:
    """A customer id the hash puts in `variant`."""
    return next(cid for cid in (f"p{i}" for i in range(100)) if Split(SHARES).variant(experiment, cid) == variant)


def test_looks_before_a_variant_was_exposed_have_no_point(omni: Omni, clock: Any, tmp_path: Path) -> None:
    omni.assign("late", _one_of("a", "late"), SHARES)
    clock.advance(timedelta(days=2))
    omni.assign("late", _one_of("b", "late"), SHARES)
    clock.advance(timedelta(days=1))
    report = omni.report(html=tmp_path / "r.html")
    [series] = report.experiments
    assert len(series.looks) == 4 and series.looks[0].sequential.variant("b").exposures == 0
    points = _page(tmp_path / "r.html").points["late"]
    assert [p["at"] for p in points] == [look.at.isoformat() for look in series.looks[2:]]  # from b's first look
