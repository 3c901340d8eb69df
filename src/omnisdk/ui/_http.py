"""Just enough HTTP over ASGI for server-rendered pages: the request as read, and the response to give."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import attrs

__all__ = ["ASGIApp", "Receive", "Request", "Response", "Scope", "Send", "read_request", "respond"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: A form is a few fields: anything larger is refused unread.
MAX_FORM_BYTES = 16_384


@attrs.frozen(kw_only=True)
class Request:
    method: str
    #: The path inside the mount point.
    path: str
    #: Where the app is mounted (`root_path`), for the links and form actions it writes.
    root: str
    #: The path's segments, each percent-decoded on its own (an id may hold a `/`).
    segments: tuple[str, ...]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    cookies: Mapping[str, str]
    form: Mapping[str, str]

    def arg(self, name: str, default: str = "") -> str:
        return self.query.get(name, default).strip()


@attrs.frozen(kw_only=True)
class Response:
    status: int = 200
    body: str = ""
    content_type: str = "text/html; charset=utf-8"
    headers: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def redirect(cls, location: str, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status=303, headers={"location": location, **(headers or {})})


def _first(values: Mapping[str, list[str]]) -> dict[str, str]:
    return {k: v[0] for k, v in values.items() if v}


async def read_request(scope: Scope, receive: Receive) -> Request | None:
    """The request, or None when its body is larger than a form can be (answered 413)."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    raw = scope.get("raw_path") or quote(scope.get("path", "/")).encode()
    raw_path = raw.decode("latin-1").split("?", 1)[0]
    if root and raw_path.startswith(quote(root)):
        raw_path = raw_path[len(quote(root)):]
    segments = tuple(unquote(s) for s in raw_path.split("/") if s)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    cookies: dict[str, str] = {}
    if "cookie" in headers:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers["cookie"])
        except Exception:
            jar = SimpleCookie()
        cookies = {name: morsel.value for name, morsel in jar.items()}
    form: dict[str, str] = {}
    method = str(scope.get("method", "GET")).upper()
    if method == "POST":
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_FORM_BYTES:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        form = _first(parse_qs(b"".join(chunks).decode("utf-8", "replace")))
    query = _first(parse_qs(scope.get("query_string", b"").decode("latin-1")))
    return Request(method=method, path=path, root=root, segments=segments, query=query, headers=headers,
                   cookies=cookies, form=form)


#: Every page: no framing by other sites, no inline script, no fetching from elsewhere, no caching.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # not "no-referrer": browsers would then send `Origin: null` with our own forms
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


async def respond(send: Send, response: Response) -> None:
    headers = {"content-type": response.content_type, **SECURITY_HEADERS, **response.headers}
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": response.status, "headers": raw})
    await send({"type": "http.response.body", "body": response.body.encode("utf-8")})
