"""End-to-end delivery throughput against one local Twilio-shaped server, with peers in the same run.

omnisdk's whole pipeline (outbox claim → policies → render → HTTP through the Twilio plugin →
status and "Message Sent" touchpoint recorded, on SQLite) against clients that do no bookkeeping:
a bare aiohttp loop (the ceiling for a Python HTTP/1.1 client), httpx with its default pool, the
official `twilio` async client, `notifiers` and `apprise`. The server (the Twilio imitation,
contract checks off) runs in its own process so it does not share the client's core.

    .venv/bin/python benchmarks/dispatch.py [--messages 3000] [--concurrency 64]

Not a test: it prints msg/s per client and each one's ratio to the bare aiohttp loop.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

SID, TOKEN, SENDER = "AC" + "a" * 32, "authtoken", "+14155559999"


def serve(pipe: Any) -> None:
    from omnisdk.testing.imitations import TwilioImitation

    with TwilioImitation(account_sid=SID, auth_token=TOKEN, validate=False) as twilio:
        pipe.send(twilio.base_url)
        pipe.recv()


def phone(i: int) -> str:
    return f"+1415555{i % 10000:04d}"


async def bare_aiohttp(base: str, n: int, concurrency: int) -> None:
    import aiohttp

    url = f"{base}/2010-04-01/Accounts/{SID}/Messages.json"
    auth = {"Authorization": "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()}
    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(i: int) -> None:
            async with semaphore, session.post(url, data={"To": phone(i), "From": SENDER, "Body": "Hi"},
                                               headers=auth) as response:
                await response.read()
                assert response.status == 201

        await asyncio.gather(*(one(i) for i in range(n)))


async def httpx_default(base: str, n: int, concurrency: int) -> None:
    import httpx

    url = f"{base}/2010-04-01/Accounts/{SID}/Messages.json"
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(auth=(SID, TOKEN)) as client:

        async def one(i: int) -> None:
            async with semaphore:
                response = await client.post(url, data={"To": phone(i), "From": SENDER, "Body": "Hi"})
                assert response.status_code == 201

        await asyncio.gather(*(one(i) for i in range(n)))


async def twilio_async(base: str, n: int, concurrency: int) -> None:
    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.rest import Client

    client = Client(SID, TOKEN, http_client=AsyncTwilioHttpClient())
    client.api.base_url = base
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            await client.messages.create_async(to=phone(i), from_=SENDER, body="Hi")

    await asyncio.gather(*(one(i) for i in range(n)))
    await client.http_client.close()


def threaded(send: Callable[[int], Any], n: int, concurrency: int) -> None:
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, range(n)))


def notifiers_loop(base: str, n: int, concurrency: int) -> None:
    import notifiers
    from notifiers.providers.twilio import Twilio

    Twilio.base_url = f"{base}/2010-04-01/Accounts/{{}}/Messages.json"
    twilio = notifiers.get_notifier("twilio")

    def send(i: int) -> None:
        twilio.notify(message="Hi", to=phone(i), from_=SENDER, account_sid=SID, auth_token=TOKEN).raise_on_errors()

    threaded(send, n, min(concurrency, 16))


def apprise_loop(base: str, n: int, concurrency: int) -> None:
    import apprise
    from apprise.plugins.twilio import NotifyTwilio

    NotifyTwilio.notify_sms_url = f"{base}/2010-04-01/Accounts/{{sid}}/Messages.json"

    def send(i: int) -> None:
        notifier = apprise.Apprise()
        notifier.add(f"twilio://{SID}:{TOKEN}@{SENDER}/{phone(i)}")
        assert notifier.notify(body="Hi")

    threaded(send, n, min(concurrency, 16))


def omnisdk_pipeline(base: str, n: int, concurrency: int) -> Callable[[], Any]:
    """Set up customers and queued deliveries (untimed); return the timed part: dispatch them all."""
    import omnisdk
    from omnisdk.delivery import enqueue_delivery

    folder = tempfile.mkdtemp()
    config = {"channels": {"sms": {"provider": "twilio", "account_sid": SID, "auth_token": TOKEN, "from": SENDER,
                                   "base_url": base, "max_concurrency": concurrency}},
              "delivery": {"batch_size": 1000}}
    omni = omnisdk.Omni(f"sqlite:///{folder}/bench.db", config=config)
    omni.templates.add(omnisdk.Message("ready", sms=omnisdk.SMS(text="Hi {{ customer.first_name }}, it's ready")))
    now = omni.clock.timestamp()
    with omni.store.transaction() as tx:
        for i in range(n):
            cid = f"c-{i}"
            omni._core.identity.resolve(tx, cid, [("phone", phone(i))], now)
            tx.execute("UPDATE customers SET traits = ? WHERE id = ?", ('{"first_name": "Ada"}', cid))
            enqueue_delivery(tx, key=f"bench:{i}", customer_id=cid, template="ready", channels=["sms"], now=now,
                             purpose="transactional")

    def run() -> None:
        omni.run_until_idle()
        sent = len(omni.deliveries(status="sent"))
        omni.close()
        assert sent == n, f"only {sent} of {n} sent"

    return run


def measure(label: str, fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    fn()
    rate = n / (time.perf_counter() - start)
    print(f"  {label:<44} {rate:8.0f} msg/s", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--peers", default="aiohttp,omnisdk,httpx,twilio,notifiers,apprise")
    args = parser.parse_args()
    n, c = args.messages, args.concurrency
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(child,), daemon=True)
    server.start()
    base = parent.recv()
    print(f"{n} SMS to a Twilio-shaped server ({base}), {c} in flight")
    rates: dict[str, float] = {}
    wanted = args.peers.split(",")
    try:
        if "aiohttp" in wanted:
            rates["aiohttp"] = measure("bare aiohttp loop (ceiling)", lambda: asyncio.run(bare_aiohttp(base, n, c)), n)
        if "omnisdk" in wanted:
            rates["omnisdk"] = measure("omnisdk: outbox → policies → render → HTTP → status",
                                       omnisdk_pipeline(base, n, c), n)
        if "httpx" in wanted:
            rates["httpx"] = measure("httpx, default pool", lambda: asyncio.run(httpx_default(base, n, c)), n)
        if "twilio" in wanted:
            rates["twilio"] = measure("twilio (official async client)",
                                      lambda: asyncio.run(twilio_async(base, n, c)), n)
        small = min(n, 1000)
        if "notifiers" in wanted:
            rates["notifiers"] = measure(f"notifiers ({small} msgs, 16 threads)",
                                         lambda: notifiers_loop(base, small, c), small)
        if "apprise" in wanted:
            rates["apprise"] = measure(f"apprise ({small} msgs, 16 threads)", lambda: apprise_loop(base, small, c),
                                       small)
    finally:
        parent.send("stop")
        server.join(10)
    if "aiohttp" in rates:
        print("ratio to the bare aiohttp loop:")
        for label, rate in rates.items():
            print(f"  {label:<12} {rate / rates['aiohttp']:.2f}x")


if __name__ == "__main__":
    main()
