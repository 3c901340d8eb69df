"""Plugin discovery through real entry points: a broken plugin is reported, the others load."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnisdk import Omni, PluginError
from omnisdk._plugins import PluginHost

GOOD = '''
import attrs, omnisdk

class FaxLikeSMS(omnisdk.Provider):
    name = "goodsms"
    channel = "sms"

    @attrs.define
    class Config:
        token: str = omnisdk.secret()

    async def send(self, batch):
        return [omnisdk.Accepted(provider_message_id="x") for _ in batch]

@omnisdk.hookimpl
def register_providers(register):
    register(FaxLikeSMS)
'''

BAD_IMPORT = "raise ImportError('this plugin is broken')\n"

BAD_PROVIDER = '''
import omnisdk

class NotAProvider:
    pass

@omnisdk.hookimpl
def register_providers(register):
    register(NotAProvider)
'''


@pytest.fixture
def installed_plugins(tmp_path: Path) -> Iterator[Path]:
    """Three distributions with `omnisdk` entry points, installed on sys.path for the test."""
    for dist, module, source in (
        ("goodplugin", "goodplugin_mod", GOOD),
        ("brokenplugin", "brokenplugin_mod", BAD_IMPORT),
        ("badprovider", "badprovider_mod", BAD_PROVIDER),
    ):
        (tmp_path / f"{module}.py").write_text(source)
        info = tmp_path / f"{dist}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[omnisdk]\n{dist} = {module}\n")
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for module in ("goodplugin_mod", "brokenplugin_mod", "badprovider_mod"):
        sys.modules.pop(module, None)


def test_broken_plugins_are_reported_and_do_not_stop_the_others(installed_plugins: Path) -> None:
    host = PluginHost()

    assert host.providers.get("sms", "goodsms") is not None
    failed = {e.plugin: str(e) for e in host.errors}
    assert "this plugin is broken" in failed["brokenplugin"]
    assert "Provider subclass" in failed["badprovider"]
    assert all(isinstance(e, PluginError) for e in host.errors)


def test_load_plugins_env_restricts_entry_points(installed_plugins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNISDK_LOAD_PLUGINS", "goodplugin")
    host = PluginHost()
    assert host.errors == []
    assert host.providers.get("sms", "goodsms") is not None

    monkeypatch.setenv("OMNISDK_LOAD_PLUGINS", "")
    host = PluginHost()
    assert host.providers.get("sms", "goodsms") is None
    assert host.providers.get("sms", "memory") is not None  # built-ins always load


def test_each_client_has_its_own_plugin_manager() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.seen: list[str] = []

        from omnisdk import hookimpl

        @hookimpl
        def touchpoint_recorded(self, touchpoint: object) -> None:
            self.seen.append(touchpoint.name)  # type: ignore[attr-defined]

    recorder = Recorder()
    with Omni("sqlite://:memory:", plugins=[recorder]) as one, Omni("sqlite://:memory:") as other:
        one.track("c-1", "Product Viewed")
        other.track("c-1", "Product Added")
        one.track_many([("c-1", "Cart Viewed")])
    assert recorder.seen == ["Product Viewed", "Cart Viewed"]
