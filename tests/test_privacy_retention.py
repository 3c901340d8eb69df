"""Retention: `[retention]` rules applied by the worker in batches, in virtual time, on both stores;
what is inside the retained periods (and the KPIs over them) is untouched."""

from __future__ import annotations

from datetime import timedelta

import pytest

from omnisdk import VirtualClock
from omnisdk.errors import ConfigError
from omnisdk.privacy import RetentionSettings
from omnisdk.store._quarantine import quarantine_row
from privacy_seed import open_shop

RULES = {"touchpoints": "25 months", "delivery_bodies": "90 days", "decision_log": "2 years",
         "quarantine": "30 days", "batch_size": 2, "interval": "1 day"}


def test_rows_past_their_period_go_in_batches_and_the_retained_kpis_stay(store_url: str, clock: VirtualClock) -> None:
    with open_shop(store_url, clock, retention=RULES) as omni:
        omni.identify("c-1", email="one@example.com", traits={"first_name": "One"})
        omni.consent("c-1", channel="email", granted=True)
        for month in range(30):  # a purchase and a receipt every month for 30 months
            omni.track("c-1", "Order Completed", {"order_id": f"o-{month}", "revenue": 10.0}, channel="pos")
            omni.send("c-1", "receipt", channel="email", data={"order_id": f"o-{month}"}, purpose="transactional")
            omni.run_until_idle()
            if month == 0:
                with omni.store.transaction() as tx:
                    quarantine_row(tx, "touchpoints", (tx.scalar("SELECT MIN(seq) FROM touchpoints"),),
                                   ValueError("set aside"))
            clock.advance(days=30)
        now = clock.now()
        kept_since = now - timedelta(days=25 * 30.436875)
        retained = omni.kpis("channel", since=kept_since, until=now).as_dicts()
        [touchpoints] = [r for r in omni.retention() if r.rule == "touchpoints"]
        assert touchpoints.eligible > 0 and touchpoints.last_run_at is not None  # ran once at the start

        clock.advance(days=1)
        omni.run_until_idle()
        status = {r.rule: r for r in omni.retention()}
        assert {rule: r.eligible for rule, r in status.items()} == {
            "touchpoints": 0, "delivery_bodies": 0, "decision_log": 0, "quarantine": 0}
        assert status["touchpoints"].removed > 2  # more than one batch
        assert status["quarantine"].removed == 1
        timeline = omni.timeline("c-1")
        assert timeline and min(t.occurred_at for t in timeline) >= kept_since
        assert len([t for t in timeline if t.name == "Order Completed"]) == 25
        deliveries = omni.deliveries(customer_id="c-1")
        assert len([d for d in deliveries if d.journey is None]) == 30  # the rows stay; only old bodies were cleared
        with omni.store.transaction() as tx:
            bodies = tx.query("SELECT created_at FROM deliveries WHERE sent_content IS NOT NULL")
            recent = tx.scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'sent' AND created_at >= ?",
                               (clock.timestamp() - 90 * 86400,))
        assert bodies and min(at for (at,) in bodies) >= clock.timestamp() - 90 * 86400
        assert len(bodies) == recent
        assert omni.kpis("channel", since=kept_since, until=now).as_dicts() == retained


def test_retention_rules_are_checked() -> None:
    with pytest.raises(ConfigError) as bad:
        RetentionSettings.from_config({"touchpoints": "forever"})
    assert bad.value.field == "retention.touchpoints"
    with pytest.raises(ConfigError) as bad:
        RetentionSettings.from_config({"customers": "1 year"})
    assert bad.value.field == "retention.customers"
    assert RetentionSettings.from_config({"quarantine": "2 weeks"}).periods == {"quarantine": 14 * 86400.0}
    assert RetentionSettings.from_config(None).periods == {}
