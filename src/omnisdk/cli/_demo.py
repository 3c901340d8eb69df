"""`omnisdk demo`: a small omnichannel store on the embedded SQLite default."""

from __future__ import annotations

import argparse

from ._command import Subparsers

__all__ = ["add_parser"]


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser("demo", help="run the omnichannel store demo")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--report", default=".omnisdk/demo-report.html", help="where to write the HTML report")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(store=args.store, customers=args.customers, seed=args.seed, report=args.report)
