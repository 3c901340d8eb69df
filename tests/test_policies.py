"""Send-time policies: consent, quiet hours in the customer's zone, caps, dedupe, suppression, channel choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import omnisdk
from omnisdk import ConfigError, Consent, Customer, Identity, Omni
from omnisdk._identifiers import IdentityKind, IdentityKinds
from omnisdk.delivery import enqueue_delivery
from omnisdk.policies import (
    Addresses,
    PastDelivery,
    PastEvent,
    PolicyContext,
    PolicyRules,
    RecentActivity,
    SendRequest,
    Verdict,
    address_for,
    decide,
    decide_many,
    load_recent,
)

NOON_UTC = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
NOW = NOON_UTC.timestamp()
DAY = 86400.0


def granted(*channels: str, purpose: str = "marketing", granted: bool = True) -> tuple[Consent, ...]:
    return tuple(
        Consent(channel=c, purpose=purpose, granted=granted, source="test", recorded_at=NOON_UTC - timedelta(days=30))
        for c in channels
    )


def ada(**overrides: object) -> Customer:
    fields: dict[str, object] = {
        "id": "c-ada",
        "identities": (Identity("email", "ada@example.com"), Identity("phone", "+14155550100"),
                       Identity("fcm_token", "tok-1")),
        "timezone": "America/New_York",
        "consents": granted("email", "sms", "push"),
    }
    fields.update(overrides)
    return Customer(**fields)  # type: ignore[arg-type]


def test_address_for_every_channel() -> None:
    customer = Customer(
        id="c1",
        identities=(Identity("email", "a@example.com"), Identity("phone", "+14155550100"),
                    Identity("apns_token", "old"), Identity("webpush_endpoint", "https://push.example/ep"),
                    Identity("loyalty_id", "L7"), Identity("whatsapp_id", "14155550100"),
                    Identity("square_customer_id", "SQ9")),
        address={"line1": "1 Main St", "city": "Springfield", "postal_code": "01101", "country": "US"},
    )
    assert address_for(customer, "email") == "a@example.com"
    assert address_for(customer, "sms") == "+14155550100"
    assert address_for(customer, "push") == "https://push.example/ep"  # the latest device wins
    assert address_for(customer, "push", kinds=("apns_token",)) == "old"
    # Vendor kinds address nothing until their plugin says which channel they reach.
    assert address_for(customer, "social") is None
    assert address_for(customer, "pos") == "L7"
    assert address_for(customer, "direct_mail") == "1 Main St, Springfield, 01101, US"
    assert address_for(Customer(id="c2", address={"line1": "1 Main St"}), "direct_mail") is None
    assert address_for(Customer(id="c3"), "email") is None
    declared = IdentityKinds([IdentityKind("whatsapp_id", device=True, addresses="social"),
                              IdentityKind("square_customer_id", addresses="pos"),
                              IdentityKind("shoe_size")])
    addresses = Addresses.of(declared)
    assert addresses.address_for(customer, "social") == "14155550100"
    assert addresses.address_for(customer, "pos") == "SQ9"  # added after the loyalty id: the latest wins
    assert addresses.address_for(customer, "email") == "a@example.com"
    assert addresses.kinds("pos") == ("pos_customer_id", "loyalty_id", "square_customer_id")
    assert addresses.kinds("direct_mail") == ()
    with pytest.raises(ValueError, match="addresses must be one of the channels"):
        IdentityKinds([IdentityKind("fax_number", addresses="fax")])
    with pytest.raises(ValueError, match="addresses must be one of the channels"):
        IdentityKinds([IdentityKind("postcode", addresses="direct_mail")])
    with pytest.raises(omnisdk.UnknownChannelError):
        addresses.address_for(customer, "fax")
    with pytest.raises(omnisdk.UnknownChannelError):
        address_for(customer, "fax")


def test_marketing_needs_consent_and_transactional_does_not() -> None:
    customer = ada(consents=granted("email"))
    decision = decide(SendRequest(customer=customer, template="promo", channels=["sms"]), now=NOW)
    assert (decision.action, decision.channel, decision.reason) == ("skip", None, "no marketing consent on sms")
    receipt = decide(SendRequest(customer=customer, template="receipt", channels=["sms"], purpose="transactional"),
                     now=NOW)
    assert (receipt.action, receipt.channel) == ("send", "sms")
    revoked = ada(consents=granted("sms", purpose="transactional", granted=False))
    assert decide(SendRequest(customer=revoked, template="receipt", channels=["sms"], purpose="transactional"),
                  now=NOW).action == "skip"


def test_waterfall_takes_the_first_reachable_consented_channel_and_logs_why() -> None:
    customer = ada(identities=(Identity("email", "ada@example.com"), Identity("phone", "+14155550100")),
                   consents=granted("email", "push"))
    decision = decide(SendRequest(customer=customer, template="nudge", channels=["push", "sms", "email"]), now=NOW)
    assert (decision.action, decision.channel) == ("send", "email")
    failed = [(c.policy, c.channel, c.detail) for c in decision.checks if not c.passed]
    assert failed == [("reachable", "push", "no push address"), ("consent", "sms", "no marketing consent on sms")]
    log = decision.as_log(NOW)
    assert log["action"] == "send" and log["channel"] == "email" and len(log["checks"]) == 3

    nowhere = decide(SendRequest(customer=customer, template="nudge", channels=["push", "sms"]), now=NOW)
    assert nowhere.action == "skip"
    assert nowhere.reason == "no reachable, consented channel: no push address; no marketing consent on sms"


def test_quiet_hours_defer_to_their_end_in_the_customers_zone() -> None:
    rules = PolicyRules.from_config({"quiet_hours": {"start": "21:00", "end": "08:00"}})
    at_9pm_new_york = datetime(2026, 1, 6, 2, 0, tzinfo=UTC).timestamp()
    request = SendRequest(customer=ada(), template="promo", channels=["sms"])
    decision = decide(request, now=at_9pm_new_york, rules=rules)
    assert decision.action == "defer"
    assert decision.reason == "quiet hours 21:00-08:00 America/New_York until 08:00"
    assert decision.until == datetime(2026, 1, 6, 13, 0, tzinfo=UTC).timestamp()  # 08:00 in New York
    # At noon UTC it is 07:00 in New York: still quiet, until 08:00 the same morning.
    assert decide(request, now=NOW, rules=rules).until == datetime(2026, 1, 5, 13, 0, tzinfo=UTC).timestamp()
    # When it ends, the message goes: deferred, never dropped.
    assert decide(request, now=decision.until, rules=rules).action == "send"
    # Noon UTC is 07:00 in New York but 13:00 in Paris.
    paris = ada(timezone="Europe/Paris")
    daytime = SendRequest(customer=paris, template="promo", channels=["sms"])
    assert decide(daytime, now=NOW, rules=rules).action == "send"
    # Order updates are not held back.
    receipt = SendRequest(customer=ada(), template="ready", channels=["sms"], purpose="transactional")
    assert decide(receipt, now=at_9pm_new_york, rules=rules).action == "send"


def test_quiet_hours_without_a_customer_zone_use_the_default_and_cross_dst() -> None:
    rules = PolicyRules.from_config({"quiet_hours": {"start": "21:00", "end": "08:00"},
                                     "default_timezone": "Europe/Berlin"})
    no_zone = ada(timezone=None)
    # 2026-03-28 22:00 in Berlin (UTC+1); the clocks go forward that night, so 08:00 is 06:00 UTC.
    late = datetime(2026, 3, 28, 21, 0, tzinfo=UTC).timestamp()
    decision = decide(SendRequest(customer=no_zone, template="promo", channels=["email"]), now=late, rules=rules)
    assert decision.until == datetime(2026, 3, 29, 6, 0, tzinfo=UTC).timestamp()
    assert "Europe/Berlin" in decision.reason


def test_frequency_cap_counts_every_channel() -> None:
    rules = PolicyRules.from_config({"frequency_cap": {"marketing": "3/7d"}, "dedupe": "0"})
    recent = RecentActivity(deliveries=(
        PastDelivery("d1", "a", "email", "marketing", NOW - 6 * DAY),
        PastDelivery("d2", "b", "sms", "marketing", NOW - 2 * DAY),
        PastDelivery("d3", "c", "push", "marketing", NOW - 3600),
        PastDelivery("d4", "d", "email", "transactional", NOW - 60),
    ))
    request = SendRequest(customer=ada(), template="e", channels=["email"])
    capped = decide(request, now=NOW, recent=recent, rules=rules)
    assert capped.action == "skip"
    assert capped.reason == "frequency cap 3/7d for marketing reached (3 sent on all channels)"
    assert decide(request, now=NOW + 1.5 * DAY, recent=recent, rules=rules).action == "send"  # d1 aged out
    receipt = SendRequest(customer=ada(), template="r", channels=["email"], purpose="transactional")
    assert decide(receipt, now=NOW, recent=recent, rules=rules).action == "send"


def test_decide_many_counts_sends_decided_earlier_in_the_same_batch() -> None:
    rules = PolicyRules.from_config({"frequency_cap": "2/1d"})
    customer, other = ada(), ada(id="c-bob")
    requests = [SendRequest(customer=c, template=t, channels=["email"])
                for c, t in ((customer, "a"), (other, "a"), (customer, "b"), (customer, "c"))]
    actions = [d.action for d in decide_many(requests, now=NOW, recent={}, rules=rules)]
    assert actions == ["send", "send", "send", "skip"]


def test_dedupe_skips_the_same_template_within_the_window_but_not_a_fallback() -> None:
    recent = RecentActivity(deliveries=(
        PastDelivery("d1", "cart-reminder", "push", "marketing", NOW - 3600, "run-1", "nudge"),
    ))
    again = SendRequest(customer=ada(), template="cart-reminder", channels=["email"], run_id="run-2", step="nudge")
    decision = decide(again, now=NOW, recent=recent)
    assert decision.action == "skip"
    assert decision.reason == "duplicate: 'cart-reminder' already sent on push within 1d"
    assert decide(again, now=NOW + DAY, recent=recent).action == "send"
    fallback = SendRequest(customer=ada(), template="cart-reminder", channels=["sms"], parent_id="d1")
    assert decide(fallback, now=NOW, recent=recent).action == "send"
    same_step = SendRequest(customer=ada(), template="cart-reminder", channels=["sms"], run_id="run-1", step="nudge")
    assert decide(same_step, now=NOW, recent=recent).action == "send"
    other = SendRequest(customer=ada(), template="welcome", channels=["email"])
    assert decide(other, now=NOW, recent=recent).action == "send"


def test_suppression_after_a_goal_reached_since_the_send_was_queued() -> None:
    rules = PolicyRules.from_config({"suppress": {"cart-*": ["Order Completed"]}})
    queued = NOW - 3600
    bought_in_store = RecentActivity(events=(PastEvent("Order Completed", "pos", NOW - 600),))
    request = SendRequest(customer=ada(), template="cart-reminder", channels=["email"], queued_at=queued)
    decision = decide(request, now=NOW, recent=bought_in_store, rules=rules)
    assert decision.action == "skip"
    assert decision.reason == "suppressed: Order Completed on pos since the message was queued"
    bought_before = RecentActivity(events=(PastEvent("Order Completed", "web", queued - 600),))
    assert decide(request, now=NOW, recent=bought_before, rules=rules).action == "send"
    # A send can name its own goal in `data`.
    flagged = SendRequest(customer=ada(), template="pickup-reminder", channels=["sms"], queued_at=queued,
                          data={"skip_if": "Order Picked Up"})
    picked_up = RecentActivity(events=(PastEvent("Order Picked Up", "pos", NOW - 60),))
    assert decide(flagged, now=NOW, recent=picked_up, rules=rules).action == "skip"


def test_goals_come_from_suppress_rules_and_the_sends_own_skip_if() -> None:
    no_rules = PolicyRules()
    assert no_rules.goals_for("promo", {}) == ()
    assert no_rules.goals_for("promo", {"skip_if": "Order Picked Up"}) == ("Order Picked Up",)
    assert no_rules.goals_for("promo", {"skip_if": ["A", "B", "A"]}) == ("A", "B")
    rules = PolicyRules.from_config({"suppress": {"cart-*": ["Order Completed"]}})
    assert rules.goals_for("cart-reminder", {"skip_if": "A"}) == ("Order Completed", "A")
    assert rules.goals_for("promo", {}) == ()


def test_best_channel_from_preferences_then_engagement() -> None:
    engaged_by_sms = RecentActivity(events=(PastEvent("Link Clicked", "sms", NOW - DAY),
                                            PastEvent("Message Replied", "sms", NOW - 2 * DAY),
                                            PastEvent("Message Opened", "email", NOW - DAY)))
    request = SendRequest(customer=ada(), template="promo")
    assert decide(request, now=NOW, recent=engaged_by_sms).channel == "sms"
    assert decide(request, now=NOW).channel == "email"  # nothing known: the default order
    prefers_push = SendRequest(customer=ada(preferred_channels=("push",)), template="promo")
    assert decide(prefers_push, now=NOW, recent=engaged_by_sms).channel == "push"
    only_email = SendRequest(customer=ada(preferred_channels=("push",)), template="promo", available={"email"})
    assert decide(only_email, now=NOW, recent=engaged_by_sms).channel == "email"


def test_rules_from_config_reject_bad_values_by_name() -> None:
    with pytest.raises(ConfigError, match=r"policies\.frequency_cap\.marketing"):
        PolicyRules.from_config({"frequency_cap": {"marketing": "three a week"}})
    with pytest.raises(ConfigError, match=r"policies\.quiet_hours\.start"):
        PolicyRules.from_config({"quiet_hours": {"start": "9pm", "end": "08:00"}})
    with pytest.raises(ConfigError, match=r"policies\.default_timezone"):
        PolicyRules.from_config({"default_timezone": "Mars/Olympus"})
    with pytest.raises(ConfigError, match=r"policies\.quiet_hourz"):
        PolicyRules.from_config({"quiet_hourz": {}})
    with pytest.raises(ConfigError, match=r"policies\.dedupe\.promotional"):
        PolicyRules.from_config({"dedupe": {"promotional": "1d"}})


class WeekendPolicy:
    """A plugin policy: no sms on a given day, and a broken one."""

    name = "no-sms-day"

    @omnisdk.hookimpl
    def register_policies(self, register: object) -> None:
        def no_sms(ctx: PolicyContext) -> Verdict | None:
            if ctx.channel == "sms":
                return Verdict(action="skip", reason="no sms today")
            return None

        def broken(ctx: PolicyContext) -> Verdict | None:
            if ctx.channel == "push":
                raise RuntimeError("boom")
            return None

        register(no_sms)  # type: ignore[operator]
        register(broken)  # type: ignore[operator]


def test_plugin_policies_run_after_consent_and_fail_closed(tmp_path: object) -> None:
    with Omni("sqlite://:memory:", plugins=[WeekendPolicy()], load_entry_points=False) as omni:
        rules = omni._core.policy_rules
    assert [name for name, _ in rules.custom] == ["no_sms", "broken"]
    decision = decide(SendRequest(customer=ada(), template="promo", channels=["sms", "push", "email"]), now=NOW,
                      rules=rules)
    assert (decision.action, decision.channel) == ("send", "email")
    failed = [(c.policy, c.channel, c.detail) for c in decision.checks if not c.passed]
    assert failed == [("no_sms", "sms", "no sms today"), ("broken", "push", "policy broken failed: RuntimeError")]


def test_load_recent_reads_a_batch_from_the_store(omni: Omni) -> None:
    now = omni.clock.timestamp()
    omni.identify("c1", email="c1@example.com")
    omni.identify("c2", email="c2@example.com")
    omni.track("c1", "Order Completed", {"order_id": "o1"}, channel="pos")
    omni.track("c2", "Message Opened", {}, channel="email")
    omni.track("c2", "Product Viewed", {}, channel="web")
    with omni.store.transaction() as tx:
        for i, status in enumerate(("sent", "delivered", "queued", "failed")):
            enqueue_delivery(tx, key=f"k{i}", customer_id="c1", template=f"t{i}", channels=["email"], now=now - 60)
            tx.execute("UPDATE deliveries SET status = ?, channel = 'email', updated_at = ? WHERE idempotency_key = ?",
                       (status, now - 60, f"k{i}"))
    rules = PolicyRules.from_config({"frequency_cap": "2/7d", "suppress": {"cart-*": ["Order Completed"]}})
    requests = [
        SendRequest(customer=omni.customer("c1"), template="cart-reminder", channels=["email"], queued_at=now - 3600),
        SendRequest(customer=omni.customer("c2"), template="promo"),
    ]
    with omni.store.transaction(immediate=False) as tx:
        recent = load_recent(tx, requests, now=now, rules=rules)
    assert sorted(d.template for d in recent["c1"].deliveries) == ["t0", "t1"]
    assert [e.name for e in recent["c1"].events] == ["Order Completed"]
    assert [(e.name, e.channel) for e in recent["c2"].events] == [("Message Opened", "email")]
    decisions = decide_many(requests, now=now, recent=recent, rules=rules)
    assert decisions[0].reason.startswith("suppressed: Order Completed on pos")
    assert decisions[1].action == "skip"
    assert decisions[1].reason.startswith("no reachable, consented channel: no marketing consent on email; no push")
    omni.consent("c1", channel="email", granted=True)
    capped = SendRequest(customer=omni.customer("c1"), template="other", channels=["email"])
    assert decide(capped, now=now, recent=recent["c1"], rules=rules).reason.startswith("frequency cap 2/7d")


def test_past_deliveries_are_loaded_only_as_far_back_as_the_batchs_purposes_need(omni: Omni) -> None:
    now = omni.clock.timestamp()
    omni.identify("c1", email="c1@example.com")
    with omni.store.transaction() as tx:
        enqueue_delivery(tx, key="k", customer_id="c1", template="t", channels=["email"], now=now - 60)
        tx.execute("UPDATE deliveries SET status = 'sent', channel = 'email', updated_at = ?", (now - 60,))
    receipt = SendRequest(customer=omni.customer("c1"), template="receipt", purpose="transactional")
    promo = SendRequest(customer=omni.customer("c1"), template="promo")
    default = PolicyRules()  # marketing dedupe for a day; nothing for transactional sends
    capped = PolicyRules.from_config({"frequency_cap": {"transactional": "10/1h"}})
    assert (default.window_for({"transactional"}), default.window_for({"transactional", "marketing"})) == (0, 86400)
    assert capped.window_for({"transactional"}) == 3600
    with omni.store.transaction(immediate=False) as tx:
        loaded = {
            name: [d.template for d in load_recent(tx, requests, now=now, rules=rules)["c1"].deliveries]
            for name, requests, rules in (("receipt", [receipt], default), ("both", [receipt, promo], default),
                                          ("capped receipt", [receipt], capped))
        }
    assert loaded == {"receipt": [], "both": ["t"], "capped receipt": ["t"]}
