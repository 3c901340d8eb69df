"""The ASGI app, driven in-process with raw ASGI messages: whatever bytes arrive, a 4xx or the redirect."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnisdk import Omni, ValidationError, VirtualClock
from omnisdk.asgi import create_app

CONFIG = {
    "channels": {"email": {"provider": "memory"}},
    "webhooks": {"max_body_bytes": 2048},
    "templates": {"links": {"base_url": "https://shop.example/omnisdk"}},
    "limits": {"max_headers_bytes": 4096, "max_header_count": 20, "max_url_length": 1024},
}


class Answer:
    def __init__(self, messages: list[dict[str, Any]]) -> None:
        start = messages[0]
        self.status: int = start["status"]
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}
        self.body = b"".join(m.get("body", b"") for m in messages[1:])


def call(app: Any, method: str = "GET", path: str = "/", *, query: bytes = b"",
         headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b"", chunk: int | None = None) -> Answer:
    """One request through the app, as an ASGI server would hand it over."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "https", "path": path, "raw_path": path.encode("utf-8", "surrogateescape"),
             "query_string": query, "root_path": "", "headers": headers or [(b"host", b"shop.example")],
             "server": ("shop.example", 443), "client": ("127.0.0.1", 5000)}
    size = chunk or max(len(body), 1)
    pieces = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    incoming = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return Answer(sent)


@pytest.fixture
def omni(tmp_path: Path) -> Iterator[Omni]:
    with Omni(f"sqlite:///{tmp_path}/omni.db", config=CONFIG, clock=VirtualClock()) as client:
        client.identify("c-1", email="ada@example.com")
        client.consent("c-1", channel="email", granted=True)
        yield client


def clicks(omni: Omni) -> list[str]:
    return [t.name for t in omni.timeline("c-1") if t.name == "Link Clicked"]


def test_a_non_ascii_click_destination_redirects_percent_encoded(omni: Omni) -> None:
    link = omni.templates.links.tracked("https://café.example/crème brûlée?taille=été#bas",
                                        {"customer_id": "c-1", "channel": "email"})

    answer = call(create_app(omni), "GET", link.removeprefix("https://shop.example/omnisdk"))

    assert answer.status == 302
    location = answer.headers["location"]
    assert location.isascii()
    assert location.startswith("https://xn--caf-dma.example/cr%C3%A8me%20br%C3%BBl%C3%A9e?taille=%C3%A9t%C3%A9")
    assert location.endswith("#bas")
    assert clicks(omni) == ["Link Clicked"]


@pytest.mark.parametrize("token", ["ümlaut.tøken", "abc.déf", "☃", "%ZZ%E9.x", "a" * 5000 + ".b", "\udce9.x",
                                   "bad\x00.x"])
def test_a_malformed_click_token_is_400_and_records_nothing(omni: Omni, token: str) -> None:
    answer = call(create_app(omni), "GET", f"/c/{token}")

    assert answer.status in (400, 414)
    assert clicks(omni) == []


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("token", ["ümlaut.tøken", "☃.☃", "\udce9.x", "forged.token"])
def test_a_malformed_unsubscribe_token_is_400_and_keeps_consent(omni: Omni, method: str, token: str) -> None:
    answer = call(create_app(omni), method, f"/u/{token}", body=b"List-Unsubscribe=One-Click")

    assert answer.status == 400
    assert omni.customer("c-1").has_consent("email")


def test_an_unsubscribe_body_over_the_limit_is_413_and_keeps_consent(omni: Omni) -> None:
    url = omni.templates.unsubscribe_url("c-1", "email")

    answer = call(create_app(omni), "POST", url.removeprefix("https://shop.example/omnisdk"), body=b"x" * 3000,
                  chunk=1000)

    assert answer.status == 413
    assert omni.customer("c-1").has_consent("email")


def test_a_webhook_body_over_the_limit_is_413(omni: Omni) -> None:
    assert call(create_app(omni), "POST", "/webhooks/memory", body=b"x" * 2049, chunk=512).status == 413


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b"host", b"shop.example"), (b"x-big", b"x" * 5000)], 431),
        ([(b"x-h", b"v")] * 21, 431),
        ([(b"x-\xff\xfe", b"\x00\x01\xff")], 400),
    ],
)
def test_oversized_or_binary_headers_are_4xx(omni: Omni, headers: list[tuple[bytes, bytes]], status: int) -> None:
    app = create_app(omni)
    for path in ("/c/x.y", "/u/x.y", "/webhooks/memory"):
        assert call(app, "GET", path, headers=headers).status == status


def test_a_long_url_is_414(omni: Omni) -> None:
    assert call(create_app(omni), "GET", "/c/x.y", query=b"q=" + b"x" * 2000).status == 414


def test_an_unknown_route_is_404(omni: Omni) -> None:
    assert call(create_app(omni), "GET", "/nothing/here/at/all").status == 404


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (("memory", "G E T", "https://shop.example/w", {}, b""), 400),
        (("memory", "POST", "https://shop.example/" + "x" * 9000, {}, b""), 414),
        (("memory", "POST", "https://shop.example/w", {"x-big": "x" * 40_000}, b""), 431),
        (("memory", "POST", "https://shop.example/w", {f"x-{i}": "v" for i in range(101)}, b""), 431),
        (("memory", "POST", "https://shop.example/\udce9", {}, b""), 400),
    ],
)
def test_handle_webhook_refuses_a_malformed_request_head(tmp_path: Path, args: tuple[Any, ...], status: int) -> None:
    with Omni(f"sqlite:///{tmp_path}/omni.db", config={"channels": {"email": {"provider": "memory"}}}) as omni:
        assert omni.handle_webhook(*args).status == status


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((1, "POST", "https://shop.example/w", {}, b""), "provider"),
        (("memory", None, "https://shop.example/w", {}, b""), "method"),
        (("memory", "POST", b"https://shop.example/w", {}, b""), "url"),
        (("memory", "POST", "https://shop.example/w", "x-a: b", b""), "headers"),
        (("memory", "POST", "https://shop.example/w", {"x-a": 1}, b""), "headers"),
        (("memory", "POST", "https://shop.example/w", {}, "text"), "body"),
    ],
)
def test_handle_webhook_arguments_of_the_wrong_type_are_a_validation_error(
    tmp_path: Path, args: tuple[Any, ...], field: str
) -> None:
    config = {"channels": {"email": {"provider": "memory"}}}
    with Omni(f"sqlite:///{tmp_path}/omni.db", config=config) as omni, pytest.raises(ValidationError) as err:
        omni.handle_webhook(*args)
    assert err.value.field == field


@pytest.fixture(scope="module")
def fuzz_app() -> Iterator[Any]:
    """One client for the whole fuzz run (a module fixture: Hypothesis calls the test many times)."""
    with Omni("sqlite://:memory:", config=CONFIG, clock=VirtualClock()) as omni:
        omni.identify("c-1", email="ada@example.com")
        yield create_app(omni)


_routes = st.sampled_from(["/c/", "/u/", "/webhooks/", "/webhooks/memory", "/", "/c/a.b/", "/u/x.y"])
_bytes = st.binary(max_size=300)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "G ET", "ÜBER", ""]),
    route=_routes,
    tail=st.text(max_size=60),
    query=_bytes,
    headers=st.lists(st.tuples(st.binary(max_size=40), _bytes), max_size=25),
    body=st.binary(max_size=3000),
)
def test_fuzzed_requests_never_get_a_5xx(
    fuzz_app: Any, method: str, route: str, tail: str, query: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    answer = call(fuzz_app, method, route + tail, query=query, headers=headers, body=body, chunk=700)
    assert 200 <= answer.status < 500
