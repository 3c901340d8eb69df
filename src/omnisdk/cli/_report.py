"""`omnisdk report`: KPIs, funnel and attribution as terminal tables, a self-contained HTML page, CSV files."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from .._errors import ValidationError
from ._command import Subparsers

__all__ = ["add_parser"]


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser("report", help="print KPIs, a funnel and attribution; write HTML and CSV")
    parser.add_argument("--html", metavar="PATH", help="write a self-contained HTML report (charts included) here")
    parser.add_argument("--csv", metavar="DIR", help="write one CSV file per table into this folder")
    parser.add_argument("--since", metavar="WHEN", help="start of the period (ISO 8601 date or time, UTC if no zone)")
    parser.add_argument("--until", metavar="WHEN", help="end of the period, excluded")
    parser.add_argument("--conversion", action="append", metavar="EVENT",
                        help='conversion event (repeatable; default "Order Completed")')
    parser.add_argument("--funnel", metavar="EVENTS",
                        help='funnel steps separated by ">", e.g. "Product Viewed > Product Added > Order Completed"')
    parser.add_argument("--window-days", type=float, default=7.0,
                        help="a conversion counts for the latest message this many days before it (default 7)")
    parser.add_argument("--lookback-days", type=float, default=30.0,
                        help="attribution looks at touches this many days before a conversion (default 30)")
    parser.add_argument("--quiet", action="store_true", help="do not print the tables")
    parser.set_defaults(func=run)


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("expected an ISO 8601 date or time, e.g. 2026-01-31", field=option,
                              value=value) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _days(value: float, option: str) -> timedelta:
    if not value > 0:
        raise ValidationError("expected a positive number of days", field=option, value=value)
    return timedelta(days=value)


def run(args: argparse.Namespace) -> int:
    from .._omni import Omni

    funnel = [step.strip() for step in args.funnel.split(">")] if args.funnel else None
    options: dict[str, Any] = {
        "since": _when(args.since, "--since"),
        "until": _when(args.until, "--until"),
        "conversion": args.conversion or "Order Completed",
        "funnel": funnel,
        "window": _days(args.window_days, "--window-days"),
        "lookback": _days(args.lookback_days, "--lookback-days"),
    }
    with Omni(args.store, config=args.config) as omni:
        report = omni.report(args.html, args.csv, **options)
    if not args.quiet:
        print(report.text(), end="")
    for label, target in (("HTML", args.html), ("CSV", args.csv)):
        if target:
            print(f"{label} written to {target}")
    return 0
