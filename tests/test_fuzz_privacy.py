"""Fuzzing the privacy entry points: whatever `who`, `requested_by`, `reason` or a `[retention]`
duration a caller passes, a typed omnisdk error or a result, never an untyped exception; and a
refused `forget` leaves the customer and the request log as they were. A fixed budget, for CI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnisdk import Omni, OmniError, VirtualClock
from omnisdk.errors import ConfigError
from omnisdk.privacy._settings import parse_duration

BUDGET = settings(max_examples=150, deadline=None, derandomize=True)

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40), st.binary(max_size=8))
whos = st.one_of(
    st.text(max_size=300),
    st.dictionaries(st.sampled_from(["email", "phone", "customer_id", "anonymous_id", "fcm_token", "nonsense", ""]),
                    st.one_of(scalars, st.lists(scalars, max_size=3)), max_size=3),
    scalars,
)


@pytest.fixture(scope="module")
def omni(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Omni]:
    with Omni(f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/omni.db", clock=VirtualClock(),
              config={"privacy": {"vacuum": False}}) as client:
        client.identify("keep-me", email="keep@example.com")
        yield client


@BUDGET
@given(who=whos, requested_by=st.one_of(st.text(max_size=250), scalars), reason=st.one_of(st.text(max_size=5), scalars))
def test_forget_answers_every_input_with_a_typed_error_or_an_erasure(
    omni: Omni, who: Any, requested_by: Any, reason: Any
) -> None:
    if who in ("keep-me", {"email": "keep@example.com"}):
        return
    before = len(omni.forget_requests())
    try:
        omni.forget(who, requested_by=requested_by, reason=reason)
    except OmniError:
        assert len(omni.forget_requests()) == before
    assert omni.customer("keep-me").email == "keep@example.com"


@BUDGET
@given(who=whos)
def test_export_answers_every_input_with_a_typed_error_or_a_document(omni: Omni, who: Any) -> None:
    try:
        document = omni.export(who)
    except OmniError:
        return
    assert document["format"] == "omnisdk.export"


@BUDGET
@given(value=st.one_of(st.text(max_size=30), scalars,
                       st.builds(lambda n, u: f"{n} {u}", st.integers(-5, 10**6),
                                 st.sampled_from(["day", "days", "months", "year", "fortnight", "weeks"]))))
def test_durations_parse_or_say_where_they_are_wrong(value: Any) -> None:
    try:
        seconds = parse_duration(value, "retention.touchpoints")
    except ConfigError as exc:
        assert exc.field == "retention.touchpoints"
    else:
        assert seconds > 0
