"""`omnisdk export|forget|retention`: the customer's right of access and erasure, and retention (docs/privacy.md)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from .._errors import ValidationError
from .._omni import Omni
from ._command import Subparsers

__all__ = ["add_parser"]


def add_parser(sub: Subparsers) -> None:
    export = sub.add_parser("export", help="everything held about a customer, as JSON")
    export.add_argument("customer", help="the customer id")
    export.add_argument("-o", "--output", help="write to this file (default: standard output)")
    export.set_defaults(func=export_customer)
    forget = sub.add_parser("forget", help="erase a customer (keeps a hashed suppression and the aggregates)")
    forget.add_argument("customer", help="the customer id")
    forget.add_argument("--by", required=True, help="who asked for it (recorded)")
    forget.add_argument("--reason", default="", help="why (recorded)")
    forget.add_argument("--yes", action="store_true", help="confirm: the erasure cannot be undone")
    forget.set_defaults(func=forget_customer)
    retention = sub.add_parser("retention", help="retention rules: period, rows past it, last run")
    retention.add_argument("--apply", action="store_true", help="run one pass now")
    retention.set_defaults(func=show_retention)


def export_customer(args: argparse.Namespace) -> int:
    with Omni(args.store, config=args.config) as omni:
        document = omni.export(args.customer)
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    return 0


def forget_customer(args: argparse.Namespace) -> int:
    if not args.yes:
        raise ValidationError("an erasure cannot be undone: add --yes to confirm", field="yes")
    with Omni(args.store, config=args.config) as omni:
        request = omni.forget(args.customer, requested_by=args.by, reason=args.reason)
    print(f"request {request.id}\t{request.status}")
    for table, count in sorted(request.removed.items()):
        print(f"{table}\t{count}")
    for plugin, error in sorted(request.plugin_errors.items()):
        print(f"plugin {plugin} failed (retried by the worker): {error}")
    return 0


def _when(at: float | None) -> str:
    return "never" if at is None else datetime.fromtimestamp(at, UTC).isoformat()


def show_retention(args: argparse.Namespace) -> int:
    with Omni(args.store, config=args.config) as omni:
        if args.apply:
            print(f"removed {omni._core.retention.run()}")
        rules = omni.retention()
    if not rules:
        print("no retention rules: every row is kept (configure [retention])")
        return 0
    print("rule\tkept for (days)\teligible now\tlast run\tremoved so far")
    for r in rules:
        print(f"{r.rule}\t{r.period_seconds / 86400:g}\t{r.eligible}\t{_when(r.last_run_at)}\t{r.removed}")
    return 0
