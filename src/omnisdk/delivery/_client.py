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
from datetime import timedelta
from http.cookiejar import Cookie, CookieJar, CookiePolicy
from typing import Any

import httpx

__all__ = ["ProviderClient"]

_CACHE_LIMIT = 256
#: Methods httpx gives a `Content-Length: 0` when they have no body.
_NEEDS_LENGTH = ("POST", "PUT", "PATCH")


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


class ProviderClient(httpx.AsyncClient):
    """The HTTP client a Core hands its provider plugins (see the module docstring for what differs)."""

    def __init__(self, transport: httpx.AsyncBaseTransport, *, timeout: httpx.Timeout) -> None:
        super().__init__(transport=transport, timeout=timeout, follow_redirects=False,
                         cookies=CookieJar(policy=_NoCookies()))
        self._provider_transport = transport
        self._urls: dict[str, httpx.URL] = {}
        self._basic: dict[tuple[str | bytes, str | bytes], str] = {}
        self._timeouts: tuple[httpx.Timeout, dict[str, float | None]] | None = None

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
        if isinstance(url, str):
            parsed = self._urls.get(url)
            if parsed is None:
                if len(self._urls) >= _CACHE_LIMIT:
                    self._urls.clear()
                parsed = self._urls[url] = httpx.URL(url)
            url = parsed
        if (
            any(v is not None for v in kwargs.values()) or not isinstance(content, bytes | None)
            or not isinstance(headers, dict | None) or extensions or timeout is not httpx.USE_CLIENT_DEFAULT
            or not url.is_absolute_url or self.cookies  # httpx merges `base_url` into relative URLs only
        ):
            return super().build_request(
                method, url, content=content, headers=headers, timeout=timeout, extensions=extensions, **kwargs
            )
        return self._bytes_request(method.upper(), url, content or b"", headers or {})

    def _bytes_request(self, method: str, url: httpx.URL, body: bytes, headers: dict[str, Any]) -> httpx.Request:
        """What httpx's `build_request` makes of a bytes body: Host (and `Content-Length: 0` for an
        empty body that needs one) first, the client's headers that the request's own do not
        replace, the request's, then the length of a body."""
        own = {(name.lower() if isinstance(name, str) else name.decode("latin-1").lower()) for name in headers}
        merged: list[tuple[Any, Any]] = [] if "host" in own else [(b"Host", url.netloc)]
        sized = "content-length" in own
        if not body and not sized and "transfer-encoding" not in own and method in _NEEDS_LENGTH:
            merged.append((b"Content-Length", b"0"))
        merged += [(name, value) for name, value in self.headers.raw if name.lower().decode("latin-1") not in own]
        merged += headers.items()
        if body and not sized:
            merged.append((b"Content-Length", b"%d" % len(body)))
        request = httpx.Request(method, url, headers=merged, stream=httpx.ByteStream(body),
                                extensions={"timeout": self._timeout_extension()})
        request.read()
        return request

    def _timeout_extension(self) -> dict[str, float | None]:
        if self._timeouts is None or self._timeouts[0] is not self.timeout:
            self._timeouts = (self.timeout, self.timeout.as_dict())
        return dict(self._timeouts[1])

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
