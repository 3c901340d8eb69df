"""A small ASGI app to mount in FastAPI, Starlette or Django: webhooks, click redirects, one-click unsubscribe.

    app.mount("/omnisdk", omnisdk.asgi.create_app(omni))     # FastAPI / Starlette

Routes (relative to the mount point):
  * `POST /webhooks/{provider}` (any method: Meta verifies with GET) → `omni.handle_webhook`;
  * `GET /c/{token}`  → records "Link Clicked" and redirects (302) to the signed destination;
  * `POST /u/{token}` → RFC 8058 one-click unsubscribe; `GET /u/{token}` shows a confirmation
    form instead of unsubscribing, because mail scanners fetch every link they see.
Store work runs in a worker thread, so the app's event loop keeps serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from html import escape
from typing import Any
from urllib.parse import quote

from ._errors import WebhookError
from ._logging import get_logger
from ._touchpoints import Events
from .providers import WebhookResponse

__all__ = ["create_app"]

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


def _text(status: int, text: str) -> WebhookResponse:
    return WebhookResponse(status=status, headers={"content-type": "text/plain; charset=utf-8"}, body=text.encode())


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


def create_app(omni: Any) -> ASGIApp:
    """The ASGI app for an `Omni` or `AsyncOmni`."""
    core = omni._core
    limit = core.webhooks.max_body_bytes
    public_url = core.config.webhooks.get("public_url")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        method = scope["method"].upper()
        parts = [p for p in _local_path(scope).split("/") if p]
        if len(parts) == 2 and parts[0] == "webhooks":
            body = await _read_body(receive, limit)
            if body is None:
                await _respond(send, _text(413, f"body larger than {limit} bytes"))
                return
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
            response = await asyncio.to_thread(
                core.handle_webhook, parts[1], method, _public_url(scope, public_url), headers, body
            )
        elif len(parts) == 2 and parts[0] == "c" and method in ("GET", "HEAD"):
            response = await asyncio.to_thread(_click, core, parts[1])
        elif len(parts) == 2 and parts[0] == "u" and method == "POST":
            await _read_body(receive, limit)
            response = await asyncio.to_thread(_unsubscribe, core, parts[1])
        elif len(parts) == 2 and parts[0] == "u" and method == "GET":
            page = _CONFIRM.format(action=escape(scope.get("root_path", "") + f"/u/{parts[1]}"))
            response = WebhookResponse(status=200, headers={"content-type": "text/html; charset=utf-8"},
                                       body=page.encode())
        else:
            response = _text(404, "not found")
        await _respond(send, response)

    return app


def _click(core: Any, token: str) -> WebhookResponse:
    try:
        url = core.templates.record_click(token)
    except WebhookError as exc:
        return _text(exc.status, str(exc))
    return WebhookResponse(status=302, headers={"location": url, "cache-control": "no-store"})


def _unsubscribe(core: Any, token: str) -> WebhookResponse:
    """Revoke consent for the token's channel and purpose, and record the "Unsubscribed" touchpoint."""
    try:
        unsubscribe = core.templates.resolve_unsubscribe(token)
    except WebhookError as exc:
        return _text(exc.status, str(exc))
    now = core.clock.timestamp()
    with core.store.transaction() as tx:
        cid = core.resolve(tx, unsubscribe.customer_id, now)
        core.record_consent(tx, cid, unsubscribe.channel, unsubscribe.purpose, False, "one-click unsubscribe", now)
    core.track(cid, Events.UNSUBSCRIBED, {**unsubscribe.properties, "purpose": unsubscribe.purpose,
                                          "source": "one-click"}, channel=unsubscribe.channel)
    log.info("unsubscribed", channel=unsubscribe.channel, purpose=unsubscribe.purpose)
    return _text(200, "You are unsubscribed.")
