"""Event webhooks: the stream pushed to HTTP endpoints, signed, at least once, in order per customer.

Each `[[event_webhooks]]` endpoint has a durable cursor into the stream and an outbox of events
taken but not yet acknowledged (store/_events.py). A tick moves new events into each outbox, then
posts every customer's oldest outstanding event (one request per event, `concurrency` at a time);
a 2xx acknowledges it, anything else (an error status, a timeout, a refused connection) schedules
it again with exponential backoff and jitter, never sooner than a `Retry-After`, and the
customer's later events wait behind it while other customers' go on. Backoff is a due time in the
store, not a sleep, so a crash loses nothing and a virtual clock drives it in tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx

from .._clock import Clock
from .._errors import ConfigError
from .._logging import get_logger
from ..delivery._limits import retry_delay
from ..providers import retry_after_seconds
from ..store import SQLStore, dumps
from ..store._events import StoredEvent, ack_outbox, due_outbox, fill_outbox, next_outbox_due, retry_outbox
from ._signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign
from ._stream import check_kinds, event_from_stored

__all__ = ["EventWebhooks", "WebhookEndpoint", "endpoints_from_config"]

log = get_logger("omnisdk")


@attrs.frozen(kw_only=True)
class WebhookEndpoint:
    """One `[[event_webhooks]]` entry. The secret never appears in a repr or a log line."""

    name: str
    url: str
    secret: str = attrs.field(repr=False)
    kinds: tuple[str, ...] = ()
    timeout: float = 10.0
    concurrency: int = 8


def endpoints_from_config(raw: Any) -> list[WebhookEndpoint]:
    """`[[event_webhooks]]`: url, secret, optional kinds, name (default: the url without credentials
    or query), timeout_seconds, concurrency."""
    if raw is None:
        return []
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise ConfigError("expected a list of tables ([[event_webhooks]])", field="event_webhooks")
    found: list[WebhookEndpoint] = []
    for i, entry in enumerate(raw):
        where = f"event_webhooks[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError("expected a table with url and secret", field=where)
        url, secret = entry.get("url"), entry.get("secret")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError("expected an http(s) URL", field=f"{where}.url")
        if not isinstance(secret, str) or len(secret) < 16:
            raise ConfigError("expected a secret of at least 16 characters", field=f"{where}.secret")
        try:
            kinds = check_kinds(entry.get("kinds"), f"{where}.kinds")
        except ValueError as exc:
            raise ConfigError(str(exc).split(": ", 1)[-1], field=f"{where}.kinds") from None
        parts = urlsplit(url)  # the default name (in logs, and the cursor's key): no credentials, no query
        port = f":{parts.port}" if parts.port else ""
        name = entry.get("name", f"{parts.scheme}://{parts.hostname}{port}{parts.path}")
        timeout, concurrency = entry.get("timeout_seconds", 10.0), entry.get("concurrency", 8)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0:
            raise ConfigError("expected a positive number of seconds", field=f"{where}.timeout_seconds")
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ConfigError("expected a whole number of at least 1", field=f"{where}.concurrency")
        if not isinstance(name, str) or not name or any(e.name == name for e in found):
            raise ConfigError("expected a name no other endpoint has", field=f"{where}.name")
        found.append(WebhookEndpoint(name=name, url=url, secret=secret, kinds=kinds, timeout=float(timeout),
                                     concurrency=concurrency))
    return found


class EventWebhooks:
    """The worker that pushes the stream to the configured endpoints (a `Worker` of the core's loop)."""

    #: Events taken into an outbox per tick and endpoint.
    batch = 500

    def __init__(self, store: SQLStore, clock: Clock, endpoints: Sequence[WebhookEndpoint]) -> None:
        self.store = store
        self.clock = clock
        self.endpoints = list(endpoints)
        self._client: httpx.AsyncClient | None = None

    async def tick(self) -> int:
        done = 0
        for endpoint in self.endpoints:
            done += await self._endpoint_tick(endpoint)
        return done

    def next_due(self) -> float | None:
        if not self.endpoints:
            return None
        with self.store.transaction(immediate=False) as tx:
            return next_outbox_due(tx, [e.name for e in self.endpoints])

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _endpoint_tick(self, endpoint: WebhookEndpoint) -> int:
        """Fill the outbox, then post due heads until none is due: a success lets that customer's
        next event go in the same tick."""
        now = self.clock.timestamp()
        with self.store.transaction() as tx:
            taken = fill_outbox(tx, endpoint.name, endpoint.kinds, now, self.batch)
        done = taken
        while True:
            now = self.clock.timestamp()
            with self.store.transaction(immediate=False) as tx:
                heads = due_outbox(tx, endpoint.name, now, endpoint.concurrency * 4)
            if not heads:
                return done
            gate = asyncio.Semaphore(endpoint.concurrency)
            answers = await asyncio.gather(*(self._post(endpoint, event, gate) for event, _ in heads))
            acked = [event.seq for (event, _), (ok, _, _) in zip(heads, answers, strict=True) if ok]
            retries = [(event.seq, now + retry_delay(attempts + 1, wait), status)
                       for (event, attempts), (ok, wait, status) in zip(heads, answers, strict=True) if not ok]
            with self.store.transaction() as tx:
                ack_outbox(tx, endpoint.name, acked)
                retry_outbox(tx, endpoint.name, retries)
            done += len(acked) + len(retries)
            if not acked:
                return done

    async def _post(
        self, endpoint: WebhookEndpoint, row: StoredEvent, gate: asyncio.Semaphore
    ) -> tuple[bool, float | None, str]:
        """Post one event: (acknowledged, Retry-After seconds if given, status for the outbox)."""
        event = event_from_stored(row)
        body = dumps(event.to_json()).encode()
        headers = {"Content-Type": "application/json", EVENT_ID_HEADER: event.id,
                   SIGNATURE_HEADER: sign(body, endpoint.secret, self.clock.timestamp())}
        if self._client is None:
            self._client = httpx.AsyncClient()
        async with gate:
            try:
                response = await self._client.post(endpoint.url, content=body, headers=headers,
                                                   timeout=endpoint.timeout)
            except httpx.HTTPError as exc:
                log.warning("event_webhook_failed", endpoint=endpoint.name, event_id=event.id,
                            error=type(exc).__name__)
                return False, None, type(exc).__name__
        if 200 <= response.status_code < 300:
            return True, None, str(response.status_code)
        log.warning("event_webhook_refused", endpoint=endpoint.name, event_id=event.id, status=response.status_code)
        return False, retry_after_seconds(response.headers.get("Retry-After"), self.clock.timestamp()), \
            str(response.status_code)
