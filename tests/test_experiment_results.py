"""The results model: per-variant figures, lifts against control, and the decision a marketer acts on."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from omnisdk import ValidationError, experiments
from omnisdk.experiments import (
    Conclusion,
    ExperimentResult,
    Summary,
    VariantData,
    analyse,
    holm,
    msprt_proportions,
    two_proportion_z_test,
)


def test_a_clear_winner_is_named_with_its_figures() -> None:
    data = {
        "holdout": VariantData(10_000, 400, Summary(10_000, 3.0, 400.0)),
        "a": VariantData(10_000, 420, Summary(10_000, 3.1, 410.0)),
        "b": VariantData(10_000, 560, Summary(10_000, 4.2, 520.0)),
    }
    result = analyse(data, control="holdout", horizon=20_000)
    assert (result.decision, result.winner, result.method, result.metric) == (
        Conclusion.WINNER, "b", "sequential", "conversion")
    assert [v.name for v in result.variants] == ["holdout", "a", "b"]
    control, a, b = result.variants
    assert (control.conversion_lift, control.revenue_lift, control.decision) == (None, None, None)
    assert (b.exposures, b.conversions, b.conversion_rate, b.revenue_per_exposed) == (10_000, 560, 0.056, 4.2)
    assert b.decision is Conclusion.WINNER and a.decision is Conclusion.KEEP_RUNNING
    assert b.conversion_lift is not None and b.conversion_lift.relative == pytest.approx(0.4)
    # two variants against control: each interval is at alpha / 2, so both hold at once
    assert b.conversion_lift.absolute_interval == msprt_proportions(400, 10_000, 560, 10_000, alpha=0.025,
                                                                    horizon=20_000).absolute_interval
    assert b.revenue_lift is not None and b.revenue_lift.absolute == pytest.approx(1.2)
    assert result.variant("b") is b
    with pytest.raises(ValidationError):
        result.variant("c")


def test_the_decision_follows_the_adjusted_p_values() -> None:
    # raw p-values: b 0.0198, c 0.0330. Holm: b 0.0397, c 0.0397 (both win); Bonferroni: c 0.066 (does not)
    data = {"control": VariantData(20_000, 1000), "b": VariantData(20_000, 1104), "c": VariantData(20_000, 1095)}
    raw = {name: two_proportion_z_test(1000, 20_000, data[name].conversions, 20_000).p_value for name in ("b", "c")}
    assert holm(raw) == pytest.approx({"b": 2 * raw["b"], "c": 2 * raw["b"]})
    by_holm = analyse(data, control="control", method="fixed", horizon=20_000)
    assert [v.decision for v in by_holm.variants[1:]] == [Conclusion.WINNER, Conclusion.WINNER]
    assert by_holm.winner == "b"
    by_bonferroni = analyse(data, control="control", method="fixed", horizon=20_000, correction="bonferroni")
    assert [v.decision for v in by_bonferroni.variants[1:]] == [Conclusion.WINNER, Conclusion.NO_DIFFERENCE]
    # alone against control, c would have won: three arms are not three free chances
    alone = analyse({"control": data["control"], "c": data["c"]}, control="control", method="fixed", horizon=20_000)
    assert alone.winner == "c"


def test_every_variant_worse_than_control_makes_control_the_winner() -> None:
    data = {"control": VariantData(10_000, 700), "b": VariantData(10_000, 400)}
    result = analyse(data, control="control")
    assert result.variant("b").decision is Conclusion.LOSER
    assert (result.decision, result.winner) == (Conclusion.WINNER, "control")


def test_early_on_the_answer_is_keep_running() -> None:
    result = analyse({"control": VariantData(300, 15), "b": VariantData(300, 19)}, control="control")
    assert (result.decision, result.winner) == (Conclusion.KEEP_RUNNING, None)


def test_reaching_the_horizon_without_a_winner_is_no_difference() -> None:
    data = {"control": VariantData(10_000, 500), "b": VariantData(10_000, 505)}
    assert analyse(data, control="control", horizon=10_000).decision is Conclusion.NO_DIFFERENCE
    assert analyse(data, control="control", horizon=20_000).decision is Conclusion.KEEP_RUNNING


def test_an_interval_inside_the_equivalence_margin_is_no_difference_before_the_horizon() -> None:
    data = {"control": VariantData(400_000, 20_000), "b": VariantData(400_000, 20_050)}
    assert analyse(data, control="control", horizon=10**6, equivalence=0.05).decision is Conclusion.NO_DIFFERENCE
    assert analyse(data, control="control", horizon=10**6, equivalence=0.001).decision is Conclusion.KEEP_RUNNING


def test_a_fixed_horizon_analysis_does_not_decide_before_the_horizon() -> None:
    data = {"control": VariantData(5_000, 200), "b": VariantData(5_000, 320)}
    early = analyse(data, control="control", method="fixed", horizon=10_000)
    assert early.variant("b").conversion_lift is not None and early.variant("b").conversion_lift.p_value < 1e-6
    assert early.decision is Conclusion.KEEP_RUNNING
    assert analyse(data, control="control", method="fixed", horizon=5_000).winner == "b"


def test_revenue_can_be_the_deciding_metric() -> None:
    data = {
        "control": VariantData(10_000, 500, Summary(10_000, 3.0, 200.0)),
        "b": VariantData(10_000, 500, Summary(10_000, 4.0, 220.0)),
    }
    assert analyse(data, control="control").decision is Conclusion.NO_DIFFERENCE  # same conversions at the horizon
    assert analyse(data, control="control", metric="revenue").winner == "b"


def test_a_decision_once_reached_stays_when_the_previous_look_is_passed_on() -> None:
    first = analyse({"control": VariantData(4000, 160), "b": VariantData(4000, 260)}, control="control")
    assert first.winner == "b"
    # later data alone would not be conclusive; the always-valid p-value keeps its lowest value
    data = {"control": VariantData(5000, 230), "b": VariantData(5000, 262)}
    assert analyse(data, control="control").decision is Conclusion.KEEP_RUNNING
    later = analyse(data, control="control", previous=first)
    assert later.winner == "b"


def test_a_run_to_a_decision_day_by_day() -> None:
    # what the journey runtime will do: one look a day at cumulative counts until there is a decision
    rng = np.random.default_rng(16)
    totals = {"control": [0, 0], "b": [0, 0]}
    result: ExperimentResult | None = None
    decided_on = None
    for day in range(1, 61):
        for name, rate in (("control", 0.05), ("b", 0.065)):
            totals[name][0] += 400
            totals[name][1] += int(rng.binomial(400, rate))
        data = {name: VariantData(n, c) for name, (n, c) in totals.items()}
        result = analyse(data, control="control", previous=result)
        if result.decision is not Conclusion.KEEP_RUNNING:
            decided_on = day
            break
    assert result is not None and (result.decision, result.winner) == (Conclusion.WINNER, "b")
    assert decided_on is not None and decided_on < 30


def test_variant_data_from_one_entry_per_customer() -> None:
    data = VariantData.of([True, False, False, True], [20.0, 0.0, 0.0, 30.0])
    assert (data.exposures, data.conversions) == (4, 2)
    assert data.revenue == Summary.of([20.0, 0.0, 0.0, 30.0])


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"control": "nope"}, "control"),
    ({"control": "control", "metric": "clicks"}, "metric"),
    ({"control": "control", "method": "bayes"}, "method"),
    ({"control": "control", "correction": "none"}, "correction"),
    ({"control": "control", "equivalence": -0.1}, "equivalence"),
    ({"control": "control", "alpha": 0}, "alpha"),
])
def test_bad_arguments_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        analyse({"control": VariantData(10, 1), "b": VariantData(10, 2)}, **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_impossible_counts_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        VariantData(10, 11)
    assert caught.value.field == "conversions"
    with pytest.raises(ValidationError) as caught:
        VariantData(-1, 0)
    assert caught.value.field == "exposures"


def test_the_docs_example_runs_and_says_what_it_shows() -> None:
    page = (Path(__file__).parent.parent / "docs" / "experiments.md").read_text()
    example = page.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(example, namespace)
    result = namespace["result"]
    assert isinstance(result, ExperimentResult)
    assert (result.decision, result.winner) == (Conclusion.KEEP_RUNNING, None)
    lift = result.variant("b").conversion_lift
    assert lift is not None and lift.relative_interval is not None
    assert (round(lift.relative, 2), round(lift.relative_interval.lower, 2), round(lift.relative_interval.upper, 2)) \
        == (0.42, -0.24, 1.67)


def test_the_package_exports_are_sorted_and_complete() -> None:
    public = {name for name, value in vars(experiments).items() if not name.startswith("_")
              and not inspect.ismodule(value)}
    assert experiments.__all__ == sorted(experiments.__all__)
    assert public == set(experiments.__all__)


def test_revenue_must_cover_every_exposed_customer() -> None:
    # revenue of the buyers alone would overstate revenue per exposed customer
    with pytest.raises(ValidationError) as caught:
        VariantData(100, 3, Summary.of([20.0, 35.0, 12.0]))
    assert caught.value.field == "revenue"
