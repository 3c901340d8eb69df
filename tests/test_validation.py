"""Validation at the door: bad input gets a typed error naming the field and the limit, and stores nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from omnisdk import (
    SMS,
    BatchItemError,
    BatchValidationError,
    ConfigError,
    Email,
    Limits,
    Message,
    Omni,
    ValidationError,
    VirtualClock,
)

TABLES = ("customers", "identities", "touchpoints", "consents")


def stored(omni: Omni) -> dict[str, int]:
    with omni.store.transaction(immediate=False) as tx:
        return {table: int(tx.scalar(f"SELECT COUNT(*) FROM {table}")) for table in TABLES}


def deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        node["a"] = {}
        node = node["a"]
    return root


EPOCH_MS = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1000)  # year 58 000 if read as seconds

#: The issue's "bad input" cases: (call, field, words the message must hold).
BAD_INPUT: dict[str, tuple[Callable[[Omni], Any], str, str]] = {
    "JSON 100 000 deep": (lambda o: o.track("c-1", "Viewed", deep(100_000)), "properties", "limits.max_depth"),
    "timestamp 1e20": (lambda o: o.track("c-1", "Viewed", timestamp=1e20), "timestamp", "limits.max_year"),
    "timestamp in epoch ms": (lambda o: o.track("c-1", "Viewed", timestamp=EPOCH_MS), "timestamp", "limits.max_year"),
    "timestamp -inf": (lambda o: o.track("c-1", "Viewed", timestamp=float("-inf")), "timestamp", "limits.min_year"),
    "naive datetime": (lambda o: o.track("c-1", "Viewed", timestamp=datetime(2026, 1, 5)), "timestamp", "time zone"),
    "ISO without offset": (lambda o: o.track("c-1", "Viewed", timestamp="2026-01-05T10:00"), "timestamp", "time zone"),
    "ISO out of range": (lambda o: o.track("c-1", "Viewed", timestamp="9999-01-05T10:00Z"), "timestamp",
                         "limits.max_year"),
    "lone surrogate in an event name": (lambda o: o.track("c-1", "View\ud800ed"), "event", "lone surrogate"),
    "NUL in a property": (lambda o: o.track("c-1", "Viewed", {"sku": "a\x00b"}), "properties.sku", "NUL"),
    "lone surrogate in a property key": (lambda o: o.track("c-1", "Viewed", {"k\udc80": 1}), "properties",
                                         "lone surrogate"),
    "NaN in properties": (lambda o: o.track("c-1", "Viewed", {"price": float("nan")}), "properties.price", "finite"),
    "properties too large": (lambda o: o.track("c-1", "Viewed", {"x": "y" * 70_000}), "properties",
                             "limits.max_properties_bytes"),
    "event name too long": (lambda o: o.track("c-1", "E" * 201), "event", "limits.max_event_name_length"),
    "timezone=123": (lambda o: o.identify("c-1", timezone=123), "timezone", "IANA"),
    "timezone unknown": (lambda o: o.identify("c-1", timezone="Mars/Olympus"), "timezone", "IANA"),
    "id=123": (lambda o: o.identify(123), "customer_id", "customer id"),
    "who=123": (lambda o: o.track(123, "Viewed"), "who", "customer id"),
    "touchpoint id=123": (lambda o: o.track("c-1", "Viewed", id=123), "id", "touchpoint id"),
    "customer id 100k chars": (lambda o: o.identify("c" * 100_000), "customer_id", "limits.max_id_length"),
    "locale=123": (lambda o: o.identify("c-1", locale=123), "locale", "locale"),
    "locale 100k chars": (lambda o: o.identify("c-1", locale="x" * 100_000), "locale", "limits.max_locale_length"),
    "locale not a tag": (lambda o: o.identify("c-1", locale="en US;"), "locale", "locale tag"),
    "10 MB address": (lambda o: o.identify("c-1", address={"line1": "x" * 10_000_000}), "address",
                      "limits.max_address_bytes"),
    "NaN in an address": (lambda o: o.identify("c-1", address={"lat": float("nan")}), "address.lat", "finite"),
    "an object as address": (lambda o: o.identify("c-1", address=object()), "address", "expected a dict"),
    "an object in an address": (lambda o: o.identify("c-1", address={"line1": object()}), "address.line1",
                                "not a JSON value"),
    "10 MB email": (lambda o: o.identify("c-1", email="a" * 10_000_000 + "@x.example"), "email",
                    "limits.max_identifier_length"),
    "boolean phone": (lambda o: o.identify("c-1", phone=True), "phone", "expected a string"),
    "surrogate in an identifier": (lambda o: o.track({"anonymous_id": "w\ud800"}, "Viewed"), "who.anonymous_id",
                                   "lone surrogate"),
    "traits too deep": (lambda o: o.identify("c-1", traits=deep(40)), "traits", "limits.max_depth"),
    "1 MB consent source": (lambda o: o.consent("c-1", channel="sms", granted=True, source="x" * 1_000_000),
                            "source", "limits.max_source_length"),
    "consent source not text": (lambda o: o.consent("c-1", channel="sms", granted=True, source=b"form"), "source",
                                "consent source"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_refused_by_field_and_limit_and_stores_nothing(omni: Omni, case: str) -> None:
    call, field, words = BAD_INPUT[case]
    omni.identify("c-0", email="grace@example.com")
    before = stored(omni)

    with pytest.raises(ValidationError) as err:
        call(omni)

    assert (err.value.field, words in str(err.value)) == (field, True)
    assert stored(omni) == before


def test_the_poisoned_row_is_refused_and_the_runner_goes_on(omni: Omni) -> None:
    omni.track("c-1", "Viewed", timestamp=datetime(2026, 1, 5, 9, tzinfo=UTC))

    with pytest.raises(ValidationError) as err:
        omni.track("c-1", "Order Completed", timestamp=EPOCH_MS)

    assert err.value.field == "timestamp"
    assert [t.name for t in omni.timeline("c-1")] == ["Viewed"]
    assert omni.run_until_idle() == 0


def test_good_timestamps_and_text_are_accepted_as_given(omni: Omni) -> None:
    when = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    omni.track("c-1", "A", timestamp=when)
    omni.track("c-1", "B", timestamp="2026-01-05T10:30:00+01:00")
    omni.track("c-1", "C", timestamp="2026-01-05T09:30:00Z")
    omni.track("c-1", "D", timestamp=when.timestamp())
    omni.track("c-1", "Émoji 🛒", {"note": "crème 🛒", "nested": [{"ok": None, "n": 1.5}]})

    timeline = omni.timeline("c-1")
    assert [t.occurred_at for t in timeline[:4]] == [when] * 4
    assert (timeline[4].name, timeline[4].properties["note"]) == ("Émoji 🛒", "crème 🛒")


def test_track_many_stores_the_valid_items_and_reports_the_others(omni: Omni) -> None:
    with pytest.raises(BatchValidationError) as err:
        omni.track_many([
            ("c-1", "Product Viewed", {"sku": "a"}),
            {"who": "c-1", "event": "Order Completed", "timestamp": EPOCH_MS},
            ("c-2", "Product Viewed", deep(100_000)),
            {"who": {"email": "ada@example.com"}, "event": "Cart Viewed", "channel": "web"},
            {"who": {"email": "not an email"}, "event": "Cart Viewed"},
            ("c-3", "Bad\ud800"),
            "not an item",
            {"who": "c-1", "event": "Checkout Started", "id": "evt-1"},
        ])

    assert err.value.recorded == 3
    assert [(e.index, e.field) for e in err.value.errors] == [
        (1, "items[1].timestamp"), (2, "items[2].properties"), (4, "items[4].who.email"), (5, "items[5].event"),
        (6, "items[6]"),
    ]
    assert all(isinstance(e, BatchItemError) and e.reason for e in err.value.errors)
    assert [t.name for t in omni.timeline("c-1")] == ["Product Viewed", "Checkout Started"]
    assert stored(omni)["touchpoints"] == 3
    assert stored(omni)["customers"] == 2  # c-1 and ada's; c-2 and c-3 were never created


def test_a_batch_with_only_bad_items_stores_nothing(omni: Omni) -> None:
    before = stored(omni)

    with pytest.raises(BatchValidationError) as err:
        omni.track_many([("c-1", ""), ("c-1", "Viewed", {"x": float("inf")})])

    assert (err.value.recorded, len(err.value.errors)) == (0, 2)
    assert stored(omni) == before


@pytest.mark.parametrize("items", ["c-1", {"who": "c-1", "event": "Viewed"}, 42])
def test_track_many_needs_a_list_of_items(omni: Omni, items: Any) -> None:
    with pytest.raises(ValidationError) as err:
        omni.track_many(items)
    assert err.value.field == "items"


def test_limits_come_from_the_config(store_url: str, tmp_path: Path) -> None:
    limits = {"max_batch_items": 2, "max_event_name_length": 5, "max_year": 2030, "max_properties_bytes": 64}
    with Omni(store_url, config={"limits": limits}, clock=VirtualClock()) as omni:
        assert omni._core.validate.limits == Limits(**limits)
        with pytest.raises(ValidationError, match=r"limits\.max_batch_items"):
            omni.track_many([("c-1", "A")] * 3)
        with pytest.raises(ValidationError, match=r"limits\.max_event_name_length"):
            omni.track("c-1", "Longer")
        with pytest.raises(ValidationError, match=r"limits\.max_year"):
            omni.track("c-1", "A", timestamp=datetime(2031, 1, 1, tzinfo=UTC))
        with pytest.raises(ValidationError, match=r"limits\.max_properties_bytes"):
            omni.track("c-1", "A", {"x": "y" * 64})
        assert stored(omni)["touchpoints"] == 0
    toml = tmp_path / "omnisdk.toml"
    toml.write_text("[limits]\nmax_source_length = 8\n", encoding="utf-8")
    with Omni("sqlite://:memory:", config=str(toml)) as omni, pytest.raises(ValidationError, match="8 characters"):
        omni.consent("c-1", channel="sms", granted=True, source="checkout-form")


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"max_depth": 0}, "limits.max_depth"),
        ({"max_depth": "32"}, "limits.max_depth"),
        ({"max_depth": True}, "limits.max_depth"),
        ({"max_deep": 3}, "limits.max_deep"),
        ({"min_year": 2100, "max_year": 2000}, "limits.max_year"),
        ("small", "limits"),
    ],
)
def test_bad_limits_are_a_config_error(limits: Any, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        Omni("sqlite://:memory:", config={"limits": limits})
    assert err.value.field == field


def test_templates_are_checked_at_the_door() -> None:
    with Omni("sqlite://:memory:", config={"limits": {"max_template_bytes": 1000}}) as omni:
        with pytest.raises(ValidationError, match=r"limits\.max_template_bytes") as err:
            omni.templates.add(Message("big", email=Email(subject="Hi", html="x" * 1001)))
        assert err.value.field == "message.email.html"
        with pytest.raises(ValidationError, match="lone surrogate") as err:
            omni.templates.add(Message("odd", sms=SMS(text="Hi \udc00")))
        assert err.value.field == "message.sms.text"
        with pytest.raises(ValidationError, match=r"limits\.max_id_length"):
            omni.templates.add(Message("m" * 300, sms=SMS(text="Hi")))
        with pytest.raises(ValidationError, match="locale tag"):
            omni.templates.add(Message("loc", sms=SMS(text="Hi"), locales={"en US;": Message("x", sms=SMS(text="Hi"))}))
        assert omni.templates.ids() == []
        omni.templates.add(Message("fine", sms=SMS(text="Crème 🛒")))
        assert omni.templates.ids() == ["fine"]


def test_every_limit_is_documented() -> None:
    page = (Path(__file__).parents[1] / "docs" / "security.md").read_text(encoding="utf-8")
    for limit in attrs.fields(Limits):
        assert f"| `{limit.name}` | {limit.default} |" in page, limit.name
