"""Fuzzing the commerce entry points added for predictions, recommendations and product blocks: whatever
an event's properties, a config section or a template's arguments hold, a typed omnisdk error or an answer,
never an untyped exception. A fixed budget, for CI (SQLite only: the parsing is the store's neither)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnisdk import SMS, ConfigError, Email, Message, Omni, OmniError, VirtualClock
from omnisdk.commerce._predict import PredictionSettings
from omnisdk.commerce._stored import BUILT_IN, RecommendationSettings, items_of

BUDGET = settings(max_examples=120, deadline=None, derandomize=True)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                max_size=4), max_leaves=12)
KEYS = st.sampled_from(["sku", "product_id", "category", "products", "x"])
PROPERTIES = st.dictionaries(KEYS, JSON | st.lists(st.dictionaries(KEYS, JSON, max_size=3), max_size=3), max_size=4)


@BUDGET
@given(PROPERTIES | JSON)
def test_items_of_reads_any_properties(properties: Any) -> None:
    for item, category in items_of(properties):
        assert isinstance(item, str) and item and (category is None or isinstance(category, str))


SECTION = st.dictionaries(
    st.sampled_from(["every", "refit_every", "horizon_months", "batch_size", "unit", "timezone", "event",
                     "discount_rate", "chain", "neighbours", "history", "rebuild_every", "view_events", "bogus"]),
    JSON, max_size=4)


@BUDGET
@given(SECTION)
def test_settings_are_parsed_or_refused_with_the_key(section: dict[str, Any]) -> None:
    for parse in (lambda: PredictionSettings.from_config(section),
                  lambda: RecommendationSettings.from_config(section, known=BUILT_IN)):
        try:
            parse()
        except ConfigError as exc:
            assert exc.field is not None and exc.field.split(".")[0] in ("predictions", "recommendations")
        except OmniError:
            pass


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Omni]:
    with Omni(f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/omni.db", clock=VirtualClock(),
              load_entry_points=False) as omni:
        omni.catalog.upsert_many([{"sku": "a", "product_id": "a", "title": "A", "price": "1.5", "currency": "EUR",
                                   "url": "https://acme.example/a", "inventory": {"online": 1}}])
        omni.identify("c", email="c@example.com", locale="de-DE")
        omni.track("c", "Order Completed", {"products": [{"sku": "a"}]}, channel="pos")
        yield omni


ARGUMENT = JSON | st.lists(st.text(max_size=5), max_size=20) | st.just(["a"]) | st.integers(-5, 40)


@BUDGET
@given(skus=ARGUMENT, limit=ARGUMENT, k=ARGUMENT, channel=st.sampled_from(["email", "sms"]))
def test_product_helpers_render_or_fail_the_delivery(shop: Omni, skus: Any, limit: Any, k: Any, channel: str) -> None:
    text = "{{ products(data.skus, limit=data.limit) }} {{ recommendations(data.k) }}"
    message = Message("m", email=Email(subject="s", html=text), sms=SMS(text=text))
    try:
        content = shop.preview(message, "c", channel, data={"skus": skus, "limit": limit, "k": k})
    except OmniError:  # a TemplateError: that delivery fails, the runner goes on
        return
    assert isinstance(getattr(content, "text" if channel == "sms" else "html"), str)
