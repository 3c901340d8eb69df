"""Topics and preferences: checked at the door, honoured by the policies (and re-checked before the
call), capped per topic in virtual time, transactional kept apart from marketing; double opt-in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch_providers import Script, TestProviders, signed
from omnisdk import (
    SMS,
    ConfigError,
    Email,
    Message,
    NotFoundError,
    Omni,
    PosOffer,
    ValidationError,
    VirtualClock,
    journey,
)
from omnisdk.errors import WebhookError
from omnisdk.journeys import from_dict
from omnisdk.segments import consented

TOPICS = {
    "newsletter": {"label": {"en": "Newsletter", "fr": "Lettre"}, "channels": ["email", "sms"],
                   "frequency": "weekly"},
    "offers": {"label": "Offers", "default": "opt-in", "channels": ["email"]},
    "back-in-stock": {"label": "Back in stock", "channels": ["email"]},
    "order-updates": {"label": "Order updates", "transactional": True},
}
NEWS = Message("news", email=Email(subject="News", text="Hello"), sms=SMS(text="Hello"))
PROMO = Message("promo", email=Email(subject="Sale", text="-20%"), marketing=True)
RECEIPT = Message("receipt", email=Email(subject="Receipt", text="Order {{ data.order_id }}"))
RECOMMENDS = Message("picks", email=Email(subject="Picks",
                                          text="{% for p in data.recommendations %}{{ p }}{% endfor %}"))
CONFIRM = Message("confirm-subscription", email=Email(subject="Confirm", text="{{ data.confirm_url }}"))
OmniFactory = Callable[..., Omni]


@pytest.fixture
def make_omni(store_url: str, clock: VirtualClock) -> Iterator[OmniFactory]:
    opened: list[Omni] = []

    def make(**config: Any) -> Omni:
        channels = {"email": {"provider": "memory"}, "sms": {"provider": "memory"}}
        omni = Omni(store_url, config={"channels": channels, "topics": TOPICS, **config}, clock=clock)
        for message in (NEWS, PROMO, RECEIPT, RECOMMENDS, CONFIRM):
            omni.templates.add(message)
        omni.identify("c-1", email="ada@example.com", phone="+14155550100", timezone="UTC")
        omni.consent("c-1", channel="email", granted=True)
        omni.consent("c-1", channel="sms", granted=True)
        opened.append(omni)
        return omni

    yield make
    for omni in opened:
        omni.close()


def sent(omni: Omni, template: str, *, topic: str | None, channel: str = "email", purpose: str = "marketing",
         advance: timedelta = timedelta(days=2)) -> Any:
    omni.clock.advance(advance)  # type: ignore[attr-defined]  # past the same-template dedupe window
    delivery = omni.send("c-1", template, channel=channel, topic=topic, purpose=purpose, data={"order_id": "o-1"})
    omni.run_until_idle()
    return next(d for d in omni.deliveries(customer_id="c-1") if d.id == delivery.id)


def why(delivery: Any) -> list[tuple[str | None, str]]:
    return [(d.policy, d.reason) for d in delivery.decisions if d.action == "skip"]


# -- at the door
@pytest.mark.parametrize(("topics", "field"), [
    ({"news": {"default": "maybe"}}, "topics.news.default"),
    ({"news": {"frequency": "hourly"}}, "topics.news.frequency"),
    ({"news": {"channels": ["fax"]}}, "topics.news.channels"),
    ({"news": {"colour": "red"}}, "topics.news.colour"),
    ({"*": {}}, "topics.*"),
    ({"news": {"transactional": "yes"}}, "topics.news.transactional"),
])
def test_a_bad_topic_table_is_a_config_error_naming_the_key(topics: Any, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Omni("sqlite://:memory:", config={"topics": topics})
    assert caught.value.field == field


def test_sends_are_checked_at_the_door(make_omni: OmniFactory) -> None:
    omni = make_omni()
    with pytest.raises(ValidationError, match="unknown topic") as unknown:
        omni.send("c-1", "news", channel="email", topic="gossip")
    assert unknown.value.field == "topic"
    with pytest.raises(ValidationError, match="must name its topic"):
        omni.send("c-1", "news", channel="email")  # marketing, topics configured: name one
    with pytest.raises(ValidationError, match="is transactional"):
        omni.send("c-1", "news", channel="email", topic="order-updates")  # a marketing send in a transactional topic
    with pytest.raises(ValidationError, match="is marketing, but the send's purpose is transactional"):
        omni.send("c-1", "receipt", channel="email", topic="offers", purpose="transactional")
    for template, reason in (("promo", "flagged marketing"), ("picks", "recommendations/offer block")):
        with pytest.raises(ValidationError, match=reason) as content:
            omni.send("c-1", template, channel="email", topic="order-updates", purpose="transactional")
        assert content.value.field == "template"
    omni.templates.add(Message("coupon", pos=PosOffer(title="10% off")))
    with pytest.raises(ValidationError, match="POS offer"):
        omni.send("c-1", "coupon", channel="pos", purpose="transactional", topic="order-updates")
    assert omni.deliveries(customer_id="c-1") == []  # nothing was queued by a refused send


def test_a_declarative_journey_is_checked_when_registered(make_omni: OmniFactory) -> None:
    omni = make_omni()
    with pytest.raises(ValidationError, match="unknown topic") as caught:
        omni.register(from_dict({"id": "bad-topic", "trigger": "Signed Up", "nodes": {
            "hello": {"send": "news", "channel": "email", "topic": "gossip"}}}))
    assert caught.value.field == "bad-topic.nodes.hello.topic"
    with pytest.raises(ValidationError, match="marketing content"):
        omni.register(from_dict({"id": "bad-content", "trigger": "Order Completed", "nodes": {
            "thanks": {"send": "promo", "channel": "email", "purpose": "transactional", "topic": "order-updates"}}}))


def test_set_preferences_checks_topics_channels_and_values(make_omni: OmniFactory) -> None:
    omni = make_omni()
    for choices, field in (({"gossip": {"email": False}}, "choices.gossip"),
                           ({"offers": {"sms": True}}, "choices.offers.sms"),
                           ({"offers": {"email": "yes"}}, "choices.offers.email"),
                           ({"order-updates": {"email": False}}, "choices.order-updates"),
                           ({}, "choices")):
        with pytest.raises(ValidationError) as caught:
            omni.set_preferences("c-1", choices)
        assert caught.value.field == field
    assert omni.preferences("c-1").history == ()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choices=st.dictionaries(st.one_of(st.sampled_from([*TOPICS, "*"]), st.text(max_size=8)),
                               st.dictionaries(st.one_of(st.sampled_from(["email", "sms", "all"]), st.text(max_size=5)),
                                               st.one_of(st.booleans(), st.integers(), st.none()), max_size=3),
                               max_size=3))
def test_fuzzed_choices_are_stored_whole_or_refused_with_a_field(choices: Any) -> None:
    with Omni("sqlite://:memory:", config={"topics": TOPICS}, clock=VirtualClock()) as omni:
        omni.identify("c-1", email="ada@example.com")
        try:
            after = omni.set_preferences("c-1", choices)
        except ValidationError as exc:
            assert exc.field and exc.field.startswith("choices")
            assert omni.preferences("c-1").history == ()
        else:
            assert len(after.history) == sum(len(v) for v in choices.values())


# -- the policies
def test_topic_choices_per_channel_decide_the_next_sends(make_omni: OmniFactory) -> None:
    omni = make_omni()
    assert omni.preferences("c-1").choices == {
        "newsletter": {"email": True, "sms": True}, "offers": {"email": False},
        "back-in-stock": {"email": True}, "order-updates": {c: True for c in TOPICS_CHANNELS}}
    skipped = sent(omni, "promo", topic="offers")
    assert skipped.status == "skipped"
    assert why(skipped) == [("topic_opt_out", "skipped: topic_opt_out: offers on email (not opted in)")]

    omni.set_preferences("c-1", {"offers": {"email": True}, "newsletter": {"email": False}}, source="account-page",
                         evidence="form 7")
    assert sent(omni, "promo", topic="offers").status == "sent"
    news = sent(omni, "news", topic="newsletter", advance=timedelta(days=8))
    assert why(news) == [("topic_opt_out", "skipped: topic_opt_out: newsletter on email (opted out)")]
    assert sent(omni, "news", topic="newsletter", channel="sms", advance=timedelta(days=8)).status == "sent"
    history = omni.preferences("c-1").history
    assert [(p.topic, p.channel, p.subscribed, p.source, p.evidence) for p in history] == [
        ("offers", "email", True, "account-page", "form 7"), ("newsletter", "email", False, "account-page", "form 7")]


def test_a_topic_on_a_channel_it_is_not_sent_on_is_skipped(make_omni: OmniFactory) -> None:
    omni = make_omni()
    skipped = sent(omni, "news", topic="back-in-stock", channel="sms")
    assert why(skipped) == [("topic_channel", "topic_channel: back-in-stock is not sent on sms")]


def test_unsubscribe_from_all_stops_every_marketing_topic_but_not_transactional(make_omni: OmniFactory) -> None:
    omni = make_omni()
    omni.set_preferences("c-1", {"*": {"all": False}}, source="preference-centre")
    for topic, channel in (("newsletter", "email"), ("newsletter", "sms"), ("back-in-stock", "email")):
        assert sent(omni, "news", topic=topic, channel=channel, advance=timedelta(days=8)).status == "skipped"
    assert sent(omni, "receipt", topic="order-updates", purpose="transactional").status == "sent"
    omni.set_preferences("c-1", {"back-in-stock": {"email": True}})  # a later yes wins over the earlier "all"
    assert sent(omni, "news", topic="back-in-stock", advance=timedelta(days=8)).status == "sent"


def test_a_weekly_topic_goes_out_once_a_week_in_virtual_time(make_omni: OmniFactory) -> None:
    omni = make_omni()
    assert sent(omni, "news", topic="newsletter").status == "sent"
    capped = sent(omni, "news", topic="newsletter", channel="sms", advance=timedelta(days=3))
    assert capped.status == "skipped"
    assert why(capped) == [("topic_frequency", "topic_frequency: newsletter is sent weekly at most (last on email)")]
    assert sent(omni, "promo", topic="back-in-stock", advance=timedelta(hours=1)).status == "sent"  # other topics
    assert sent(omni, "news", topic="newsletter", advance=timedelta(days=4, hours=1)).status == "sent"


def test_a_topic_opt_out_stored_after_the_claim_stops_the_send(store_url: str, clock: VirtualClock) -> None:
    """Like a consent revoked meanwhile: the re-check right before the provider call reads the ledger again."""
    script = Script()
    with Omni(store_url, config={"channels": {"sms": {"provider": "scripted", "script": script}}, "topics": TOPICS},
              clock=clock, plugins=[TestProviders()], load_entry_points=False) as omni:
        omni.templates.add(NEWS)
        omni.identify("c-1", phone="+14155550100", timezone="UTC")
        omni.consent("c-1", channel="sms", granted=True)
        delivery = omni.send("c-1", "news", channel="sms", topic="newsletter")
        claimed, _ = omni._core.dispatcher._claim(clock.timestamp())
        assert [c.id for c in claimed] == [delivery.id]
        omni.set_preferences("c-1", {"newsletter": {"sms": False}})

        omni._run(omni._core.dispatcher._send_and_record(claimed, asyncio.Event()))
        omni.run_until_idle()

        assert script.sent == []
        [after] = omni.deliveries(customer_id="c-1")
        assert after.status == "skipped"
        assert after.decisions[-1].reason == ("re-checked before the call: skipped: topic_opt_out: newsletter on sms "
                                              "(opted out)")


def test_journey_and_broadcast_sends_name_their_topic(make_omni: OmniFactory) -> None:
    omni = make_omni()

    @journey("welcome-topics", trigger="Signed Up")
    async def welcome(ctx: Any) -> None:
        await ctx.send("hello", "news", channel="email", topic="newsletter")
        await ctx.send("deal", "promo", channel="email", topic="offers")

    omni.register(welcome)
    omni.track("c-1", "Signed Up")
    omni.run_until_idle()
    by_template = {d.template: d for d in omni.deliveries(customer_id="c-1")}
    assert by_template["news"].status == "sent"
    assert why(by_template["promo"]) == [("topic_opt_out", "skipped: topic_opt_out: offers on email (not opted in)")]

    omni.set_preferences("c-1", {"back-in-stock": {"email": False}})
    with pytest.raises(ValidationError, match="must name its topic"):
        omni.broadcast("news", consented("email"), channel="email")
    omni.clock.advance(days=2)  # type: ignore[attr-defined]
    omni.broadcast("news", consented("email"), channel="email", topic="back-in-stock")
    omni.run_until_idle()
    latest = [d for d in omni.deliveries(customer_id="c-1") if d.template == "news"][-1]
    assert why(latest) == [("topic_opt_out", "skipped: topic_opt_out: back-in-stock on email (opted out)")]


def test_without_topics_configured_sends_need_none(store_url: str, clock: VirtualClock) -> None:
    with Omni(store_url, config={"channels": {"email": {"provider": "memory"}}}, clock=clock) as omni:
        omni.templates.add(NEWS)
        omni.identify("c-1", email="ada@example.com")
        omni.consent("c-1", channel="email", granted=True)
        omni.send("c-1", "news", channel="email")
        omni.run_until_idle()
        assert [d.status for d in omni.deliveries(customer_id="c-1")] == ["sent"]
        with pytest.raises(ValidationError, match="no topics are configured"):
            omni.set_preferences("c-1", {"news": {"email": False}})


TOPICS_CHANNELS = ("email", "sms", "push", "social", "direct_mail", "pos")


# -- double opt-in, in virtual time
def test_email_double_opt_in_grants_only_on_confirmation_and_expires(make_omni: OmniFactory) -> None:
    omni = make_omni(consent={"double_opt_in": {"email": True, "expiry": "3d"}})
    omni.identify("c-2", email="bo@example.com")
    pending = omni.consent("c-2", channel="email", granted=True, source="footer-form")
    assert (pending.granted, str(pending.evidence).startswith("pending confirmation optin_")) == (False, True)
    omni.run_until_idle()
    [confirmation] = omni.deliveries(customer_id="c-2")
    assert (confirmation.template, confirmation.purpose, confirmation.status) == (
        "confirm-subscription", "transactional", "sent")
    url = str(confirmation_data(omni, confirmation.id)["confirm_url"])
    token = url.rsplit("/", 1)[1]
    assert omni.customer("c-2").has_consent("email") is False

    omni.clock.advance(days=3, seconds=1)  # type: ignore[attr-defined]
    with pytest.raises(WebhookError, match="expired"):
        omni._core.confirm_opt_in(token, evidence="too late")
    assert omni.customer("c-2").has_consent("email") is False

    omni.consent("c-2", channel="email", granted=True, source="footer-form")  # asks again: a new link
    omni.run_until_idle()
    again = [d for d in omni.deliveries(customer_id="c-2")][-1]
    fresh = str(confirmation_data(omni, again.id)["confirm_url"]).rsplit("/", 1)[1]
    omni.clock.advance(days=1)  # type: ignore[attr-defined]
    assert omni._core.confirm_opt_in(fresh, evidence="at t from 10.0.0.1") == "c-2"
    consent = omni.customer("c-2").consent_for("email")
    assert consent is not None and consent.granted and consent.source == "double-opt-in:footer-form"
    assert "10.0.0.1" in str(consent.evidence)
    omni.consent("c-2", channel="email", granted=False)  # revoking never waits for a confirmation
    assert omni.customer("c-2").has_consent("email") is False


def confirmation_data(omni: Omni, delivery_id: str) -> dict[str, Any]:
    with omni.store.transaction() as tx:
        found = tx.scalar("SELECT data FROM deliveries WHERE id = ?", (delivery_id,))
    return dict(json.loads(found) if isinstance(found, str) else found)


def test_a_missing_confirmation_template_is_refused_before_anything_is_stored(store_url: str) -> None:
    config = {"channels": {"email": {"provider": "memory"}},
              "consent": {"double_opt_in": {"email": True, "email_template": "not-there"}}}
    with Omni(store_url, config=config, clock=VirtualClock()) as omni:
        omni.identify("c-3", email="cy@example.com")
        with pytest.raises(NotFoundError, match="not-there"):
            omni.consent("c-3", channel="email", granted=True)
        assert omni.deliveries(customer_id="c-3") == []
        assert omni.customer("c-3").consents == ()


def test_sms_double_opt_in_is_granted_by_a_yes_reply_within_its_window(store_url: str, clock: VirtualClock) -> None:
    """A signup journey asks for SMS marketing; consent comes only with the YES reply (through the
    inbound webhook), which answers the prompt for `webhooks.double_opt_in_window_seconds` only."""
    script = Script()
    config = {"channels": {"sms": {"provider": "scripted", "script": script}}, "topics": TOPICS,
              "consent": {"double_opt_in": {"sms": True}}, "webhooks": {"double_opt_in_window_seconds": 3600}}
    with Omni(store_url, config=config, clock=clock, plugins=[TestProviders()], load_entry_points=False) as omni:
        omni.templates.add(Message("confirm-sms", sms=SMS(text="Reply YES to get our texts")))
        omni.templates.add(NEWS)

        @journey("sms-signup", trigger="Signed Up")
        async def signup(ctx: Any) -> None:
            await ctx.sleep("a-day", timedelta(days=1))
            await ctx.send("hello", "news", channel="sms", topic="newsletter")

        omni.register(signup)
        for cid, phone in (("c-yes", "+14155550101"), ("c-late", "+14155550102")):
            omni.identify(cid, phone=phone, timezone="UTC")
            assert omni.consent(cid, channel="sms", granted=True, source="signup-form").granted is False  # asked
            omni.track(cid, "Signed Up")
        omni.run_until_idle()
        assert sorted(script.to()) == ["+14155550101", "+14155550102"]  # the two prompts, transactional
        assert not omni.customer("c-yes").has_consent("sms")

        def reply(phone: str, event_id: str) -> None:
            headers, body = signed([{"event": "Message Replied", "id": event_id, "message_id": f"SM-{event_id}",
                                     "who": {"phone": phone}, "properties": {"keyword": "YES"}}])
            assert omni.handle_webhook("scripted", "POST", "https://shop.example/hooks", headers, body).status == 204

        clock.advance(minutes=10)
        reply("+14155550101", "r1")
        clock.advance(hours=2)  # past the window: this YES answers nothing
        reply("+14155550102", "r2")
        consent = omni.customer("c-yes").consent_for("sms")
        assert consent is not None and consent.granted and consent.source == "webhook:scripted:YES"
        assert str(consent.evidence).startswith("SM-r1 answering ")
        assert not omni.customer("c-late").has_consent("sms")

        clock.advance(days=1)
        omni.run_until_idle()
        hello = {d.customer_id: d.status for d in omni.deliveries() if d.template == "news"}
        assert hello == {"c-yes": "sent", "c-late": "skipped"}
