"""Reports: the same numbers in the terminal, in one self-contained HTML page, and in CSV files.

The store holds the KPI story of test_kpis.py (SMS and email journeys, webhooks, five orders) plus
a web funnel: c-1 and c-2 viewed a product, c-1 added it to the cart; nobody started a checkout.
"""

from __future__ import annotations

import asyncio
import csv
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from omnisdk import AsyncOmni, Omni, VirtualClock
from omnisdk.cli import main
from omnisdk.reports import Report
from test_kpis import shop  # noqa: F401  (the fixture)

SECTIONS = {"summary", "channels", "funnel", "attribution", "journeys", "reasons"}


@pytest.fixture
def report_shop(shop: Omni, clock: VirtualClock) -> Omni:  # noqa: F811
    start = VirtualClock().timestamp()
    visits = (("c-1", "Product Viewed", 5), ("c-2", "Product Viewed", 6), ("c-1", "Product Added", 7))
    for cid, event, minutes in visits:
        shop.track(cid, event, {"product_id": "sku-1"}, channel="web", timestamp=start + minutes * 60)
    return shop


class _Page(HTMLParser):
    """Collects what a reader (or a browser) would load from the page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: list[str] = []
        self.fetches: list[tuple[str, str]] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("src", "href") or (name == "xmlns" and tag != "svg"):
                self.fetches.append((tag, str(value)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_html_is_one_self_contained_page_with_every_section(report_shop: Omni, tmp_path: Path) -> None:
    report = report_shop.report(html=tmp_path / "out" / "report.html")

    page = _Page()
    page.feed((tmp_path / "out" / "report.html").read_text(encoding="utf-8"))
    assert page.ids >= SECTIONS
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert page.fetches == []
    assert page.tags.count("svg") == 5  # channel mix (2), funnel, attribution, journeys
    channels = page.tables[0]
    assert channels[0][:3] == ["channel", "messages", "sent"]
    assert channels[-1][:3] == ["total", "6", "4"]
    assert {row[0] for row in channels[1:-1]} == {"sms", "email"}
    funnel = page.tables[1]
    assert [row[3] for row in funnel[1:5]] == ["2", "1", "0", "0"]  # viewed, added, checkout, ordered
    assert report.funnel.events[-1] == "Order Completed"


def test_attribution_models_side_by_side(report_shop: Omni) -> None:
    report = report_shop.report()

    assert tuple(report.attribution) == ("first_touch", "last_touch", "linear", "time_decay", "position_based",
                                         "markov")
    for result in report.attribution.values():
        assert result.total_conversions == pytest.approx(5.0)  # every order in the store, POS included
        assert result.total_value == pytest.approx(165.0)
    assert report.notes == ()


def test_csv_round_trips(report_shop: Omni, tmp_path: Path) -> None:
    report = report_shop.report(csv=tmp_path / "csv")

    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == [
        "attribution.csv", "channels.csv", "funnel.csv", "journeys.csv", "reasons.csv"]
    channels = _read(tmp_path / "csv" / "channels.csv")
    for row in report.channels.rows:
        [written] = [r for r in channels if r["channel"] == row.group["channel"]]
        assert {key: _parse(value) for key, value in written.items() if key != "channel"} == pytest.approx(
            {key: value for key, value in row.as_dict().items() if key in written and key != "channel"})
    assert channels[-1]["channel"] == "total" and channels[-1]["messages"] == "6"
    attribution = {row["channel"]: row for row in _read(tmp_path / "csv" / "attribution.csv")}
    for model, result in report.attribution.items():
        for channel, credited in result.conversions.items():
            assert float(attribution[channel][f"{model}_conversions"]) == pytest.approx(credited)
            assert float(attribution[channel][f"{model}_value"]) == pytest.approx(result.value[channel])
    reasons = _read(tmp_path / "csv" / "reasons.csv")
    assert {(r["status"], r["reason"], r["messages"]) for r in reasons if r["status"] == "failed"} == {
        ("failed", "mailbox does not exist", "1")}


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _parse(value: str) -> Any:
    return None if value == "" else float(value)


def test_terminal_tables(report_shop: Omni) -> None:
    text = report_shop.report().text()

    for title in ("Channel mix", "Funnel within 7 days", "Attribution by model", "Journey performance",
                  "Why messages were skipped or failed"):
        assert title in text
    assert "3 conversions credited to a message within 7 days (115.00 revenue); 2 more" in text
    total, _ = [line for line in text.splitlines() if line.startswith("total")]  # channels, journeys
    assert total.split()[:3] == ["total", "6", "4"]


def test_cli_prints_and_writes(report_shop: Omni, store_url: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    html, folder = tmp_path / "r.html", tmp_path / "csv"
    code = main(["--store", store_url, "report", "--html", str(html), "--csv", str(folder),
                 "--funnel", "Product Viewed > Product Added", "--since", "2026-01-01"])

    assert code == 0
    out = capsys.readouterr().out
    assert "Channel mix" in out and f"HTML written to {html}" in out
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [row["customers"] for row in _read(folder / "funnel.csv")][:2] == ["2", "1"]


def test_cli_rejects_a_bad_date(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", store_url, "report", "--since", "last tuesday"]) == 1
    assert "--since: expected an ISO 8601 date" in capsys.readouterr().err


def test_an_empty_store_still_makes_a_report(omni: Omni, tmp_path: Path) -> None:
    report: Report = omni.report(html=tmp_path / "empty.html")

    page = _Page()
    page.feed((tmp_path / "empty.html").read_text(encoding="utf-8"))
    assert page.ids >= SECTIONS
    assert report.channels.rows == ()
    assert "No data" in (tmp_path / "empty.html").read_text(encoding="utf-8")


def test_the_async_client_measures_the_same(report_shop: Omni, store_url: str, tmp_path: Path) -> None:
    async def measure() -> tuple[Any, ...]:
        async with AsyncOmni(store_url, clock=VirtualClock()) as omni:
            table = await omni.kpis(by="journey")
            steps = await omni.funnel(["Product Viewed", "Product Added"], within=timedelta(hours=1))
            credited = await omni.attribution("last_touch")
            report = await omni.report(csv=tmp_path / "async", funnel=["Product Viewed", "Product Added"])
            return table, steps, credited, report

    table, steps, credited, report = asyncio.run(measure())
    assert table.total == report_shop.kpis(by="journey").total
    assert [step.customers for step in steps.steps] == [2, 1]
    assert credited == report_shop.attribution("last_touch")
    assert [row["customers"] for row in _read(tmp_path / "async" / "funnel.csv")][:2] == ["2", "1"]
    assert report.funnel.events == ("Product Viewed", "Product Added")
