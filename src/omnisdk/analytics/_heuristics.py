"""Rule-based models: each converting path hands its conversions and value to its touches by fixed weights.

They read one path at a time, so they are plain Python. The weights follow `channelattribution`'s
heuristic models where it has them (first, last, linear: a channel touched twice gets two shares).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ._paths import Journeys

__all__ = [
    "Credit",
    "first_touch",
    "last_touch",
    "linear",
    "position_based",
    "shapley",
    "time_decay",
]

#: (conversions, value) attributed to each channel
Credit = tuple[dict[str, float], dict[str, float]]


def _empty(journeys: Journeys) -> Credit:
    return dict.fromkeys(journeys.names, 0.0), dict.fromkeys(journeys.names, 0.0)


def _single(journeys: Journeys, position: int) -> Credit:
    conversions, values = _empty(journeys)
    for channels, converted, value in zip(journeys.channels, journeys.conversions, journeys.values, strict=True):
        if converted:
            channel = channels[position]
            conversions[channel] += converted
            values[channel] += value
    return conversions, values


def first_touch(journeys: Journeys) -> Credit:
    """Everything to the first touch: what opened the journey."""
    return _single(journeys, 0)


def last_touch(journeys: Journeys) -> Credit:
    """Everything to the last touch before the conversion."""
    return _single(journeys, -1)


def _weighted(journeys: Journeys, weights: Callable[[int, int], Sequence[float]]) -> Credit:
    """Share each converting path by `weights(row, length)`, which sum to 1 over the path's touches."""
    conversions, values = _empty(journeys)
    for row, (channels, converted, value) in enumerate(
        zip(journeys.channels, journeys.conversions, journeys.values, strict=True)
    ):
        if not converted:
            continue
        for channel, weight in zip(channels, weights(row, len(channels)), strict=True):
            conversions[channel] += converted * weight
            values[channel] += value * weight
    return conversions, values


def linear(journeys: Journeys) -> Credit:
    """An equal share per touch."""
    cache: dict[int, list[float]] = {}

    def weights(_: int, length: int) -> list[float]:
        if length not in cache:
            cache[length] = [1.0 / length] * length
        return cache[length]

    return _weighted(journeys, weights)


def position_based(journeys: Journeys, first: float, last: float) -> Credit:
    """`first` to the first touch, `last` to the last, the rest split evenly between the touches between.

    A one-touch path gives it everything; a two-touch path has no middle, so its two touches split in
    proportion first : last (50/50 with the default 40/40), which keeps every path's weights summing to 1.
    """
    cache: dict[int, list[float]] = {}

    def weights(_: int, length: int) -> list[float]:
        if length not in cache:
            if length == 1:
                cache[length] = [1.0]
            elif length == 2:
                cache[length] = [first / (first + last), last / (first + last)]
            else:
                cache[length] = [first, *[(1.0 - first - last) / (length - 2)] * (length - 2), last]
        return cache[length]

    return _weighted(journeys, weights)


def time_decay(journeys: Journeys, half_life: float) -> Credit:
    """Weights halve every `half_life` before the conversion, normalised per path.

    With ages (days) the distance of a touch is its age; without, it is its position counted back from
    the conversion (the last touch is 0, the one before it 1, ...), and `half_life` is in touches.
    """
    ages = journeys.ages
    if ages is None:
        cache: dict[int, list[float]] = {}

        def by_position(_: int, length: int) -> list[float]:
            if length not in cache:
                raw = [2.0 ** (-(length - 1 - index) / half_life) for index in range(length)]
                total = sum(raw)
                cache[length] = [weight / total for weight in raw]
            return cache[length]

        return _weighted(journeys, by_position)

    def by_age(row: int, _: int) -> list[float]:
        path_ages = ages[row]
        youngest = path_ages[-1]  # relative to the youngest touch, so old paths do not underflow to 0
        raw = [2.0 ** (-(age - youngest) / half_life) for age in path_ages]
        total = sum(raw)
        return [weight / total for weight in raw]

    return _weighted(journeys, by_age)


def shapley(journeys: Journeys) -> Credit:
    """Shapley values of the game "a set of channels earns the conversions of the paths it covers".

    That game (the "simplified Shapley value" of Zhao et al., 2018, over the set of channels each path
    touched) is a sum of one unanimity game per converting path, so its Shapley value has an exact closed
    form: each converting path splits evenly between its *distinct* channels, whatever their number or
    repetitions. No enumeration of the 2^n coalitions is needed.
    """
    conversions, values = _empty(journeys)
    for channels, converted, value in zip(journeys.channels, journeys.conversions, journeys.values, strict=True):
        if not converted:
            continue
        distinct = set(channels)
        conversion_share = converted / len(distinct)
        value_share = value / len(distinct)
        for channel in distinct:
            conversions[channel] += conversion_share
            values[channel] += value_share
    return conversions, values
