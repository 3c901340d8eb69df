"""Markov-chain attribution by removal effect, solved exactly as an absorbing chain.

The chain and the outputs follow `channelattribution`'s definitions:

* states: `(start)`, one transient state per k-tuple of consecutive channels (a path shorter than the
  order is one state of all its channels), `(conversion)` and `(null)`; a state repeated back to back is
  one visit (no self-loops), so `a > a > b` at order 1 is `a > b`;
* each path adds `conversions + nulls` to every transition it makes, then `conversions` to
  last state -> `(conversion)` and `nulls` to last state -> `(null)`; probabilities are row-normalised counts;
* removal effect of channel c: `RE_c = 1 - P_without_c / P`, where P is the probability of absorption
  in `(conversion)` from `(start)` and `P_without_c` the same with every state that contains c sent to
  `(null)`. That equals P(a converting walk visits c), which is what `channelattribution` estimates by
  simulating walks; here it is the solution of linear systems, so there is no sampling error;
* value: a walk that converts from state s is worth the mean conversion value of the paths whose last
  state is s. The value removal effect is the same quantity with expected value in place of probability,
  and attributed value = total value * REV_c / sum(REV), like attributed conversions with RE.

Every probability comes from one sparse LU factorisation of (I - Q) for the whole chain and one per
channel for the chain without it. numpy and scipy are imported here only, so the rest of omnisdk does
not need them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from typing import TYPE_CHECKING, Final

import attrs

from .._errors import ValidationError
from ._paths import Journeys

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Ints = npt.NDArray[np.int64]

__all__ = ["MarkovSolution", "solve_markov"]

_CODE_LIMIT = 2**63  # states are numbered as int64
_TABLE_LIMIT = 2**21  # up to this many possible codes, numbering by lookup table beats sorting
# States are numbered in lexicographic order of their channels; keeping that order gave less fill-in and
# half the factorisation time of the fill-reducing orderings on dense order-4 chains (11k states).
_ORDERING: Final = "NATURAL"


@attrs.frozen
class MarkovSolution:
    """Exact results of the chain, per channel in `Journeys.names` order."""

    conversion_probability: float
    expected_value: float
    removal_effects: list[float]
    value_removal_effects: list[float]
    states: int


@contextmanager
def _needs_scipy() -> Iterator[None]:
    try:
        yield
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"the markov model needs numpy and scipy ({error.name} is missing): pip install 'omnisdk[analytics]'",
            name=error.name,
        ) from error


def solve_markov(journeys: Journeys, order: int) -> MarkovSolution:
    with _needs_scipy():
        import numpy as np
        from scipy.sparse import csc_matrix, csr_matrix, diags, identity
        from scipy.sparse.linalg import splu

    channel_count = len(journeys.names)
    radix = channel_count + 1
    if radix**order >= _CODE_LIMIT:
        raise ValidationError(
            f"{channel_count} channels at order {order} have too many possible states to number",
            field="order",
            value=order,
        )
    conversions = np.asarray(journeys.conversions, dtype=np.float64)
    values = np.asarray(journeys.values, dtype=np.float64)
    nulls = np.asarray(journeys.nulls, dtype=np.float64)
    weights = conversions + nulls
    if not weights.any():  # no journey at all: no chain to solve
        nothing = [0.0] * channel_count
        return MarkovSolution(0.0, 0.0, nothing, nothing, states=0)

    # every touch as a channel number 1..n (0 pads paths shorter than the order)
    digit = {name: number for number, name in enumerate(journeys.names, start=1)}
    lengths = np.fromiter(map(len, journeys.channels), dtype=np.int64, count=len(journeys.channels))
    touches = np.fromiter(
        map(digit.__getitem__, chain.from_iterable(journeys.channels)), dtype=np.int64, count=int(lengths.sum())
    )
    ends = np.cumsum(lengths)
    starts = ends - lengths

    # one row per k-tuple visited: path p has max(len - k + 1, 1) of them; drop paths that weigh nothing
    per_path = np.maximum(lengths - order + 1, 1)
    path_of = np.repeat(np.arange(len(lengths)), per_path)
    local = np.arange(len(path_of)) - np.repeat(np.cumsum(per_path) - per_path, per_path)
    kept = weights[path_of] > 0
    path_of, local = path_of[kept], local[kept]
    # a state is its k channel numbers read as one base-(n + 1) number; 0 digits pad short paths
    first_touch = starts[path_of] + local
    codes = np.zeros(len(path_of), dtype=np.int64)
    for offset in range(order):
        position = first_touch + offset
        inside = position < ends[path_of]
        codes = codes * radix + np.where(inside, touches[np.minimum(position, len(touches) - 1)], 0)

    # a state repeated back to back within a path is a single visit
    repeated = np.zeros(len(path_of), dtype=bool)
    repeated[1:] = (path_of[1:] == path_of[:-1]) & (codes[1:] == codes[:-1])
    path_of, codes = path_of[~repeated], codes[~repeated]
    distinct, state = _number(codes, radix**order)
    state += 1  # state 0 is (start)
    size = len(distinct) + 1
    digits = np.zeros((len(distinct), order), dtype=np.int64)
    rest = distinct.copy()
    for offset in reversed(range(order)):
        rest, digits[:, offset] = np.divmod(rest, radix)

    opens = np.ones(len(path_of), dtype=bool)
    opens[1:] = path_of[1:] != path_of[:-1]
    closes = np.ones(len(path_of), dtype=bool)
    closes[:-1] = opens[1:]
    previous = np.zeros(len(path_of), dtype=np.int64)
    previous[1:] = state[:-1]
    previous[opens] = 0

    transitions = previous * size + state
    distinct_transitions, transition = _number(transitions, size * size)
    counts = csr_matrix(
        (
            np.bincount(transition, weights=weights[path_of]),
            np.divmod(distinct_transitions, size),
        ),
        shape=(size, size),
    )
    last, ending = state[closes], path_of[closes]
    to_conversion = np.bincount(last, weights=conversions[ending], minlength=size)
    to_null = np.bincount(last, weights=nulls[ending], minlength=size)
    value_at_end = np.bincount(last, weights=values[ending], minlength=size)
    leaving = np.asarray(counts.sum(axis=1)).ravel() + to_conversion + to_null
    rate = 1.0 / leaving
    # (I - Q) x = b: x[s] is the probability (resp. expected value) of converting from s
    system = csc_matrix(identity(size, format="csr") - diags(rate) @ counts)
    rewards = np.column_stack([to_conversion * rate, value_at_end * rate])

    base = splu(system, permc_spec=_ORDERING).solve(rewards)[0]
    removal = np.zeros(channel_count)
    value_removal = np.zeros(channel_count)
    for number in range(1, channel_count + 1):
        keep = np.flatnonzero(np.concatenate(([True], ~np.any(digits == number, axis=1))))
        if len(keep) == size:  # the channel only appears on paths that weigh nothing
            continue
        without = splu(csc_matrix(system[keep][:, keep]), permc_spec=_ORDERING).solve(rewards[keep])[0]
        removal[number - 1] = _effect(without[0], base[0])
        value_removal[number - 1] = _effect(without[1], base[1])
    return MarkovSolution(
        conversion_probability=float(base[0]),
        expected_value=float(base[1]),
        removal_effects=removal.tolist(),
        value_removal_effects=value_removal.tolist(),
        states=size - 1,
    )


def _effect(without: float, base: float) -> float:
    # removing a channel can only lose conversions; clip rounding noise of order 1e-16
    return min(max(1.0 - without / base, 0.0), 1.0) if base > 0 else 0.0


def _number(codes: Ints, bound: int) -> tuple[Ints, Ints]:
    """The sorted distinct values of `codes` (all below `bound`) and each code's index among them."""
    import numpy as np

    if bound > _TABLE_LIMIT:
        distinct, index = np.unique(codes, return_inverse=True)
        return distinct, index.astype(np.int64)
    seen = np.zeros(bound, dtype=bool)
    seen[codes] = True
    distinct = np.flatnonzero(seen).astype(np.int64)
    lookup = np.zeros(bound, dtype=np.int64)
    lookup[distinct] = np.arange(len(distinct))
    return distinct, lookup[codes]
