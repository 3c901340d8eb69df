"""A small typed DSL for segments, compiled to one SQL condition over `customers AS c`.

    vip = (trait("tier") == "gold") & did("Order Completed", within=timedelta(days=30))
    lapsed = did("Order Completed") & ~did("Order Completed", within=timedelta(days=90))
    big_spenders = total("Order Completed", "revenue", within=timedelta(days=365)) >= 500
    reachable_by_sms = consented("sms") & last_channel() == "sms"

Conditions combine with `&`, `|` and `~`. Time windows are relative to "now" when evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import attrs

from .._errors import ValidationError
from .._touchpoints import MESSAGE_CHANNELS, check_channel
from ..store import Dialect

__all__ = [
    "Condition",
    "Measure",
    "consented",
    "count",
    "did",
    "did_not",
    "has",
    "last_channel",
    "total",
    "trait",
]

_KEY = re.compile(r"^[A-Za-z0-9_\-. ]{1,64}$")
#: Touchpoints that are not something the customer did (they do not count as engagement).
NOT_ENGAGEMENT = (
    "Message Sent", "Message Delivered", "Message Bounced", "Message Failed", "Mail In Transit", "Mail Delivered",
    "Segment Entered", "Segment Exited",
)
_OPS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _key(key: str, field: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValidationError("keys are 1-64 letters, digits, space, '_', '-' or '.'", field=field, value=key)
    return key


@attrs.frozen
class Sql:
    """A compiled fragment: SQL text with `?` marks, and its parameters. `now` is bound at run time."""

    text: str
    params: tuple[Any, ...] = ()


NOW = object()  # placeholder parameter: replaced by the evaluation time


class Condition:
    """Something true or false of a customer."""

    def compile(self, dialect: Dialect) -> Sql:
        raise NotImplementedError

    def __and__(self, other: Condition) -> Condition:
        return _Combined("AND", (self, other))

    def __or__(self, other: Condition) -> Condition:
        return _Combined("OR", (self, other))

    def __invert__(self) -> Condition:
        return _Not(self)


@attrs.frozen
class _Combined(Condition):
    op: str
    parts: tuple[Condition, ...]

    def compile(self, dialect: Dialect) -> Sql:
        compiled = [p.compile(dialect) for p in self.parts]
        return Sql(
            "(" + f" {self.op} ".join(c.text for c in compiled) + ")", tuple(x for c in compiled for x in c.params)
        )


@attrs.frozen
class _Not(Condition):
    inner: Condition

    def compile(self, dialect: Dialect) -> Sql:
        inner = self.inner.compile(dialect)
        return Sql(f"(NOT COALESCE({inner.text}, FALSE))", inner.params)


@attrs.frozen
class _Compare(Condition):
    left: Sql
    op: str
    value: Any

    def compile(self, dialect: Dialect) -> Sql:
        if self.value is None:
            return Sql(f"({self.left.text} IS {'NOT ' if self.op == '<>' else ''}NULL)", self.left.params)
        return Sql(f"({self.left.text} {self.op} ?)", (*self.left.params, self.value))


class Measure:
    """A value per customer (a trait, a count, a sum…) that comparisons turn into a `Condition`."""

    def sql(self, dialect: Dialect, numeric: bool) -> Sql:
        raise NotImplementedError

    def _compare(self, op: str, value: Any) -> Condition:
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        return _Deferred(self, _OPS[op], value, numeric)

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
class _Deferred(Condition):
    measure: Measure
    op: str
    value: Any
    numeric: bool

    def compile(self, dialect: Dialect) -> Sql:
        return _Compare(self.measure.sql(dialect, self.numeric), self.op, self.value).compile(dialect)


@attrs.frozen(eq=False)
class _Trait(Measure):
    name: str

    def sql(self, dialect: Dialect, numeric: bool) -> Sql:
        if self.name in ("timezone", "locale"):
            return Sql(f"c.{self.name}")
        fn = dialect.json_number if numeric else dialect.json_text
        return Sql(fn("c.traits", self.name))


def trait(name: str) -> Measure:
    """A profile trait (`traits["tier"]`), or the profile's `timezone` / `locale`."""
    return _Trait(_key(name, "trait"))


def _window(event: str, within: timedelta | None, where: Mapping[str, Any] | None, dialect: Dialect) -> Sql:
    if not isinstance(event, str) or not event:
        raise ValidationError("event name must be a non-empty string", field="event", value=event)
    text = "t.customer_id = c.id AND t.name = ?"
    params: list[Any] = [event]
    if within is not None:
        if not isinstance(within, timedelta) or within <= timedelta():
            raise ValidationError("expected a positive timedelta", field="within", value=within)
        text += " AND t.occurred_at >= ? - ?"
        params += [NOW, within.total_seconds()]
    for key, value in (where or {}).items():
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        fn = dialect.json_number if numeric else dialect.json_text
        text += f" AND {fn('t.properties', _key(key, 'where'))} = ?"
        params.append(value)
    return Sql(text, tuple(params))


@attrs.frozen
class _Did(Condition):
    event: str
    within: timedelta | None
    where: Mapping[str, Any] | None

    def compile(self, dialect: Dialect) -> Sql:
        w = _window(self.event, self.within, self.where, dialect)
        return Sql(f"EXISTS (SELECT 1 FROM touchpoints t WHERE {w.text})", w.params)


def did(event: str, *, within: timedelta | None = None, where: Mapping[str, Any] | None = None) -> Condition:
    """The customer did `event` (on any channel), optionally within a window and matching properties."""
    return _Did(event, within, dict(where) if where else None)


def did_not(event: str, *, within: timedelta | None = None, where: Mapping[str, Any] | None = None) -> Condition:
    return ~did(event, within=within, where=where)


@attrs.frozen(eq=False)
class _Aggregate(Measure):
    fn: str
    event: str
    prop: str | None
    within: timedelta | None
    where: Mapping[str, Any] | None

    def sql(self, dialect: Dialect, numeric: bool) -> Sql:
        w = _window(self.event, self.within, self.where, dialect)
        if self.prop is None:
            expr = "COUNT(*)"
        else:
            expr = f"COALESCE(SUM({dialect.json_number('t.properties', self.prop)}), 0)"
        return Sql(f"(SELECT {expr} FROM touchpoints t WHERE {w.text})", w.params)


def count(event: str, *, within: timedelta | None = None, where: Mapping[str, Any] | None = None) -> Measure:
    """How many times the customer did `event`: `count("Order Completed", within=days(90)) >= 3`."""
    return _Aggregate("count", event, None, within, dict(where) if where else None)


def total(
    event: str, prop: str, *, within: timedelta | None = None, where: Mapping[str, Any] | None = None
) -> Measure:
    """The sum of a numeric property over the customer's `event`s: `total("Order Completed", "revenue")`."""
    return _Aggregate("sum", event, _key(prop, "prop"), within, dict(where) if where else None)


@attrs.frozen(eq=False)
class _LastChannel(Measure):
    within: timedelta | None

    def sql(self, dialect: Dialect, numeric: bool) -> Sql:
        marks = ",".join("?" * len(NOT_ENGAGEMENT))
        text = f"t.customer_id = c.id AND t.name NOT IN ({marks})"
        params: list[Any] = list(NOT_ENGAGEMENT)
        if self.within is not None:
            text += " AND t.occurred_at >= ? - ?"
            params += [NOW, self.within.total_seconds()]
        return Sql(
            f"(SELECT t.channel FROM touchpoints t WHERE {text} ORDER BY t.occurred_at DESC, t.seq DESC LIMIT 1)",
            tuple(params),
        )


def last_channel(*, within: timedelta | None = None) -> Measure:
    """The channel of the customer's latest engagement (anything they did, not messages we sent)."""
    return _LastChannel(within)


@attrs.frozen
class _Consented(Condition):
    channel: str
    purpose: str

    def compile(self, dialect: Dialect) -> Sql:
        latest = (
            "(SELECT k.granted FROM consents k WHERE k.customer_id = c.id AND k.channel IN (?, 'all') "
            "AND k.purpose = ? ORDER BY k.recorded_at DESC, k.id DESC LIMIT 1)"
        )
        if self.purpose == "transactional":  # allowed unless revoked
            return Sql(f"(COALESCE({latest}, 1) = 1)", (self.channel, self.purpose))
        return Sql(f"(COALESCE({latest}, 0) = 1)", (self.channel, self.purpose))


def consented(channel: str, purpose: str = "marketing") -> Condition:
    """The customer's current consent for `channel` and `purpose` (marketing needs an explicit grant)."""
    check_channel(channel, allowed=MESSAGE_CHANNELS)
    return _Consented(channel, purpose)


@attrs.frozen
class _Has(Condition):
    kind: str

    def compile(self, dialect: Dialect) -> Sql:
        return Sql("EXISTS (SELECT 1 FROM identities i WHERE i.customer_id = c.id AND i.kind = ?)", (self.kind,))


def has(identifier_kind: str) -> Condition:
    """The profile has an identifier of this kind (`has("phone")`, `has("fcm_token")`)."""
    return _Has(_key(identifier_kind, "identifier_kind"))
