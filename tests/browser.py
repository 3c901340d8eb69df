"""A real headless Chromium (Debian's package) driven by Playwright, and a real HTTP server for ASGI apps.

Pages we serve (the preference centre, the dashboard) are tested the way a customer or an operator meets
them: over HTTP, in a browser, with axe-core checking accessibility. `.ci/run` installs Chromium when it is
missing; in CI a missing browser fails the test, elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Without the background-networking flags Chromium keeps dialling Google's hosts, which this closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("OMNISDK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    reason = "Chromium is not installed (apt-get install -y chromium; .ci/run does it) or set OMNISDK_CHROMIUM"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One browser per test session; each test gets its own context (cookies, storage) through `page`."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(java_script_enabled=True)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def page_without_js(chromium: Any) -> Iterator[Any]:
    """Pages must work without JavaScript: forms post, links navigate."""
    context = chromium.new_context(java_script_enabled=False)
    tab = context.new_page()
    yield tab
    context.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def serve_asgi() -> Iterator[Callable[[Any], str]]:
    """Serve an ASGI app with uvicorn on a free localhost port in a thread; returns its base URL."""
    import uvicorn

    servers: list[tuple[Any, threading.Thread]] = []

    def serve(app: Any) -> str:
        port = _free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", loop="asyncio")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
        thread.start()
        started = threading.Event()
        for _ in range(500):  # the server flips `started` once it listens; wait on an event, not a sleep
            if server.started:
                break
            started.wait(0.01)
        if not server.started:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def axe_violations(tab: Any, impacts: frozenset[str] = frozenset({"serious", "critical"})) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A/AA rules run in the page; the violations of the given impacts, for an assertion."""
    from axe_playwright_python.sync_playwright import Axe

    wcag21_aa = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
    results = Axe().run(tab, options={"runOnly": {"type": "tag", "values": wcag21_aa}})
    return [v for v in results.response["violations"] if v.get("impact") in impacts]
