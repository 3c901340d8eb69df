"""The core's HTTP client tells a request that never left from one the provider may have acted on.

Real sockets: a server that answers, one that reads the request and hangs up, one that never
answers, and a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import httpx
import pytest

from omnisdk.delivery import new_http_client
from omnisdk.providers import transport_error_outcome

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    length = lengths[0] if lengths else 0
    return head + await reader.readexactly(length)


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await read_request(reader)
    body = b'{"echo": %d}' % len(request)
    writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.close()


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await asyncio.sleep(5)


async def post(handler: Handler | None) -> httpx.Response | Exception:
    server = await asyncio.start_server(handler, "127.0.0.1", 0) if handler else None
    if server is not None:
        port = server.sockets[0].getsockname()[1]
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # closed again: nobody listens there
    client = new_http_client(timeout=0.3)
    try:
        return await client.post(f"http://127.0.0.1:{port}/v1/messages", data={"to": "+14155550100"})
    except httpx.TransportError as exc:
        return exc
    finally:
        await client.aclose()
        if server is not None:
            server.close()


def test_an_answer_comes_back_whole() -> None:
    response = asyncio.run(post(answer))
    assert isinstance(response, httpx.Response)
    assert (response.status_code, response.headers["content-type"]) == (201, "application/json")
    assert response.json()["echo"] > 0


@pytest.mark.parametrize(("handler", "error", "ambiguous"), [
    (hang_up, httpx.RemoteProtocolError, True),
    (never_answer, httpx.ReadTimeout, True),
    (None, httpx.ConnectError, False),
])
def test_errors_name_the_phase_and_only_those_after_sending_are_ambiguous(
    handler: Handler | None, error: type[Exception], ambiguous: bool,
) -> None:
    exc = asyncio.run(post(handler))
    assert type(exc) is error
    assert isinstance(exc, Exception)
    outcome = transport_error_outcome(exc)
    assert outcome.ambiguous is ambiguous
    assert outcome.reason.startswith("timeout" if error is httpx.ReadTimeout else "connection error")
