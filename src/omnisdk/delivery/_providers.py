"""Provider instances built from `[channels.<kind>]`, sharing one HTTP client per Core.

A provider's keys are checked against its attrs `Config` when the client starts, so a typo in
`channels.sms.acount_sid` fails at once with the key's full path, not at the first send.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import httpx

from .._clock import Clock
from .._config import Config
from .._errors import ConfigError
from .._plugins import ProviderRegistry
from .._secrets import remember_declared, witness
from ..providers import Capabilities, Provider
from ._aiohttp import AiohttpTransport
from ._client import ProviderClient
from ._transport import ProviderTransport

__all__ = ["CORE_CHANNEL_KEYS", "HTTP_TRANSPORTS", "ConfiguredProvider", "ProviderPool", "build_config",
           "new_http_client"]

#: Keys of `[channels.<kind>]` the core reads itself (not passed to the provider's `Config`).
CORE_CHANNEL_KEYS = ("rate_limit", "max_concurrency")

# Sized for throughput: every connection kept alive, so concurrent sends never queue on setup.
HTTP_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=256, keepalive_expiry=30.0)


#: `[delivery] http_transport`: our HTTP/1.1 pool (the default, see docs/operations.md) or aiohttp's.
HTTP_TRANSPORTS: dict[str, type[httpx.AsyncBaseTransport]] = {"pool": ProviderTransport, "aiohttp": AiohttpTransport}


def new_http_client(timeout: float = 15.0, transport: str = "pool") -> httpx.AsyncClient:
    """The client every provider of one Core shares: httpx's API (what plugins use), lean per request
    (`ProviderClient`), over a lean HTTP/1.1 pool (`ProviderTransport`) or aiohttp (`AiohttpTransport`),
    with errors that tell a request that never left from one that may have arrived."""
    return ProviderClient(HTTP_TRANSPORTS[transport](HTTP_LIMITS),  # type: ignore[call-arg]
                          timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))


def _field_names(field: attrs.Attribute[Any]) -> set[str]:
    """A field answers to its name, its alias, and its name without a trailing `_` (`from_` ← `from`)."""
    names = {field.name, field.name.rstrip("_")}
    alias = getattr(field, "alias", None)
    if alias:
        names.add(alias)
    return names


def build_config(cls: type[Provider], settings: Mapping[str, Any], path: str) -> Any:
    """The provider's attrs `Config` from a settings table; unknown or missing keys name their path."""
    fields = attrs.fields(cls.Config)
    by_key: dict[str, attrs.Attribute[Any]] = {}
    for field in fields:
        for name in _field_names(field):
            by_key[name] = field
    kwargs: dict[str, Any] = {}
    for key, value in settings.items():
        if key in CORE_CHANNEL_KEYS:
            continue
        field = by_key.get(key)
        if field is None:
            known = ", ".join(sorted(f.name.rstrip("_") for f in fields)) or "none"
            raise ConfigError(f"unknown key for provider {cls.name!r} (known: {known})", field=f"{path}.{key}")
        kwargs[getattr(field, "alias", None) or field.name] = value
    remember_declared(cls.Config, kwargs)  # before anything can fail: the error's text masks them
    for field in fields:
        if field.default is attrs.NOTHING and (getattr(field, "alias", None) or field.name) not in kwargs:
            raise ConfigError(f"required by provider {cls.name!r}", field=f"{path}.{field.name.rstrip('_')}")
    try:
        config = cls.Config(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid value for provider {cls.name!r}: {exc}", field=path) from None
    witness("provider config", config)
    return config


@attrs.define(eq=False)
class ConfiguredProvider:
    """One provider as configured for one channel, with the core's limits for it."""

    channel: str
    name: str
    cls: type[Provider]
    config: Any
    rate_limit: float | None
    max_concurrency: int
    instance: Provider | None = None

    @property
    def key(self) -> str:
        return f"{self.channel}/{self.name}"

    @property
    def capabilities(self) -> Capabilities:
        return self.cls.capabilities


def _configure(
    registry: ProviderRegistry, channel: str, name: str, settings: Mapping[str, Any], path: str
) -> ConfiguredProvider:
    cls = registry.get(channel, name)
    if cls is None:
        installed = ", ".join(registry.names(channel)) or "none"
        raise ConfigError(
            f"no {channel} provider named {name!r} is installed (installed: {installed})", field=f"{path}.provider"
        )
    caps = cls.capabilities
    rate = settings.get("rate_limit", caps.rate_limit)
    concurrency = settings.get("max_concurrency", caps.max_concurrency)
    if rate is not None and (not isinstance(rate, int | float) or isinstance(rate, bool) or rate <= 0):
        raise ConfigError("expected messages per second (a positive number)", field=f"{path}.rate_limit")
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ConfigError("expected a positive integer", field=f"{path}.max_concurrency")
    configured = ConfiguredProvider(
        channel=channel,
        name=name,
        cls=cls,
        config=build_config(cls, settings, path),
        rate_limit=float(rate) if rate is not None else None,
        max_concurrency=concurrency,
    )
    witness("configured provider", configured)
    return configured


class ProviderPool:
    """Primary and fallback provider per channel, plus webhook-only sources, created on first use."""

    def __init__(
        self, config: Config, registry: ProviderRegistry, clock: Clock, *, http_timeout: float = 15.0,
        http_transport: str = "pool",
    ) -> None:
        self.clock = clock
        self.http_timeout = http_timeout
        self.http_transport = http_transport
        self.primary: dict[str, ConfiguredProvider] = {}
        self.fallback: dict[str, ConfiguredProvider] = {}
        self._http: httpx.AsyncClient | None = None
        for channel, section in config.channels.items():
            path = f"channels.{channel}"
            self.primary[channel] = _configure(registry, channel, section.provider, section.settings, path)
            if section.fallback_provider:
                self.fallback[channel] = _configure(
                    registry, channel, section.fallback_provider, section.fallback_settings,
                    f"{path}.{section.fallback_provider}",
                )
        self.sources: dict[str, ConfiguredProvider] = {}
        sources = config.webhooks.get("sources", {})
        if not isinstance(sources, Mapping):
            raise ConfigError("must be a table of webhook-only providers", field="webhooks.sources")
        for name, section in sources.items():
            path = f"webhooks.sources.{name}"
            if not isinstance(section, Mapping) or not isinstance(section.get("channel"), str):
                raise ConfigError("needs channel = \"<kind>\" and the provider's keys", field=path)
            settings = {k: v for k, v in section.items() if k != "channel"}
            self.sources[name] = _configure(registry, section["channel"], name, settings, path)

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = new_http_client(self.http_timeout, self.http_transport)
        return self._http

    def __iter__(self) -> Iterator[ConfiguredProvider]:
        yield from self.primary.values()
        yield from self.fallback.values()
        yield from self.sources.values()

    def instance(self, configured: ConfiguredProvider) -> Provider:
        if configured.instance is None:
            configured.instance = configured.cls(configured.config, http=self.http, clock=self.clock)
            witness("provider", configured.instance)
        return configured.instance

    def by_name(self, name: str) -> ConfiguredProvider | None:
        """The provider configured under `name` on any channel (webhooks name the provider only)."""
        for configured in self:
            if configured.name == name:
                return configured
        return None

    def find(self, channel: str, name: str) -> ConfiguredProvider | None:
        for configured in self:
            if configured.channel == channel and configured.name == name:
                return configured
        return None

    async def aclose(self) -> None:
        for configured in self:
            if configured.instance is not None:
                await configured.instance.aclose()
                configured.instance = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
