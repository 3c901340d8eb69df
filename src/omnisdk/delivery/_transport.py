"""httpx's transport API over a lean HTTP/1.1 keep-alive pool, with errors that say whether a request left.

Why not httpcore or aiohttp underneath: a provider call is one small request and one small answer,
and what a busy dispatcher pays for is the client's own work per call. httpcore's pool scans every
connection for each request, so it slows down as concurrency grows; aiohttp's request machinery
costs more CPU per call (benchmarks/dispatch.py runs the pipeline over both this pool and
`AiohttpTransport`, and docs/operations.md has the figures). This pool keeps, per connection, one
asyncio protocol and an `httptools` (llhttp) parser: a request is one `write` and a response is
parsed in C as it arrives.

It goes where httpx would: through the `HTTP(S)_PROXY` the environment names (a forward proxy for
http://, a CONNECT tunnel for https://) unless `NO_PROXY` says otherwise, and trusts `SSL_CERT_FILE`/
`SSL_CERT_DIR` over certifi when they are set (`_egress`). An idle connection the server has
already closed (or written to) is never reused: it is checked just before the request would be
written, so the request goes out on another connection with nothing sent on the dead one.

Errors map to the httpx error of the phase they happened in, which
`omnisdk.providers.transport_error_outcome` relies on to tell "never sent" from "may have been
acted on": connect failures (`ConnectError`, `ConnectTimeout`, `PoolTimeout`, `ProxyError`) happen
before a byte left; a hang-up with no answer (`RemoteProtocolError`), a broken answer (`ReadError`)
or no answer in time (`ReadTimeout`) happen after.

What it does not do, since provider APIs do not need it, and httpx's own transport (httpcore)
takes those requests instead: HEAD requests, HTTP/2, `Expect: 100-continue`, upgrades.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, cast

import httptools
import httpx

from ._egress import EnvironmentProxies, Proxy, tls_context
from ._responses import Answer, RequestFactory, read_response, unread_response

__all__ = ["DEFAULT_PORTS", "NOT_OURS", "Origin", "ProviderTransport", "RequestFactory", "wire_head"]

Origin = tuple[str, str, int]
DEFAULT_PORTS = {"http": 80, "https": 443}
#: Headers of exchanges this pool does not speak (an interim 100 to wait for, a protocol switch).
NOT_OURS = frozenset({b"expect", b"upgrade"})


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one exchange at a time, kept alive when the server allows it."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._answer: asyncio.Future[Answer] | None = None
        self._on_lost: Any = None
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._poller: Any = None
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._head_done = False
        self._complete = False
        self._keep_alive = False
        self._encoded = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Duck-typed: uvloop's TCP transports have the same methods without subclassing asyncio's.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answer is None:  # bytes nobody asked for: the connection is out of step
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._answer is not None and not self._answer.done():
            if self._head_done and not self._complete and _reads_to_eof(self._headers):
                self._keep_alive = False
                self.on_message_complete()  # a body delimited by the end of the connection
            elif self._head_done or self._body:
                self._fail(httpx.ReadError("the server closed the connection in the middle of its response"))
            else:
                self._fail(httpx.RemoteProtocolError("the server disconnected without sending a response"))
        if self._on_lost is not None:
            self._on_lost(self)

    # -- httptools callbacks
    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        if name.lower() == b"content-encoding":
            self._encoded = True

    def on_headers_complete(self) -> None:
        self._head_done = True
        self._status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # an interim answer (e.g. 103): the real one follows
            self._reset()
            return
        self._complete = True
        if not self.closed:
            self._keep_alive = self.parser.should_keep_alive()
        if self._answer is not None and not self._answer.done():
            self._answer.set_result((self._status, self._reason, self._headers, b"".join(self._body)))

    # -- use
    async def exchange(self, request: bytes, read_timeout: float | None) -> tuple[Answer, bool]:
        """Write one request and wait for its whole answer (and whether its body is content-encoded)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._reset()
        answer: asyncio.Future[Answer] = loop.create_future()
        self._answer = answer
        if read_timeout is not None:
            self._arm(loop, loop.time() + read_timeout)
        try:
            self.transport.write(request)
            return await answer, self._encoded
        finally:
            self._answer = None
            self._deadline = None

    @property
    def reusable(self) -> bool:
        return self._complete and self._keep_alive and not self.closed and not self._transport_closing()

    def quiet(self) -> bool:
        """Whether an idle connection is still open with nothing to read. A server that closed it (or
        wrote to it) may not have been noticed yet: its FIN can sit in the socket while the answer it
        followed is handed to the caller, and a request written after it would be lost unsent."""
        if not self.reusable:
            return False
        assert self.transport is not None
        try:
            if self._poller is None:
                sock = self.transport.get_extra_info("socket")
                if sock is None:
                    return True
                if not hasattr(select, "poll"):
                    return not select.select([sock.fileno()], [], [], 0)[0]  # Windows
                self._poller = select.poll()  # one per connection: its socket stays the same
                self._poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
            return not self._poller.poll(0)
        except (OSError, ValueError):
            return False

    def _transport_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def _arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Time out the exchange at `deadline`. One timer per connection outlives its exchanges: it
        is moved only to an earlier deadline, and when it fires it checks the exchange under way,
        instead of a timer made and cancelled for every request."""
        self._deadline = deadline
        if self._timer is not None and self._timer.when() > deadline:
            self._timer.cancel()
            self._timer = None
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._check_deadline, loop)

    def _check_deadline(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self._deadline is None or self.closed:
            return  # idle: the next exchange arms it again
        if loop.time() >= self._deadline:
            self._fail(httpx.ReadTimeout("no response from the server in time"))
            self.close()
        else:
            self._timer = loop.call_at(self._deadline, self._check_deadline, loop)

    def _fail(self, error: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()


def _reads_to_eof(headers: list[tuple[bytes, bytes]]) -> bool:
    """A response with neither a length nor chunked encoding ends when the connection does."""
    names = {name.lower() for name, _ in headers}
    return b"content-length" not in names and b"transfer-encoding" not in names


class ProviderTransport(httpx.AsyncBaseTransport):
    """An httpx transport for provider APIs: a keep-alive HTTP/1.1 pool, no redirects, no cookies.

    `limits.max_connections` caps open connections across hosts, `max_keepalive_connections`
    the idle ones kept, and `keepalive_expiry` how long an idle one may be reused. With `trust_env`
    (the default, as in httpx) proxies and authorities come from the environment (`_egress`)."""

    def __init__(
        self, limits: httpx.Limits, *, ssl_context: ssl.SSLContext | None = None, trust_env: bool = True
    ) -> None:
        self.limits = limits
        self._ssl_context = ssl_context
        self._trust_env = trust_env
        self._proxies = EnvironmentProxies.read() if trust_env else EnvironmentProxies({}, ())
        self._routes: dict[Origin, Proxy | None] = {}
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._open = 0
        self._waiters: deque[tuple[Origin, asyncio.Future[_Connection | None]]] = deque()
        self._fallbacks: dict[str | None, httpx.AsyncHTTPTransport] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scheme = request.url.scheme
        if scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"the URL's scheme must be http or https, not {scheme!r}", request=request)
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        raw = _serialize(request, body)
        origin = (scheme, request.url.host, request.url.port or DEFAULT_PORTS[scheme])
        if raw is None:  # HEAD, Expect or Upgrade: httpx's own transport knows those exchanges
            return await self._httpcore(self._route(origin)).handle_async_request(request)
        answer, _ = await self._exchange(origin, raw, request.extensions.get("timeout", {}), lambda: request)
        return unread_response(answer, request)

    async def exchange(
        self, origin: Origin, raw: bytes, timeouts: Mapping[str, float | None], request: RequestFactory
    ) -> httpx.Response:
        """Send `raw`, a whole HTTP/1.1 request as it goes on the wire, to `origin` (scheme, host, port)
        and read its answer. `request` builds the `httpx.Request` the response or an error names."""
        answer, encoded = await self._exchange(origin, raw, timeouts, request)
        return read_response(answer, request, decode=encoded)

    async def _exchange(
        self, origin: Origin, raw: bytes, timeouts: Mapping[str, float | None], request: RequestFactory
    ) -> tuple[Answer, bool]:
        proxy = self._route(origin)
        if proxy is not None and origin[0] == "http":
            raw = _forwarded(raw, origin, proxy)
        connection = await self._acquire(origin, request, timeouts)
        try:
            return await connection.exchange(raw, timeouts.get("read"))
        except httpx.TransportError as exc:
            exc.request = request()
            raise
        finally:
            self._release(connection)  # closed unless its exchange completed and it may be kept alive

    # -- the pool
    async def _acquire(
        self, origin: Origin, request: RequestFactory, timeouts: Mapping[str, float | None]
    ) -> _Connection:
        if self._closed:
            raise RuntimeError("the transport is closed")
        idle = self._idle.get(origin)
        expiry = self.limits.keepalive_expiry
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.quiet() and (expiry is None or now - connection.idle_since < expiry):
                return connection  # nothing awaited from here to the request's write: still quiet then
            connection.close()  # its connection_lost frees the slot
        if self.limits.max_connections is None or self._open < self.limits.max_connections:
            self._open += 1
            return await self._connect(origin, request, timeouts.get("connect"))
        waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append((origin, waiter))
        self._close_an_idle_connection()
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                handed = await waiter
        except TimeoutError:
            raise httpx.PoolTimeout("no connection became free in time", request=request()) from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # handed over just as we gave up: pass it on
                self._give(waiter.result())
            raise
        if handed is not None:
            if handed.quiet():
                return handed
            handed.close()  # closed by the server while it was being handed over: its slot is freed
            return await self._acquire(origin, request, timeouts)
        return await self._connect(origin, request, timeouts.get("connect"))  # a slot was handed over

    def _route(self, origin: Origin) -> Proxy | None:
        """The proxy requests to `origin` go through (None: direct), worked out once per origin."""
        if origin not in self._routes:
            self._routes[origin] = self._proxies.proxy_for(*origin)
        return self._routes[origin]

    async def _connect(self, origin: Origin, request: RequestFactory, timeout: float | None) -> _Connection:
        """A new connection in a slot already counted in `_open` (given back if connecting fails)."""
        _, host, port = origin
        proxy = self._route(origin)
        where = f"{host}:{port}" + (f" through the proxy {proxy.host}:{proxy.port}" if proxy else "")
        try:
            async with asyncio.timeout(timeout):
                connection = await self._open_connection(origin, proxy)
        except TimeoutError:
            self._give(None)
            raise httpx.ConnectTimeout(f"could not connect to {where} in time", request=request()) from None
        except httpx.ProxyError as exc:
            self._give(None)
            exc.request = request()
            raise
        except OSError as exc:  # refused, unreachable, DNS, TLS
            self._give(None)
            raise httpx.ConnectError(f"could not connect to {where}: {exc}", request=request()) from exc
        except BaseException:
            self._give(None)
            raise
        connection._on_lost = self._lost
        return connection

    async def _open_connection(self, origin: Origin, proxy: Proxy | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = self._tls() if scheme == "https" else None
        if proxy is None or tls is None:  # direct, or plain HTTP forwarded by the proxy
            _, connection = await loop.create_connection(
                lambda: _Connection(origin), proxy.host if proxy else host, proxy.port if proxy else port,
                ssl=tls, server_hostname=host if tls else None,
            )
            return connection
        raw, tunnel = await loop.create_connection(_Tunnel, proxy.host, proxy.port)
        try:
            await tunnel.open(host, port, proxy.authorization)
            connection = _Connection(origin)
            secured = await loop.start_tls(raw, connection, tls, server_hostname=host)
        except BaseException:
            raw.close()
            raise
        assert secured is not None
        connection.connection_made(secured)
        return connection

    def _release(self, connection: _Connection) -> None:
        """An exchange ended: keep the connection for the next request, or let it go."""
        if not connection.reusable:
            connection.close()  # `_lost` frees its slot
            return
        connection.idle_since = time.monotonic()
        self._give(connection)

    def _give(self, connection: _Connection | None) -> None:
        """Hand a live connection, or a free slot (None), to the next waiter; else keep it idle or free it."""
        while self._waiters:
            origin, waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            if connection is None or origin == connection.origin:
                self._waiters.popleft()
                waiter.set_result(connection)
                return
            connection.close()  # a waiter wants another host: this one's slot goes to it when it closes
            return
        if connection is None:
            self._open -= 1
        elif self._closed or self._idle_count >= (self.limits.max_keepalive_connections or 0):
            connection.close()
        else:
            self._idle.setdefault(connection.origin, []).append(connection)
            self._idle_count += 1

    def _lost(self, connection: _Connection) -> None:
        """A connection closed (either side): drop it from the idle list and free its slot."""
        connection._on_lost = None
        idle = self._idle.get(connection.origin)
        if idle and connection in idle:
            idle.remove(connection)
            self._idle_count -= 1
        self._give(None)

    def _close_an_idle_connection(self) -> None:
        """Make room for a waiter: an idle connection (to any host) closes and its slot is handed on."""
        for idle in self._idle.values():
            if idle:
                idle[0].close()
                return

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = tls_context(trust_env=self._trust_env)
        return self._ssl_context

    def _httpcore(self, proxy: Proxy | None) -> httpx.AsyncHTTPTransport:
        key = proxy.source if proxy else None
        if key not in self._fallbacks:
            self._fallbacks[key] = httpx.AsyncHTTPTransport(limits=self.limits, verify=self._tls(), proxy=key)
        return self._fallbacks[key]

    async def aclose(self) -> None:
        self._closed = True
        for idle in list(self._idle.values()):
            for connection in list(idle):
                connection.close()
        fallbacks, self._fallbacks = list(self._fallbacks.values()), {}
        for fallback in fallbacks:
            await fallback.aclose()


class _Tunnel(asyncio.Protocol):
    """The CONNECT exchange with a proxy that opens a tunnel for TLS to the provider."""

    def __init__(self) -> None:
        self._head = b""
        self._answered: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._head += data
        if b"\r\n\r\n" in self._head and not self._answered.done():
            self._answered.set_result(self._head)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._answered.done():
            self._answered.set_exception(httpx.ProxyError("the proxy closed the connection before answering CONNECT"))

    async def open(self, host: str, port: int, authorization: bytes | None) -> None:
        """Ask for a tunnel to `host:port`; `ProxyError` unless the proxy answers 2xx (nothing sent yet)."""
        assert self.transport is not None
        target = b"%s:%d" % (_host(host), port)
        lines = [b"CONNECT %s HTTP/1.1" % target, b"Host: " + target]
        if authorization:
            lines.append(b"Proxy-Authorization: " + authorization)
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n")
        head = await self._answered
        status_line = head.split(b"\r\n", 1)[0]
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[1].startswith(b"2") or len(head.split(b"\r\n\r\n", 1)[1]):
            raise httpx.ProxyError(f"the proxy refused the tunnel: {status_line.decode('latin-1')!r}")


def _host(host: str) -> bytes:
    """A host as it goes in a request target (an IPv6 address in brackets)."""
    return b"[%s]" % host.encode("ascii") if ":" in host else host.encode("ascii")


def _forwarded(raw: bytes, origin: Origin, proxy: Proxy) -> bytes:
    """A request for a forward proxy: its target in absolute form, and the proxy's credentials."""
    scheme, host, port = origin
    line_end = raw.index(b"\r\n")
    method, _, rest = raw[:line_end].partition(b" ")
    netloc = _host(host) if port == DEFAULT_PORTS[scheme] else b"%s:%d" % (_host(host), port)
    line = b"%s %s://%s%s" % (method, scheme.encode(), netloc, rest)
    if proxy.authorization:
        line += b"\r\nProxy-Authorization: " + proxy.authorization
    return line + raw[line_end:]


def _serialize(request: httpx.Request, body: bytes) -> bytes | None:
    """The request as it goes on the wire (the body whole, with its length, never chunked), or None
    for one this pool leaves to httpcore: HEAD (an answer with a length but no body), `Expect`, `Upgrade`."""
    if request.method == "HEAD":
        return None
    headers = []
    chunked = False
    for name, value in request.headers.raw:
        lowered = name.lower()
        if lowered in NOT_OURS:
            return None
        if lowered == b"transfer-encoding":
            chunked = True
        else:
            headers.append((name, value))
    if chunked:
        headers.append((b"Content-Length", b"%d" % len(body)))
    try:
        head = wire_head(request.method.encode("ascii"), request.url.raw_path, headers)
    except ValueError as exc:
        raise httpx.LocalProtocolError(str(exc), request=request) from None
    return head + b"\r\n\r\n" + body


def wire_head(method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A request's line and header lines as they go on the wire, without the blank line that ends
    them; `ValueError` when a header has a line break in it (it would smuggle in another header)."""
    lines = [b"%s %s HTTP/1.1" % (method, target), *(name + b": " + value for name, value in headers)]
    head = b"\r\n".join(lines)
    breaks = len(lines) - 1
    if head.count(b"\n") != breaks or head.count(b"\r") != breaks:
        raise ValueError("a header has a line break in it")
    return head
