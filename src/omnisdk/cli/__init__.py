"""The `omnisdk` command. Each subcommand lives in its own module with `add_parser(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

#: Modules providing subcommands; each defines `add_parser(subparsers)` that sets `func`.
COMMAND_MODULES = (
    "omnisdk.cli._demo",
    "omnisdk.cli._journeys",
    "omnisdk.cli._plugins",
    "omnisdk.cli._quarantine",
    "omnisdk.cli._render",
    "omnisdk.cli._report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnisdk", description="Embeddable omnichannel marketing.")
    parser.add_argument("--store", help="store URL (default: sqlite:///.omnisdk/omnisdk.db)")
    parser.add_argument("--config", help="path to omnisdk.toml")
    parser.add_argument("--json-logs", action="store_true", help="log JSON lines instead of pretty text")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .._errors import OmniError
    from .._logging import configure_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(json=True if args.json_logs else None, level="warning")
    try:
        return int(args.func(args) or 0)
    except OmniError as exc:
        print(f"omnisdk: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
