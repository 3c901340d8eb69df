"""What a subcommand module offers the `omnisdk` command: `add_parser(subparsers)`, which sets `func`."""

from __future__ import annotations

import argparse
from typing import TypeAlias

__all__ = ["Subparsers"]

#: The `add_subparsers()` object each module adds its parsers to.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
