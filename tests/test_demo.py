"""`omnisdk demo` end to end on a small shop: the welcome journey's subject-line experiment is exposed,
sends each customer their variant's email, and shows in the HTML report as a table and a chart."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from omnisdk import Omni
from omnisdk.demo import run_demo
from omnisdk.demo._shop import WELCOME_EXPERIMENT
from omnisdk.experiments import Split
from omnisdk.store._experiments import exposures


class _Figures(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: list[str] = []
        self.points = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "figure":
            self.figures.append(str(found["data-experiment"]))
        elif tag == "circle" and "data-lower" in found:
            self.points += 1


def test_the_demo_runs_a_subject_line_experiment_into_its_report(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url, html = f"sqlite:///{tmp_path / 'demo.db'}", tmp_path / "report.html"
    assert run_demo(store=url, customers=150, report=str(html)) == 0
    out = capsys.readouterr().out
    assert "Requests that broke a provider's API contract: 0" in out
    assert f"Experiment {WELCOME_EXPERIMENT} (against control)" in out

    page = _Figures()
    page.feed(html.read_text(encoding="utf-8"))
    assert page.figures == [WELCOME_EXPERIMENT] and page.points >= 20  # a look a day for most of the month
    with Omni(url) as omni:
        with omni.store.transaction(immediate=False) as tx:
            exposed = {e.customer_id: e.variant for e in exposures(tx, WELCOME_EXPERIMENT)}
        assert len(exposed) == len(omni.runs(journey="welcome", limit=10_000)) > 0
        split = Split({"control": 0.5, "personal": 0.5})
        for cid, variant in exposed.items():
            assert variant == split.variant(WELCOME_EXPERIMENT, cid)
            sent = [d.template for d in omni.deliveries(customer_id=cid, journey="welcome") if d.step == "hello"]
            assert sent == ["welcome" if variant == "control" else "welcome-personal"]
