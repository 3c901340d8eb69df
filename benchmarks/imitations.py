"""How many requests per second one provider imitation serves, with contract validation on and off.

A bare aiohttp client keeps 64 requests in flight against the imitation's server thread, in the
same process (as in the test suite). Not a test: run it and read the numbers.

    .venv/bin/python benchmarks/imitations.py [--seconds 3] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from omnisdk.testing.imitations import Call, Imitation, SendGridImitation, TwilioImitation, route


class Empty(Imitation):
    """The ceiling: the same server and client with a handler that does nothing."""

    @route("POST", "/empty")
    def empty(self, call: Call) -> web.StreamResponse:
        return web.Response(status=204)


TWILIO_SID = "AC" + "a" * 32
TWILIO = (
    TwilioImitation,
    f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json",
    {
        "data": {"To": "+15558675310", "From": "+15017122661", "Body": "Your order has shipped"},
        "headers": {"Authorization": "Basic " + base64.b64encode(f"{TWILIO_SID}:authtoken".encode()).decode()},
    },
)
SENDGRID = (
    SendGridImitation,
    "/v3/mail/send",
    {
        "json": {
            "from": {"email": "news@example.com"},
            "subject": "Hello",
            "personalizations": [{"to": [{"email": "a@example.com"}]}],
            "content": [{"type": "text/plain", "value": "hi"}],
        },
        "headers": {"Authorization": "Bearer SG.test-key"},
    },
)


def _unique(request: dict[str, Any], n: int) -> dict[str, Any]:
    """The request with a body no other request had, so no validation verdict is reused."""
    if "data" in request:
        return {**request, "data": {**request["data"], "Body": f"Your order {n} has shipped"}}
    return {**request, "json": {**request["json"], "subject": f"Order {n}"}}


async def _load(
    url: str, request: dict[str, Any], seconds: float, concurrency: int, unique: bool = False
) -> tuple[int, int]:
    """(requests answered, of which not 2xx) within `seconds`."""
    done = failed = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done, failed
            while time.perf_counter() < deadline:
                async with session.post(url, **(_unique(request, done) if unique else request)) as response:
                    await response.read()
                    done += 1
                    failed += response.status >= 300

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, failed


def measure(
    kind: Callable[..., Imitation],
    path: str,
    request: dict[str, Any],
    *,
    validate: bool,
    unique: bool,
    seconds: float,
    concurrency: int,
) -> float:
    with kind(validate=validate) as imitation:
        asyncio.run(_load(imitation.url(path), request, 0.5, concurrency))
        imitation.clear()
        started = time.perf_counter()
        done, failed = asyncio.run(_load(imitation.url(path), request, seconds, concurrency, unique))
        elapsed = time.perf_counter() - started
        assert failed == 0 and imitation.violations == [], imitation.violations[:1]
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(f"{'imitation':<20} {'validation':<28} {'req/s':>7}")
    modes = (("on, every body different", True, True), ("on, the same body again", True, False), ("off", False, True))
    ceiling = measure(
        Empty,
        "/empty",
        {"data": b"x"},
        validate=False,
        unique=False,
        seconds=args.seconds,
        concurrency=args.concurrency,
    )
    print(f"{'Empty (ceiling)':<20} {'-':<28} {ceiling:>7.0f}", flush=True)
    for kind, path, request in (TWILIO, SENDGRID):
        for label, validate, unique in modes:
            rate = measure(
                kind,
                path,
                request,
                validate=validate,
                unique=unique,
                seconds=args.seconds,
                concurrency=args.concurrency,
            )
            print(f"{kind.__name__:<20} {label:<28} {rate:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
