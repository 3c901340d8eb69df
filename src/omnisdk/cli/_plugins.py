"""`omnisdk plugins`: which plugins loaded, which providers they bring, and what failed."""

from __future__ import annotations

import argparse

from ._command import Subparsers

__all__ = ["add_parser"]


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser("plugins", help="list installed plugins, providers and channels")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._plugins import PluginHost

    host = PluginHost()
    print("Plugins:")
    for plugin in host.loaded:
        version = f" {plugin.version}" if plugin.version else ""
        print(f"  {plugin.name}{version} ({plugin.source})")
    print("Providers:")
    for channel, name, cls, owner in host.providers.items():
        print(f"  {channel:<12} {name:<12} {cls.__module__}.{cls.__qualname__}  [{owner}]")
    channels = sorted({c for c, _, _, _ in host.providers.items()})
    print("Channels: " + ", ".join(channels))
    for error in host.errors:
        print(f"  FAILED: {error}")
    return 1 if host.errors else 0
