"""The provider pool under the core's HTTP client: keep-alive, limits, and HTTP/1.1 as servers really answer.

Real sockets and real servers in the test's event loop; the TLS test does a real handshake
against a throwaway CA.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import trustme

from omnisdk.delivery._transport import ProviderTransport
from omnisdk.providers import transport_error_outcome

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """An HTTP/1.1 server that counts connections and answers each request with `respond`."""

    def __init__(self, respond: Callable[[bytes, bytes], bytes] | None = None) -> None:
        self.respond = respond or (lambda head, body: ok(b'{"n": 1}'))
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.hold: asyncio.Event | None = None  # when set, answers wait for it

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                if self.hold is not None:
                    await self.hold.wait()
                answer = self.respond(head, body)
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    return
        finally:
            self.open_now -= 1
            writer.close()


def ok(body: bytes, *extra: bytes) -> bytes:
    return b"\r\n".join([b"HTTP/1.1 201 Created", b"Content-Type: application/json",
                         b"Content-Length: %d" % len(body), *extra, b"", body])


@asynccontextmanager
async def serving(server: Server, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        listener.close()


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run (no time passes) until `condition` holds."""
    while not condition():
        await asyncio.sleep(0)


async def held(server: Server, call: Awaitable[httpx.Response]) -> asyncio.Future[httpx.Response]:
    """`call` under way, once the server has read it; the server holds every answer until `server.hold` is set."""
    server.hold = asyncio.Event()
    running = asyncio.ensure_future(call)
    await until(lambda: bool(server.requests))
    return running


def limits(connections: int = 16, keepalive: float = 30.0) -> httpx.Limits:
    return httpx.Limits(max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=keepalive)


def client(transport: ProviderTransport, timeout: float = 2.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, timeout=timeout)


def test_one_connection_carries_request_after_request() -> None:
    server = Server()

    async def main() -> list[int]:
        async with serving(server) as base, client(ProviderTransport(limits())) as http:
            return [(await http.post(f"{base}/m", content=b"x=%d" % i)).status_code for i in range(20)]

    assert asyncio.run(main()) == [201] * 20
    assert server.connections == 1
    assert [body for _, body in server.requests] == [b"x=%d" % i for i in range(20)]


def test_never_more_connections_than_the_limit_and_every_request_is_answered() -> None:
    server = Server()

    async def main() -> list[int]:
        server.hold = asyncio.Event()
        async with serving(server) as base, client(ProviderTransport(limits(connections=3))) as http:
            sends = [asyncio.ensure_future(http.post(f"{base}/m", content=b"%d" % i)) for i in range(10)]
            await until(lambda: len(server.requests) == 3)
            assert not any(s.done() for s in sends)
            server.hold.set()
            return [r.status_code for r in await asyncio.gather(*sends)]

    assert asyncio.run(main()) == [201] * 10
    assert server.most_open == 3
    assert server.connections == 3


def test_waiting_for_a_free_connection_too_long_is_a_pool_timeout_and_nothing_left() -> None:
    server = Server()

    async def main() -> Exception:
        async with serving(server) as base, client(ProviderTransport(limits(connections=1))) as http:
            first = await held(server, http.post(f"{base}/m", content=b"first"))
            with pytest.raises(httpx.PoolTimeout) as caught:
                await http.post(f"{base}/m", content=b"second", timeout=httpx.Timeout(2.0, pool=0.05))
            server.hold.set()
            assert (await first).status_code == 201
            assert (await http.post(f"{base}/m", content=b"third")).status_code == 201  # the slot is free again
            return caught.value

    error = asyncio.run(main())
    assert transport_error_outcome(error).ambiguous is False
    assert [body for _, body in server.requests] == [b"first", b"third"]


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    server = Server(lambda head, body: ok(b"{}", b"Connection: keep-alive"))

    async def main() -> list[int]:
        async with serving(server) as base, client(ProviderTransport(limits())) as http:
            statuses = [(await http.post(f"{base}/m", content=b"1")).status_code]
            server_side = server.open_now
            for task in asyncio.all_tasks():  # the server hangs up on its keep-alive connection
                if task.get_coro().__qualname__.startswith("Server.handle"):  # type: ignore[union-attr]
                    task.cancel()
            await until(lambda: server.open_now != server_side)
            for _ in range(3):  # let the client's event loop see the end of the connection
                await asyncio.sleep(0)
            statuses.append((await http.post(f"{base}/m", content=b"2")).status_code)
            return statuses

    assert asyncio.run(main()) == [201, 201]
    assert server.connections == 2


def test_chunked_and_connection_delimited_bodies_and_interim_answers_come_back_whole() -> None:
    answers = iter([
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + ok(b'{"b": 2}'),
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"c\": 3}",
    ])
    server = Server(lambda head, body: next(answers))

    async def main() -> list[object]:
        async with serving(server) as base, client(ProviderTransport(limits())) as http:
            return [(await http.post(f"{base}/m", content=b"x")).json() for _ in range(3)]

    assert asyncio.run(main()) == [{"a": 1}, {"b": 2}, {"c": 3}]


def test_a_streamed_request_body_goes_out_whole_with_its_length() -> None:
    server = Server()

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"to=", b"%2B1415", b"5550100"):
            yield part

    async def main() -> int:
        async with serving(server) as base, client(ProviderTransport(limits())) as http:
            return (await http.post(f"{base}/m", content=parts())).status_code

    assert asyncio.run(main()) == 201
    head, body = server.requests[0]
    assert body == b"to=%2B14155550100"
    assert b"content-length: 17" in head.lower() and b"transfer-encoding" not in head.lower()


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    server = Server()

    async def main() -> None:
        async with serving(server) as base, client(ProviderTransport(limits())) as http:
            with pytest.raises(httpx.LocalProtocolError, match="line break"):
                await http.post(f"{base}/m", content=b"x", headers={"X-Note": "a\r\nX-Injected: yes"})
            assert (await http.post(f"{base}/m", content=b"y")).status_code == 201

    asyncio.run(main())
    assert [body for _, body in server.requests] == [b"y"]


def test_failed_connects_give_their_slots_back() -> None:
    server = Server()

    async def main() -> int:
        transport = ProviderTransport(limits(connections=2))
        async with serving(server) as base, client(transport) as http:
            dead = httpx.URL(base).copy_with(port=1)  # nothing listens on port 1
            for _ in range(5):
                with pytest.raises(httpx.ConnectError):
                    await http.post(str(dead.copy_with(path="/m")), content=b"x")
            return (await http.post(f"{base}/m", content=b"x")).status_code

    assert asyncio.run(main()) == 201


def test_a_call_cancelled_mid_exchange_frees_its_connection() -> None:
    server = Server()

    async def main() -> int:
        async with serving(server) as base, client(ProviderTransport(limits(connections=1))) as http:
            call = await held(server, http.post(f"{base}/m", content=b"cut"))
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            server.hold.set()
            return (await http.post(f"{base}/m", content=b"next")).status_code

    assert asyncio.run(main()) == 201
    assert server.connections == 2  # the cancelled exchange's connection was not reused


def test_head_requests_take_httpxs_own_transport() -> None:
    server = Server(lambda head, body: b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n")

    async def main() -> tuple[int, bytes]:
        async with serving(server) as base, client(ProviderTransport(limits())) as http:
            response = await http.head(f"{base}/m")
            return response.status_code, response.content

    assert asyncio.run(main()) == (200, b"")


def test_tls_is_verified_against_the_trusted_authorities() -> None:
    authority = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_tls)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    server = Server()

    async def main() -> tuple[int, Exception]:
        async with serving(server, tls=server_tls) as base:
            async with client(ProviderTransport(limits(), ssl_context=trusting)) as http:
                status = (await http.post(f"{base}/m", content=b"x")).status_code
            async with client(ProviderTransport(limits())) as http:  # the system's authorities: not ours
                with pytest.raises(httpx.ConnectError) as caught:
                    await http.post(f"{base}/m", content=b"x")
            return status, caught.value

    status, error = asyncio.run(main())
    assert status == 201
    assert "certificate" in str(error).lower()
    assert transport_error_outcome(error).ambiguous is False
    assert len(server.requests) == 1


def test_answers_read_as_httpx_reads_them_plain_or_compressed() -> None:
    plain = b'{"sid": "SM1", "note": "caf\xc3\xa9"}'
    compressed = gzip.compress(b'{"sid": "SM2"}')
    answers = iter([ok(plain), ok(compressed, b"Content-Encoding: gzip")])
    server = Server(lambda head, body: next(answers))

    async def main() -> list[tuple[object, ...]]:
        seen = []
        async with serving(server) as base, client(ProviderTransport(limits())) as http:
            for _ in range(2):
                response = await http.post(f"{base}/m", content=b"x")
                chunks = [chunk async for chunk in response.aiter_bytes()]
                seen.append((response.is_closed, response.content, response.json(), b"".join(chunks),
                             await response.aread(), response.num_bytes_downloaded >= 0))
        return seen

    first, second = asyncio.run(main())
    assert first == (True, plain, {"sid": "SM1", "note": "café"}, plain, plain, True)
    assert second[:5] == (True, b'{"sid": "SM2"}', {"sid": "SM2"}, b'{"sid": "SM2"}', b'{"sid": "SM2"}')


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not run on Windows")
def test_the_pool_runs_on_uvloop_too() -> None:
    """Apps served by uvicorn often run on uvloop, whose transports are not asyncio's classes."""
    import uvloop

    server = Server()

    async def main() -> list[int]:
        async with serving(server) as base, client(ProviderTransport(limits())) as http:
            return [(await http.post(f"{base}/m", content=b"x")).status_code for _ in range(3)]

    assert uvloop.run(main()) == [201] * 3
    assert server.connections == 1


def test_expect_and_upgrade_requests_take_httpxs_own_transport() -> None:
    server = Server()

    async def main() -> list[int]:
        transport = ProviderTransport(limits())
        async with serving(server) as base, client(transport) as http:
            statuses = [(await http.post(f"{base}/m", content=b"x", headers={name: value})).status_code
                        for name, value in (("Upgrade", "h2c"), ("X-Plain", "1"))]
            assert transport._fallbacks  # the Upgrade request went through httpcore
            return statuses

    assert asyncio.run(main()) == [201, 201]


@pytest.mark.parametrize("first_timeout", [5.0, 0.1], ids=["after-a-longer-timeout", "after-the-same-timeout"])
def test_a_read_timeout_fires_on_a_reused_connection(first_timeout: float) -> None:
    """One timer per connection outlives its exchanges: it must still fire for the exchange under way,
    whether that one's deadline is earlier than the timer's or later."""
    server = Server()

    async def main() -> Exception:
        async with serving(server) as base, client(ProviderTransport(limits())) as http:
            first = await http.post(f"{base}/m", content=b"1", timeout=first_timeout)
            assert first.status_code == 201
            server.hold = asyncio.Event()  # the next answer never comes
            try:
                # The outer bound catches a timer left at the first exchange's 5 s deadline.
                await asyncio.wait_for(http.post(f"{base}/m", content=b"2", timeout=0.1), 2.0)
            except (httpx.TransportError, TimeoutError) as exc:
                return exc
            finally:
                server.hold.set()
            raise AssertionError("a request nobody answered came back")

    error = asyncio.run(main())
    assert isinstance(error, httpx.ReadTimeout)
    assert (server.connections, len(server.requests)) == (1, 2)  # the second went on the first's connection
