"""`ProviderClient`: httpx's `AsyncClient` with the per-request work provider APIs never use taken out.

Plugins keep httpx's API (`post`, `build_request`, `send`, `httpx.Response`). What differs, and why:

* redirects are never followed: a 3xx comes back as the response (as with `follow_redirects=False`),
  since a provider API that redirects a POST is misconfigured, and following it could send twice;
* cookies are never kept: no provider API authenticates with them, and a jar shared by every
  provider of a client would carry one provider's cookies into the next call;
* a `(user, password)` auth tuple becomes a Basic header computed once per credential, instead
  of an auth flow per request (any other `httpx.Auth`, e.g. an OAuth refresh, runs as usual);
* a parsed URL is reused for the next request to the same URL;
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

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        if isinstance(url, str):
            parsed = self._urls.get(url)
            if parsed is None:
                if len(self._urls) >= _CACHE_LIMIT:
                    self._urls.clear()
                parsed = self._urls[url] = httpx.URL(url)
            url = parsed
        return super().build_request(method, url, **kwargs)

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
