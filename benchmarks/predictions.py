"""Predicted customer value for a base of synthetic customers: `omni.predict_value()` on the store (read every
purchase, fit BG/NBD + Gamma-Gamma, write every prediction) and its incremental rerun, side by side with
`lifetimes` doing the fit and the predictions in memory from the same transactions.

    python benchmarks/predictions.py                 # 20,000 customers
    python benchmarks/predictions.py --quick         # 2,000 customers

Customers (fixed seed) follow the BG/NBD story over 52 weeks: each buys at their own Gamma-distributed rate
and after each purchase drops out with their own Beta-distributed probability; order values are Gamma-Gamma.
The transactions are ingested into a fresh SQLite store before any clock starts. Timed: omnisdk's full run
(store reads, both fits, predictions and their writes, in batches of 1,000 customers a transaction), the
incremental run after 1% of the customers bought again (only they are rescored), omnisdk's in-memory models
alone (`summarize_purchases`, `ValueModel.fit`, `predict`), and lifetimes (`summary_data_from_transaction_data`,
`BetaGeoFitter`, `GammaGammaFitter`, expected purchases, `customer_lifetime_value`). Best of `--repeat` runs;
the predictions of both are compared at the end.
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from omnisdk import Omni, VirtualClock
from omnisdk.commerce import ValueModel, summarize_purchases

END = datetime(2026, 6, 30, 23, 0, tzinfo=UTC)


def simulate(customers: int, seed: int) -> list[tuple[str, datetime, float]]:
    rng = np.random.default_rng(seed)
    rates = rng.gamma(0.25, 1 / 4.0, customers)  # purchases a week (r, alpha of CDNOW's order)
    drops = rng.beta(0.8, 2.4, customers)
    spend = rng.gamma(3.7, 15.0, customers)
    out: list[tuple[str, datetime, float]] = []
    for c in range(customers):
        week = rng.uniform(0, 12)  # first purchase in the first quarter
        while week < 52:
            out.append((f"c{c:06d}", END - timedelta(weeks=52 - week), round(float(rng.gamma(6.0, spend[c] / 6.0)), 2)))
            if rng.random() < drops[c]:
                break
            week += rng.exponential(1 / max(rates[c], 1e-6))
    return out


def best_time(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.customers, args.repeat = 2_000, 1
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    transactions = simulate(args.customers, args.seed)
    buyers = len({c for c, _, _ in transactions})
    print(f"{buyers:,} customers, {len(transactions):,} purchases over 52 weeks; best of {args.repeat}; "
          f"Python {platform.python_version()} on {platform.machine()}\n")
    clock = VirtualClock(END)
    with tempfile.TemporaryDirectory() as folder, Omni(f"sqlite:///{folder}/bench.db", clock=clock,
                                                        load_entry_points=False) as omni:
        for start in range(0, len(transactions), 50_000):
            omni.track_many([{"who": c, "event": "Order Completed", "properties": {"revenue": v},
                              "channel": "pos" if i % 3 == 0 else "web", "timestamp": t}
                             for i, (c, t, v) in enumerate(transactions[start:start + 50_000], start)])
        full_s, run = best_time(lambda: omni.predict_value(refit=True), args.repeat)
        again = sorted({c for c, _, _ in transactions})[:: 100]

        def incremental() -> Any:
            clock.advance(hours=1)
            omni.track_many([{"who": c, "event": "Order Completed", "properties": {"revenue": 30.0},
                              "channel": "web"} for c in again])
            start = time.perf_counter()
            result = omni.predict_value(refit=False)
            return time.perf_counter() - start, result

        timings = [incremental() for _ in range(args.repeat)]
        inc_s, inc_run = min(t for t, _ in timings), timings[-1][1]
        stored = {c: omni.predictions(c) for c in sorted({c for c, _, _ in transactions})[:: 97]}

    by_customer: dict[str, list[tuple[datetime, float]]] = {}
    for c, t, v in transactions:
        by_customer.setdefault(c, []).append((t, v))

    def in_memory() -> Any:
        summaries = {c: s for c, items in by_customer.items() if (s := summarize_purchases(items, end=END))}
        model = ValueModel.fit(summaries.values())
        return model, model.predict(summaries)

    mem_s, (model, ours) = best_time(in_memory, args.repeat)
    frame = pd.DataFrame(transactions, columns=["customer", "when", "value"])
    frame["when"] = pd.to_datetime(frame["when"], utc=True).dt.tz_convert(None)

    def peer() -> Any:
        summary = summary_data_from_transaction_data(frame, "customer", "when", monetary_value_col="value",
                                                     observation_period_end=END.replace(tzinfo=None), freq="D")
        summary[["recency", "T"]] /= 7  # calendar days, as omnisdk counts them, in weeks
        bg = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
        repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
        gg = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
        expected = bg.conditional_expected_number_of_purchases_up_to_time(52.18, summary["frequency"],
                                                                          summary["recency"], summary["T"])
        clv = gg.customer_lifetime_value(bg, summary["frequency"], summary["recency"], summary["T"],
                                         summary["monetary_value"], time=12, freq="W", discount_rate=0.01)
        return bg, gg, expected, clv

    peer_s, (bg, gg, expected, clv) = best_time(peer, args.repeat)
    rows = [("omnisdk, store: read + fit + write all", full_s), ("omnisdk, store: rescore the 1% who bought", inc_s),
            ("omnisdk, in memory: summarise + fit + predict", mem_s), ("lifetimes, in memory: the same", peer_s)]
    print(f"{'run':48} {'seconds':>8} {'lifetimes / this':>17}")
    for name, seconds in rows:
        print(f"{name:48} {seconds:8.2f} {peer_s / seconds:17.1f}")
    print(f"\nfull run: {run.rescored:,} customers scored; incremental: {inc_run.rescored:,} rescored "
          f"(of {len(again):,} who bought again, with the stored parameters)")
    ours_bg = model.purchases
    print(f"BG/NBD r, alpha, a, b: omnisdk {ours_bg.r:.4f} {ours_bg.alpha:.4f} {ours_bg.a:.4f} {ours_bg.b:.4f}; "
          f"lifetimes {bg.params_['r']:.4f} {bg.params_['alpha']:.4f} {bg.params_['a']:.4f} {bg.params_['b']:.4f}")
    gap = max(abs(ours[c].expected_purchases - float(expected[c])) / max(float(expected[c]), 1e-9)
              for c in list(ours)[:: 50])
    print(f"largest relative gap in expected purchases over 52 weeks, omnisdk vs lifetimes: {gap:.2e} "
          f"(omnisdk's own parameters vs lifetimes' own fit); stored predictions checked: {len(stored):,}")
    del gg, clv


if __name__ == "__main__":
    main()
