"""Store inventory in templates: `in_stock_near` over Square's BatchRetrieveInventoryCounts, cached briefly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from omnisdk_pos import SquarePOS, StoreStock

from omnisdk import Customer, Email, Message, Omni, VirtualClock
from omnisdk.testing.imitations import SquareImitation

TOKEN = "EAAAl-test"
STORES = {"LDOWNTOWN": "Downtown", "LMALL": "Mall"}


@pytest.fixture
def square() -> Iterator[SquareImitation]:
    with SquareImitation(access_token=TOKEN, location_id="LDOWNTOWN") as server:
        server.set_stock("VAR-SKU1", 0, "LDOWNTOWN")
        server.set_stock("VAR-SKU1", 3, "LMALL")
        server.set_stock("VAR-SKU2", 7, "LDOWNTOWN")
        yield server


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def provider(square: SquareImitation, clock: VirtualClock) -> Iterator[SquarePOS]:
    config = SquarePOS.Config(access_token=TOKEN, base_url=square.base_url, locations=STORES,
                              inventory_cache_seconds=60)
    pos = SquarePOS(config, http=httpx.AsyncClient(), clock=clock)
    yield pos
    asyncio.run(pos.aclose())


def lookups(square: SquareImitation) -> int:
    return sum(r.path == "/v2/inventory/counts/batch-retrieve" for r in square.requests)


def test_the_customers_home_store_comes_first(provider: SquarePOS) -> None:
    mall_regular = Customer(id="c-1", traits={"home_store": "LMALL"})

    assert provider.inventory.in_stock_near("VAR-SKU2", mall_regular) == StoreStock("LDOWNTOWN", "Downtown", 7.0)
    assert provider.inventory.in_stock_near("VAR-SKU1", mall_regular) == StoreStock("LMALL", "Mall", 3.0)
    assert provider.inventory.in_stock_near("VAR-SKU1", {"home_store": "LDOWNTOWN"}) == StoreStock("LMALL", "Mall", 3.0)
    assert provider.inventory.in_stock_near("VAR-UNKNOWN", mall_regular) is None


def test_counts_are_cached_until_the_ttl_passes(provider: SquarePOS, square: SquareImitation,
                                                clock: VirtualClock) -> None:
    for _ in range(3):
        provider.inventory.in_stock_near("VAR-SKU1")
    assert lookups(square) == 1

    square.set_stock("VAR-SKU1", 0, "LMALL")
    clock.advance(seconds=61)
    assert provider.inventory.in_stock_near("VAR-SKU1") is None
    assert lookups(square) == 2
    square.assert_no_violations()


def test_a_failed_lookup_renders_as_not_in_stock(provider: SquarePOS, square: SquareImitation) -> None:
    square.faults.fail_next(1, "unavailable")

    assert provider.inventory.in_stock_near("VAR-SKU1") is None


def test_templates_use_the_clients_square_provider(square: SquareImitation, tmp_path: Path) -> None:
    config = {"channels": {"pos": {"provider": "square", "access_token": TOKEN, "base_url": square.base_url,
                                   "locations": STORES}}}
    with Omni(f"sqlite:///{tmp_path}/omni.db", config=config, clock=VirtualClock()) as omni:
        customer = omni.identify("c-42", email="ada@example.com", traits={"first_name": "Ada", "home_store": "LMALL"})
        message = Message("back-in-store", email=Email(
            subject="Still thinking about it, {{ customer.first_name }}?",
            text="{% set s = data.variation | in_stock_near(customer) %}"
                 "{% if s %}{{ s.quantity | int }} left at {{ s.store }}{% else %}Order online{% endif %}"))

        rendered = omni.templates.render(message, "email", omni.templates.context(customer,
                                                                                  data={"variation": "VAR-SKU1"}))

    assert rendered.text == "3 left at Mall"  # type: ignore[attr-defined]


def test_without_a_square_provider_the_filter_fails_that_render_only(tmp_path: Path) -> None:
    from omnisdk import ConfigError, TemplateError

    with Omni(f"sqlite:///{tmp_path}/omni.db", clock=VirtualClock()) as omni:
        customer = omni.identify("c-1", email="ada@example.com")
        message = Message("stock", email=Email(subject="x", text="{{ 'VAR-SKU1' | in_stock_near(customer) }}"))
        with pytest.raises((ConfigError, TemplateError)) as err:
            omni.templates.render(message, "email", omni.templates.context(customer))
    assert "channels.pos" in str(err.value)
