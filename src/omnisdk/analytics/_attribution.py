"""`attribute`: one entry point for every attribution model, and the result they all return."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

import attrs

from .._errors import ValidationError
from . import _heuristics
from ._markov import solve_markov
from ._paths import Journeys, Path, read_paths

__all__ = ["AttributionResult", "MODELS", "attribute"]

#: Model names `attribute` accepts.
MODELS: Final = ("first_touch", "last_touch", "linear", "time_decay", "position_based", "markov", "shapley")

_PARAMETERS: Final[Mapping[str, frozenset[str]]] = {
    "time_decay": frozenset({"half_life"}),
    "position_based": frozenset({"first", "last"}),
}
_DAYS_HALF_LIFE: Final = 7.0
_TOUCHES_HALF_LIFE: Final = 1.0


def _frozen_params(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


def _frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping))


def _frozen_or_none(mapping: Mapping[str, float] | None) -> Mapping[str, float] | None:
    return None if mapping is None else MappingProxyType(dict(mapping))


@attrs.frozen(kw_only=True)
class AttributionResult:
    """Conversions and conversion value credited to each channel by one model.

    Channels are in order of first appearance in the input; both mappings have every channel, so
    results of several models line up. The Markov fields are None for the other models.
    """

    model: str
    params: Mapping[str, Any] = attrs.field(converter=_frozen_params)
    conversions: Mapping[str, float] = attrs.field(converter=_frozen)
    value: Mapping[str, float] = attrs.field(converter=_frozen)
    #: markov: 1 - P(conversion without the channel) / P(conversion)
    removal_effects: Mapping[str, float] | None = attrs.field(default=None, converter=_frozen_or_none)
    #: markov: the same with expected conversion value in place of probability
    value_removal_effects: Mapping[str, float] | None = attrs.field(default=None, converter=_frozen_or_none)
    #: markov: probability that a journey converts, absorbed from (start)
    conversion_probability: float | None = None
    #: markov: expected conversion value of a journey
    expected_value: float | None = None
    #: markov: number of channel states (k-tuples) in the chain
    states: int | None = None

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.conversions)

    @property
    def total_conversions(self) -> float:
        return math.fsum(self.conversions.values())

    @property
    def total_value(self) -> float:
        return math.fsum(self.value.values())

    def as_rows(self) -> list[dict[str, Any]]:
        """One dict per channel, most credited first, ready for a table, CSV writer or DataFrame."""
        rows: list[dict[str, Any]] = []
        for channel in sorted(self.conversions, key=lambda name: (-self.conversions[name], name)):
            row: dict[str, Any] = {
                "channel": channel,
                "conversions": self.conversions[channel],
                "value": self.value[channel],
            }
            if self.removal_effects is not None:
                row["removal_effect"] = self.removal_effects[channel]
            if self.value_removal_effects is not None:
                row["value_removal_effect"] = self.value_removal_effects[channel]
            rows.append(row)
        return rows


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError("must be a finite number", field=name, value=value)
    return float(value)


def _check_call(model: str, order: Any, params: Mapping[str, Any]) -> None:
    if model not in MODELS:
        raise ValidationError(
            f"unknown model {model!r}; expected one of {', '.join(MODELS)}", field="model", value=model
        )
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValidationError("must be an integer >= 1", field="order", value=order)
    if order != 1 and model != "markov":
        raise ValidationError(f"only the markov model has an order, not {model!r}", field="order", value=order)
    allowed = _PARAMETERS.get(model, frozenset())
    for name in params:
        if name not in allowed:
            expected = f"expected one of {', '.join(sorted(allowed))}" if allowed else "it takes none"
            raise ValidationError(f"is not a parameter of model {model!r}; {expected}", field=name, value=params[name])


def _time_decay_params(journeys: Journeys, params: Mapping[str, Any]) -> dict[str, Any]:
    unit = "touches" if journeys.ages is None else "days"
    half_life = params.get("half_life")
    if half_life is None:
        half_life = _TOUCHES_HALF_LIFE if journeys.ages is None else _DAYS_HALF_LIFE
    half_life = _number("half_life", half_life)
    if half_life <= 0:
        raise ValidationError(f"must be > 0 ({unit})", field="half_life", value=half_life)
    return {"half_life": half_life, "unit": unit}


def _position_params(params: Mapping[str, Any]) -> dict[str, float]:
    first = _number("first", params.get("first", 0.4))
    last = _number("last", params.get("last", 0.4))
    for name, share in (("first", first), ("last", last)):
        if share < 0:
            raise ValidationError("must be >= 0", field=name, value=share)
    if not 0 < first + last <= 1:
        raise ValidationError(f"first + last must be in (0, 1], got {first + last}", field="last", value=last)
    return {"first": first, "last": last}


def _share(total: float, effects: list[float]) -> list[float]:
    weight = math.fsum(effects)
    return [total * effect / weight if weight > 0 else 0.0 for effect in effects]


def _markov(journeys: Journeys, order: int) -> AttributionResult:
    solution = solve_markov(journeys, order)
    names = journeys.names
    return AttributionResult(
        model="markov",
        params={"order": order},
        conversions=dict(zip(names, _share(journeys.total_conversions, solution.removal_effects), strict=True)),
        value=dict(zip(names, _share(journeys.total_value, solution.value_removal_effects), strict=True)),
        removal_effects=dict(zip(names, solution.removal_effects, strict=True)),
        value_removal_effects=dict(zip(names, solution.value_removal_effects, strict=True)),
        conversion_probability=solution.conversion_probability,
        expected_value=solution.expected_value,
        states=solution.states,
    )


def attribute(
    paths: Iterable[Path | Sequence[Any]], model: str = "markov", order: int = 1, **params: Any
) -> AttributionResult:
    """Credit the conversions and conversion value of `paths` to their channels with `model`.

    `paths` are `Path`s or `(channels, conversions[, value[, nulls]])` tuples. `model` is one of
    `MODELS`; `order` is the Markov order; `params` are the model's own: `half_life` for `time_decay`
    (days when paths carry ages, else touches; default 7 days or 1 touch), `first` and `last` for
    `position_based` (default 0.4 each). Bad input raises `ValidationError` naming the row and field.
    """
    _check_call(model, order, params)
    journeys = read_paths(paths)
    if model == "markov":
        return _markov(journeys, order)
    resolved: dict[str, Any] = {}
    if model == "first_touch":
        credit = _heuristics.first_touch(journeys)
    elif model == "last_touch":
        credit = _heuristics.last_touch(journeys)
    elif model == "linear":
        credit = _heuristics.linear(journeys)
    elif model == "time_decay":
        resolved = _time_decay_params(journeys, params)
        credit = _heuristics.time_decay(journeys, resolved["half_life"])
    elif model == "position_based":
        resolved = _position_params(params)
        credit = _heuristics.position_based(journeys, resolved["first"], resolved["last"])
    else:
        credit = _heuristics.shapley(journeys)
    conversions, values = credit
    return AttributionResult(model=model, params=resolved, conversions=conversions, value=values)
