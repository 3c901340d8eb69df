"""Dashboard page times on the demo's data: each page rendered server-side N times, side by side with a
trivial peer page (a fixed HTML page through the same ASGI path) for a ratio. Target: < 200 ms a page.

    python benchmarks/dashboard.py [--customers 2000] [--requests 30] [--store sqlite:///path.db] [--postgres URL]

Without --store it runs the demo (`omnisdk demo`, 2,000 customers by default) into a temporary SQLite file;
with --postgres it also runs it into a throwaway PostgreSQL schema and times both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _stores import postgres_schema

from omnisdk import Omni
from omnisdk.demo import run_demo
from omnisdk.ui import create_dashboard

PEER_BODY = ("<!doctype html><html lang=en><head><meta charset=utf-8><title>peer</title></head><body><main>"
             + "<p>row</p>" * 200 + "</main></body></html>").encode()


async def peer(scope: Any, receive: Any, send: Any) -> None:
    """The least a page can cost: a fixed page, answered from a worker thread like the dashboard's."""
    body = await asyncio.to_thread(lambda: PEER_BODY)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": body})


async def request(app: Any, path: str) -> tuple[int, int]:
    target, _, query = path.partition("?")
    scope = {"type": "http", "method": "GET", "path": target, "raw_path": target.encode(), "root_path": "",
             "query_string": query.encode(), "headers": [(b"host", b"127.0.0.1")]}
    result: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result["status"] = message["status"]
        else:
            result["size"] = len(message.get("body", b""))

    await app(scope, receive, send)
    return result["status"], result["size"]


def timed(app: Any, path: str, n: int) -> tuple[list[float], int, int]:
    async def run() -> tuple[list[float], int, int]:
        status, size = await request(app, path)  # warm up (and check the page answers)
        times = []
        for _ in range(n):
            started = time.perf_counter()
            await request(app, path)
            times.append((time.perf_counter() - started) * 1000)
        return times, status, size

    return asyncio.run(run())


def pages(omni: Omni) -> list[str]:
    skipped = next(d for d in omni.deliveries(status="skipped") if d.decisions)
    email = omni.customer(skipped.customer_id).email or skipped.customer_id
    return ["/", f"/customers?q={email}", f"/customers/{skipped.customer_id}",
            f"/customers/{skipped.customer_id}/deliveries/{skipped.id}", "/journeys", "/outbox", "/quarantine",
            "/experiments", "/kpis", "/kpis?by=journey&days=7", "/readyz"]


def report(label: str, url: str, n: int) -> None:
    with Omni(url) as omni:
        app = create_dashboard(omni, allow_actions=True)
        peer_times, _, _ = timed(peer, "/", n)
        peer_median = statistics.median(peer_times)
        print(f"\n{label}: {n} requests a page; peer page median {peer_median:.2f} ms")
        print(f"{'page':<58}{'status':>7}{'KiB':>7}{'median ms':>11}{'p95 ms':>9}{'max ms':>9}{'x peer':>8}")
        for path in pages(omni):
            times, status, size = timed(app, path, n)
            times.sort()
            median = statistics.median(times)
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(f"{path[:57]:<58}{status:>7}{size / 1024:>7.1f}{median:>11.2f}{p95:>9.2f}{times[-1]:>9.2f}"
                  f"{median / peer_median:>8.1f}")


@contextlib.contextmanager
def demo_store(url: str, customers: int) -> Iterator[str]:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        run_demo(store=url, customers=customers, seed=7, report=None)
    print(f"demo: {customers:,} customers into {url.split('?')[0]} in {time.perf_counter() - started:.1f} s")
    yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--store", help="time an existing store instead of running the demo")
    parser.add_argument("--postgres", help="also run the demo into a throwaway schema of this PostgreSQL URL")
    args = parser.parse_args()
    if args.store:
        report(args.store, args.store, args.requests)
        return
    with tempfile.TemporaryDirectory() as folder, demo_store(f"sqlite:///{Path(folder) / 'demo.db'}",
                                                             args.customers) as url:
        report("SQLite", url, args.requests)
    if args.postgres:
        with postgres_schema(args.postgres) as schema, demo_store(schema, args.customers) as url:
            report("PostgreSQL", url, args.requests)


if __name__ == "__main__":
    main()
