"""`omnisdk worker` drains on SIGTERM: the call in flight is answered and recorded, or, past
`[delivery] drain_seconds`, cut off and left in doubt for the next worker to settle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from omnisdk import Omni
from omnisdk.delivery import enqueue_delivery

SID = "AC" + "a" * 32
#: Real time the test process waits for the worker process (a bound against hanging, never a measure).
PATIENCE = 60


class HangingTwilio:
    """A Twilio-shaped endpoint that holds every request until `release` is set."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.answered = 0
        self.posts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts += 1
                outer.arrived.set()
                if not outer.release.wait(PATIENCE):
                    return
                body = b'{"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}'
                try:
                    self.send_response(201)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    outer.answered += 1
                except OSError:
                    pass  # the worker gave up on this call

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def twilio() -> Iterator[HangingTwilio]:
    api = HangingTwilio()
    threading.Thread(target=api.server.serve_forever, daemon=True).start()
    yield api
    api.release.set()
    api.server.shutdown()
    api.server.server_close()


def configure(tmp_path: Path, url: str, drain_seconds: float) -> Path:
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "notice.yaml").write_text('sms:\n  text: "Your order shipped"\n')
    config = tmp_path / "omnisdk.toml"
    config.write_text(
        f'[channels.sms]\nprovider = "twilio"\naccount_sid = "{SID}"\nauth_token = "token"\n'
        f'from = "+15017122661"\nbase_url = "{url}"\n\n'
        f'[templates]\nfolder = "{tmp_path / "templates"}"\n\n'
        f"[delivery]\ndrain_seconds = {drain_seconds}\nlease_seconds = 600\n"
    )
    return config


def queue_one(store_url: str, config: Path) -> str:
    with Omni(store_url, config=str(config)) as omni:
        omni.identify("c-1", phone="+14155550100")
        with omni.store.transaction() as tx:
            return enqueue_delivery(tx, key="run-1:shipped", customer_id="c-1", template="notice", channels=["sms"],
                                    now=omni.clock.timestamp(), purpose="transactional")


def start_worker(store_url: str, config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    return subprocess.Popen(
        [sys.executable, "-m", "omnisdk", "--store", store_url, "--config", str(config), "--json-logs", "worker",
         "--poll-interval", "0.05"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_for_log(worker: subprocess.Popen[str], event: str) -> None:
    assert worker.stdout is not None
    for line in worker.stdout:
        if f'"event": "{event}"' in line or f'"event":"{event}"' in line:
            return
    pytest.fail(f"the worker exited (code {worker.wait()}) without logging {event}")


def test_sigterm_lets_the_call_in_flight_finish(store_url: str, twilio: HangingTwilio, tmp_path: Path) -> None:
    config = configure(tmp_path, twilio.url, drain_seconds=PATIENCE)
    did = queue_one(store_url, config)
    worker = start_worker(store_url, config)
    try:
        assert twilio.arrived.wait(PATIENCE), "the worker never called the provider"
        worker.send_signal(signal.SIGTERM)
        wait_for_log(worker, "worker_draining")  # it is draining, the call still held
        twilio.release.set()
        assert worker.wait(PATIENCE) == 0
    finally:
        worker.kill()
    with Omni(store_url, config=str(config)) as omni:
        [delivery] = omni.deliveries()
    assert (delivery.id, delivery.status, delivery.provider_message_id) == (
        did, "sent", "SM0123456789abcdef0123456789abcdef")
    assert twilio.answered == 1


def test_sigterm_past_drain_seconds_leaves_the_call_in_doubt_for_recovery(
    store_url: str, twilio: HangingTwilio, tmp_path: Path
) -> None:
    config = configure(tmp_path, twilio.url, drain_seconds=0.2)
    did = queue_one(store_url, config)
    worker = start_worker(store_url, config)
    try:
        assert twilio.arrived.wait(PATIENCE), "the worker never called the provider"
        worker.send_signal(signal.SIGTERM)  # the provider never answers
        assert worker.wait(PATIENCE) == 0
    finally:
        worker.kill()

    with Omni(store_url, config=str(config)) as omni:
        [delivery] = omni.deliveries()
        assert (delivery.id, delivery.status) == (did, "sending")
        assert delivery.decisions[-1].action == "in_doubt"
        with omni.store.transaction() as tx:
            assert tx.scalar("SELECT lease_owner FROM deliveries WHERE id = ?", (did,)) is None
        omni.run_until_idle()  # the next worker: no lease to wait out (600 s), looked up at once
        [delivery] = omni.deliveries()
    # Twilio looks it up (this endpoint has no Message list: still unknown, asked again later);
    # it is never sent blindly again.
    assert delivery.status == "sending" and delivery.decisions[-1].action == "reconcile"
    assert "still unknown" in delivery.decisions[-1].reason
    assert (twilio.posts, twilio.answered) == (1, 0)
