"""One suite for both HTTP transports a Core can use (`[delivery] http_transport`): our pool and aiohttp's.

Real sockets, a real TLS handshake against a throwaway CA (trustme), and a small local proxy that
forwards plain HTTP and opens CONNECT tunnels, so proxies and custom authorities are set the way a
shop sets them: in the environment.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trustme

import omnisdk
from omnisdk.delivery import enqueue_delivery, new_http_client
from omnisdk.providers import transport_error_outcome
from omnisdk.testing.imitations import TwilioImitation

pytestmark = pytest.mark.parametrize("transport", ["pool", "aiohttp"])

Respond = Callable[[bytes, bytes], Awaitable[bytes | None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head, await reader.readexactly(length)


def created(body: bytes = b'{"sid": "SM1"}', *extra: bytes) -> bytes:
    return b"\r\n".join([b"HTTP/1.1 201 Created", b"Content-Type: application/json",
                         b"Content-Length: %d" % len(body), *extra, b"", body])


class Server:
    """An HTTP/1.1 server: `respond(head, body)` gives the bytes to answer (None: hang up), and
    `close_after` makes it close each connection after its first answer, without saying so."""

    def __init__(self, respond: Respond | None = None, *, close_after: bool = False) -> None:
        self.respond = respond
        self.close_after = close_after
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head, body = await read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests.append((head, body))
                answer = await self.respond(head, body) if self.respond else created()
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    return
        finally:
            writer.close()


@asynccontextmanager
async def serving(server: Server, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        listener.close()


class Proxy:
    """A forward proxy for http:// targets and a CONNECT tunnel for https:// ones, as corporate egress
    proxies are; it records each request line and its `Proxy-Authorization`, and can refuse them all."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.seen: list[tuple[bytes, bytes | None]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *headers = head[:-4].split(b"\r\n")
            auth = next((h.split(b":", 1)[1].strip() for h in headers if h.lower().startswith(b"proxy-authorization")),
                        None)
            self.seen.append((line, auth))
            if self.refuse:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            method, target, _ = line.split(b" ")
            if method == b"CONNECT":
                host, port = target.rsplit(b":", 1)
                up_reader, up_writer = await asyncio.open_connection(host.decode(), int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                rest = b""
            else:
                url = httpx.URL(target.decode())
                up_reader, up_writer = await asyncio.open_connection(url.host, url.port)
                kept = [h for h in headers if not h.lower().startswith(b"proxy-authorization")]
                rest = b"\r\n".join([b"%s %s HTTP/1.1" % (method, url.raw_path), *kept]) + b"\r\n\r\n"
            up_writer.write(rest)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@asynccontextmanager
async def proxying(proxy: Proxy) -> AsyncIterator[int]:
    listener = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy or CA settings from the machine running the tests: each test sets its own."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.fixture
def authority(tmp_path: Path) -> tuple[trustme.CA, ssl.SSLContext, str]:
    """A throwaway CA, a server context with a certificate it issued for 127.0.0.1, and its PEM file."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return ca, server_tls, str(pem)


async def post(transport: str, url: str, timeout: float = 2.0, **kwargs: object) -> httpx.Response:
    async with new_http_client(timeout, transport) as client:
        return await client.post(url, content=b"To=%2B14155550100&Body=Hi",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"}, **kwargs)  # type: ignore[arg-type]


async def failure(transport: str, url: str, timeout: float = 2.0) -> httpx.TransportError:
    with pytest.raises(httpx.TransportError) as caught:
        await post(transport, url, timeout)
    return caught.value


def test_tls_is_verified_and_a_private_ca_is_trusted_through_ssl_cert_file(
    transport: str, environment: pytest.MonkeyPatch, authority: tuple[trustme.CA, ssl.SSLContext, str],
) -> None:
    _, server_tls, pem = authority
    server = Server()

    async def main() -> tuple[httpx.TransportError, int]:
        async with serving(server, tls=server_tls) as base:
            refused = await failure(transport, f"{base}/m")  # certifi's authorities do not know this CA
            environment.setenv("SSL_CERT_FILE", pem)
            return refused, (await post(transport, f"{base}/m")).status_code

    refused, status = asyncio.run(main())
    assert isinstance(refused, httpx.ConnectError)
    assert "certificate" in str(refused).lower()
    assert transport_error_outcome(refused).ambiguous is False
    assert status == 201
    assert len(server.requests) == 1


def test_plain_http_goes_through_the_forward_proxy_with_its_credentials(
    transport: str, environment: pytest.MonkeyPatch,
) -> None:
    server, proxy = Server(), Proxy()

    async def main() -> list[int]:
        async with serving(server) as base, proxying(proxy) as port:
            environment.setenv("HTTP_PROXY", f"http://shop:s3cret@127.0.0.1:{port}")
            return [(await post(transport, f"{base}/2010-04-01/Messages.json")).status_code for _ in range(2)]

    assert asyncio.run(main()) == [201, 201]
    port = server.requests[0][0].split(b"Host: ")[1].split(b"\r\n")[0]
    assert proxy.seen[0] == (b"POST http://%s/2010-04-01/Messages.json HTTP/1.1" % port,
                             b"Basic " + base64.b64encode(b"shop:s3cret"))
    assert [body for _, body in server.requests] == [b"To=%2B14155550100&Body=Hi"] * 2
    assert all(b"proxy-authorization" not in head.lower() for head, _ in server.requests)


def test_https_goes_through_a_connect_tunnel_and_no_proxy_goes_direct(
    transport: str, environment: pytest.MonkeyPatch, authority: tuple[trustme.CA, ssl.SSLContext, str],
) -> None:
    _, server_tls, pem = authority
    server, proxy = Server(), Proxy()

    async def main() -> tuple[int, int, str]:
        async with serving(server, tls=server_tls) as base, proxying(proxy) as port:
            environment.setenv("SSL_CERT_FILE", pem)
            environment.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
            tunnelled = (await post(transport, f"{base}/m")).status_code
            environment.setenv("NO_PROXY", "localhost,127.0.0.0/8")
            direct = (await post(transport, f"{base}/m")).status_code
            return tunnelled, direct, base

    tunnelled, direct, base = asyncio.run(main())
    assert (tunnelled, direct) == (201, 201)
    assert [line for line, _ in proxy.seen] == [b"CONNECT %s HTTP/1.1" % base.removeprefix("https://").encode()]
    assert len(server.requests) == 2


def test_one_tunnel_carries_call_after_call(
    transport: str, environment: pytest.MonkeyPatch, authority: tuple[trustme.CA, ssl.SSLContext, str],
) -> None:
    _, server_tls, pem = authority
    server, proxy = Server(), Proxy()

    async def main() -> list[int]:
        async with serving(server, tls=server_tls) as base, proxying(proxy) as port:
            environment.setenv("SSL_CERT_FILE", pem)
            environment.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
            async with new_http_client(2.0, transport) as client:
                return [(await client.post(f"{base}/m", content=b"n=%d" % i)).status_code for i in range(5)]

    assert asyncio.run(main()) == [201] * 5
    assert (len(proxy.seen), server.connections, len(server.requests)) == (1, 1, 5)


def test_a_proxy_that_refuses_is_a_proxy_error_and_nothing_was_sent(
    transport: str, environment: pytest.MonkeyPatch, authority: tuple[trustme.CA, ssl.SSLContext, str],
) -> None:
    _, server_tls, pem = authority
    server, proxy = Server(), Proxy(refuse=True)

    async def main() -> httpx.TransportError:
        async with serving(server, tls=server_tls) as base, proxying(proxy) as port:
            environment.setenv("SSL_CERT_FILE", pem)
            environment.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
            return await failure(transport, f"{base}/m")

    error = asyncio.run(main())
    assert isinstance(error, httpx.ProxyError)
    assert transport_error_outcome(error).ambiguous is False
    assert server.requests == []


def answering(answer: bytes) -> Respond:
    async def respond(head: bytes, body: bytes) -> bytes:
        return answer

    return respond


@pytest.mark.parametrize(("answer", "body"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n",
     b'{"a": 1}'),
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"until\": \"eof\"}",
     b'{"until": "eof"}'),
], ids=["chunked", "eof-delimited"])
def test_chunked_and_eof_delimited_answers_come_back_whole(
    transport: str, environment: pytest.MonkeyPatch, answer: bytes, body: bytes,
) -> None:
    server = Server(answering(answer), close_after=True)

    async def main() -> httpx.Response:
        async with serving(server) as base:
            return await post(transport, f"{base}/m")

    response = asyncio.run(main())
    assert (response.status_code, response.content) == (200, body)


def test_an_answer_with_both_content_length_and_transfer_encoding_is_never_read_by_its_length(
    transport: str, environment: pytest.MonkeyPatch,
) -> None:
    """RFC 9112 §6.3: Transfer-Encoding wins, or the answer is refused; read by its length, the rest of
    the chunked body would be taken as the next answer on the connection (response smuggling)."""
    smuggled = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nfirst\r\n0\r\n\r\n")
    server = Server(answering(smuggled))

    async def main() -> httpx.Response | httpx.TransportError:
        async with serving(server) as base:
            try:
                return await post(transport, f"{base}/m")
            except httpx.TransportError as exc:
                return exc

    outcome = asyncio.run(main())
    if isinstance(outcome, httpx.Response):
        assert outcome.content == b"first"
        assert outcome.headers["transfer-encoding"] == "chunked"
    else:
        assert isinstance(outcome, httpx.RemoteProtocolError)
        assert transport_error_outcome(outcome).ambiguous is True


@pytest.mark.parametrize("trickle", ["head", "body"])
def test_a_server_that_trickles_its_answer_times_out_within_the_read_timeout(
    transport: str, environment: pytest.MonkeyPatch, trickle: str,
) -> None:
    """Slowloris: a byte every 50 ms never leaves a read idle for the 0.3 s timeout, but the whole
    answer must still come within it."""
    answer = created(b"x" * 200) if trickle == "body" else b"HTTP/1.1 201 Created\r\n" + b"X-Slow: y\r\n" * 100

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        try:
            start = answer.index(b"\r\n\r\n") + 4 if trickle == "body" else 0
            writer.write(answer[:start])
            for i in range(start, len(answer)):
                writer.write(answer[i:i + 1])
                await writer.drain()
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def main() -> httpx.TransportError:
        listener = await asyncio.start_server(slow, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        try:
            return await failure(transport, f"http://127.0.0.1:{port}/m", timeout=0.3)
        finally:
            listener.close()

    error = asyncio.run(main())
    assert isinstance(error, httpx.ReadTimeout)
    assert transport_error_outcome(error).ambiguous is True


def test_a_server_that_closes_after_every_answer_loses_no_request_and_gets_none_twice(
    transport: str, environment: pytest.MonkeyPatch,
) -> None:
    server = Server(close_after=True)

    async def main() -> list[int]:
        async with serving(server) as base, new_http_client(2.0, transport) as client:
            return [(await client.post(f"{base}/m", content=b"n=%d" % i)).status_code for i in range(60)]

    assert asyncio.run(main()) == [201] * 60
    assert [body for _, body in server.requests] == [b"n=%d" % i for i in range(60)]


def test_a_hang_up_after_the_request_is_ambiguous_and_a_refused_connect_is_not(
    transport: str, environment: pytest.MonkeyPatch,
) -> None:
    async def hang_up(head: bytes, body: bytes) -> None:
        return None

    server = Server(hang_up)

    async def main() -> tuple[httpx.TransportError, httpx.TransportError]:
        async with serving(server) as base:
            dropped = await failure(transport, f"{base}/m")
        refused = await failure(transport, base)  # the listener is closed: nobody answers on that port
        return dropped, refused

    dropped, refused = asyncio.run(main())
    assert isinstance(dropped, httpx.RemoteProtocolError)
    assert transport_error_outcome(dropped).ambiguous is True
    assert isinstance(refused, httpx.ConnectError)
    assert transport_error_outcome(refused).ambiguous is False


def test_the_whole_pipeline_sends_through_the_configured_transport(
    transport: str, environment: pytest.MonkeyPatch,
) -> None:
    sid = "AC" + "b" * 32
    with TwilioImitation(account_sid=sid, auth_token="token") as api, omnisdk.Omni(
        "sqlite://:memory:",
        config={"delivery": {"http_transport": transport},
                "channels": {"sms": {"provider": "twilio", "account_sid": sid, "auth_token": "token",
                                     "from": "+15017122661", "base_url": api.base_url}}},
    ) as omni:
        omni.templates.add(omnisdk.Message("hi", sms=omnisdk.SMS(text="Hi")))
        omni.identify("c-1", phone="+1 415 555 0100")
        with omni.store.transaction() as tx:
            enqueue_delivery(tx, key="k", customer_id="c-1", template="hi", channels=["sms"],
                             now=omni.clock.timestamp(), purpose="transactional")
        omni.run_until_idle()
        assert [d.status for d in omni.deliveries(customer_id="c-1")] == ["sent"]
        assert type(omni._core.dispatcher.pool.http._provider_transport).__name__ == (
            "ProviderTransport" if transport == "pool" else "AiohttpTransport")
    assert [m["to"] for m in api.messages] == ["+14155550100"]


def test_an_unknown_transport_is_a_config_error_naming_the_key(transport: str) -> None:
    with pytest.raises(omnisdk.ConfigError) as caught:
        omnisdk.Omni("sqlite://:memory:", config={"delivery": {"http_transport": transport + "-2"}})
    assert caught.value.field == "delivery.http_transport"
