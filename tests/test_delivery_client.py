"""The client handed to provider plugins: httpx's API, minus redirects, cookies and per-request auth flows.

Real sockets: a local server that records every request it reads and answers from a script.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Generator

import httpx
import pytest

from omnisdk.delivery import new_http_client

Answer = tuple[int, list[tuple[str, str]], bytes]
OK: Answer = (201, [("Content-Type", "application/json")], b'{"sid": "SM1"}')


class Recorder:
    """A one-connection-per-request HTTP/1.1 server: answers in order from `answers`, then OK."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((head[0], headers, body))
        status, extra, content = self.answers.pop(0) if self.answers else OK
        lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(content)}", "Connection: close",
                 *(f"{k}: {v}" for k, v in extra)]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + content)
        await writer.drain()
        writer.close()


async def serve(recorder: Recorder | RawRecorder) -> AsyncIterator[str]:
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


def run(recorder: Recorder, calls: list[dict[str, object]]) -> list[httpx.Response]:
    """Each call is `client.request(**call)` against the recorder; the responses, read."""

    async def main() -> list[httpx.Response]:
        client = new_http_client(timeout=5)
        responses = []
        try:
            async for base in serve(recorder):
                for call in calls:
                    call = dict(call)
                    responses.append(await client.request(url=f"{base}{call.pop('path')}", **call))  # type: ignore[arg-type]
        finally:
            await client.aclose()
        return responses

    return asyncio.run(main())


def test_a_basic_auth_tuple_sends_the_same_header_as_httpx() -> None:
    recorder = Recorder()
    [response] = run(recorder, [{"method": "POST", "path": "/v1/messages", "content": b"To=%2B1415",
                                 "auth": ("AC123", "tøken")}])
    [(line, headers, body)] = recorder.requests
    request = httpx.Request("POST", "http://x/")
    next(httpx.BasicAuth("AC123", "tøken").sync_auth_flow(request))
    assert (line, body) == ("POST /v1/messages HTTP/1.1", b"To=%2B1415")
    assert headers["authorization"] == request.headers["Authorization"]
    assert (response.status_code, response.json()) == (201, {"sid": "SM1"})
    assert response.elapsed.total_seconds() >= 0


def test_redirects_come_back_as_responses_and_cookies_are_never_kept() -> None:
    recorder = Recorder((302, [("Location", "/elsewhere"), ("Set-Cookie", "session=abc; Path=/")], b""))
    first, second = run(recorder, [{"method": "POST", "path": "/v1/messages", "content": b"x"},
                                   {"method": "GET", "path": "/v1/status"}])
    assert (first.status_code, first.headers["location"]) == (302, "/elsewhere")
    assert [line for line, _, _ in recorder.requests] == ["POST /v1/messages HTTP/1.1", "GET /v1/status HTTP/1.1"]
    assert "cookie" not in recorder.requests[1][1]
    assert second.status_code == 201


def test_asking_for_redirects_takes_httpxs_path_and_still_keeps_no_cookies() -> None:
    recorder = Recorder((302, [("Location", "/elsewhere"), ("Set-Cookie", "session=abc; Path=/")], b""))
    [response] = run(recorder, [{"method": "GET", "path": "/start", "follow_redirects": True}])
    assert [line for line, _, _ in recorder.requests] == ["GET /start HTTP/1.1", "GET /elsewhere HTTP/1.1"]
    assert "cookie" not in recorder.requests[1][1]
    assert (response.status_code, [r.status_code for r in response.history]) == (201, [302])


def test_a_cookie_set_by_hand_is_sent() -> None:
    """No answer's cookie is kept, but one the plugin sets itself goes out (through httpx's path)."""
    recorder = Recorder()

    async def main() -> None:
        client = new_http_client(timeout=5)
        try:
            async for base in serve(recorder):
                await client.post(f"{base}/a", content=b"x")
                client.cookies.set("session", "by-hand", domain="127.0.0.1")
                await client.post(f"{base}/b", content=b"x")
                client.cookies.clear()
                await client.post(f"{base}/c", content=b"x")
        finally:
            await client.aclose()

    asyncio.run(main())
    assert [headers.get("cookie") for _, headers, _ in recorder.requests] == [None, "session=by-hand", None]


class TokenAuth(httpx.Auth):
    """A custom auth flow (as an OAuth plugin would write): it must still run."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Bearer t-1"
        yield request


def test_a_custom_auth_flow_still_runs() -> None:
    recorder = Recorder()
    run(recorder, [{"method": "GET", "path": "/v1/me", "auth": TokenAuth()}])
    assert recorder.requests[0][1]["authorization"] == "Bearer t-1"


def test_streamed_responses_still_stream() -> None:
    recorder = Recorder((200, [], b"chunk" * 1000))

    async def main() -> bytes:
        client = new_http_client(timeout=5)
        try:
            async for base in serve(recorder):
                async with client.stream("GET", f"{base}/big") as response:
                    return b"".join([part async for part in response.aiter_bytes()])
        finally:
            await client.aclose()
        raise AssertionError("the server did not start")

    assert asyncio.run(main()) == b"chunk" * 1000


def test_provider_urls_stay_out_of_httpxs_log(caplog: pytest.LogCaptureFixture) -> None:
    """httpx logs every URL at INFO; some providers put tokens in them (Telegram's bot URLs)."""
    caplog.set_level(logging.DEBUG, logger="httpx")
    run(Recorder(), [{"method": "POST", "path": "/bot123:SECRET/sendMessage", "content": b"x"}])
    assert not [r for r in caplog.records if "SECRET" in r.getMessage()]


@pytest.mark.parametrize("shape", [
    {"method": "POST", "content": b"To=%2B14155550100&Body=Hi",
     "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    {"method": "post", "content": None, "headers": None},
    {"method": "PUT", "content": b"", "headers": {"accept": "application/json", "X-Key": b"k1"}},
    {"method": "GET", "content": None, "headers": {"User-Agent": "shop/1.0", "Host": "api.example.com"}},
    {"method": "DELETE", "content": b"{}", "headers": {"Content-Length": "2", "Accept-Encoding": "identity"}},
    {"method": "PATCH", "content": None, "headers": {"Transfer-Encoding": "chunked"}},
])
def test_a_bytes_request_is_built_exactly_as_httpx_builds_it(shape: dict[str, object]) -> None:
    """The one-step build for bytes bodies gives the method, URL, headers (order and case) and body httpx gives."""
    client = new_http_client(timeout=5)
    url = "https://api.example.com:8443/2010-04-01/Accounts/AC1/Messages.json?x=1"
    ours = client.build_request(url=url, **shape)  # type: ignore[arg-type]
    theirs = httpx.AsyncClient.build_request(client, url=url, **shape)  # type: ignore[arg-type]
    assert ours.method == theirs.method
    assert ours.url == theirs.url
    assert ours.headers.raw == theirs.headers.raw
    assert ours.content == theirs.content
    assert ours.extensions == theirs.extensions
    asyncio.run(client.aclose())


class RawRecorder:
    """Keeps every request's bytes as they arrived; answers each with `status` and keeps the connection."""

    def __init__(self, status: int = 201) -> None:
        self.status = status
        self.raw: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")]
            self.raw.append(head + await reader.readexactly(lengths[0] if lengths else 0))
            body = b'{"sid": "SM1"}'
            writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (self.status, len(body), body))
            await writer.drain()
        writer.close()


WIRE_SHAPES = [
    {"method": "POST", "content": b"To=%2B14155550100&Body=Hi", "auth": ("AC1", "token"),
     "headers": {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}},
    {"method": "post", "content": None, "headers": None},
    {"method": "PUT", "content": b"", "headers": {"accept": "application/json", "X-Key": b"k1"}},
    {"method": "GET", "content": None, "headers": {"User-Agent": "shop/1.0", "Host": "api.example.com"}},
    {"method": "DELETE", "content": b"{}", "headers": {"Content-Length": "2", "Accept-Encoding": "identity"}},
    {"method": "POST", "content": b"{}", "auth": (b"user", b"p\xc3\xa4ss"), "headers": {"X-Trace": "1"}},
]


@pytest.mark.parametrize("shape", WIRE_SHAPES)
def test_a_request_sent_straight_from_its_bytes_is_what_httpxs_path_sends(shape: dict[str, object]) -> None:
    """The fast path writes the request itself; the server must not be able to tell it from httpx's path
    (request line, headers in order and case, body), and the response still knows its request."""
    recorder = RawRecorder()

    async def main() -> tuple[httpx.Response, httpx.Request]:
        client = new_http_client(timeout=5)
        try:
            async for base in serve(recorder):
                url = f"{base}/2010-04-01/Accounts/AC1/Messages.json?x=1"
                fast = await client.request(url=url, **shape)  # type: ignore[arg-type]
                call = {k: v for k, v in shape.items() if k != "auth"}
                request = httpx.AsyncClient.build_request(client, url=url, **call)  # type: ignore[arg-type]
                await httpx.AsyncClient.send(client, request, auth=shape.get("auth"))  # type: ignore[arg-type]
                return fast, request
        finally:
            await client.aclose()
        raise AssertionError("the server did not start")

    fast, sent = asyncio.run(main())
    [ours, httpxs] = recorder.raw
    assert ours == httpxs
    assert (fast.request.method, fast.request.url, fast.request.content) == (sent.method, sent.url, sent.content)
    assert fast.request.headers.raw == sent.headers.raw
    assert (fast.status_code, fast.json()) == (201, {"sid": "SM1"})


def test_the_fast_path_is_taken_and_its_responses_raise_for_status_with_their_request() -> None:
    recorder = RawRecorder(status=404)

    async def main() -> tuple[httpx.Response, int]:
        client = new_http_client(timeout=5)
        try:
            async for base in serve(recorder):
                response = await client.post(f"{base}/v1/messages", content=b"x=1", auth=("u", "p"))
                return response, len(client._heads)  # type: ignore[attr-defined]
        finally:
            await client.aclose()
        raise AssertionError("the server did not start")

    response, shapes = asyncio.run(main())
    assert shapes == 1
    with pytest.raises(httpx.HTTPStatusError) as raised:
        response.raise_for_status()
    assert raised.value.request.url.path == "/v1/messages"
    assert raised.value.request.headers["authorization"].startswith("Basic ")


def test_a_connection_error_on_the_fast_path_names_its_request() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nobody listens there

    async def main() -> httpx.TransportError:
        client = new_http_client(timeout=5)
        try:
            await client.post(f"http://127.0.0.1:{port}/v1/messages", content=b"x=1")
        except httpx.TransportError as exc:
            return exc
        finally:
            await client.aclose()
        raise AssertionError("nobody listens there, yet the request was answered")

    error = asyncio.run(main())
    assert isinstance(error, httpx.ConnectError)
    assert (error.request.method, error.request.url.port, error.request.content) == ("POST", port, b"x=1")
