"""`omnisdk ui`: the operator's dashboard over the store, on http://127.0.0.1:8765 by default."""

from __future__ import annotations

import argparse
import os

from .._errors import ConfigError
from ._command import Subparsers

__all__ = ["add_parser"]


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser("ui", help="serve the dashboard: customers, journeys, outbox, providers, experiments")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (anything but loopback needs --token)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--allow-actions", action="store_true",
                        help="show retry/cancel and repair/drop buttons that change the store")
    parser.add_argument("--token", default=None,
                        help="require this token (header or login form); default: $OMNISDK_UI_TOKEN")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._omni import Omni
    from ..ui import check_exposure, create_dashboard

    token = args.token or os.environ.get("OMNISDK_UI_TOKEN") or None
    check_exposure(args.host, token)
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("the dashboard is served by uvicorn: pip install 'omnisdk[ui]'") from None
    with Omni(args.store, config=args.config) as omni:
        app = create_dashboard(omni, allow_actions=args.allow_actions, token=token)
        mode = "actions on" if args.allow_actions else "read-only"
        print(f"omnisdk dashboard ({mode}) on http://{args.host}:{args.port}/ over {omni.store.redacted_url}")
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="off")
    return 0
