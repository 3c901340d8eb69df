"""Delivery throughput, end to end, with peers side by side in the same run on the same server.

Three suites, each against a server in its own process (so it never shares the client's core or GIL):

* `sms`: omnisdk's whole pipeline (outbox claim → policies → render → HTTP through the real Twilio
  plugin → status and "Message Sent" touchpoint recorded, on SQLite) against clients that keep no
  books at all: a bare aiohttp loop (the ceiling for a Python HTTP/1.1 client), httpx with its
  default pool, the official `twilio` async client, `notifiers` and `apprise`, all posting to the
  Twilio imitation (contract checks off).
* `smtp`: omnisdk through the real SMTP plugin against an aiosmtpd server, next to `smtplib`
  (one connection, and one per thread on 4 threads), a bare `aiosmtplib` loop on 4 connections, and
  building each message with `email.message` alone (no network: the floor of any Python mailer).
* `sendgrid`: recipients per second through the real SendGrid plugin (up to 1000 personalizations
  per request) against the SendGrid imitation, next to a bare aiohttp loop posting the same batches.

Every peer sends the same number of messages; every round runs every peer (in a rotated order),
and the server counts what it received, so a peer that drops messages fails instead of looking fast.
Setup (customers, queued deliveries, prebuilt payloads) is not timed, and each timed run starts
after a full garbage collection, so no peer pays for collecting another's garbage. The report
gives each peer's median over the rounds and the median of its per-round ratio to the suite's
reference (the bare aiohttp loop for HTTP, smtplib for SMTP), measured in the same round, with the
middle half of those ratios, and the client's own CPU time per message (this process only, every
thread; the server's is not counted), which a busy machine disturbs less than wall time.

    .venv/bin/python benchmarks/dispatch.py [--suite sms|smtp|sendgrid|all] [--messages 2000]
        [--concurrency 64] [--repeat 5] [--peers aiohttp,omnisdk,...] [--history 0]

Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import multiprocessing
import smtplib
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from typing import Any

SID, TOKEN, SENDER = "AC" + "a" * 32, "authtoken", "+14155559999"
SENDGRID_KEY, MAIL_FROM = "SG.bench-key", "shop@example.com"

#: A peer: untimed setup that returns the timed part, or the timed part and an untimed check.
Peer = Callable[[], Callable[[], Any] | tuple[Callable[[], Any], Callable[[], Any]]]


# -- servers, each in its own process; they answer "count" with what they received so far
def serve(kind: str, pipe: Any) -> None:
    if kind == "smtp":
        _serve_smtp(pipe)
        return
    from omnisdk.testing.imitations import SendGridImitation, TwilioImitation

    if kind == "twilio":
        with TwilioImitation(account_sid=SID, auth_token=TOKEN, validate=False) as twilio:
            _answer(pipe, twilio.base_url, lambda: len(twilio.messages))
    else:
        with SendGridImitation(api_key=SENDGRID_KEY, validate=False) as sendgrid:
            _answer(pipe, sendgrid.base_url, lambda: sum(
                len(p["to"]) for mail in sendgrid.mails for p in mail["request"]["personalizations"]))


def _serve_smtp(pipe: Any) -> None:
    from aiosmtpd.controller import Controller

    class Count:
        received = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            Count.received += len(envelope.rcpt_tos)
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        _answer(pipe, f"127.0.0.1:{port}", lambda: Count.received)
    finally:
        controller.stop()


def _answer(pipe: Any, address: str, count: Callable[[], int]) -> None:
    pipe.send(address)
    while pipe.recv() == "count":
        pipe.send(count())


class Server:
    def __init__(self, kind: str) -> None:
        self._pipe, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(target=serve, args=(kind, child), daemon=True)
        self._process.start()
        self.address = self._pipe.recv()

    def count(self) -> int:
        self._pipe.send("count")
        return int(self._pipe.recv())

    def stop(self) -> None:
        self._pipe.send("stop")
        self._process.join(10)


# -- sms peers
def phone(i: int) -> str:
    """A distinct valid number per message (415-200-0000 on), so no two customers share one."""
    return f"+1415{2000000 + i:07d}"


def bare_aiohttp(base: str, n: int, concurrency: int) -> Callable[[], Any]:
    import aiohttp

    url = f"{base}/2010-04-01/Accounts/{SID}/Messages.json"
    auth = {"Authorization": "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()}

    async def run() -> None:
        semaphore = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

            async def one(i: int) -> None:
                async with semaphore, session.post(url, data={"To": phone(i), "From": SENDER, "Body": "Hi"},
                                                   headers=auth) as response:
                    await response.read()
                    assert response.status == 201

            await asyncio.gather(*(one(i) for i in range(n)))

    return lambda: asyncio.run(run())


def httpx_default(base: str, n: int, concurrency: int) -> Callable[[], Any]:
    import httpx

    url = f"{base}/2010-04-01/Accounts/{SID}/Messages.json"

    async def run() -> None:
        semaphore = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(auth=(SID, TOKEN)) as client:

            async def one(i: int) -> None:
                async with semaphore:
                    response = await client.post(url, data={"To": phone(i), "From": SENDER, "Body": "Hi"})
                    assert response.status_code == 201

            await asyncio.gather(*(one(i) for i in range(n)))

    return lambda: asyncio.run(run())


def twilio_async(base: str, n: int, concurrency: int) -> Callable[[], Any]:
    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.rest import Client

    async def run() -> None:
        client = Client(SID, TOKEN, http_client=AsyncTwilioHttpClient())
        client.api.base_url = base
        semaphore = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with semaphore:
                await client.messages.create_async(to=phone(i), from_=SENDER, body="Hi")

        await asyncio.gather(*(one(i) for i in range(n)))
        await client.http_client.close()

    return lambda: asyncio.run(run())


def threaded(send: Callable[[int], Any], n: int, threads: int) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, range(n)))


def notifiers_loop(base: str, n: int, concurrency: int) -> Callable[[], Any]:
    import notifiers
    from notifiers.providers.twilio import Twilio

    Twilio.base_url = f"{base}/2010-04-01/Accounts/{{}}/Messages.json"
    twilio = notifiers.get_notifier("twilio")

    def send(i: int) -> None:
        twilio.notify(message="Hi", to=phone(i), from_=SENDER, account_sid=SID, auth_token=TOKEN).raise_on_errors()

    return lambda: threaded(send, n, min(concurrency, 16))


def apprise_loop(base: str, n: int, concurrency: int) -> Callable[[], Any]:
    import apprise
    from apprise.plugins.twilio import NotifyTwilio

    NotifyTwilio.notify_sms_url = f"{base}/2010-04-01/Accounts/{{sid}}/Messages.json"

    def send(i: int) -> None:
        notifier = apprise.Apprise()
        notifier.add(f"twilio://{SID}:{TOKEN}@{SENDER}/{phone(i)}")
        assert notifier.notify(body="Hi")

    return lambda: threaded(send, n, min(concurrency, 16))


# -- omnisdk: the same pipeline for every suite, only the channel differs
#: (SQL statements, transactions) per message of each timed omnisdk round, printed after the table.
STORE_ACTIVITY: list[tuple[float, float]] = []


def omnisdk_pipeline(channel: str, settings: dict[str, Any], message: Any, n: int,
                     address: Callable[[int], dict[str, str]], history: int = 0, transport: str = "pool",
                     ) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Customers (each with `history` earlier touchpoints) and queued deliveries (untimed); the timed
    part dispatches them all. Default delivery settings (the batch size, lease and breaker are what
    an application gets), with provider HTTP over `transport` (`[delivery] http_transport`)."""
    import omnisdk
    from omnisdk.delivery import enqueue_delivery

    folder = tempfile.mkdtemp()
    omni = omnisdk.Omni(f"sqlite:///{folder}/bench.db",
                        config={"channels": {channel: settings}, "delivery": {"http_transport": transport}})
    omni.templates.add(message)
    now = omni.clock.timestamp()
    with omni.store.transaction() as tx:
        for i in range(n):
            cid = f"c-{i}"
            omni._core.identity.resolve(tx, cid, omni._core.identity.normalize(address(i)), now)
            tx.execute("UPDATE customers SET traits = ? WHERE id = ?", ('{"first_name": "Ada"}', cid))
            enqueue_delivery(tx, key=f"bench:{i}", customer_id=cid, template=message.id, channels=[channel],
                             now=now, purpose="transactional")
    omni.track_many([(f"c-{i}", "Product Viewed", {"product_id": f"sku-{k}"})
                     for i in range(n) for k in range(history)])

    activity = omni.store.activity
    counted = (activity.statements, activity.transactions)

    def check() -> None:
        statements, transactions = activity.statements - counted[0], activity.transactions - counted[1]
        STORE_ACTIVITY.append((statements / n, transactions / n))
        try:
            with omni.store.transaction(immediate=False) as tx:
                sent = tx.scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'")
                touchpoints = tx.scalar("SELECT COUNT(*) FROM touchpoints WHERE name = 'Message Sent'")
        finally:
            omni.close()
        assert sent == touchpoints == n, f"omnisdk: {sent} sent, {touchpoints} touchpoints, of {n}"

    return omni.run_until_idle, check


def sms_peers(base: str, n: int, concurrency: int, history: int) -> dict[str, tuple[str, Peer, int]]:
    import omnisdk

    twilio = {"provider": "twilio", "account_sid": SID, "auth_token": TOKEN, "from": SENDER, "base_url": base,
              "max_concurrency": concurrency}
    message = omnisdk.Message("ready", sms=omnisdk.SMS(text="Hi {{ customer.first_name }}, it's ready"))
    small = min(n, 1000)
    return {
        "aiohttp": ("bare aiohttp loop (ceiling)", lambda: bare_aiohttp(base, n, concurrency), n),
        "omnisdk": ("omnisdk: outbox → policies → render → HTTP → status",
                    lambda: omnisdk_pipeline("sms", twilio, message, n, lambda i: {"phone": phone(i)}, history), n),
        "omnisdk-aiohttp": ("omnisdk, the same pipeline over the aiohttp transport",
                            lambda: omnisdk_pipeline("sms", twilio, message, n, lambda i: {"phone": phone(i)}, history,
                                                     "aiohttp"), n),
        "httpx": ("httpx, default pool", lambda: httpx_default(base, n, concurrency), n),
        "twilio": ("twilio (official async client)", lambda: twilio_async(base, n, concurrency), n),
        "notifiers": (f"notifiers ({small} msgs, 16 threads)", lambda: notifiers_loop(base, small, concurrency), small),
        "apprise": (f"apprise ({small} msgs, 16 threads)", lambda: apprise_loop(base, small, concurrency), small),
    }


# -- smtp peers
def email(i: int) -> str:
    return f"customer{i}@example.com"


def build_message(i: int) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = MAIL_FROM, email(i), "Your order is ready"
    message.set_content("Hi Ada, your order is ready for pickup.")
    return message.as_bytes()


def build_only(n: int) -> Callable[[], Any]:
    return lambda: [build_message(i) for i in range(n)]


def smtplib_loop(host: str, port: int, n: int, threads: int) -> Callable[[], Any]:
    def send(indexes: range) -> None:
        with smtplib.SMTP(host, port) as client:
            for i in indexes:
                client.sendmail(MAIL_FROM, [email(i)], build_message(i))

    def run() -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(send, [range(t, n, threads) for t in range(threads)]))

    return run


def aiosmtplib_loop(host: str, port: int, n: int, connections: int) -> Callable[[], Any]:
    import aiosmtplib

    async def run() -> None:
        async def send(indexes: range) -> None:
            client = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False)
            await client.connect()
            for i in indexes:
                await client.sendmail(MAIL_FROM, [email(i)], build_message(i))
            await client.quit()

        await asyncio.gather(*(send(range(c, n, connections)) for c in range(connections)))

    return lambda: asyncio.run(run())


def smtp_peers(address: str, n: int, concurrency: int, history: int) -> dict[str, tuple[str, Peer, int]]:
    import omnisdk

    host, port = address.split(":")[0], int(address.split(":")[1])
    smtp = {"provider": "smtp", "host": host, "port": port, "from": MAIL_FROM, "starttls": False}
    message = omnisdk.Message("ready", email=omnisdk.Email(subject="Your order is ready",
                                                           text="Hi {{ customer.first_name }}, your order is ready."))
    return {
        "smtplib": ("smtplib, one connection", lambda: smtplib_loop(host, port, n, 1), n),
        "omnisdk": ("omnisdk: outbox → … → SMTP plugin (4 connections)",
                    lambda: omnisdk_pipeline("email", smtp, message, n, lambda i: {"email": email(i)}, history), n),
        "smtplib4": ("smtplib, 4 threads, 1 connection each", lambda: smtplib_loop(host, port, n, 4), n),
        "aiosmtplib": ("bare aiosmtplib loop, 4 connections", lambda: aiosmtplib_loop(host, port, n, 4), n),
        "build": ("email.message only, no network (counted as sent)", lambda: build_only(n), n),
    }


# -- sendgrid peers
def sendgrid_batches(base: str, n: int, concurrency: int) -> Callable[[], Any]:
    import json

    import aiohttp

    bodies = [
        json.dumps({
            "personalizations": [{"to": [{"email": email(i)}], "subject": "Hi Ada"}
                                 for i in range(start, min(n, start + 1000))],
            "from": {"email": MAIL_FROM}, "content": [{"type": "text/plain", "value": "Your order is ready."}],
        }).encode()
        for start in range(0, n, 1000)
    ]
    headers = {"Authorization": f"Bearer {SENDGRID_KEY}", "Content-Type": "application/json"}

    async def run() -> None:
        semaphore = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession() as session:

            async def one(body: bytes) -> None:
                async with semaphore, session.post(f"{base}/v3/mail/send", data=body, headers=headers) as response:
                    assert response.status == 202

            await asyncio.gather(*(one(b) for b in bodies))

    return lambda: asyncio.run(run())


def sendgrid_peers(base: str, n: int, concurrency: int, history: int) -> dict[str, tuple[str, Peer, int]]:
    import omnisdk

    sendgrid = {"provider": "sendgrid", "api_key": SENDGRID_KEY, "from": MAIL_FROM, "base_url": base}
    message = omnisdk.Message("ready", email=omnisdk.Email(subject="Hi {{ customer.first_name }}",
                                                           text="Your order is ready."))
    return {
        "aiohttp": ("bare aiohttp, prebuilt 1000-recipient requests", lambda: sendgrid_batches(base, n, 16), n),
        "omnisdk": ("omnisdk: outbox → … → SendGrid plugin (≤1000 per request)",
                    lambda: omnisdk_pipeline("email", sendgrid, message, n, lambda i: {"email": email(i)}, history),
                    n),
        "omnisdk-aiohttp": ("omnisdk, the same pipeline over the aiohttp transport",
                            lambda: omnisdk_pipeline("email", sendgrid, message, n, lambda i: {"email": email(i)},
                                                     history, "aiohttp"), n),
    }


# -- measuring
SUITES = {
    "sms": ("twilio", sms_peers, "aiohttp", "SMS to a Twilio-shaped server", "msg/s"),
    "smtp": ("smtp", smtp_peers, "smtplib", "emails to an aiosmtpd server", "msg/s"),
    "sendgrid": ("sendgrid", sendgrid_peers, "aiohttp", "recipients to a SendGrid-shaped server", "recipients/s"),
}


def run_suite(name: str, n: int, concurrency: int, repeat: int, wanted: set[str] | None, history: int = 0) -> None:
    kind, make_peers, reference, what, unit = SUITES[name]
    server = Server(kind)
    try:
        peers = {k: v for k, v in make_peers(server.address, n, concurrency, history).items()
                 if not wanted or k in wanted}
        print(f"\n[{name}] {n} {what} ({server.address}), {concurrency} in flight, {repeat} rounds"
              + (f", {history} touchpoints per customer" if history else ""), flush=True)
        STORE_ACTIVITY.clear()
        rates: dict[str, list[float]] = {k: [] for k in peers}
        ratios: dict[str, list[float]] = {k: [] for k in peers}
        cpu: dict[str, list[float]] = {k: [] for k in peers}
        order = list(peers)
        for round_ in range(repeat):
            this_round: dict[str, float] = {}
            for key in order[round_ % len(order):] + order[: round_ % len(order)]:
                _, setup, count = peers[key]
                prepared = setup()
                timed, check = prepared if isinstance(prepared, tuple) else (prepared, None)
                before = server.count()
                gc.collect()  # the garbage of earlier peers' runs is not this peer's to collect
                start, start_cpu = time.perf_counter(), time.process_time()
                timed()
                elapsed, cpu_used = time.perf_counter() - start, time.process_time() - start_cpu
                if check is not None:
                    check()
                received = server.count() - before
                if key != "build" and received != count:
                    raise SystemExit(f"{key}: the server received {received} of {count}")
                this_round[key] = count / elapsed
                cpu[key].append(cpu_used / count * 1000)
            for key, rate in this_round.items():
                rates[key].append(rate)
                if reference in this_round:
                    ratios[key].append(rate / this_round[reference])
            print(f"  round {round_ + 1}: " + ", ".join(f"{k} {r:.0f}" for k, r in this_round.items()), flush=True)
        print(f"  {'median of ' + str(repeat) + ' rounds':<58} {unit:>12}   x {reference} (median of per-round ratios,"
              " middle half)   client CPU ms/msg")
        for key, (label, _, _) in peers.items():
            ratio = f"{statistics.median(ratios[key]):.2f}x{spread(ratios[key])}" if ratios[key] else "-"
            rate, cpu_ms = statistics.median(rates[key]), statistics.median(cpu[key])
            print(f"  {label:<58} {rate:12.0f}   {ratio:<56} {cpu_ms:.3f}")
        if STORE_ACTIVITY:
            statements, transactions = (statistics.median(column) for column in zip(*STORE_ACTIVITY, strict=True))
            print(f"  omnisdk's store, per message: {statements:.3f} SQL statements, {transactions:.4f} transactions")
        if "omnisdk" in peers and "omnisdk-aiohttp" in peers:
            transports(rates["omnisdk"], rates["omnisdk-aiohttp"], cpu["omnisdk"], cpu["omnisdk-aiohttp"])
    finally:
        server.stop()


def transports(pool: list[float], aiohttp: list[float], pool_cpu: list[float], aiohttp_cpu: list[float]) -> None:
    """The pipeline over our pool against the same pipeline over the aiohttp transport, round by round."""
    speed = [p / a for p, a in zip(pool, aiohttp, strict=True)]
    cost = [p / a for p, a in zip(pool_cpu, aiohttp_cpu, strict=True)]
    faster = sum(ratio > 1 for ratio in speed)
    print("  transports, same pipeline, same rounds:  pool / aiohttp")
    print(f"    throughput   {statistics.median(speed):.2f}x{spread(speed)}   pool faster in {faster} of "
          f"{len(speed)} rounds")
    print(f"    client CPU   {statistics.median(cost):.2f}x{spread(cost)}   per message (below 1: the pool costs less)")


def spread(values: list[float]) -> str:
    """The middle half of the per-round ratios (a shared machine moves single rounds a lot)."""
    if len(values) < 4:
        return ""
    low, _, high = statistics.quantiles(values, n=4)
    return f" ({low:.2f}-{high:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", default="sms", choices=[*SUITES, "all"])
    parser.add_argument("--messages", type=int, default=None, help="default: 2000 (sms, smtp), 20000 (sendgrid)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--peers", default=None, help="comma-separated keys, e.g. aiohttp,omnisdk")
    parser.add_argument("--history", type=int, default=0,
                        help="earlier touchpoints per customer (a store with some history; default: none)")
    args = parser.parse_args()
    wanted = set(args.peers.split(",")) if args.peers else None
    for name in SUITES if args.suite == "all" else [args.suite]:
        n = args.messages or (20000 if name == "sendgrid" else 2000)
        run_suite(name, n, args.concurrency, args.repeat, wanted, args.history)


if __name__ == "__main__":
    main()
