"""The shop's omnisdk client: settings from omnisdk.toml, templates from templates/, our journeys.

The web app (app.py) and the separate worker (worker.py) build it the same way, so a worker
process renders the same templates and runs the same journeys as the app that queued them.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import omnisdk

from .journeys import JOURNEYS

__all__ = ["SHOP_DIR", "create_omni", "load_config"]

SHOP_DIR = Path(__file__).resolve().parent.parent
DEFAULT_STORE = "sqlite:///shop.db"


def load_config(path: str | Path | None = None, channels: str | Path | None = None) -> dict[str, Any]:
    """omnisdk.toml as a dict, with its templates folder found next to the file rather than in the
    current directory, and `[channels]` taken from `channels` (or $SHOP_CHANNELS) when given.
    omnisdk fills in the ${ENV} values when the client is created."""
    path = Path(path or os.environ.get("SHOP_OMNISDK_CONFIG") or SHOP_DIR / "omnisdk.toml")
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    templates = config.setdefault("templates", {})
    templates["folder"] = str(path.parent / templates.get("folder", "templates"))
    channels = channels or os.environ.get("SHOP_CHANNELS")
    if channels:
        config["channels"] = tomllib.loads(Path(channels).read_text(encoding="utf-8"))["channels"]
    return config


def create_omni(
    *,
    config: dict[str, Any] | None = None,
    store: str | None = None,
    clock: omnisdk.SystemClock | omnisdk.VirtualClock | None = None,
) -> omnisdk.AsyncOmni:
    """An `AsyncOmni`, because the shop is an asyncio app: its calls run the store work in a
    thread, so a slow disk never stalls the requests the event loop is serving."""
    omni = omnisdk.AsyncOmni(
        store or os.environ.get("SHOP_OMNISDK_STORE", DEFAULT_STORE),
        config=config if config is not None else load_config(),
        clock=clock,
    )
    omni.register(*JOURNEYS)
    return omni
