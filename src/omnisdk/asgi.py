"""A small ASGI app to mount in FastAPI, Starlette or Django: webhooks, click redirects, one-click unsubscribe.

    app.mount("/omnisdk", omnisdk.asgi.create_app(omni))     # FastAPI / Starlette

Routes (relative to the mount point):
  * `POST /webhooks/{provider}` (any method: Meta verifies with GET) → `omni.handle_webhook`;
  * `GET /c/{token}`  → records "Link Clicked" and redirects (302) to the signed destination;
  * `POST /u/{token}` → RFC 8058 one-click unsubscribe; `GET /u/{token}` shows a confirmation
    form instead of unsubscribing, because mail scanners fetch every link they see;
  * `GET /healthz` (liveness) and `GET /readyz` (store reachable, migrations current), JSON.
Store work runs in a worker thread, so the app's event loop keeps serving.

Whatever bytes arrive, the answer is a 4xx (or the redirect): a malformed request head is 400,
a long URL 414, too many or too large headers 431 (`[limits]`), a body over
`webhooks.max_body_bytes` 413, a token that is not ours 400.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from html import escape
from typing import Any, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

import attrs

from ._customers import Consent
from ._errors import ValidationError, WebhookError
from ._logging import get_logger
from ._omni import AsyncOmni, Omni
from ._touchpoints import Events, Touchpoint
from ._validation import Validator
from .health import with_health
from .messages import Templates
from .providers import WebhookResponse

__all__ = ["Ledger", "Routes", "create_app", "routes_app"]

log = get_logger("omnisdk.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CONFIRM = (
    "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>"
    '<form method=post action="{action}"><p>Stop these messages?</p><button>Unsubscribe</button></form>'
)


_text = WebhookResponse.text
#: Characters a URL keeps as they are when it is made ASCII (reserved ones, and `%` of existing escapes).
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


async def _respond(send: Send, response: WebhookResponse) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows past `limit` (answered 413 unread)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _public_url(scope: Scope, public_url: str | None) -> str:
    """The URL the provider called (signatures cover it).

    `webhooks.public_url` is where this app is reachable from outside, mount point included
    (links are made from it too), so only the path inside the mount follows it. Without it,
    the URL is rebuilt from the request: host, mount point (`root_path`) and path."""
    query = scope.get("query_string", b"").decode("latin-1")
    if public_url:
        base, path = public_url.rstrip("/"), _local_path(scope)
    else:
        path = scope.get("root_path", "") + _local_path(scope)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        server = scope.get("server") or ("localhost", 80)
        host = headers.get("host") or f"{server[0]}:{server[1]}"
        base = f"{scope.get('scheme', 'http')}://{host}"
    return base + quote(path) + (f"?{query}" if query else "")


def _local_path(scope: Scope) -> str:
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


class Ledger(Protocol):
    """The blocking calls the routes make (the core's, run in a worker thread)."""

    def handle_webhook(
        self, provider: str, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> WebhookResponse: ...

    def consent(self, who: str, *, channel: str, granted: bool, purpose: str, source: str) -> Consent: ...

    def track(self, who: str, event: str, properties: Mapping[str, Any] | None = None, *, channel: str) -> Touchpoint:
        ...


@attrs.frozen(kw_only=True)
class Routes:
    """What the app serves with: the request checks, the link tokens, and the ledger they write to."""

    validator: Validator
    templates: Templates
    ledger: Ledger
    #: `webhooks.max_body_bytes`: a larger body is answered 413 unread.
    max_body_bytes: int
    #: `webhooks.public_url`: where the app is reachable from outside (signatures cover it).
    public_url: str | None = None


def create_app(omni: Omni | AsyncOmni) -> ASGIApp:
    """The ASGI app for an `Omni` or `AsyncOmni`, with `/healthz` and `/readyz` (`omnisdk.health`)."""
    core = omni._core
    return with_health(routes_app(Routes(validator=core.validate, templates=core.templates, ledger=core,
                                         max_body_bytes=core.webhooks.max_body_bytes,
                                         public_url=core.config.webhooks.get("public_url"))), core.store, core.clock)


def routes_app(routes: Routes) -> ASGIApp:
    """The ASGI app over its collaborators."""
    limit, public_url, templates = routes.max_body_bytes, routes.public_url, routes.templates

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        try:
            response = await route(scope, receive)
        except WebhookError as exc:
            response = _text(exc.status, str(exc))
        except ValidationError as exc:
            response = _text(400, str(exc))
        await _respond(send, response)

    async def route(scope: Scope, receive: Receive) -> WebhookResponse:
        method = str(scope.get("method", "GET")).upper()
        local = _local_path(scope)
        query = scope.get("query_string", b"")
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])]
        routes.validator.request(method, local + ("?" + query.decode("latin-1") if query else ""), pairs)
        parts = [p for p in local.split("/") if p]
        if len(parts) == 2 and parts[0] == "webhooks":
            body = await _read_body(receive, limit)
            if body is None:
                return _text(413, f"body larger than {limit} bytes (webhooks.max_body_bytes)")
            return await asyncio.to_thread(
                routes.ledger.handle_webhook, parts[1], method, _public_url(scope, public_url), dict(pairs), body
            )
        if len(parts) == 2 and parts[0] == "c" and method in ("GET", "HEAD"):
            return await asyncio.to_thread(_click, templates, parts[1])
        if len(parts) == 2 and parts[0] == "u" and method == "POST":
            if await _read_body(receive, limit) is None:
                return _text(413, f"body larger than {limit} bytes (webhooks.max_body_bytes)")
            return await asyncio.to_thread(_unsubscribe, templates, routes.ledger, parts[1])
        if len(parts) == 2 and parts[0] == "u" and method == "GET":
            templates.resolve_unsubscribe(parts[1])  # a forged token gets its 400, not a form
            page = _CONFIRM.format(action=escape(scope.get("root_path", "") + f"/u/{quote(parts[1])}"))
            return WebhookResponse(status=200, headers={"content-type": "text/html; charset=utf-8"},
                                   body=page.encode())
        return _text(404, "not found")

    return app


def _ascii_url(url: str) -> str:
    """A redirect target fit for a `Location` header (latin-1 bytes): an IDNA host, and UTF-8
    percent-encoded elsewhere, so `https://café.example/crème` still leads where it was meant to."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if not netloc.isascii():
            netloc = netloc.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        return quote(url, safe=_URL_SAFE)
    return urlunsplit((parts.scheme, quote(netloc, safe=_URL_SAFE), *(quote(p, safe=_URL_SAFE) for p in parts[2:])))


def _click(templates: Templates, token: str) -> WebhookResponse:
    try:
        url = templates.record_click(token)
    except WebhookError as exc:
        return _text(exc.status, str(exc))
    return WebhookResponse(status=302, headers={"location": _ascii_url(url), "cache-control": "no-store"})


def _unsubscribe(templates: Templates, ledger: Ledger, token: str) -> WebhookResponse:
    """Revoke consent for the token's channel and purpose, and record the "Unsubscribed" touchpoint."""
    try:
        unsubscribe = templates.resolve_unsubscribe(token)
    except WebhookError as exc:
        return _text(exc.status, str(exc))
    ledger.consent(unsubscribe.customer_id, channel=unsubscribe.channel, granted=False, purpose=unsubscribe.purpose,
                   source="one-click unsubscribe")
    ledger.track(unsubscribe.customer_id, Events.UNSUBSCRIBED, {**unsubscribe.properties,
                 "purpose": unsubscribe.purpose, "source": "one-click"}, channel=unsubscribe.channel)
    log.info("unsubscribed", channel=unsubscribe.channel, purpose=unsubscribe.purpose)
    return _text(200, "You are unsubscribed.")
