"""The browser harness itself: Chromium loads a page we serve over HTTP and axe-core can find a real violation."""

from __future__ import annotations

from typing import Any

from browser import axe_violations


def _page(html: str) -> Any:
    body = html.encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


GOOD = """<!doctype html><html lang="en"><head><title>Preferences</title></head><body><main>
<h1>Preferences</h1><form><label for="e">Email</label><input id="e" name="e"><button>Save</button></form>
</main></body></html>"""
# A grey-on-white button with no accessible name and an unlabelled input: axe must flag both.
BAD = """<!doctype html><html lang="en"><head><title>Bad</title></head><body><main>
<input name="e"><button style="color:#ccc;background:#fff"></button></main></body></html>"""


def test_chromium_renders_a_served_page(page: Any, serve_asgi: Any) -> None:
    url = serve_asgi(_page(GOOD))
    page.goto(url)
    assert page.title() == "Preferences"
    assert page.get_by_label("Email").is_visible()


def test_axe_passes_an_accessible_page_and_flags_a_broken_one(page: Any, serve_asgi: Any) -> None:
    page.goto(serve_asgi(_page(GOOD)))
    assert axe_violations(page) == []
    page.goto(serve_asgi(_page(BAD)))
    rules = {v["id"] for v in axe_violations(page, frozenset({"minor", "moderate", "serious", "critical"}))}
    assert {"label", "button-name"} <= rules, rules
