"""`ProviderClient`: httpx's `AsyncClient` with the per-request work provider APIs never use taken out.

Plugins keep httpx's API (`post`, `build_request`, `send`, `httpx.Response`). What differs, and why:

* redirects are never followed: a 3xx comes back as the response (as with `follow_redirects=False`),
  since a provider API that redirects a POST is misconfigured, and following it could send twice;
* cookies are never kept: no provider API authenticates with them, and a jar shared by every
  provider of a client would carry one provider's cookies into the next call;
* a `(user, password)` auth tuple becomes a Basic header computed once per credential, instead
  of an auth flow per request (any other `httpx.Auth`, e.g. an OAuth refresh, runs as usual);
* a parsed URL is reused for the next request to the same URL;
* a request to an absolute URL whose body is bytes (or none), with no `params` or `cookies`, is
  built in one step with the headers httpx would give it (`tests/test_delivery_client.py` checks
  they are the same), instead of httpx's merge-then-prepare, which builds its headers five times;
* no "HTTP Request: ..." line goes to the `httpx` logger, whose URLs can carry tokens.

A request that asks for more (`stream=True`, `follow_redirects=True`, event hooks, credentials
in the URL, a custom auth flow) takes httpx's own path, so nothing a plugin writes stops working.
"""

from __future__ import annotations

import time
from base64 import b64encode
from collections.abc import Mapping
from datetime import timedelta
from http.cookiejar import Cookie, CookieJar, CookiePolicy
from typing import Any

import httpx

from ._transport import DEFAULT_PORTS, NOT_OURS, Origin, ProviderTransport, RequestFactory, wire_head

__all__ = ["ProviderClient"]

_CACHE_LIMIT = 256
#: Methods httpx gives a `Content-Length: 0` when they have no body.
_NEEDS_LENGTH = ("POST", "PUT", "PATCH")
#: A request shape's wire head, kept by `ProviderClient._wire`: origin, URL, the head up to the
#: body's length, whether a Content-Length line follows, the Authorization line.
_Head = tuple[Origin, httpx.URL, bytes, bool, bytes]
#: Headers of requests the wire fast path leaves to httpx and the transport: those the pool does not
#: speak, and a body httpx would stream in chunks.
_NOT_FAST = NOT_OURS | {b"transfer-encoding"}


class _NoCookies(CookiePolicy):
    """A cookie policy that accepts and returns nothing."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = True

    def set_ok(self, cookie: Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Cookie, request: Any) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: Any) -> bool:
        return False

    def path_return_ok(self, path: str, request: Any) -> bool:
        return False


class _NoCookieJar(CookieJar):
    """The client's jar: `_NoCookies` keeps every answer's cookies out, so one gets in only when set by
    hand (`client.cookies.set`). It notes that, since asking an empty jar whether it holds any walks
    it under a lock, on every request."""

    def __init__(self) -> None:
        super().__init__(policy=_NoCookies())
        self.touched = False

    def set_cookie(self, cookie: Cookie) -> None:
        self.touched = True
        super().set_cookie(cookie)


def _ascii(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("ascii")


def _lowered(name: str | bytes) -> str:
    return name.lower() if isinstance(name, str) else name.decode("latin-1").lower()


class ProviderClient(httpx.AsyncClient):
    """The HTTP client a Core hands its provider plugins (see the module docstring for what differs)."""

    def __init__(self, transport: httpx.AsyncBaseTransport, *, timeout: httpx.Timeout) -> None:
        super().__init__(transport=transport, timeout=timeout, follow_redirects=False, cookies=_NoCookieJar())
        self._provider_transport = transport
        self._urls: dict[str, httpx.URL] = {}
        self._basic: dict[tuple[str | bytes, str | bytes], str] = {}
        self._timeouts: tuple[httpx.Timeout, dict[str, float | None]] | None = None
        self._heads: dict[tuple[Any, ...], _Head] = {}

    async def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        params: Any = None,
        headers: Any = None,
        cookies: Any = None,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
        extensions: Any = None,
    ) -> httpx.Response:
        if (
            isinstance(self._provider_transport, ProviderTransport)
            and data is None and files is None and json is None and params is None and cookies is None
            and extensions is None and timeout is httpx.USE_CLIENT_DEFAULT and follow_redirects is not True
            and isinstance(content, bytes | None) and isinstance(headers, dict | None)
        ):
            wire = self._wire(method.upper(), url, content or b"", dict(headers or {}), auth)
            if wire is not None:
                return await self._send_wire(*wire)
        return await super().request(
            method, url, content=content, data=data, files=files, json=json, params=params, headers=headers,
            cookies=cookies, auth=auth, follow_redirects=follow_redirects, timeout=timeout, extensions=extensions,
        )

    def _wire(
        self, method: str, url: httpx.URL | str, body: bytes, headers: dict[Any, Any], auth: Any
    ) -> tuple[Origin, bytes, RequestFactory] | None:
        """The request as it goes on the wire (what `build_request`, `send` and the transport would make
        of it: `tests/test_delivery_client.py` compares the bytes), or None when it needs httpx's path.
        Everything before the body's length is kept per request shape, since a plugin's calls differ
        only in their bodies."""
        header = self._auth_header(auth)
        if (
            header is None or self.is_closed or self._holds_cookies()
            or self.event_hooks["request"] or self.event_hooks["response"]
        ):
            return None
        key = (method, url, tuple(headers.items()), header, not body, tuple(self.headers.raw))
        try:
            head, hashable = self._heads.get(key), True
        except TypeError:  # an unhashable header value: httpx's path says what is wrong with it
            head, hashable = None, False
        if head is None:
            head = self._head(method, url, body, headers, header)
            if head is None:
                return None
            if hashable:
                if len(self._heads) >= _CACHE_LIMIT:
                    self._heads.clear()
                self._heads[key] = head
        origin, parsed, prefix, add_length, auth_line = head
        length = b"\r\nContent-Length: %d" % len(body) if add_length else b""
        raw = b"".join((prefix, length, auth_line, b"\r\n\r\n", body))
        return origin, raw, lambda: self._sent_request(method, parsed, body, headers, header)

    def _head(
        self, method: str, url: httpx.URL | str, body: bytes, headers: dict[Any, Any], auth_header: str
    ) -> _Head | None:
        """What goes before a request's body length: origin, URL, head, whether the length follows, the
        Authorization line; None for a request httpx's path must take."""
        parsed = self._url(url)
        if method == "HEAD" or parsed.scheme not in DEFAULT_PORTS or not parsed.host or parsed.userinfo:
            return None
        if auth_header and any(_lowered(name) == "authorization" for name in headers):
            return None  # `send` replaces that header in place: httpx's path keeps its order
        merged = self._merged_headers(method, parsed, body, headers)
        add_length = bool(body) and merged[-1][0] == b"Content-Length"
        if add_length:
            merged.pop()  # its value differs per body: `_wire` appends it
        try:
            encoded = [(_ascii(name), _ascii(value)) for name, value in merged]
        except (UnicodeEncodeError, AttributeError):
            return None  # httpx's path raises the error it raises for such a header
        if any(name.lower() in _NOT_FAST for name, _ in encoded):
            return None
        try:
            prefix = wire_head(method.encode("ascii"), parsed.raw_path, encoded)
        except ValueError:
            return None  # the transport refuses it, naming the request
        auth_line = b"\r\nAuthorization: " + auth_header.encode("ascii") if auth_header else b""
        origin = (parsed.scheme, parsed.host, parsed.port or DEFAULT_PORTS[parsed.scheme])
        return origin, parsed, prefix, add_length, auth_line

    def _sent_request(
        self, method: str, url: httpx.URL, body: bytes, headers: dict[Any, Any], auth_header: str
    ) -> httpx.Request:
        """The `httpx.Request` for a request sent from its wire bytes, built for its response or its error."""
        request = self._bytes_request(method, url, body, headers)
        if auth_header:
            request.headers["Authorization"] = auth_header
        return request

    async def _send_wire(self, origin: Origin, raw: bytes, request: RequestFactory) -> httpx.Response:
        assert isinstance(self._provider_transport, ProviderTransport)
        start = time.perf_counter()
        response = await self._provider_transport.exchange(origin, raw, self._timeouts_now(), request)
        response.elapsed = timedelta(seconds=time.perf_counter() - start)
        return response

    def _holds_cookies(self) -> bool:
        """Whether the client has cookies to send (only ever set by hand: see `_NoCookieJar`)."""
        jar = self.cookies.jar
        return (not isinstance(jar, _NoCookieJar) or jar.touched) and bool(self.cookies)

    def _url(self, url: httpx.URL | str) -> httpx.URL:
        """`url` parsed, reusing the parse of the same string."""
        if not isinstance(url, str):
            return url
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _CACHE_LIMIT:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    def build_request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        content: Any = None,
        headers: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
        extensions: Any = None,
        **kwargs: Any,
    ) -> httpx.Request:
        url = self._url(url)
        if (
            any(v is not None for v in kwargs.values()) or not isinstance(content, bytes | None)
            or not isinstance(headers, dict | None) or extensions or timeout is not httpx.USE_CLIENT_DEFAULT
            or not url.is_absolute_url or self._holds_cookies()  # httpx merges `base_url` into relative URLs only
        ):
            return super().build_request(
                method, url, content=content, headers=headers, timeout=timeout, extensions=extensions, **kwargs
            )
        return self._bytes_request(method.upper(), url, content or b"", headers or {})

    def _bytes_request(self, method: str, url: httpx.URL, body: bytes, headers: Mapping[Any, Any]) -> httpx.Request:
        request = httpx.Request(method, url, headers=self._merged_headers(method, url, body, headers),
                                stream=httpx.ByteStream(body), extensions={"timeout": self._timeout_extension()})
        request.read()
        return request

    def _merged_headers(
        self, method: str, url: httpx.URL, body: bytes, headers: Mapping[Any, Any]
    ) -> list[tuple[Any, Any]]:
        """What httpx's `build_request` makes of a bytes body's headers: Host (and `Content-Length: 0`
        for an empty body that needs one) first, the client's headers that the request's own do not
        replace, the request's, then the length of a body."""
        own = {_lowered(name) for name in headers}
        merged: list[tuple[Any, Any]] = [] if "host" in own else [(b"Host", url.netloc)]
        sized = "content-length" in own
        if not body and not sized and "transfer-encoding" not in own and method in _NEEDS_LENGTH:
            merged.append((b"Content-Length", b"0"))
        merged += [(name, value) for name, value in self.headers.raw if name.lower().decode("latin-1") not in own]
        merged += headers.items()
        if body and not sized:
            merged.append((b"Content-Length", b"%d" % len(body)))
        return merged

    def _timeout_extension(self) -> dict[str, float | None]:
        return dict(self._timeouts_now())

    def _timeouts_now(self) -> Mapping[str, float | None]:
        """The client's timeouts as the transport reads them (computed again when `timeout` is replaced)."""
        if self._timeouts is None or self._timeouts[0] is not self.timeout:
            self._timeouts = (self.timeout, self.timeout.as_dict())
        return self._timeouts[1]

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        header = self._auth_header(auth)
        if (
            stream or follow_redirects is True or header is None or self.is_closed
            or self.event_hooks["request"] or self.event_hooks["response"] or request.url.userinfo
        ):
            return await super().send(request, stream=stream, auth=auth, follow_redirects=follow_redirects)
        if header:
            request.headers["Authorization"] = header
        if "timeout" not in request.extensions:
            request.extensions = {**request.extensions, "timeout": self.timeout.as_dict()}
        start = time.perf_counter()
        response = await self._provider_transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
        response.elapsed = timedelta(seconds=time.perf_counter() - start)
        return response

    def _auth_header(self, auth: Any) -> str | None:
        """The Authorization header for `auth` ("" for none), or None when it needs httpx's auth flow."""
        if auth is httpx.USE_CLIENT_DEFAULT:
            return "" if self.auth is None else None
        if auth is None:
            return ""
        if not isinstance(auth, tuple) or len(auth) != 2:
            return None
        user, password = auth
        header = self._basic.get(auth)
        if header is None:
            if len(self._basic) >= _CACHE_LIMIT:
                self._basic.clear()
            raw = b":".join(v.encode() if isinstance(v, str) else v for v in (user, password))
            header = self._basic[(user, password)] = f"Basic {b64encode(raw).decode()}"
        return header
