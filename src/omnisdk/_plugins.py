"""One plugin manager per client: built-in plugins, entry points (group "omnisdk"), and explicit ones.

`OMNISDK_LOAD_PLUGINS=omnisdk-sms,acme` restricts which entry points load (empty: none).
A plugin that fails to import or register is reported and skipped; the others still load.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import attrs
import pluggy

from . import hookspecs
from ._errors import PluginError
from ._identifiers import IdentityKind, IdentityKinds
from ._logging import get_logger
from ._touchpoints import MESSAGE_CHANNELS
from .providers import Provider

__all__ = ["BUILTIN_PLUGINS", "PluginHost", "ProviderRegistry"]

log = get_logger("omnisdk.plugins")
BUILTIN_PLUGINS = ("omnisdk.default_plugins.memory",)


class ProviderRegistry:
    """Provider classes by (channel, name), as plugins registered them."""

    def __init__(self) -> None:
        self._classes: dict[tuple[str, str], type[Provider]] = {}
        self._owners: dict[tuple[str, str], str] = {}

    def register(self, cls: Any, *, plugin: str) -> None:
        if not isinstance(cls, type) or not issubclass(cls, Provider):
            raise PluginError(f"register() takes a Provider subclass, got {cls!r}", plugin=plugin)
        for attr in ("name", "channel", "Config"):
            if not hasattr(cls, attr):
                raise PluginError(f"provider {cls.__name__} has no {attr!r}", plugin=plugin)
        if cls.channel not in MESSAGE_CHANNELS:
            raise PluginError(
                f"provider {cls.__name__}: channel {cls.channel!r} is not one of {', '.join(MESSAGE_CHANNELS)}",
                plugin=plugin,
            )
        if not attrs.has(cls.Config):
            raise PluginError(f"provider {cls.__name__}: Config must be an attrs class", plugin=plugin)
        key = (cls.channel, cls.name)
        if key in self._classes and self._classes[key] is not cls:
            log.warning("provider_replaced", channel=cls.channel, provider=cls.name, by=plugin, was=self._owners[key])
        self._classes[key] = cls
        self._owners[key] = plugin

    def get(self, channel: str, name: str) -> type[Provider] | None:
        return self._classes.get((channel, name))

    def names(self, channel: str) -> list[str]:
        return sorted(n for c, n in self._classes if c == channel)

    def items(self) -> list[tuple[str, str, type[Provider], str]]:
        return [(c, n, cls, self._owners[(c, n)]) for (c, n), cls in sorted(self._classes.items())]


@attrs.define
class LoadedPlugin:
    name: str
    source: str  # "builtin", "entry point", "explicit"
    version: str | None = None


class PluginHost:
    def __init__(self, extra: Iterable[Any] = (), *, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager("omnisdk")
        self.pm.add_hookspecs(hookspecs)
        self.loaded: list[LoadedPlugin] = []
        self.errors: list[PluginError] = []
        #: Extra hook arguments plugins may ask for by name (the client sets `omni`).
        self.context: dict[str, Any] = {}
        self._callers: dict[str, list[tuple[str, Any]]] = {}
        for module_name in BUILTIN_PLUGINS:
            self._add(importlib.import_module(module_name), module_name, "builtin")
        if load_entry_points:
            for ep in self._entry_points():
                try:
                    plugin = ep.load()
                except Exception as exc:
                    self._fail(PluginError(f"failed to import {ep.value}: {type(exc).__name__}: {exc}", plugin=ep.name))
                    continue
                version = ep.dist.version if ep.dist is not None else None
                self._add(plugin, ep.name, "entry point", version)
        for plugin in extra:
            self._add(plugin, getattr(plugin, "__name__", type(plugin).__name__), "explicit")
        self.pm.check_pending()
        self.providers = ProviderRegistry()
        self._collect_providers()
        #: The identifier kinds this client accepts: the core's and the plugins' own.
        self.identity_kinds = IdentityKinds()
        self._collect_identity_kinds()

    @staticmethod
    def _entry_points() -> list[EntryPoint]:
        found = list(entry_points(group="omnisdk"))
        allowed = os.environ.get("OMNISDK_LOAD_PLUGINS")
        if allowed is not None:
            names = {n.strip() for n in allowed.split(",") if n.strip()}
            found = [ep for ep in found if ep.name in names or (ep.dist is not None and ep.dist.name in names)]
        return found

    def _add(self, plugin: Any, name: str, source: str, version: str | None = None) -> None:
        if self.pm.is_registered(plugin) or self.pm.has_plugin(name):
            return
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self._fail(PluginError(f"cannot register: {exc}", plugin=name))
            return
        self.loaded.append(LoadedPlugin(name=name, source=source, version=version))

    def _fail(self, error: PluginError) -> None:
        self.errors.append(error)
        log.error("plugin_failed", error=str(error))

    def _call_each(self, hook_name: str, kwargs_for: Callable[[str], Mapping[str, Any]]) -> None:
        """Call `hook_name` through pluggy once per plugin implementing it (with the arguments
        `kwargs_for(plugin name)` gives), so one plugin's failure is reported and cannot hide the others'."""
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()
        for impl in impls:
            caller = self.pm.subset_hook_caller(hook_name, remove_plugins=[o.plugin for o in impls if o is not impl])
            try:
                caller(**kwargs_for(impl.plugin_name))
            except PluginError as exc:
                self._fail(exc)
            except Exception as exc:  # HookCallError too: the plugin asks for an argument the hook lacks
                self._fail(PluginError(f"{hook_name} failed: {type(exc).__name__}: {exc}", plugin=impl.plugin_name))

    def _collect_providers(self) -> None:
        def kwargs_for(plugin: str) -> dict[str, Any]:
            return {"register": lambda cls: self.providers.register(cls, plugin=plugin)}

        self._call_each("register_providers", kwargs_for)

    def _collect_identity_kinds(self) -> None:
        def kwargs_for(plugin: str) -> dict[str, Any]:
            def register(kind: str, normalize: Any = None, *, unique: bool = False, device: bool = False,
                         addresses: str | None = None) -> None:
                try:
                    self.identity_kinds.add(IdentityKind(kind, normalize, unique=bool(unique), device=bool(device),
                                                         plugin=plugin, addresses=addresses))
                except ValueError as exc:
                    raise PluginError(str(exc), plugin=plugin) from None

            return {"register": register}

        self._call_each("register_identity_kinds", kwargs_for)

    def collect(self, hook_name: str) -> list[tuple[Any, ...]]:
        """Everything plugins pass to `register(...)` in a `register_*` hook, as argument tuples.

        Each implementation gets the arguments it names, from `register` and `self.context`
        (e.g. `omni`), as pluggy gives them: a hook can grow arguments without breaking plugins."""
        items: list[tuple[Any, ...]] = []
        self._call_each(hook_name, lambda _plugin: {"register": lambda *args: items.append(args), **self.context})
        return items

    def callers(self, hook_name: str) -> list[tuple[str, Any]]:
        """(plugin name, a pluggy caller of that plugin's implementation alone) for each plugin that
        implements `hook_name`, so a notification can reach every plugin whichever of them fails."""
        found = self._callers.get(hook_name)
        if found is None:
            impls = getattr(self.pm.hook, hook_name).get_hookimpls()
            found = self._callers[hook_name] = [
                (impl.plugin_name, self.pm.subset_hook_caller(
                    hook_name, remove_plugins=[o.plugin for o in impls if o is not impl]))
                for impl in impls
            ]
        return found

    def has_impls(self, hook_name: str) -> bool:
        return bool(getattr(self.pm.hook, hook_name).get_hookimpls())
