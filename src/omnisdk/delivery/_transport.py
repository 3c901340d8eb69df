"""httpx's API over aiohttp's connection pool, with errors that say whether a request left.

httpcore's own pool scans every connection for each request, so it slows down as concurrency
grows (benchmarks/dispatch.py measures it). `httpx-aiohttp` fixes that but maps every aiohttp
connection error, "server disconnected after the request was written" included, to
`ConnectTimeout`, so a provider could not tell a request that never left from one the provider
may have acted on. This transport maps each aiohttp failure to the httpx error of its phase
(connect, read, protocol), which `omnisdk.providers.transport_error_outcome` relies on, and
reads the (small) provider response in one go.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
import yarl

__all__ = ["ProviderTransport"]


class ProviderTransport(httpx.AsyncBaseTransport):
    """An httpx transport for provider APIs: one aiohttp session, keep-alive, no redirects, no cookies."""

    def __init__(self, limits: httpx.Limits) -> None:
        self.limits = limits
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0, keepalive_timeout=self.limits.keepalive_expiry or 15.0
        )
        # httpx keeps the cookies (one jar, not two); aiohttp hands responses over undecoded, as httpx expects.
        self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                              auto_decompress=False, skip_auto_headers=("User-Agent",))
        return self._session

    def _timeout(self, extension: dict[str, Any]) -> aiohttp.ClientTimeout:
        key = (extension.get("connect"), extension.get("read"), extension.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(sock_connect=key[0], sock_read=key[1], connect=key[2])
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        body = await request.aread()
        try:
            async with session.request(
                request.method, yarl.URL(str(request.url), encoded=True), headers=_headers(request),
                data=body or None, allow_redirects=False, compress=False,
                timeout=self._timeout(request.extensions.get("timeout", {})),
            ) as response:
                content = await response.read()
                status, headers, reason = response.status, response.raw_headers, response.reason
        except aiohttp.ClientError as exc:
            raise _httpx_error(exc, request) from exc
        except TimeoutError as exc:  # pragma: no cover - aiohttp raises its own subclasses
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": (reason or "").encode()}
        return httpx.Response(status, headers=list(headers), stream=httpx.ByteStream(content), request=request,
                              extensions=extensions)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _headers(request: httpx.Request) -> list[tuple[str, str]]:
    """The request's headers; the body is sent whole with its length, never chunked."""
    return [(k, v) for k, v in request.headers.multi_items() if k.lower() != "transfer-encoding"]


def _httpx_error(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    """The httpx error for the phase an aiohttp error happened in."""
    message = str(exc) or type(exc).__name__
    kind: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout  # no connection in time: nothing was written
    elif isinstance(exc, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        kind = httpx.ReadTimeout  # the request went out, the answer did not come in time
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        kind = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.InvalidURL):
        kind = httpx.UnsupportedProtocol
    else:
        kind = httpx.ReadError  # a reset or a broken payload mid-exchange: the request may have been read
    return kind(message, request=request)
