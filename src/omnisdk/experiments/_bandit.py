"""Thompson sampling: send more traffic to the variants that are probably best, but never starve control.

Each variant's conversion rate has a Beta(1 + conversions, 1 + misses) posterior; a variant's next share
is the posterior probability that it is the best, estimated from `draws` joint samples. Control keeps
at least `control_floor`, so the comparison with it stays possible. The shares feed `Split` like any
others; the draws come from numpy's PCG64 seeded with `seed`, so the same counts give the same shares.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .._errors import ValidationError

__all__ = ["thompson_shares"]


def _numpy() -> Any:
    try:
        import numpy
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"Thompson sampling needs numpy ({error.name} is missing): pip install 'omnisdk[experiments]'",
            name=error.name,
        ) from error
    return numpy


def thompson_shares(counts: Mapping[str, tuple[int, int]], *, control: str, control_floor: float = 0.1,
                    draws: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Next shares of traffic from each variant's (conversions, exposures); they add up to 1."""
    if control not in counts:
        raise ValidationError("must be one of the variants", field="control", value=control)
    if isinstance(control_floor, bool) or not isinstance(control_floor, int | float) or not 0 <= control_floor <= 1:
        raise ValidationError("must be a share in [0, 1]", field="control_floor", value=control_floor)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValidationError("must be a whole number >= 1", field="draws", value=draws)
    for name, pair in counts.items():
        conversions, exposures = pair
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in pair) or not 0 <= conversions <= exposures:
            raise ValidationError("must be (conversions, exposures) with 0 <= conversions <= exposures",
                                  field=f"counts.{name}", value=pair)
    np = _numpy()
    names = sorted(counts)
    wins = np.array([counts[name][0] for name in names], dtype=np.float64)
    misses = np.array([counts[name][1] - counts[name][0] for name in names], dtype=np.float64)
    samples = np.random.default_rng(seed).beta(1 + wins, 1 + misses, size=(draws, len(names)))
    best = np.bincount(samples.argmax(axis=1), minlength=len(names)) / draws
    shares = {name: float(share) for name, share in zip(names, best, strict=True)}
    if len(names) == 1:
        return shares
    if shares[control] < control_floor:
        others = math.fsum(share for name, share in shares.items() if name != control)
        scale = (1 - control_floor) / others
        shares = {name: control_floor if name == control else share * scale for name, share in shares.items()}
    return shares
