"""SIGKILL broadcast workers mid-broadcast, again and again: the next one resumes from the stored
cursor, and every customer of the segment ends up with exactly one delivery."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import pytest

from broadcast_crash_worker import SETTINGS
from omnisdk import Email, Message, Omni, VirtualClock
from omnisdk.segments import trait

WORKER = Path(__file__).with_name("broadcast_crash_worker.py")
CUSTOMERS = 1500


@pytest.mark.slow
def test_killed_workers_resume_from_the_cursor_and_never_double_queue(store_url: str, clock: VirtualClock) -> None:
    omni = Omni(store_url, clock=clock, config=SETTINGS)
    now = clock.timestamp()
    with omni.store.transaction() as tx:  # setup in bulk: the customers are not what is tested
        tx.executemany(
            "INSERT INTO customers (id, traits, timezone, preferred_channels, created_at, updated_at) "
            "VALUES (?, ?, ?, '[]', ?, ?)",
            [(f"c{i:05d}", json.dumps({"plan": "newsletter"}), random.choice(("Asia/Tokyo", "Europe/Paris", None)),
              now, now) for i in range(CUSTOMERS)],
        )
    # Due on 1 February at 10:00 local: nothing is sent meanwhile, the workers only queue.
    omni.templates.add(Message("sale", email=Email(subject="Sale", text="20% off")))
    planned = omni.broadcast("sale", trait("plan") == "newsletter", at=datetime(2026, 2, 1),
                             local_time=clock_time(10), channel="email")
    start = planned.starts_at
    interrupted = 0  # kills that left the broadcast half queued
    for round_ in range(4):
        worker_clock = start + timedelta(minutes=10 * round_)  # each starts after the last one's lease ran out
        before = omni.broadcast_status(planned.id).enqueued
        proc = subprocess.Popen([sys.executable, str(WORKER), store_url, worker_clock.isoformat()],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            target = before + random.randint(50, 250)
            deadline = time.monotonic() + 60
            while True:  # kill it at a random point once it made some progress
                status = omni.broadcast_status(planned.id)
                if status.state == "enqueued" or status.enqueued >= target:
                    break
                assert time.monotonic() < deadline, "the worker made no progress"
                time.sleep(0.005)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        if omni.broadcast_status(planned.id).state == "enqueued":
            break
        interrupted += 1

    clock.set(start + timedelta(hours=1))
    omni.run_until_idle()  # whoever comes next finishes the job
    status = omni.broadcast_status(planned.id)
    with omni.store.transaction() as tx:
        rows, customers = tx.one(
            "SELECT COUNT(*), COUNT(DISTINCT customer_id) FROM deliveries WHERE broadcast_id = ?", (planned.id,))
    omni.close()
    assert interrupted >= 1
    assert (status.audience, status.enqueued, rows, customers) == (CUSTOMERS, CUSTOMERS, CUSTOMERS, CUSTOMERS)
