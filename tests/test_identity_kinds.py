"""Identifier kinds a vendor brings are declared by its plugin (`register_identity_kinds`), not by the core."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import omnisdk
from omnisdk import Omni, PluginError, ValidationError, VirtualClock, hookimpl


class Loyalty:
    """A loyalty vendor's card number: spaces dropped, upper case; one card per person."""

    @hookimpl
    def register_identity_kinds(self, register: Any) -> None:
        def card(value: str) -> str:
            digits = value.replace(" ", "").upper()
            if not digits.startswith("LC"):
                raise ValueError("a card number starts with LC")
            return digits

        register("acme_card", card, unique=True)


class Chat:
    """A chat app's user handle: the social channel's address (its provider sends to it)."""

    @hookimpl
    def register_identity_kinds(self, register: Any) -> None:
        register("chat_handle", lambda value: value.lstrip("@").lower(), addresses="social")


class Misaddressed:
    @hookimpl
    def register_identity_kinds(self, register: Any) -> None:
        register("fax_number", addresses="fax")


class Broken:
    @hookimpl
    def register_identity_kinds(self, register: Any) -> None:
        raise RuntimeError("this plugin is broken")


class Greedy:
    @hookimpl
    def register_identity_kinds(self, register: Any) -> None:
        register("email")  # the core's own


@pytest.fixture
def shop(store_url: str) -> Iterator[Omni]:
    with Omni(store_url, clock=VirtualClock(), plugins=[Broken(), Loyalty(), Greedy()],
              load_entry_points=False) as client:
        yield client


def test_a_plugin_kind_is_normalised_by_its_plugin_and_matches_profiles(shop: Omni) -> None:
    shop.identify("c-1", acme_card="lc 1234")
    shop.track({"acme_card": "LC1234"}, "Order Completed", channel="pos")

    assert shop.customer("c-1").identifier("acme_card") == "LC1234"
    assert [t.name for t in shop.timeline("c-1")] == ["Order Completed"]
    with pytest.raises(ValidationError) as caught:
        shop.track({"acme_card": "9999"}, "Order Completed")
    assert caught.value.field == "who.acme_card"
    assert "starts with LC" in str(caught.value)


def test_a_unique_plugin_kind_allows_one_per_profile(shop: Omni) -> None:
    shop.identify("c-1", acme_card="LC1")
    shop.identify("c-1", acme_card="LC2")  # a second card: not added to the same person

    assert shop.customer("c-1").identifiers("acme_card") == ["LC1"]


def test_a_broken_or_clashing_plugin_is_reported_and_the_others_still_declare(shop: Omni) -> None:
    failed = {e.plugin: str(e) for e in shop.plugin_errors if isinstance(e, PluginError)}
    assert "this plugin is broken" in failed[next(p for p in failed if "Broken" in p)]
    assert "core's" in failed[next(p for p in failed if "Greedy" in p)]
    shop.identify("c-1", acme_card="LC1")  # Loyalty's kind loaded all the same


def test_vendor_kinds_come_from_their_plugins(store_url: str) -> None:
    with Omni(store_url, clock=VirtualClock(), load_entry_points=False) as bare:
        with pytest.raises(ValidationError, match="unknown identifier kind 'square_customer_id'"):
            bare.track({"square_customer_id": "SQ9"}, "Order Completed")
        with pytest.raises(ValidationError, match="unknown identifier kind 'shoe_size'"):
            bare.track({"shoe_size": "42"}, "Order Completed")
    pos = pytest.importorskip("omnisdk_pos")
    social = pytest.importorskip("omnisdk_social")
    with Omni(store_url, clock=VirtualClock(), plugins=[pos, social], load_entry_points=False) as shop:
        customer = shop.track({"square_customer_id": "SQ9", "whatsapp_id": "14155550100"}, "Order Completed")
        profile = shop.customer(customer.customer_id)
        assert profile.identifier("square_customer_id") == "SQ9"
        assert profile.identifier("whatsapp_id") == "14155550100"
        with pytest.raises(ValidationError, match="unknown identifier kind 'shoe_size'"):
            shop.track({"shoe_size": "42"}, "Order Completed")


HELLO = omnisdk.Message("hello", social=omnisdk.Social(text="Your order is ready"))


@pytest.mark.parametrize("plugins", [[Chat(), Misaddressed()], []], ids=["declared", "undeclared"])
def test_a_plugin_kind_that_addresses_a_channel_is_where_its_sends_go(store_url: str, plugins: list[Any]) -> None:
    with Omni(store_url, clock=VirtualClock(), plugins=plugins, load_entry_points=False,
              config={"channels": {"social": {"provider": "memory"}}}) as omni:
        omni.templates.add(HELLO)
        if plugins:
            omni.identify("c-1", chat_handle="@Ada")
        else:
            omni.identify("c-1", email="ada@example.com")
        queued = omni.send("c-1", "hello", channel="social", purpose="transactional")
        omni.run_until_idle()
        delivery = next(d for d in omni.deliveries() if d.id == queued.id)
        sent = omni.provider("social").sent  # type: ignore[attr-defined]
        errors = [str(e) for e in omni.plugin_errors]
    if plugins:
        assert (delivery.status, [m.to for m in sent]) == ("sent", ["ada"])
        assert any("'fax_number': addresses must be one of the channels" in e for e in errors)
    else:
        assert (delivery.status, sent) == ("skipped", [])
        assert "no social address" in delivery.decisions[-1].reason
