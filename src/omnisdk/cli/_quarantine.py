"""`omnisdk quarantine list|repair|drop`: rows the store holds but could not read (docs/security.md)."""

from __future__ import annotations

import argparse
import json

from .._errors import ValidationError
from .._omni import Omni
from ._command import Subparsers

__all__ = ["add_parser"]


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser("quarantine", help="rows that could not be read: list, repair or drop them")
    commands = parser.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)
    listing = commands.add_parser("list", help="quarantined rows, oldest first")
    listing.add_argument("--table", help="only rows from this table")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="one JSON object a line, with the stored values")
    listing.set_defaults(func=list_rows)
    repair = commands.add_parser("repair", help="put rows back once they decode (epoch ms, ISO text fixed)")
    repair.add_argument("ids", nargs="*", type=int, help="quarantine ids (default: every row, or --table's)")
    repair.add_argument("--table", help="only rows from this table")
    repair.set_defaults(func=repair_rows)
    drop = commands.add_parser("drop", help="delete quarantined rows for good")
    drop.add_argument("ids", nargs="*", type=int, help="quarantine ids")
    drop.add_argument("--table", help="every quarantined row of this table (needs --yes)")
    drop.add_argument("--yes", action="store_true", help="confirm dropping a whole table's rows")
    drop.set_defaults(func=drop_rows)


def list_rows(args: argparse.Namespace) -> int:
    with Omni(args.store, config=args.config) as omni:
        rows = omni.quarantine(table=args.table, limit=args.limit)
    if args.json:
        for r in rows:
            print(json.dumps({"id": r.id, "table": r.table, "key": dict(r.key), "values": dict(r.values),
                              "error_type": r.error_type, "error": r.error,
                              "quarantined_at": r.quarantined_at.isoformat(), "repair_error": r.repair_error},
                             default=repr))
        return 0
    print("id\ttable\tkey\terror\tquarantined_at\trepair_error")
    for r in rows:
        key = ",".join(f"{k}={v}" for k, v in r.key.items())
        print(f"{r.id}\t{r.table}\t{key}\t{r.error_type}: {r.error}\t{r.quarantined_at.isoformat()}\t"
              f"{r.repair_error or ''}")
    return 0


def repair_rows(args: argparse.Namespace) -> int:
    with Omni(args.store, config=args.config) as omni:
        result = omni.repair_quarantined(args.ids or None, table=args.table)
    for qid in result.repaired:
        print(f"{qid}\trepaired")
    for qid, reason in result.failed.items():
        print(f"{qid}\tkept\t{reason}")
    return 1 if result.failed else 0


def drop_rows(args: argparse.Namespace) -> int:
    if not args.ids and not (args.table and args.yes):
        raise ValidationError("give the ids to drop, or --table with --yes", field="ids")
    with Omni(args.store, config=args.config) as omni:
        dropped = omni.drop_quarantined(args.ids or None, table=args.table)
    print(f"dropped {dropped}")
    return 0
