"""Declarative journeys: a YAML graph runs on the same runtime, node ids as step names, and draws as Mermaid."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from omnisdk import ValidationError
from omnisdk.cli import main
from omnisdk.journeys import from_dict, from_yaml
from omnisdk.testing import JourneyTester

WIN_BACK = """
id: win-back
version: "1"
trigger: Customer Lapsed
exit_on: [Order Completed]
nodes:
  tier:
    branch:
      - if: {field: customer.traits.tier, equals: gold}
        next: call
      - if: {field: trigger.properties.last_order_value, gt: 100}
        next: big-spender
    else: ab
  call: {send: gold-call-offer, channel: sms}
  big-spender: {send: big-spender-offer, channels: [email, sms], data: {discount: 20}, next: wait}
  ab:
    split: {coupon: 50, reminder: 50}
  coupon: {send: winback-coupon, channel: email, next: wait}
  reminder: {send: winback-reminder, channel: push, next: wait}
  wait: {wait_for: Link Clicked, timeout: {days: 3}, next: thanks, on_timeout: pause}
  pause: {sleep: {days: 4}, next: postcard}
  postcard: {send: winback-postcard, channel: direct_mail}
  thanks: {exit: true}
"""


@pytest.fixture
def win_back(store_url: str) -> Iterator[JourneyTester]:
    with JourneyTester(from_yaml(WIN_BACK), store=store_url) as tester:
        yield tester


def test_a_yaml_journey_branches_on_profile_and_event(win_back: JourneyTester) -> None:
    t = win_back
    t.identify("gold", traits={"tier": "gold"})
    t.emit("gold", "Customer Lapsed", {"last_order_value": 10})
    t.emit("big", "Customer Lapsed", {"last_order_value": 250})
    t.advance(days=1)
    t.emit("big", "Link Clicked", {"url": "https://shop.example/back"}, channel="email")
    t.advance(days=10)
    assert t.steps("gold") == ["call"]
    assert t.steps("big") == ["big-spender"]
    assert t.deliveries("big")[0].data == {"discount": 20}
    assert t.run("big").status == "completed"


def test_random_split_follows_weights_and_timeout_branch(win_back: JourneyTester) -> None:
    t = win_back
    customers = [f"c{i}" for i in range(40)]
    t.omni.track_many([(c, "Customer Lapsed", {"last_order_value": 5}) for c in customers])
    t.advance(days=3, hours=1)
    first = Counter(t.steps(c)[0] for c in customers)
    assert set(first) == {"coupon", "reminder"} and sum(first.values()) == 40
    t.advance(days=4)
    assert all(t.steps(c)[1:] == ["postcard"] for c in customers)  # nobody clicked: the timeout branch


def test_mermaid_diagram() -> None:
    diagram = from_yaml(WIN_BACK).mermaid()
    assert diagram.splitlines()[:2] == ["flowchart TD", '    trigger(("Customer Lapsed")) --> n_tier']
    assert '    n_tier -->|"customer.traits.tier equals #quot;gold#quot;"| n_call' in diagram
    assert '    n_ab -->|"50%"| n_coupon' in diagram
    assert '    n_wait -->|"timeout"| n_pause' in diagram
    assert '    n_big_spender["big-spender: send big-spender-offer via email > sms"]' in diagram
    assert '    n_thanks((("thanks: exit")))' in diagram


def test_the_cli_prints_the_graph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "win_back.yaml"
    path.write_text(WIN_BACK.replace("win-back", "win-back-cli"))
    try:
        assert main(["journeys", "graph", "win-back-cli", "--file", str(path)]) == 0
    finally:
        structlog.reset_defaults()  # the CLI pointed structlog at the captured stderr
    out = capsys.readouterr().out
    assert out.startswith("flowchart TD\n") and "n_postcard" in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nodes": {"a": {"send": "t", "next": "b"}, "b": {"sleep": {"days": 1}, "next": "a"}}},
         "the graph has a cycle: a -> b -> a"),
        ({"nodes": {"a": {"send": "t", "next": "nowhere"}}}, "leads to unknown node 'nowhere'"),
        ({"nodes": {"a": {"send": "t", "sleep": {"days": 1}}}}, "needs exactly one action"),
        ({"nodes": {"a": {"sleep": {"fortnights": 1}}}}, "x.nodes.a.sleep: expected timedelta keywords"),
        ({"nodes": {"a": {"split": {"a": 0}}}}, "positive weights"),
        ({"nodes": {"a": {"branch": [{"if": {"field": "profile.tier", "equals": 1}, "next": "a"}]}}},
         "field must start with customer. or trigger."),
        ({"nodes": {"a": {"send": "t", "chanel": "sms"}}}, "unknown keys for a send node: chanel"),
        ({"nodes": {}}, "non-empty `nodes`"),
    ],
)
def test_invalid_graphs_are_refused_with_where(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(".", r"\.")):
        from_dict({"id": "x", "trigger": "A", **change})


def test_unreadable_yaml_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        from_yaml(str(tmp_path / "missing.yaml"))
    with pytest.raises(ValidationError, match="invalid YAML"):
        from_yaml("id: [unclosed\nnodes: {}")


def test_branch_on_an_event_since_the_trigger(store_url: str) -> None:
    post_purchase = from_dict({
        "id": "browse-follow-up", "trigger": "Product Viewed",
        "nodes": {
            "wait": {"sleep": {"hours": 6}, "next": "bought"},
            "bought": {"branch": [{"if": {"event": "Order Completed"}, "next": "thanks"}], "else": "nudge"},
            "thanks": {"send": "thanks", "channel": "email"},
            "nudge": {"send": "still-interested", "channel": "email"},
        },
    })
    with JourneyTester(post_purchase, store=store_url) as t:
        t.emit("old-buyer", "Order Completed", {"order_id": "o-0"})  # before the trigger: does not count
        t.emit("old-buyer", "Product Viewed", {"product_id": "a"})
        t.emit("buyer", "Product Viewed", {"product_id": "a"})
        t.advance(hours=1)
        t.emit("buyer", "Order Completed", {"order_id": "o-1"}, channel="pos")
        t.advance(hours=6)
        assert t.steps("buyer") == ["thanks"]
        assert t.steps("old-buyer") == ["nudge"]
