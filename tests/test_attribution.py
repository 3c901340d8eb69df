"""Attribution models: worked examples first, then a large generated data set against independent computations."""

from __future__ import annotations

import inspect
import itertools
import math
import random
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omnisdk import Touchpoint, ValidationError, analytics
from omnisdk.analytics import MODELS, AttributionResult, Path, attribute, paths_from_touchpoints

Row = tuple[tuple[str, ...], float, float, float]


def approx(expected: dict[str, float], rel: float = 1e-12) -> Any:
    return pytest.approx(expected, rel=rel, abs=1e-12)


# -- Markov: examples small enough to solve on paper --------------------------------------------------


def test_markov_removal_effects_of_a_journey_that_loops() -> None:
    # Paths: a > b > a converts once; b alone and a alone each fail once.
    # Transition counts: start->a 2, start->b 1; a->b 1, a->conv 1, a->null 1; b->a 1, b->null 1.
    # With x(s) = P(conversion | at s):  x(a) = 1/3 + x(b)/3  and  x(b) = x(a)/2,  so x(a) = 2/5, x(b) = 1/5,
    # P = 2/3 * 2/5 + 1/3 * 1/5 = 1/3.
    # Without a (a -> null): nothing converts, RE_a = 1.
    # Without b: x(a) = 1/3, P = 2/3 * 1/3 = 2/9, RE_b = 1 - (2/9) / (1/3) = 1/3.
    # The one conversion is shared 1 : 1/3, i.e. 3/4 to a and 1/4 to b.
    result = attribute([(("a", "b", "a"), 1, 100.0, 0), (("b",), 0, 0, 1), (("a",), 0, 0, 1)])

    assert result.model == "markov"
    assert dict(result.params) == {"order": 1}
    assert result.conversion_probability == pytest.approx(1 / 3)
    assert result.removal_effects == approx({"a": 1.0, "b": 1 / 3})
    assert result.conversions == approx({"a": 0.75, "b": 0.25})
    assert result.value == approx({"a": 75.0, "b": 25.0})
    assert result.states == 2


def test_markov_value_follows_where_valuable_journeys_end() -> None:
    # Paths: a > b > a converts for 100; b converts for 20 and fails once; a fails once.
    # Counts: start->a 2, start->b 2; a->b 1, a->conv 1, a->null 1; b->a 1, b->conv 1, b->null 1.
    # Conversions: x(a) = 1/3 + x(b)/3, x(b) = 1/3 + x(a)/3, so x(a) = x(b) = 1/2 and P = 1/2.
    #   Without a: x(b) = 1/3, P = 1/2 * 1/3 = 1/6, RE_a = 2/3; RE_b = 2/3 by symmetry: 1 conversion each.
    # Value: a walk converting from a is worth 100, from b 20, so the per-visit rewards are 100/3 and 20/3:
    #   y(a) = 100/3 + y(b)/3, y(b) = 20/3 + y(a)/3, so y(a) = 40, y(b) = 20, E[value] = (40 + 20) / 2 = 30.
    #   Without a: y(b) = 20/3, E = 10/3, REV_a = 1 - (10/3) / 30 = 8/9.
    #   Without b: y(a) = 100/3, E = 50/3, REV_b = 1 - (50/3) / 30 = 4/9.
    # The 120 of value is shared 8/9 : 4/9, i.e. 80 to a and 40 to b.
    result = attribute([Path(("a", "b", "a"), 1, 100.0), Path(("b",), 1, 20.0, nulls=1), Path(("a",), 0, nulls=1)])

    assert result.conversion_probability == pytest.approx(0.5)
    assert result.expected_value == pytest.approx(30.0)
    assert result.removal_effects == approx({"a": 2 / 3, "b": 2 / 3})
    assert result.value_removal_effects == approx({"a": 8 / 9, "b": 4 / 9})
    assert result.conversions == approx({"a": 1.0, "b": 1.0})
    assert result.value == approx({"a": 80.0, "b": 40.0})


def test_a_higher_order_chain_remembers_where_the_journey_came_from() -> None:
    # a > b converts, c > b does not.
    # Order 1 only sees b: start->a 1/2, start->c 1/2, a->b, c->b, b->conv 1/2, b->null 1/2, so P = 1/2.
    #   Without a or c, P = 1/4 (RE 1/2 each); without b, P = 0 (RE 1): shares 1/4, 1/4, 1/2.
    # Order 2 has the states (a, b) -> conv and (c, b) -> null, so P = 1/2.
    #   Without a, P = 0 (RE 1); every state contains b (RE 1); without c nothing changes (RE 0).
    paths = [(("a", "b"), 1), (("c", "b"), 0, 0, 1)]

    first_order = attribute(paths, order=1)
    second_order = attribute(paths, order=2)

    assert first_order.conversions == approx({"a": 0.25, "b": 0.5, "c": 0.25})
    assert second_order.removal_effects == approx({"a": 1.0, "b": 1.0, "c": 0.0})
    assert second_order.conversions == approx({"a": 0.5, "b": 0.5, "c": 0.0})
    assert second_order.states == 2


def test_a_channel_repeated_back_to_back_is_one_visit() -> None:
    repeated = attribute([(("a", "a", "a", "b"), 3, 30.0, 2), (("b", "b"), 1, 5.0, 4)])
    collapsed = attribute([(("a", "b"), 3, 30.0, 2), (("b",), 1, 5.0, 4)])

    assert repeated.removal_effects == approx(dict(collapsed.removal_effects or {}))
    assert repeated.conversions == approx(dict(collapsed.conversions))


def test_markov_without_any_conversion_credits_nothing() -> None:
    result = attribute([(("email", "sms"), 0, 0, 10)])

    assert result.conversion_probability == 0.0
    assert dict(result.conversions) == {"email": 0.0, "sms": 0.0}
    assert dict(result.removal_effects or {}) == {"email": 0.0, "sms": 0.0}


def test_markov_of_paths_that_stand_for_no_journey_is_empty() -> None:
    assert dict(attribute([]).conversions) == {}
    assert dict(attribute([(("email",), 0, 0, 0)]).conversions) == {"email": 0.0}


def test_markov_explains_how_to_get_scipy_when_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)

    with pytest.raises(ModuleNotFoundError, match=r"omnisdk\[analytics\]"):
        attribute([(("email",), 1)])


# -- rule-based models ---------------------------------------------------------------------------------

# two conversions worth 100 through four touches, and a single-touch conversion worth 10
SMALL = [(("email", "web", "sms", "email"), 2, 100.0, 5), (("sms",), 1, 10.0, 0)]


def test_first_and_last_touch() -> None:
    first = attribute(SMALL, model="first_touch")
    last = attribute(SMALL, model="last_touch")

    assert dict(first.conversions) == {"email": 2.0, "web": 0.0, "sms": 1.0}
    assert dict(first.value) == {"email": 100.0, "web": 0.0, "sms": 10.0}
    assert dict(last.conversions) == {"email": 2.0, "web": 0.0, "sms": 1.0}
    assert first.removal_effects is None and first.conversion_probability is None


def test_linear_gives_each_touch_an_equal_share() -> None:
    result = attribute(SMALL, model="linear")

    # email is touched twice out of four: 2 * 2/4; web and sms once: 2 * 1/4 (+ 1 for the sms-only path)
    assert result.conversions == approx({"email": 1.0, "web": 0.5, "sms": 1.5})
    assert result.value == approx({"email": 50.0, "web": 25.0, "sms": 35.0})


def test_position_based_gives_40_20_40_and_handles_short_paths() -> None:
    four = attribute([(("email", "web", "sms", "push"), 1, 100.0)], model="position_based")
    two = attribute([(("email", "web"), 1, 100.0)], model="position_based", first=0.3, last=0.6)
    one = attribute([(("email",), 1, 100.0)], model="position_based")

    assert four.value == approx({"email": 40.0, "web": 10.0, "sms": 10.0, "push": 40.0})
    assert dict(four.params) == {"first": 0.4, "last": 0.4}
    # two touches have no middle: they split in proportion first : last = 0.3 : 0.6
    assert two.value == approx({"email": 100 / 3, "web": 200 / 3})
    assert dict(one.value) == {"email": 100.0}


def test_time_decay_by_position_halves_per_touch_back() -> None:
    # weights 1/8, 1/4, 1/2, 1 from the first touch to the last, normalised by 15/8
    result = attribute(SMALL, model="time_decay")

    assert dict(result.params) == {"half_life": 1.0, "unit": "touches"}
    assert result.conversions == approx({"email": 2 * 9 / 15, "web": 2 * 2 / 15, "sms": 2 * 4 / 15 + 1})


def test_time_decay_by_age_in_days() -> None:
    # ages 14, 7 and 0 days with a 7-day half-life weigh 1/4, 1/2 and 1, normalised by 7/4
    paths = [Path(("email", "web", "sms"), 1, 70.0, ages=(14.0, 7.0, 0.0))]

    default = attribute(paths, model="time_decay")
    slower = attribute(paths, model="time_decay", half_life=14)

    assert dict(default.params) == {"half_life": 7.0, "unit": "days"}
    assert default.value == approx({"email": 10.0, "web": 20.0, "sms": 40.0})
    assert slower.value["email"] < slower.value["web"] < slower.value["sms"]
    assert slower.value["email"] > default.value["email"]


def test_shapley_matches_the_definition_over_every_coalition() -> None:
    paths = [
        Path(("email", "web"), 3, 90.0, 1),
        Path(("email", "sms", "email", "push"), 2, 40.0),
        Path(("web",), 5, 50.0, 9),
        Path(("sms", "push", "web", "pos"), 1, 30.0, 2),
    ]
    players = ["email", "web", "sms", "push", "pos"]

    def worth(coalition: set[str], field: str) -> float:
        # a coalition earns what the paths it fully covers earned
        return float(sum(getattr(path, field) for path in paths if set(path.channels) <= coalition))

    def shapley_value(player: str, field: str) -> float:
        others = [p for p in players if p != player]
        n = len(players)
        total = 0.0
        for size in range(n):
            for coalition in itertools.combinations(others, size):
                weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                total += weight * (worth({*coalition, player}, field) - worth(set(coalition), field))
        return total

    result = attribute(paths, model="shapley")

    assert result.conversions == approx({p: shapley_value(p, "conversions") for p in players})
    assert result.value == approx({p: shapley_value(p, "value") for p in players})


def test_every_model_credits_exactly_the_conversions_it_was_given() -> None:
    paths = [(("email", "web"), 3, 90.0, 1), (("sms", "email"), 2, 40.0, 6), (("web",), 0, 0, 9)]
    models = MODELS

    for model in models:
        result = attribute(paths, model=model)
        assert result.total_conversions == pytest.approx(5.0), model
        assert result.total_value == pytest.approx(130.0), model


# -- input and results ---------------------------------------------------------------------------------


def test_rows_can_be_short_tuples_paths_or_a_generator() -> None:
    rows: list[Path | tuple[Any, ...]] = [(("email",), 2), (("sms", "web"), 1, 30.0), Path(("web",), 0, nulls=4)]

    result = attribute((row for row in rows), model="last_touch")

    assert dict(result.conversions) == {"email": 2.0, "sms": 0.0, "web": 1.0}
    assert result.channels == ("email", "sms", "web")


def test_as_rows_lists_the_most_credited_channel_first() -> None:
    result = attribute(SMALL, model="linear")

    assert result.as_rows() == [
        {"channel": "sms", "conversions": 1.5, "value": 35.0},
        {"channel": "email", "conversions": 1.0, "value": 50.0},
        {"channel": "web", "conversions": 0.5, "value": 25.0},
    ]


def test_markov_rows_carry_the_removal_effects() -> None:
    rows = attribute([(("a", "b", "a"), 1, 100.0, 0), (("b",), 0, 0, 1), (("a",), 0, 0, 1)]).as_rows()

    assert [row["channel"] for row in rows] == ["a", "b"]
    assert rows[1]["removal_effect"] == pytest.approx(1 / 3)
    assert set(rows[0]) == {"channel", "conversions", "value", "removal_effect", "value_removal_effect"}


def test_results_are_read_only() -> None:
    result = attribute(SMALL, model="first_touch")

    with pytest.raises(TypeError):
        result.conversions["email"] = 0.0  # type: ignore[index]
    assert isinstance(result, AttributionResult)


@pytest.mark.parametrize(
    ("paths", "options", "field", "value"),
    [
        ([(("email",), -1)], {}, "paths[0].conversions", -1),
        ([(("email",), 1), (("sms",), 1, 5.0, math.nan)], {}, "paths[1].nulls", math.nan),
        ([(("email",), 1, -5.0)], {}, "paths[0].value", -5.0),
        ([(("email",), "1")], {}, "paths[0].conversions", "1"),
        ([(("email",), True)], {}, "paths[0].conversions", True),
        ([(("email",), 1), ((), 2)], {}, "paths[1].channels", ()),
        ([("email > sms", 1)], {}, "paths[0].channels", "email > sms"),
        ([(("email", ""), 1)], {}, "paths[0].channels", ("email", "")),
        ([(("email",), 0, 20.0)], {}, "paths[0].value", 20.0),
        ([("email",)], {}, "paths[0]", ("email",)),
        ([(("email",), 1)], {"model": "u_shaped"}, "model", "u_shaped"),
        ([(("email",), 1)], {"model": "linear", "order": 2}, "order", 2),
        ([(("email",), 1)], {"order": 0}, "order", 0),
        ([(("email",), 1)], {"model": "linear", "half_life": 3}, "half_life", 3),
        ([(("email",), 1)], {"model": "time_decay", "half_life": 0}, "half_life", 0.0),
        ([(("email",), 1)], {"model": "position_based", "first": 0.7, "last": 0.7}, "last", 0.7),
        ([Path(("email", "sms"), 1, ages=(3.0,))], {}, "paths[0].ages", (3.0,)),
        ([Path(("email", "sms"), 1, ages=(1.0, 3.0))], {}, "paths[0].ages", (1.0, 3.0)),
        ([Path(("email",), 1, ages=(1.0,)), Path(("sms",), 1)], {}, "paths[1].ages", None),
    ],
)
def test_bad_input_is_reported_with_its_row_and_field(
    paths: list[Any], options: dict[str, Any], field: str, value: Any
) -> None:
    with pytest.raises(ValidationError) as caught:
        attribute(paths, **{"model": "first_touch", **options})

    assert caught.value.field == field
    assert caught.value.value is value or caught.value.value == value


def test_a_path_refuses_a_string_of_channels() -> None:
    with pytest.raises(ValidationError, match="not a string"):
        Path("email > sms", 1)


# -- paths from stored touchpoints -----------------------------------------------------------------------

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)


def touch(customer: str, channel: str, days: float, name: str = "Link Clicked", **properties: Any) -> Touchpoint:
    return Touchpoint(
        customer_id=customer, channel=channel, name=name, properties=properties, occurred_at=T0 + timedelta(days=days)
    )


def test_paths_from_touchpoints_cuts_each_timeline_at_conversions() -> None:
    touchpoints = [
        # ada: email and web lead to an order; 40 days later sms, then an order 35 days after that
        touch("ada", "web", 2, "Product Viewed"),
        touch("ada", "email", 0),
        touch("ada", "pos", 3, "Order Completed", revenue=50.0),
        touch("ada", "sms", 43),
        touch("ada", "push", 75),
        touch("ada", "web", 78, "Order Completed", revenue=20),
        # bob never buys; cy walks into the store without any touch
        touch("bob", "social", 1),
        touch("bob", "email", 4),
        touch("cy", "pos", 5, "Order Completed"),
    ]

    paths = paths_from_touchpoints(touchpoints)

    assert paths == [
        Path(("email", "web"), 1.0, 50.0, 0.0, ages=(3.0, 1.0)),
        Path(("sms",), 0.0, 0.0, 1.0, ages=(0.0,)),  # older than 30 days at the next order
        Path(("push",), 1.0, 20.0, 0.0, ages=(3.0,)),
        Path(("social", "email"), 0.0, 0.0, 1.0, ages=(3.0, 0.0)),
        Path(("pos",), 1.0, 0.0, 0.0, ages=(0.0,)),
    ]


def test_paths_from_touchpoints_can_name_channels_and_skip_touches() -> None:
    touchpoints = [
        touch("ada", "email", 0, "Message Sent", campaign="spring"),
        touch("ada", "email", 1, "Message Opened", campaign="spring"),
        touch("ada", "web", 2, "Checkout Started"),
        touch("ada", "web", 2.5, "Signed Up", revenue=9.0),
    ]

    def campaign(tp: Any) -> str | None:
        return None if tp.name == "Message Sent" else tp.properties.get("campaign", tp.channel)

    paths = paths_from_touchpoints(touchpoints, conversion={"Signed Up"}, channel_of=campaign)

    assert [(p.channels, p.conversions, p.value) for p in paths] == [(("spring", "web"), 1.0, 9.0)]
    assert attribute(paths, model="time_decay", half_life=1).value == approx({"spring": 3.0, "web": 6.0})


def test_paths_from_touchpoints_rejects_unusable_revenue() -> None:
    with pytest.raises(ValidationError) as caught:
        paths_from_touchpoints([touch("ada", "web", 0, "Order Completed", revenue="12.50")])

    assert caught.value.field == "properties.revenue"


# -- a generated data set against independent computations -----------------------------------------------

CHANNELS = ("email", "sms", "push", "social", "direct_mail", "pos", "web", "app", "ads", "call_center")


def generated_paths(count: int, seed: int) -> list[Row]:
    """Distinct journeys where channels differ in how much they lift conversion, with repeats and loops."""
    rng = random.Random(seed)
    lift = {channel: rng.uniform(0.6, 1.8) for channel in CHANNELS}
    distinct: dict[tuple[str, ...], None] = {}
    while len(distinct) < count:
        touches = [rng.choice(CHANNELS)]
        for _ in range(min(int(rng.expovariate(1 / 3)), 14)):
            touches.append(touches[-1] if rng.random() < 0.25 else rng.choice(CHANNELS))
        distinct[tuple(touches)] = None
    rows: list[Row] = []
    for channels in distinct:
        journeys = 0 if rng.random() < 0.005 else rng.randint(1, 30)
        rate = min(0.9, 0.03 * math.prod(lift[channel] for channel in set(channels)))
        conversions = sum(rng.random() < rate for _ in range(journeys))
        value = round(sum(rng.uniform(5, 200) for _ in range(conversions)), 2)
        rows.append((channels, conversions, value, journeys - conversions))
    return rows


@pytest.fixture(scope="module")
def journeys() -> list[Row]:
    return generated_paths(50_000, seed=20250301)


def pandas_attribution(rows: list[Row], model: str, **params: float) -> dict[str, tuple[float, float]]:
    """The heuristic models as dataframe operations: one row per touch with its weight."""
    import numpy as np
    import pandas as pd
    frame = pd.DataFrame(rows, columns=["channels", "conversions", "value", "nulls"])
    frame["path"] = range(len(frame))
    frame["length"] = frame["channels"].map(len)
    if model == "shapley":
        frame["channels"] = frame["channels"].map(lambda channels: sorted(set(channels)))
        frame["length"] = frame["channels"].map(len)
    touches = frame.explode("channels").rename(columns={"channels": "channel"})
    touches["position"] = touches.groupby("path").cumcount()
    n, position = touches["length"], touches["position"]
    if model == "first_touch":
        weight = (position == 0).astype(float)
    elif model == "last_touch":
        weight = (position == n - 1).astype(float)
    elif model in ("linear", "shapley"):
        weight = 1.0 / n
    elif model == "position_based":
        first, last = params.get("first", 0.4), params.get("last", 0.4)
        middle = (1 - first - last) / (n - 2).clip(lower=1)
        weight = np.where(position == 0, first, np.where(position == n - 1, last, middle))
        weight = np.where(n == 2, np.where(position == 0, first, last) / (first + last), weight)
        weight = np.where(n == 1, 1.0, weight)
    elif model == "time_decay":
        raw = 2.0 ** (-(n - 1 - position) / params.get("half_life", 1.0))
        weight = raw / raw.groupby(touches["path"]).transform("sum")
    touches["credit_conversions"] = touches["conversions"] * weight
    touches["credit_value"] = touches["value"] * weight
    totals = touches.groupby("channel")[["credit_conversions", "credit_value"]].sum()
    return {channel: (row.credit_conversions, row.credit_value) for channel, row in totals.iterrows()}


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("first_touch", {}),
        ("last_touch", {}),
        ("linear", {}),
        ("position_based", {}),
        ("position_based", {"first": 0.2, "last": 0.5}),
        ("time_decay", {}),
        ("time_decay", {"half_life": 2.5}),
        ("shapley", {}),
    ],
)
def test_rule_based_models_match_pandas_on_50_000_paths(
    journeys: list[Row], model: str, params: dict[str, Any]
) -> None:
    expected = pandas_attribution(journeys, model, **params)

    result = attribute(journeys, model=model, **params)

    assert len(journeys) >= 50_000
    assert set(result.channels) == set(CHANNELS)
    for channel in CHANNELS:
        conversions, value = expected.get(channel, (0.0, 0.0))
        assert result.conversions[channel] == pytest.approx(conversions, rel=1e-9), channel
        assert result.value[channel] == pytest.approx(value, rel=1e-9), channel


def test_time_decay_by_age_matches_pandas(journeys: list[Row]) -> None:
    import pandas as pd
    rng = random.Random(7)
    paths = []
    for channels, conversions, value, nulls in journeys[:20_000]:
        gaps = [rng.uniform(0, 6) for _ in channels]
        ages = tuple(sum(gaps[i + 1 :]) for i in range(len(channels)))
        paths.append(Path(channels, conversions, value, nulls, ages=ages))
    touches = pd.DataFrame(
        [(i, c, a, p.conversions) for i, p in enumerate(paths) for c, a in zip(p.channels, p.ages or (), strict=True)],
        columns=["path", "channel", "age", "conversions"],
    )
    raw = 2.0 ** (-touches["age"] / 3.0)
    touches["credit"] = touches["conversions"] * raw / raw.groupby(touches["path"]).transform("sum")
    expected = touches.groupby("channel")["credit"].sum()

    result = attribute(paths, model="time_decay", half_life=3.0)

    for channel, credit in expected.items():
        assert result.conversions[channel] == pytest.approx(credit, rel=1e-9)


def reference_markov(rows: list[Row], order: int) -> dict[str, Any]:
    """Removal effects by the textbook route: a dense absorbing chain where a removed state leads to null."""
    import numpy as np
    counts: dict[tuple[Any, Any], float] = defaultdict(float)
    value_at_end: dict[Any, float] = defaultdict(float)
    for channels, conversions, value, nulls in rows:
        if conversions + nulls == 0:
            continue
        windows = [channels[i : i + order] for i in range(len(channels) - order + 1)] or [channels]
        visits = [w for i, w in enumerate(windows) if i == 0 or w != windows[i - 1]]
        for before, after in zip(["(start)", *visits], visits, strict=False):
            counts[before, after] += conversions + nulls
        counts[visits[-1], "(conversion)"] += conversions
        counts[visits[-1], "(null)"] += nulls
        value_at_end[visits[-1]] += value
    transient = sorted({s for s, _ in counts if s != "(start)"})
    states = ["(start)", *transient, "(conversion)", "(null)"]
    index = {state: i for i, state in enumerate(states)}
    size = len(transient) + 1
    matrix = np.zeros((len(states), len(states)))
    worth = np.zeros(size)  # mean conversion value of walks that convert from a state
    for (before, after), count in counts.items():
        matrix[index[before], index[after]] = count
    for state in transient:
        if counts.get((state, "(conversion)")):
            worth[index[state]] = value_at_end[state] / counts[state, "(conversion)"]
    matrix[:size] /= matrix[:size].sum(axis=1, keepdims=True)

    def outcome(removed: str | None) -> tuple[float, float]:
        chain = matrix.copy()
        for state in transient:
            if removed in state:
                chain[index[state]] = 0.0
                chain[index[state], index["(null)"]] = 1.0
        fundamental = np.eye(size) - chain[:size, :size]
        absorbed = np.linalg.solve(fundamental, chain[:size, size:])
        value = np.linalg.solve(fundamental, chain[:size, index["(conversion)"]] * worth)
        return absorbed[0, 0], value[0]

    probability, expected_value = outcome(None)
    effects = {c: 1 - outcome(c)[0] / probability for c in CHANNELS}
    value_effects = {c: 1 - outcome(c)[1] / expected_value for c in CHANNELS}
    total_conversions = sum(row[1] for row in rows)
    total_value = sum(row[2] for row in rows)
    return {
        "probability": probability,
        "removal_effects": effects,
        "value_removal_effects": value_effects,
        "conversions": {c: total_conversions * e / sum(effects.values()) for c, e in effects.items()},
        "value": {c: total_value * e / sum(value_effects.values()) for c, e in value_effects.items()},
        "states": len(transient),
    }


@pytest.mark.parametrize("order", [1, 2])
def test_markov_matches_a_dense_solve_on_50_000_paths(journeys: list[Row], order: int) -> None:
    expected = reference_markov(journeys, order)

    result = attribute(journeys, model="markov", order=order)

    assert result.states == expected["states"]
    assert result.conversion_probability == pytest.approx(expected["probability"], rel=1e-9)
    for field in ("removal_effects", "value_removal_effects", "conversions", "value"):
        assert dict(getattr(result, field)) == pytest.approx(expected[field], rel=1e-9), field


def test_the_analytics_package_exports_a_sorted_and_complete_all() -> None:
    public = {
        name for name, value in vars(analytics).items() if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert analytics.__all__ == sorted(analytics.__all__)
    assert public == set(analytics.__all__)
