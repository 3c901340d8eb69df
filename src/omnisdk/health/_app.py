"""`/healthz` and `/readyz` in front of another ASGI app (the mounted app, the dashboard)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .._clock import Clock
from ..store import SQLStore
from ._probes import liveness, readiness

__all__ = ["with_health"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def with_health(app: ASGIApp, store: SQLStore, clock: Clock) -> ASGIApp:
    """`app`, with `GET /healthz` (liveness: no store access) and `GET /readyz` (200 when ready, else 503)."""

    async def health(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope.get("path", "/")
            root: str = scope.get("root_path", "")
            local = path[len(root):] if root and path.startswith(root) else path
            if local == "/healthz" and scope.get("method") in ("GET", "HEAD"):
                await _json(send, 200, liveness())
                return
            if local == "/readyz" and scope.get("method") in ("GET", "HEAD"):
                ready, body = await asyncio.to_thread(readiness, store, clock.timestamp())
                await _json(send, 200 if ready else 503, body)
                return
        await app(scope, receive, send)

    return health
