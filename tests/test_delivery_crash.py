"""SIGKILL the dispatcher mid-batch, again and again: no delivery is lost, and nothing is sent twice
except where the provider's documented crash policy allows it (never with idempotency keys)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from delivery_crash_worker import open_omni
from omnisdk.delivery import enqueue_delivery

WORKER = Path(__file__).with_name("delivery_crash_worker.py")
CUSTOMERS = 150


class Receiver:
    """A provider-shaped HTTP endpoint: records every request; deduplicates on Idempotency-Key."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []  # (channel, delivery_id), every request that arrived
        self.accepted: dict[str, str] = {}  # idempotency key → message id (what the customer got)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                import json

                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(random.uniform(0.02, 0.08))  # a provider takes time: kills land mid-call
                key = self.headers.get("Idempotency-Key")
                with receiver.lock:
                    receiver.requests.append((self.path.strip("/"), body["delivery_id"]))
                    message_id = receiver.accepted.setdefault(key or f"plain-{len(receiver.requests)}",
                                                              f"msg-{len(receiver.accepted)}")
                payload = json.dumps({"id": message_id}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.mark.slow
def test_sigkill_mid_batch_loses_nothing_and_duplicates_nothing(store_url: str, receiver: Receiver) -> None:
    with open_omni(store_url, receiver.url) as omni:
        now = omni.clock.timestamp()
        with omni.store.transaction() as tx:
            for i in range(CUSTOMERS):
                cid = f"c-{i}"
                omni._core.identity.resolve(tx, cid, [("phone", f"+1415555{i:04d}"), ("email", f"c{i}@example.com")],
                                            now)
                for channel in ("sms", "email"):
                    enqueue_delivery(tx, key=f"run-{i}:ready:{channel}", customer_id=cid, template="notice",
                                     channels=[channel], now=now, purpose="transactional")

    kills = 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKER.parent), os.environ.get("PYTHONPATH", "")])}
    rng = random.Random(5)
    for _ in range(6):
        worker = subprocess.Popen([sys.executable, str(WORKER), store_url, receiver.url], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 1.6))  # real time on purpose: the kill must land mid-send
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        kills += 1

    # A last worker, never killed, finishes the rest (including rows reconciled after their lease).
    with open_omni(store_url, receiver.url) as omni:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            omni.run_until_idle()
            if not omni.deliveries(status=["queued", "deferred", "sending"]):
                break
            time.sleep(0.2)  # waiting out the 1 s leases of the killed workers
        deliveries = omni.deliveries()

    assert kills == 6
    assert len(deliveries) == 2 * CUSTOMERS
    by_status = Counter((d.channel, d.status) for d in deliveries)
    assert set(by_status) <= {("sms", "sent"), ("sms", "failed"), ("email", "sent")}, by_status  # nothing lost

    requests = Counter(receiver.requests)
    # Idempotency keys: every email reached the provider, and the provider took each key once.
    emails = [d for d in deliveries if d.channel == "email"]
    assert all(d.status == "sent" for d in emails)
    assert [d.provider_message_id for d in emails] == [receiver.accepted[f"{d.idempotency_key}:email"] for d in emails]
    # At most once (SMS has no idempotency key): never a second request for a delivery; a send
    # cut off by the kill is marked failed with the reason, not silently dropped or repeated.
    sms = [d for d in deliveries if d.channel == "sms"]
    assert all(requests[("sms", d.id)] <= 1 for d in sms)
    assert all(requests[("sms", d.id)] == 1 for d in sms if d.status == "sent")
    interrupted = [d for d in sms if d.status == "failed"]
    reconciled = [d for d in deliveries if any(e.action == "reconcile" for e in d.decisions)]
    assert reconciled, "no kill landed mid-send: the test proved nothing"
    assert all("interrupted mid-send" in (d.error or "") for d in interrupted)
    print(f"\n{kills} kills: {len(interrupted)} sms settled at-most-once, "
          f"{sum(requests[('email', d.id)] for d in emails) - len(emails)} email resends absorbed by idempotency keys")

