"""Fuzzing the ingestion entry points: whatever a caller passes, a typed omnisdk error or a stored
result, never an untyped exception, and never half of a call stored. A fixed budget, for CI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from omnisdk import BatchValidationError, Omni, OmniError
from omnisdk._customers import IDENTITY_KINDS
from omnisdk._touchpoints import CHANNELS

BUDGET = settings(max_examples=150, deadline=None, derandomize=True)
TABLES = ("customers", "identities", "touchpoints", "consents")


@pytest.fixture(scope="module")
def omni(module_omni: Omni) -> Omni:
    return module_omni


def counts(omni: Omni) -> dict[str, int]:
    with omni.store.transaction(immediate=False) as tx:
        return {table: int(tx.scalar(f"SELECT COUNT(*) FROM {table}")) for table in TABLES}


# Text with everything a caller can put in a str: lone surrogates, NUL, astral characters.
text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(
    ["", " ", "null", "ada@example.com", "+14155550100", "c-1", "Product Viewed", "\x00", "\ud800", "x" * 600]
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | text | st.builds(object)
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    text | st.integers(), inner, max_size=4), max_leaves=20)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Three times in four a value that passes, so whole calls get through and are stored too."""
    return st.integers(0, 3).flatmap(lambda pick: bad if pick == 0 else good)  # one_of would flatten `bad`


def _nest(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for _ in range(depth):
        root = {"a": root}
    return root


good_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20).filter(
    str.strip)
good_json = st.recursive(st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False,
                         allow_infinity=False) | good_text,
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(good_text, inner, max_size=3),
                         max_leaves=10)
good_dict = st.dictionaries(good_text, good_json, max_size=4)
properties = mostly(st.none() | good_dict, json_like | st.integers(0, 80).map(_nest))
customer_ids = st.sampled_from(["c-1", "c-2", "c-3", "cüstomer-4"])
identifier_values = scalars | st.lists(scalars, max_size=3)
identifiers = mostly(
    st.fixed_dictionaries({}, optional={"email": st.sampled_from(["ada@example.com", "Grace@Example.com"]),
                                        "anonymous_id": good_text}),
    st.dictionaries(st.sampled_from([*IDENTITY_KINDS, "shoe_size"]), identifier_values, max_size=3))
who = mostly(customer_ids | st.fixed_dictionaries({"anonymous_id": good_text}),
             text | scalars | st.dictionaries(st.sampled_from([*IDENTITY_KINDS, "customer_id", "shoe_size"])
                                              | st.integers(), identifier_values, max_size=3))
events = mostly(good_text, text | scalars)
channel = mostly(st.sampled_from(CHANNELS), text)
zones = st.sampled_from([UTC, timezone(timedelta(hours=-5)), None])
timestamps = mostly(
    st.none() | st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2150, 1, 1), timezones=st.just(UTC)),
    st.floats() | st.integers() | text
    | st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones)
    | st.sampled_from(["2026-01-05T10:00:00Z", "2026-01-05", "9999-12-31T00:00+14:00", "1e20"]))


def settled(omni: Omni, before: dict[str, int], *, touchpoints: int) -> None:
    """After a refused call: nothing stored at all."""
    event("refused")
    assert counts(omni) == before, "a refused call stored something"
    assert touchpoints == 0


@BUDGET
@given(customer_id=mostly(st.none() | customer_ids, text | scalars), traits=mostly(st.none() | good_dict, json_like),
       timezone=mostly(st.sampled_from([None, "UTC", "America/New_York"]), text | scalars),
       locale=mostly(st.sampled_from([None, "en-US", "fr"]), text | scalars),
       address=mostly(st.none() | good_dict, json_like), ids=identifiers)
def test_identify(omni: Omni, customer_id: Any, traits: Any, timezone: Any, locale: Any, address: Any,
                  ids: dict[str, Any]) -> None:
    before = counts(omni)
    try:
        omni.identify(customer_id, traits=traits, timezone=timezone, locale=locale, address=address, **ids)
    except OmniError:
        settled(omni, before, touchpoints=0)


@BUDGET
@given(who=who, name=events, props=properties, channel=channel, timestamp=timestamps)
def test_track(omni: Omni, who: Any, name: Any, props: Any, channel: Any, timestamp: Any) -> None:
    before = counts(omni)
    try:
        tp = omni.track(who, name, props, channel=channel, timestamp=timestamp)
    except OmniError:
        settled(omni, before, touchpoints=0)
    else:
        assert counts(omni)["touchpoints"] == before["touchpoints"] + 1
        [back] = [t for t in omni.timeline(tp.customer_id) if t.id == tp.id]
        assert (back.name, back.channel, back.properties, back.occurred_at) == (
            tp.name, tp.channel, tp.properties, tp.occurred_at)


items = st.lists(
    st.tuples(who, events, properties)
    | st.fixed_dictionaries({"who": who, "event": events},
                            optional={"properties": properties, "channel": channel, "timestamp": timestamps})
    | scalars,
    max_size=6,
)


@BUDGET
@given(batch=items)
def test_track_many(omni: Omni, batch: list[Any]) -> None:
    before = counts(omni)["touchpoints"]
    try:
        recorded = omni.track_many(batch)
    except BatchValidationError as exc:
        assert exc.errors and all(0 <= e.index < len(batch) for e in exc.errors)
        recorded = exc.recorded
        event("some items refused")
    assert counts(omni)["touchpoints"] == before + recorded
    assert recorded <= len(batch)


@BUDGET
@given(who=who, channel=mostly(st.sampled_from(["email", "sms", "all"]), text), granted=mostly(st.booleans(), scalars),
       purpose=mostly(st.sampled_from(["marketing", "transactional"]), text), source=mostly(good_text, text | scalars))
def test_consent(omni: Omni, who: Any, channel: Any, granted: Any, purpose: Any, source: Any) -> None:
    before = counts(omni)
    try:
        omni.consent(who, channel=channel, granted=granted, purpose=purpose, source=source)
    except OmniError:
        settled(omni, before, touchpoints=0)
    else:
        assert counts(omni)["consents"] == before["consents"] + 1
