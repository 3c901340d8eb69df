"""`AiohttpTransport`: httpx's transport API over an aiohttp session, the pool's alternative.

Chosen with `[delivery] http_transport = "aiohttp"` (and `pip install omnisdk[aiohttp]`). It goes
through the same proxies and trusts the same authorities as the pool (`_egress`), never follows
redirects, keeps no cookies, and maps aiohttp's errors to the httpx error of the phase they
happened in, so `transport_error_outcome` tells "never sent" from "may have been acted on" alike.
`tests/test_transport_suite.py` runs one suite over both; docs/operations.md says which is the
default and why.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx

from ._egress import EnvironmentProxies, Proxy, tls_context

__all__ = ["AiohttpTransport"]

#: Request headers aiohttp would add on its own: the request already carries what httpx gives it.
_NOT_ADDED = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp `ClientSession`, opened on first use in the running loop."""

    def __init__(
        self, limits: httpx.Limits, *, ssl_context: ssl.SSLContext | None = None, trust_env: bool = True
    ) -> None:
        try:
            import aiohttp
        except ImportError as exc:  # pragma: no cover - the extra is missing
            raise ImportError("http_transport = \"aiohttp\" needs aiohttp: pip install 'omnisdk[aiohttp]'") from exc
        self._aiohttp = aiohttp
        self.limits = limits
        self._ssl_context = ssl_context or tls_context(trust_env=trust_env)
        self._proxies = EnvironmentProxies.read() if trust_env else EnvironmentProxies({}, ())
        self._routes: dict[tuple[str, str, int], Proxy | None] = {}
        self._session: Any = None

    def _open(self) -> Any:
        if self._session is None:
            aiohttp = self._aiohttp
            connector = aiohttp.TCPConnector(
                limit=self.limits.max_connections or 0, limit_per_host=0,
                keepalive_timeout=self.limits.keepalive_expiry or 15.0, ssl=self._ssl_context,
            )
            tracing = aiohttp.TraceConfig()
            tracing.on_request_headers_sent.append(_request_written)
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                skip_auto_headers=_NOT_ADDED, trust_env=False,  # proxies come from `_egress`, as for the pool
                trace_configs=[tracing],
            )
        return self._session

    def _route(self, url: httpx.URL) -> Proxy | None:
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        if origin not in self._routes:
            self._routes[origin] = self._proxies.proxy_for(*origin)
        return self._routes[origin]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(
                f"the URL's scheme must be http or https, not {request.url.scheme!r}", request=request)
        body = await request.aread()
        headers = []
        for name, value in request.headers.raw:
            if b"\r" in name + value or b"\n" in name + value:
                raise httpx.LocalProtocolError("a header has a line break in it", request=request)
            if name.lower() != b"transfer-encoding":  # the body is whole: aiohttp sends its length
                headers.append((name.decode("latin-1"), value.decode("latin-1")))
        proxy = self._route(request.url)
        timeouts = request.extensions.get("timeout", {})
        aiohttp = self._aiohttp
        timeout = aiohttp.ClientTimeout(total=None, connect=timeouts.get("pool"),
                                        sock_connect=timeouts.get("connect"), sock_read=timeouts.get("read"))
        session = self._open()
        for attempt in range(_UNSENT_RETRIES + 1):
            deadline = _Deadline(timeouts.get("read"))
            try:
                async with asyncio.timeout(None) as deadline.timeout:
                    async with session.request(
                        request.method, str(request.url), data=body or None, headers=headers,
                        allow_redirects=False, timeout=timeout, proxy=proxy.source if proxy else None,
                        trace_request_ctx=deadline,
                    ) as answer:
                        content = await answer.read()
                        status, reason, raw = answer.status, answer.reason or "", list(answer.raw_headers)
                break
            except Exception as exc:
                if _unsent(aiohttp, exc):
                    if attempt < _UNSENT_RETRIES:
                        continue  # the connection was closed before a byte of the request was written
                    raise httpx.ConnectError("the connection closed before the request was written",
                                             request=request) from exc
                if isinstance(exc, TimeoutError) and deadline.timeout.expired():
                    raise httpx.ReadTimeout("no whole response from the server in time", request=request) from exc
                raise _httpx_error(aiohttp, exc, request) from exc
        response = httpx.Response(status, headers=raw, stream=httpx.ByteStream(content), request=request,
                                  extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason.encode("latin-1")})
        await response.aread()
        return response

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


#: How many times a request whose connection turned out closed before it was written is sent again.
_UNSENT_RETRIES = 3


def _unsent(aiohttp: Any, exc: BaseException) -> bool:
    """aiohttp writes a bytes body with its head in one write, after checking the connection is open:
    when that check fails (a keep-alive connection the server closed), nothing was written. Its
    message is the only thing that tells it from a reset after writing (`tests/test_transport_suite.py`
    fails if aiohttp changes it)."""
    cause = exc.__cause__ if isinstance(exc, aiohttp.ClientOSError) else exc
    return isinstance(cause, aiohttp.ClientConnectionResetError) and str(cause) == "Cannot write to closing transport"


class _Deadline:
    """The whole answer must come within the read timeout of the request being written (aiohttp's
    `sock_read` restarts with every byte, so a server that trickles its answer would never time out)."""

    def __init__(self, read: float | None) -> None:
        self.read = read
        self.timeout: asyncio.Timeout = asyncio.Timeout(None)

    def start(self) -> None:
        if self.read is not None:
            self.timeout.reschedule(asyncio.get_running_loop().time() + self.read)


async def _request_written(session: Any, context: Any, params: Any) -> None:
    context.trace_request_ctx.start()


def _httpx_error(aiohttp: Any, exc: Exception, request: httpx.Request) -> Exception:
    """The httpx error for the phase an aiohttp error happened in (before sending, or after)."""
    text = str(exc) or type(exc).__name__
    errors: list[tuple[Any, type[httpx.TransportError]]] = [
        (aiohttp.ClientHttpProxyError, httpx.ProxyError),         # the proxy refused the tunnel
        (aiohttp.ClientProxyConnectionError, httpx.ProxyError),   # the proxy did not answer
        (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),   # no free connection, or no connect, in time
        (aiohttp.ClientConnectorError, httpx.ConnectError),       # refused, DNS, TLS (certificates)
        (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
        (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError, httpx.ReadError),
        (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # a malformed answer
        (aiohttp.ClientOSError, httpx.ReadError),
        (asyncio.TimeoutError, httpx.ReadTimeout),
        (aiohttp.ClientError, httpx.ReadError),
    ]
    for aiohttp_error, httpx_error in errors:
        if isinstance(exc, aiohttp_error):
            return httpx_error(text, request=request)
    return exc
