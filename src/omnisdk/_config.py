"""Configuration from a dict or an `omnisdk.toml`, with `${ENV}` secrets resolved at load time."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ._errors import ConfigError
from ._secrets import masked, remember, witness
from ._touchpoints import MESSAGE_CHANNELS

__all__ = ["ChannelConfig", "Config", "load_config"]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
KNOWN_SECTIONS = ("channels", "policies", "brand", "identity", "templates", "logging", "webhooks", "delivery", "store",
                  "journeys", "analytics", "limits", "experiments", "predictions", "privacy", "retention",
                  "recommendations", "catalog", "topics", "preferences", "consent",
                  "event_webhooks", "telemetry")
#: The core's own secrets (a provider's are declared on its `Config` with `omnisdk.secret()`).
CORE_SECRETS = (("webhooks", "signing_key"), ("privacy", "suppression_key"))


@attrs.frozen(kw_only=True)
class ChannelConfig:
    """`[channels.<kind>]`: the provider, its own keys, and an optional fallback provider."""

    channel: str
    provider: str
    settings: Mapping[str, Any]
    fallback_provider: str | None = None
    fallback_settings: Mapping[str, Any] = attrs.field(factory=dict)

    def __repr__(self) -> str:  # the provider's secrets are masked once its Config has declared them
        return (f"ChannelConfig(channel={self.channel!r}, provider={self.provider!r}, "
                f"settings={masked(self.settings)!r}, fallback_provider={self.fallback_provider!r}, "
                f"fallback_settings={masked(self.fallback_settings)!r})")


@attrs.frozen(kw_only=True)
class Config:
    channels: Mapping[str, ChannelConfig] = attrs.field(factory=dict)
    policies: Mapping[str, Any] = attrs.field(factory=dict)
    brand: Mapping[str, Any] = attrs.field(factory=dict)
    identity: Mapping[str, Any] = attrs.field(factory=dict)
    templates: Mapping[str, Any] = attrs.field(factory=dict)
    webhooks: Mapping[str, Any] = attrs.field(factory=dict)
    delivery: Mapping[str, Any] = attrs.field(factory=dict)
    #: `[limits]`: sizes and ranges of accepted input (see `omnisdk.Limits`).
    limits: Mapping[str, Any] = attrs.field(factory=dict)
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    def __repr__(self) -> str:
        sections = ", ".join(f"{name}={masked(getattr(self, name))!r}" for name in (
            "policies", "brand", "identity", "templates", "webhooks", "delivery", "limits"))
        return f"Config(channels={self.channels!r}, {sections})"

    @property
    def default_region(self) -> str | None:
        region = self.identity.get("default_region")
        return str(region) if region else None


def _expand(value: Any, path: str) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match[1], match[2]
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set", field=path)

        return _ENV.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: _expand(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


#: Folder settings that, in a config file, are relative to that file (not to the working directory).
_FOLDERS = (("templates", "folder"), ("brand", "partials_folder"))


def _anchor_folders(data: Mapping[str, Any], base: Path) -> dict[str, Any]:
    anchored = dict(data)
    for section, key in _FOLDERS:
        table = anchored.get(section)
        if isinstance(table, Mapping) and isinstance(table.get(key), str) and not Path(table[key]).is_absolute():
            anchored[section] = {**table, key: str(base / table[key])}
    return anchored


def load_config(source: Mapping[str, Any] | str | Path | None) -> Config:
    """Validate the shape of a config; provider keys are validated by the provider's `Config` class."""
    if source is None:
        data: Mapping[str, Any] = {}
    elif isinstance(source, str | Path):
        path = Path(source)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    elif isinstance(source, Mapping):
        data = source
    else:
        raise ConfigError(f"config must be a dict or a path to omnisdk.toml, not {type(source).__name__}")
    data = _expand(dict(data), "")
    if isinstance(source, str | Path):
        data = _anchor_folders(data, Path(source).resolve().parent)
    for key in data:
        if key not in KNOWN_SECTIONS:
            raise ConfigError(f"unknown section; expected one of {', '.join(KNOWN_SECTIONS)}", field=str(key))
    for key in ("policies", "brand", "identity", "templates", "webhooks", "delivery", "limits"):
        if key in data and not isinstance(data[key], Mapping):
            raise ConfigError("must be a table", field=key)
    channels = {}
    raw_channels = data.get("channels", {})
    if not isinstance(raw_channels, Mapping):
        raise ConfigError("must be a table of channels", field="channels")
    for channel, section in raw_channels.items():
        where = f"channels.{channel}"
        if channel not in MESSAGE_CHANNELS:
            raise ConfigError(f"unknown channel; expected one of {', '.join(MESSAGE_CHANNELS)}", field=where)
        if not isinstance(section, Mapping):
            raise ConfigError("must be a table", field=where)
        provider = section.get("provider")
        if not isinstance(provider, str) or not provider:
            raise ConfigError("missing the provider name (e.g. provider = \"memory\")", field=f"{where}.provider")
        fallback = section.get("fallback_provider")
        if fallback is not None and not isinstance(fallback, str):
            raise ConfigError("must be a provider name", field=f"{where}.fallback_provider")
        fallback_settings = section.get(fallback, {}) if fallback else {}
        if not isinstance(fallback_settings, Mapping):
            raise ConfigError("must be a table", field=f"{where}.{fallback}")
        settings = {k: v for k, v in section.items() if k not in ("provider", "fallback_provider", fallback)}
        channels[channel] = ChannelConfig(
            channel=channel,
            provider=provider,
            settings=settings,
            fallback_provider=fallback,
            fallback_settings=dict(fallback_settings),
        )
    for section, key in CORE_SECRETS:
        table = data.get(section)
        if isinstance(table, Mapping):
            remember([table.get(key)])
    config = Config(
        channels=channels,
        policies=data.get("policies", {}),
        brand=data.get("brand", {}),
        identity=data.get("identity", {}),
        templates=data.get("templates", {}),
        webhooks=data.get("webhooks", {}),
        delivery=data.get("delivery", {}),
        limits=data.get("limits", {}),
        raw=data,
    )
    witness("config", config)
    return config
