"""Attribution models on simulated journeys, side by side with `channelattribution`.

    python benchmarks/attribution.py            # >= 250,000 distinct paths, Markov orders 1-3
    python benchmarks/attribution.py --quick    # 20,000 paths, a smoke run

Every omnisdk model runs on the same rows; `channelattribution` (GPL, benchmark-only, never imported by
omnisdk) runs its heuristic models and its Markov model with its default settings and with a
high-precision setting. omnisdk's Markov results are exact, so they are the reference for the error
columns. Each figure is the best of `--repeat` runs; inputs are prepared before the clock starts, each
library from its own input format (omnisdk: a list of tuples; channelattribution: a DataFrame).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import math
import os
import platform
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from omnisdk.analytics import AttributionResult, attribute

CHANNELS = ("email", "sms", "push", "social", "direct_mail", "pos", "web", "app", "ads", "call_center")
HEURISTICS = ("first_touch", "last_touch", "linear", "time_decay", "position_based", "shapley")
# channelattribution's heuristic_models returns these three at once
CA_HEURISTICS = {"first_touch": "first_touch", "last_touch": "last_touch", "linear": "linear_touch"}
CA_DEFAULT: dict[str, Any] = {}
CA_PRECISE: dict[str, Any] = {"nsim_start": 1_000_000, "conv_par": 0.01}

Row = tuple[tuple[str, ...], int, float, int]


def simulate(paths_wanted: int, seed: int) -> tuple[list[Row], int]:
    """Customers move between channels by a sticky random transition matrix; each channel has its own
    chance to convert the customer right after a touch. Journeys are simulated one by one and grouped by
    path until there are `paths_wanted` distinct paths."""
    rng = random.Random(seed)
    convert = {channel: rng.uniform(0.01, 0.08) for channel in CHANNELS}
    drop_out = 0.22
    next_weights = {
        channel: [(6.0 if other == channel else rng.uniform(0.2, 2.0)) for other in CHANNELS] for channel in CHANNELS
    }
    start_weights = [rng.uniform(0.5, 3.0) for _ in CHANNELS]
    grouped: dict[tuple[str, ...], list[float]] = {}
    journeys = 0
    while len(grouped) < paths_wanted:
        journeys += 1
        path = [rng.choices(CHANNELS, start_weights)[0]]
        converted = False
        while len(path) < 30:
            outcome = rng.random()
            if outcome < convert[path[-1]]:
                converted = True
                break
            if outcome < convert[path[-1]] + drop_out:
                break
            path.append(rng.choices(CHANNELS, next_weights[path[-1]])[0])
        counts = grouped.setdefault(tuple(path), [0, 0.0, 0])
        if converted:
            counts[0] += 1
            counts[1] += round(rng.lognormvariate(4.0, 0.6), 2)
        else:
            counts[2] += 1
    return [(path, int(c), v, int(n)) for path, (c, v, n) in grouped.items()], journeys


def best_time(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def max_relative_error(reference: dict[str, float], other: dict[str, float]) -> float:
    return max(abs(other[c] - reference[c]) / abs(reference[c]) for c in reference if reference[c])


def max_absolute_error(reference: dict[str, float], other: dict[str, float]) -> float:
    return max(abs(other[c] - reference[c]) for c in reference)


def load_channelattribution() -> Any:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints an advertisement on import
            import ChannelAttribution
    except ImportError as error:
        print(f"channelattribution is not available ({error}); measuring omnisdk only.\n")
        return None
    return ChannelAttribution


def ca_markov(ca: Any, frame: Any, order: int, settings: dict[str, Any]) -> dict[str, dict[str, float]]:
    with contextlib.redirect_stdout(io.StringIO()):
        out = ca.markov_model(
            frame, "path", "conv", var_value="value", var_null="null", order=order, out_more=True,
            verbose=False, flg_pro=False, **settings,
        )  # fmt: skip
    result = out["result"].set_index("channel_name")
    effects = out["removal_effects"].set_index("channel_name")
    return {
        "conversions": result["total_conversions"].to_dict(),
        "value": result["total_conversion_value"].to_dict(),
        "removal_effects": effects["removal_effects_conversion"].to_dict(),
    }


def ca_heuristics(ca: Any, frame: Any) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return ca.heuristic_models(frame, "path", "conv", var_value="value", flg_pro=False).set_index("channel_name")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 paths, one run each, orders 1-2")
    parser.add_argument("--paths", type=int, help="distinct paths to simulate (default 250,000)")
    parser.add_argument("--orders", default=None, help="Markov orders, comma-separated (default 1,2,3)")
    parser.add_argument("--repeat", type=int, default=None, help="runs per measurement, best kept (default 3)")
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args()
    paths_wanted = args.paths or (20_000 if args.quick else 250_000)
    orders = [int(o) for o in (args.orders or ("1,2" if args.quick else "1,2,3")).split(",")]
    repeat = args.repeat or (1 if args.quick else 3)

    import numpy
    import scipy

    ca = load_channelattribution()
    print(
        f"python {platform.python_version()}, numpy {numpy.__version__}, scipy {scipy.__version__}, "
        f"{os.cpu_count()} CPUs, best of {repeat}"
    )
    start = time.perf_counter()
    rows, journeys = simulate(paths_wanted, args.seed)
    conversions = sum(row[1] for row in rows)
    print(
        f"simulated {journeys:,} journeys ({conversions:,} conversions) as {len(rows):,} distinct paths "
        f"in {time.perf_counter() - start:.1f}s"
    )
    frame = None
    if ca is not None:
        import pandas

        frame = pandas.DataFrame(
            [(" > ".join(path), c, v, n) for path, c, v, n in rows], columns=["path", "conv", "value", "null"]
        )
        print(f"channelattribution {_version('channelattribution')}: default settings, and precise = {CA_PRECISE}")
    attribute(rows[:100])  # import numpy/scipy's solvers before timing

    table: list[list[str]] = []
    errors: list[str] = []

    ca_heuristic_time, ca_heuristic = (math.nan, None)
    if ca is not None:
        ca_heuristic_time, ca_heuristic = best_time(lambda: ca_heuristics(ca, frame), repeat)
    for model in HEURISTICS:
        seconds, ours = best_time(partial(attribute, rows, model=model), repeat)
        line = [model, f"{seconds:.2f}"]
        if ca_heuristic is not None and model in CA_HEURISTICS:
            theirs = ca_heuristic[f"{CA_HEURISTICS[model]}_conversions"].to_dict()
            line += [
                f"{ca_heuristic_time:.2f} (3 models)",
                "",
                f"{max_relative_error(dict(ours.conversions), theirs):.1e}",
            ]
        table.append(line)

    for order in orders:
        seconds, ours = best_time(partial(attribute, rows, model="markov", order=order), repeat)
        exact: AttributionResult = ours
        line = [f"markov order {order} ({exact.states:,} states)", f"{seconds:.2f}"]
        if ca is not None:
            for label, settings in (("default", CA_DEFAULT), ("precise", CA_PRECISE)):
                ca_seconds, theirs = best_time(partial(ca_markov, ca, frame, order, settings), repeat)
                conv_error = max_relative_error(dict(exact.conversions), theirs["conversions"])
                value_error = max_relative_error(dict(exact.value), theirs["value"])
                effect_error = max_absolute_error(dict(exact.removal_effects or {}), theirs["removal_effects"])
                line += [f"{ca_seconds:.2f}", f"{ca_seconds / seconds:.1f}x", f"{conv_error:.1e}"]
                errors.append(
                    f"order {order}, {label}: conversions {conv_error:.2%}, value {value_error:.2%}, "
                    f"removal effects {effect_error:.4f} (absolute)"
                )
        table.append(line)

    header = ["model", "omnisdk s"]
    if ca is not None:
        header += ["CA default s", "CA/omnisdk", "CA max rel err", "CA precise s", "CA/omnisdk", "CA max rel err"]
    print()
    print_table(header, table)
    if errors:
        print("\nchannelattribution's largest error per channel against omnisdk's exact solution:")
        for error in errors:
            print(f"  {error}")
        print("(heuristic rows: the error column compares conversions, which should agree to rounding)")


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """Left-aligned first column, right-aligned figures."""
    rows = [row + [""] * (len(header) - len(row)) for row in [header, *rows]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    rows.insert(1, ["-" * width for width in widths])
    for label, *figures in rows:
        cells = [label.ljust(widths[0])] + [f.rjust(w) for f, w in zip(figures, widths[1:], strict=True)]
        print("  ".join(cells))


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


if __name__ == "__main__":
    main()
