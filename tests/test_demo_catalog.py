"""`omnisdk demo`, small: its catalog, the catalog-triggered journeys and their product blocks, and the
predicted value it prints, end to end through the provider imitations."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnisdk import Omni
from omnisdk.demo import run_demo
from omnisdk.demo._run import PRODUCTS, SOLD_OUT
from omnisdk.demo._shop import MESSAGES


def test_the_demo_sells_from_a_catalog_and_its_catalog_journeys_send(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    assert run_demo(store=url, customers=150, seed=3) == 0
    out = capsys.readouterr().out
    assert f"Catalog: {len(PRODUCTS)} variants" in out and "Predicted customer value (" in out
    assert "Requests that broke a provider's API contract: 0" in out
    with Omni(url, load_entry_points=False) as omni:
        for message in MESSAGES:
            omni.templates.add(message)
        assert all(omni.catalog.available(sku) for sku in SOLD_OUT)  # restocked mid-month
        for journey in ("back-in-stock", "browse-abandonment"):
            assert omni.runs(journey=journey), journey
            sent = omni.deliveries(journey=journey, status=["sent", "delivered"])
            assert sent, journey
            assert not omni.deliveries(journey=journey, status="failed"), journey  # every product block rendered
        someone = omni.deliveries(journey="browse-abandonment", status=["sent", "delivered"])[0].customer_id
        assert len(omni.recommend(someone, k=3)) == 3
        assert omni.predictions(someone) is not None or not [t for t in omni.timeline(someone)
                                                             if t.name == "Order Completed"]
