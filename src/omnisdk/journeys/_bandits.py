"""Bandit allocation for `ctx.experiment(..., allocation="thompson")`: the shares follow the results.

The shares are recomputed from the stored exposures and conversions at most once per `refresh` (an
hour by default) per experiment and worker, with Thompson sampling (`experiments.thompson_shares`,
control kept at its floor), and fed to the same hash as fixed shares. A customer's variant is still
decided once: the exposure stored first keeps it, whatever the shares do later.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import attrs

from .._errors import ValidationError
from ..experiments._bandit import thompson_shares
from ..store import Transaction
from ..store._experiments import variant_outcomes

__all__ = ["BanditRule", "BanditShares"]


@attrs.frozen(kw_only=True)
class BanditRule:
    """What a bandit experiment optimises: conversions on `goal` within `window` seconds of exposure."""

    goal: tuple[str, ...]
    window: float
    control: str
    control_floor: float = 0.1
    refresh: float = 3600.0


class BanditShares:
    """The current shares of each bandit experiment, shared by the runs a worker replays."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, BanditRule, tuple[str, ...]], tuple[float, dict[str, float]]] = {}

    def shares(self, tx: Transaction, experiment: str, rule: BanditRule, start: Mapping[str, float],
               now: float) -> dict[str, float]:
        """`start` until someone was exposed; then Thompson shares from the counts, refreshed every `rule.refresh`."""
        if rule.control not in start:
            raise ValidationError("must be one of the variants", field="control", value=rule.control)
        key = (experiment, rule, tuple(sorted(start)))
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < rule.refresh:
            return cached[1]
        outcomes = {o.variant: o for o in variant_outcomes(tx, experiment, goal=rule.goal, window=rule.window,
                                                           until=now)}
        counts = {name: (outcomes[name].conversions, outcomes[name].exposures) if name in outcomes else (0, 0)
                  for name in start}
        if not any(exposed for _, exposed in counts.values()):
            shares = dict(start)
        else:
            shares = thompson_shares(counts, control=rule.control, control_floor=rule.control_floor,
                                     seed=int(now // max(rule.refresh, 1.0)))
        self._cache[key] = (now, shares)
        return shares


def goals(goal: str | Collection[str]) -> tuple[str, ...]:
    names = (goal,) if isinstance(goal, str) else tuple(goal)
    if not names or not all(isinstance(g, str) and g for g in names):
        raise ValidationError("expected an event name or a list of them", field="goal", value=goal)
    return tuple(sorted(names))
