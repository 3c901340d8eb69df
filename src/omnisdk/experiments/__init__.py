"""Experiments: who sees which variant, and whether the difference is real, even when you look every day.

    from omnisdk.experiments import Split, VariantData, analyse

    split = Split({"a": 0.45, "b": 0.45, "holdout": 0.10}, holdouts={"holdout"})
    split.variant("subject-test", "c-42")                      # "a", "b" or "holdout", the same everywhere
    result = analyse({"holdout": VariantData(1000, 41), "a": VariantData(4500, 230),
                      "b": VariantData(4500, 260)}, control="holdout")
    result.decision, result.winner, result.variant("b").conversion_lift

Assignment, the z-test, the sequential tests, the results and CUPED are plain Python. Welch's t-test
(fixed-horizon revenue) needs scipy and Thompson sampling numpy (`pip install 'omnisdk[experiments]'`).
docs/experiments.md explains the statistics.
"""

from ._assign import GlobalControl, Split, assign
from ._bandit import thompson_shares
from ._cuped import CupedAdjustment, cuped
from ._results import Conclusion, ExperimentResult, VariantData, VariantResult, analyse
from ._sequential import DEFAULT_HORIZON, msprt_means, msprt_proportions
from ._stats import Interval, Lift, Summary, bonferroni, holm, two_proportion_z_test, welch_t_test

__all__ = [
    "Conclusion",
    "CupedAdjustment",
    "DEFAULT_HORIZON",
    "ExperimentResult",
    "GlobalControl",
    "Interval",
    "Lift",
    "Split",
    "Summary",
    "VariantData",
    "VariantResult",
    "analyse",
    "assign",
    "bonferroni",
    "cuped",
    "holm",
    "msprt_means",
    "msprt_proportions",
    "thompson_shares",
    "two_proportion_z_test",
    "welch_t_test",
]
