"""`omnisdk doctor`: what is wrong with a deployment, in plain words, before the first send fails.

It reads the config (shape and every provider's keys), opens the store without migrating it (and
compares its schema with the migrations this omnisdk ships), asks each provider whether its
credentials work where the API has a harmless call for it (`Provider.check_credentials`), and looks
at the webhook URLs it gives providers and the `[[event_webhooks]]` it pushes events to (https, a
name that resolves)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs

from .._clock import SystemClock
from .._config import Config, load_config
from .._errors import OmniError
from .._plugins import PluginHost
from ..delivery import ProviderPool
from ..events._webhooks import endpoints_from_config
from ..store import DEFAULT_URL, open_store
from ._probes import latest_migration

__all__ = ["Finding", "diagnose"]

Level = Literal["ok", "warning", "error"]
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@attrs.frozen
class Finding:
    level: Level
    area: str
    message: str


def diagnose(store: str | None, config: str | None, *, resolve: bool = True) -> list[Finding]:
    """Every check's finding, in order: config, store, providers, webhooks."""
    findings: list[Finding] = []
    loaded = _config(config, findings)
    findings.extend(_store(store))
    if loaded is not None:
        findings.extend(_providers(loaded))
        findings.extend(_webhooks(loaded, resolve=resolve))
    return findings


def _config(path: str | None, findings: list[Finding]) -> Config | None:
    source = path if path is not None else ("omnisdk.toml" if Path("omnisdk.toml").exists() else None)
    try:
        loaded = load_config(source)
    except OmniError as exc:
        findings.append(Finding("error", "config", f"the configuration is not valid: {exc}"))
        return None
    findings.append(Finding("ok", "config", f"{source or 'no config file (defaults)'} parses and validates"))
    return loaded


def _store(url: str | None) -> list[Finding]:
    url = url or DEFAULT_URL
    if url.startswith("sqlite:///") and ":memory:" not in url and not Path(url.removeprefix("sqlite:///")).exists():
        return [Finding("warning", "store", f"no store at {url} yet: the first client to open it creates it")]
    try:
        store = open_store(url, migrate=False)
    except Exception as exc:
        return [Finding("error", "store", f"the store at {_redacted(url)} cannot be opened: {type(exc).__name__}")]
    try:
        version = store.schema_version()
    except Exception as exc:
        return [Finding("error", "store", f"the store at {store.redacted_url} does not answer: {type(exc).__name__}")]
    finally:
        store.close()
    latest = latest_migration()
    if version < latest:
        return [Finding("error", "store",
                        f"the store's schema is at version {version} but this omnisdk needs {latest}: open it once "
                        "with this version (Omni(...), `omnisdk worker`) to apply the missing migrations")]
    if version > latest:
        return [Finding("error", "store", f"the store's schema (version {version}) is newer than this omnisdk "
                                          f"(version {latest}): upgrade omnisdk before pointing it at this store")]
    return [Finding("ok", "store", f"{store.redacted_url} answers; schema version {version} is current")]


def _redacted(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}" if "@" in rest else url


def _providers(config: Config) -> list[Finding]:
    plugins = PluginHost()
    findings = [Finding("error", "plugins", f"a plugin did not load: {err}") for err in plugins.errors]
    try:
        pool = ProviderPool(config, plugins.providers, SystemClock())
    except OmniError as exc:
        return [*findings, Finding("error", "providers", f"a provider is misconfigured: {exc}")]

    async def check() -> list[Finding]:
        found: list[Finding] = []
        try:
            for configured in pool:
                where = f"{configured.key}"
                base = getattr(configured.config, "base_url", None)
                if isinstance(base, str) and _plain_http(base):
                    found.append(Finding("error", "providers", f"{where}: base_url {base} is not https, so the "
                                                               "credentials would cross the network in clear"))
                problems = await pool.instance(configured).check_credentials()
                found.extend(Finding("error", "providers", f"{where}: {p}") for p in problems)
                if not problems:
                    found.append(Finding("ok", "providers", f"{where}: credentials present and well-formed"))
        finally:
            await pool.aclose()
        return found

    return [*findings, *asyncio.run(check())]


def _plain_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") not in _LOCAL_HOSTS


def _webhooks(config: Config, *, resolve: bool) -> list[Finding]:
    urls: dict[str, Any] = {"webhooks.public_url": config.webhooks.get("public_url")}
    for channel, section in config.channels.items():
        for key in ("status_callback", "webhook_url"):
            urls[f"channels.{channel}.{key}"] = section.settings.get(key)
    findings = []
    try:  # the endpoints the event stream is pushed to: the same rules, and their own shape errors
        for endpoint in endpoints_from_config(config.raw.get("event_webhooks")):
            urls[f"event_webhooks.{endpoint.name}"] = endpoint.url
    except OmniError as exc:
        findings.append(Finding("error", "webhooks", str(exc)))
    for where, url in urls.items():
        if not url:
            continue
        url = _redacted(str(url))
        parts = urlsplit(url)
        if parts.scheme != "https" and (parts.hostname or "") not in _LOCAL_HOSTS:
            why = ("the events (customer data) and their signatures would travel in clear"
                   if where.startswith("event_webhooks") else
                   "providers refuse to call plain http, and signatures would travel in clear")
            findings.append(Finding("error", "webhooks", f"{where} = {url} is not https: {why}"))
            continue
        if resolve and parts.hostname and parts.hostname not in _LOCAL_HOSTS:
            try:
                socket.getaddrinfo(parts.hostname, parts.port or 443)
            except OSError:
                findings.append(Finding("error", "webhooks", f"{where}: the host {parts.hostname} does not resolve, "
                                                             "so providers cannot reach it"))
                continue
        findings.append(Finding("ok", "webhooks", f"{where} = {url}"))
    return findings
