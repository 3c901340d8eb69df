"""The `omnisdk` command. Each subcommand lives in its own module with `add_parser(subparsers)`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import _catalog, _demo, _doctor, _experiments, _journeys, _plugins, _privacy, _quarantine, _render, _report, _ui

__all__ = ["main"]

#: The subcommands, imported (not named by strings), so the import-layer checks see them; each module
#: defines `add_parser(subparsers)`, which sets `func`.
COMMAND_MODULES = (_catalog, _demo, _doctor, _experiments, _journeys, _plugins, _privacy, _quarantine, _render, _report,
                   _ui)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnisdk", description="Embeddable omnichannel marketing.")
    parser.add_argument("--store", help="store URL (default: sqlite:///.omnisdk/omnisdk.db)")
    parser.add_argument("--config", help="path to omnisdk.toml")
    parser.add_argument("--json-logs", action="store_true", help="log JSON lines instead of pretty text")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parser(sub)
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
