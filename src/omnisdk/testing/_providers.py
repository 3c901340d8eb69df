"""`provider_config`: a provider's `Config` built the way the core builds it, for plugin tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..delivery._providers import build_config
from ..providers import Provider

__all__ = ["provider_config"]


def provider_config(provider: type[Provider], settings: Mapping[str, Any], path: str | None = None) -> Any:
    """The `provider.Config` for a `[channels.<kind>]` settings table, checked as the core checks it:
    an unknown or missing key is a `ConfigError` naming `path` (default `channels.<channel>`), and the
    secret fields are masked in logs and errors from here on."""
    return build_config(provider, settings, f"channels.{provider.channel}" if path is None else path)
