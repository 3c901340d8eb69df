"""`omnisdk experiments`: every experiment the store has exposures for, with its result so far."""

from __future__ import annotations

import argparse
import math
from datetime import timedelta

from .._errors import ValidationError
from ._command import Subparsers

__all__ = ["add_parser"]

def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser("experiments", help="list experiments with their results (always-valid by default)")
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these experiments")
    parser.add_argument("--goal", action="append", metavar="EVENT",
                        help='conversion event (repeatable; default "Order Completed"), on any channel')
    parser.add_argument("--window-days", type=float, default=7.0,
                        help="a conversion counts this many days after the exposure (default 7)")
    parser.add_argument("--control", help="the control variant (default: control, holdout or none if present, "
                                          "else the first by name)")
    parser.add_argument("--method", choices=("sequential", "fixed"), default="sequential")
    parser.add_argument("--horizon", type=int, help="planned exposures per variant (default 10000)")
    parser.set_defaults(func=run)


def _percent(value: float | None) -> str:
    if value is None or math.isinf(value):
        return "?"
    return f"{value * 100:+.1f}%"


def run(args: argparse.Namespace) -> int:
    from .._omni import Omni
    from ..experiments._measure import default_control

    if not args.window_days > 0:
        raise ValidationError("expected a positive number of days", field="--window-days", value=args.window_days)
    with Omni(args.store, config=args.config) as omni:
        overviews = [o for o in omni.experiments() if not args.names or o.experiment in args.names]
        if not overviews:
            print("no experiment has exposures yet")
            return 0
        for overview in overviews:
            control = args.control or default_control(overview.variants)
            print(f"{overview.experiment}: {overview.exposures} exposed, control {control}")
            if len(overview.variants) < 2:
                print("  only one variant exposed so far\n")
                continue
            result = omni.experiment(overview.experiment, goal=args.goal or "Order Completed", control=control,
                                     window=timedelta(days=args.window_days), method=args.method,
                                     horizon=args.horizon)
            print(f"  {'variant':<16}{'exposed':>9}{'converted':>11}{'rate':>8}  {'lift (interval)':<28}decision")
            for v in result.variants:
                lift = v.conversion_lift
                interval = lift.relative_interval if lift else None
                text = "" if lift is None else (
                    f"{_percent(lift.relative)} ({_percent(interval.lower if interval else None)}"
                    f", {_percent(interval.upper if interval else None)})")
                print(f"  {v.name:<16}{v.exposures:>9}{v.conversions:>11}{v.conversion_rate:>8.1%}  {text:<28}"
                      f"{v.decision or 'control'}")
            winner = f", winner {result.winner}" if result.winner else ""
            print(f"  => {result.decision}{winner} ({result.method})\n")
    return 0
