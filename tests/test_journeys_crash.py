"""Kill -9 a worker running thousands of journeys, several times at random points; after restarts
every run completes and every step happened exactly once (by the step log and the queued deliveries)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from omnisdk import Omni, VirtualClock

WORKER = Path(__file__).parent / "crash" / "journey_worker.py"
CUSTOMERS = 2000
STEPS = ("a", "r", "s", "b", "w", "c")
KILLS = 5


def _count(omni: Omni, sql: str) -> int:
    with omni.store.transaction(immediate=False) as tx:
        return int(tx.scalar(sql) or 0)


def _start(store_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(WORKER), store_url], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigkilled_workers_lose_nothing_and_repeat_nothing(store_url: str) -> None:
    from crash.journey_worker import START  # the worker's virtual start time

    rng = random.Random(int(os.environ.get("OMNISDK_CRASH_SEED", "7")))
    customers = [f"crash-{i}" for i in range(CUSTOMERS)]
    with Omni(store_url, clock=VirtualClock(START)) as omni:
        omni.track_many([(c, "Signed Up", {}) for c in customers])
        # half of them send the event their wait_for looks for before any run exists (the inbox)
        omni.track_many([(c, "Ping", {}) for c in customers[::2]])

        thresholds = sorted(rng.sample(range(1, CUSTOMERS * len(STEPS)), KILLS))
        killed_at: list[int] = []
        for threshold in thresholds:
            worker = _start(store_url)
            deadline = time.monotonic() + 120
            while worker.poll() is None and time.monotonic() < deadline:
                if _count(omni, "SELECT COUNT(*) FROM journey_steps") >= threshold:
                    break
                time.sleep(0.005)
            time.sleep(rng.random() * 0.05)  # land anywhere, mid-batch included
            if worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
            killed_at.append(_count(omni, "SELECT COUNT(*) FROM journey_steps"))

        final = _start(store_url)
        _, err = final.communicate(timeout=300)
        assert final.returncode == 0, err.decode()[-2000:]

        assert killed_at[0] < CUSTOMERS * len(STEPS), "the first kill came after all the work: nothing was tested"
        with omni.store.transaction(immediate=False) as tx:
            statuses = Counter(s for (s,) in tx.query("SELECT status FROM journey_runs"))
            steps_per_run = Counter(n for (_, n) in tx.query(
                "SELECT run_id, COUNT(*) FROM journey_steps GROUP BY run_id"))
            step_names = Counter(s for (s,) in tx.query("SELECT step FROM journey_steps"))
            deliveries = tx.query(
                "SELECT r.customer_id, d.step, d.template, d.idempotency_key, d.run_id, d.data FROM deliveries d "
                "JOIN journey_runs r ON r.id = d.run_id"
            )
        assert statuses == {"completed": CUSTOMERS}
        assert steps_per_run == {len(STEPS): CUSTOMERS}
        assert step_names == dict.fromkeys(STEPS, CUSTOMERS)
        assert len(deliveries) == 3 * CUSTOMERS
        assert len({d[3] for d in deliveries}) == 3 * CUSTOMERS
        assert all(key == f"{run_id}:{step}" for _, step, _, key, run_id, _ in deliveries)
        pinged = set(customers[::2])
        for customer, step, template, _, _, _ in deliveries:
            if step == "c":
                assert template == ("crash-c-pinged" if customer in pinged else "crash-c-timeout")
