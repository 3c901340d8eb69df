"""`omnisdk doctor`: check the config, the store's schema, provider credentials and webhook URLs."""

from __future__ import annotations

import argparse

from ._command import Subparsers

__all__ = ["add_parser"]

_MARK = {"ok": "ok     ", "warning": "warning", "error": "PROBLEM"}


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser("doctor", help="say what is wrong with the config, store, credentials and webhooks")
    parser.add_argument("--no-resolve", action="store_true", help="do not look webhook host names up in DNS")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..health import diagnose

    findings = diagnose(args.store, args.config, resolve=not args.no_resolve)
    for finding in findings:
        print(f"{_MARK[finding.level]}  {finding.area}: {finding.message}")
    problems = sum(f.level == "error" for f in findings)
    print(f"\n{problems} problem{'s' if problems != 1 else ''} found." if problems else "\nNo problems found.")
    return 1 if problems else 0
