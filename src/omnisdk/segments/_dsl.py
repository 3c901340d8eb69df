"""A small typed DSL for segments, compiled to one SQL condition over `customers AS c`.

    vip = (trait("tier") == "gold") & did("Order Completed", within=timedelta(days=30))
    lapsed = did("Order Completed") & ~did("Order Completed", within=timedelta(days=90))
    big_spenders = total("Order Completed", "revenue", within=timedelta(days=365)) >= 500
    reachable_by_sms = consented("sms") & last_channel() == "sms"
    worth_a_coupon = (predicted_clv() > 200) & (churn_risk() > 0.7)     # as `omni.predict_value()` scored them

Conditions combine with `&`, `|` and `~`. Time windows are relative to "now" when evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

import attrs

from .._errors import ValidationError
from .._touchpoints import MESSAGE_CHANNELS, check_channel

__all__ = [
    "Condition",
    "Measure",
    "churn_risk",
    "consented",
    "count",
    "did",
    "did_not",
    "expected_purchases",
    "has",
    "last_channel",
    "predicted_clv",
    "probability_alive",
    "total",
    "trait",
]

_KEY = re.compile(r"^[A-Za-z0-9_\-. ]{1,64}$")
_OPS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _key(key: str, field: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValidationError("keys are 1-64 letters, digits, space, '_', '-' or '.'", field=field, value=key)
    return key


class Condition:
    """Something true or false of a customer. A pure description: `omnisdk.store` turns it into SQL."""

    #: What kind of node this is (the store's compiler reads it).
    node: ClassVar[str] = ""

    def __and__(self, other: Condition) -> Condition:
        return _Combined("AND", (self, other))

    def __or__(self, other: Condition) -> Condition:
        return _Combined("OR", (self, other))

    def __invert__(self) -> Condition:
        return _Not(self)


@attrs.frozen
class _Combined(Condition):
    node: ClassVar[str] = "combined"
    op: str
    parts: tuple[Condition, ...]


@attrs.frozen
class _Not(Condition):
    node: ClassVar[str] = "not"
    inner: Condition


class Measure:
    """A value per customer (a trait, a count, a sum…) that comparisons turn into a `Condition`."""

    node: ClassVar[str] = ""

    def _compare(self, op: str, value: Any) -> Condition:
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        return _Compare(self, _OPS[op], value, numeric)

    def __eq__(self, value: object) -> Condition:  # type: ignore[override]
        return self._compare("==", value)

    def __ne__(self, value: object) -> Condition:  # type: ignore[override]
        return self._compare("!=", value)

    def __lt__(self, value: float) -> Condition:
        return self._compare("<", value)

    def __le__(self, value: float) -> Condition:
        return self._compare("<=", value)

    def __gt__(self, value: float) -> Condition:
        return self._compare(">", value)

    def __ge__(self, value: float) -> Condition:
        return self._compare(">=", value)

    def __hash__(self) -> int:
        return id(self)


@attrs.frozen
class _Compare(Condition):
    node: ClassVar[str] = "compare"
    measure: Measure
    op: str
    value: Any
    numeric: bool


@attrs.frozen(eq=False)
class _Trait(Measure):
    node: ClassVar[str] = "trait"
    name: str


def trait(name: str) -> Measure:
    """A profile trait (`traits["tier"]`), or the profile's `timezone` / `locale`."""
    return _Trait(_key(name, "trait"))


def _event(event: str) -> str:
    if not isinstance(event, str) or not event:
        raise ValidationError("event name must be a non-empty string", field="event", value=event)
    return event


def _within(within: timedelta | None) -> timedelta | None:
    if within is not None and (not isinstance(within, timedelta) or within <= timedelta()):
        raise ValidationError("expected a positive timedelta", field="within", value=within)
    return within


def _where(where: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return {_key(k, "where"): v for k, v in where.items()} if where else None


@attrs.frozen
class _Did(Condition):
    node: ClassVar[str] = "did"
    event: str
    within: timedelta | None
    where: Mapping[str, Any] | None


def did(event: str, *, within: timedelta | None = None, where: Mapping[str, Any] | None = None) -> Condition:
    """The customer did `event` (on any channel), optionally within a window and matching properties."""
    return _Did(_event(event), _within(within), _where(where))


def did_not(event: str, *, within: timedelta | None = None, where: Mapping[str, Any] | None = None) -> Condition:
    return ~did(event, within=within, where=where)


@attrs.frozen(eq=False)
class _Aggregate(Measure):
    node: ClassVar[str] = "aggregate"
    fn: str
    event: str
    prop: str | None
    within: timedelta | None
    where: Mapping[str, Any] | None


def count(event: str, *, within: timedelta | None = None, where: Mapping[str, Any] | None = None) -> Measure:
    """How many times the customer did `event`: `count("Order Completed", within=days(90)) >= 3`."""
    return _Aggregate("count", _event(event), None, _within(within), _where(where))


def total(
    event: str, prop: str, *, within: timedelta | None = None, where: Mapping[str, Any] | None = None
) -> Measure:
    """The sum of a numeric property over the customer's `event`s: `total("Order Completed", "revenue")`."""
    return _Aggregate("sum", _event(event), _key(prop, "prop"), _within(within), _where(where))


@attrs.frozen(eq=False)
class _LastChannel(Measure):
    node: ClassVar[str] = "last_channel"
    within: timedelta | None


def last_channel(*, within: timedelta | None = None) -> Measure:
    """The channel of the customer's latest engagement (anything they did, not messages we sent)."""
    return _LastChannel(_within(within))


@attrs.frozen
class _Consented(Condition):
    node: ClassVar[str] = "consented"
    channel: str
    purpose: str


def consented(channel: str, purpose: str = "marketing") -> Condition:
    """The customer's current consent for `channel` and `purpose` (marketing needs an explicit grant)."""
    check_channel(channel, allowed=MESSAGE_CHANNELS)
    return _Consented(channel, purpose)


@attrs.frozen
class _Has(Condition):
    node: ClassVar[str] = "has"
    kind: str


def has(identifier_kind: str) -> Condition:
    """The profile has an identifier of this kind (`has("phone")`, `has("fcm_token")`)."""
    return _Has(_key(identifier_kind, "identifier_kind"))


@attrs.frozen(eq=False)
class _Predicted(Measure):
    node: ClassVar[str] = "prediction"
    name: str


def predicted_clv() -> Measure:
    """The customer's predicted CLV over the prediction horizon (`omni.predict_value`); a customer never
    scored has none, so `predicted_clv() > 200` and `predicted_clv() <= 200` both leave them out."""
    return _Predicted("predicted_clv")


def churn_risk() -> Measure:
    """1 - the probability the customer is still a customer (BG/NBD), as last scored."""
    return _Predicted("churn_risk")


def probability_alive() -> Measure:
    """The probability the customer is still a customer (BG/NBD), as last scored."""
    return _Predicted("probability_alive")


def expected_purchases() -> Measure:
    """Purchases the customer is expected to make over the prediction horizon, as last scored."""
    return _Predicted("expected_purchases")
