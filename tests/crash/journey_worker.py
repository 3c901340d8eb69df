"""A journey worker process for the SIGKILL test: `python journey_worker.py STORE_URL`.

It works through every run to the end on a virtual clock that jumps to the next due time (so a
day of sleep costs nothing), and exits 0 when no run is active. The test kills it at random
points and starts it again; whatever it had not committed must be redone exactly once.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from omnisdk import JourneyContext, Omni, VirtualClock, journey
from omnisdk._clock import to_datetime

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@journey("crash-test", version="1", trigger="Signed Up")
async def crash_test(ctx: JourneyContext) -> None:
    await ctx.send("a", "crash-a", channel="email")
    length = await ctx.run("r", len, ctx.customer_id)
    await ctx.sleep("s", timedelta(days=1))
    await ctx.send("b", "crash-b", channel="email", data={"length": length})
    pinged = await ctx.wait_for("w", "Ping", timeout=timedelta(hours=1))
    await ctx.send("c", "crash-c-pinged" if pinged else "crash-c-timeout", channel="email")


def main(store_url: str) -> int:
    clock = VirtualClock(START)
    with Omni(store_url, clock=clock, config={"journeys": {"batch_size": 50, "lease_seconds": 60}}) as omni:
        with omni.store.transaction(immediate=False) as tx:
            latest = tx.scalar("SELECT MAX(updated_at) FROM journey_runs")
        if latest is not None and latest > clock.timestamp():
            clock.set(to_datetime(latest))  # a restarted worker's clock never goes back
        omni.register(crash_test)
        while True:
            omni.run_until_idle()
            due = omni._core.journeys.next_due()
            if due is None:
                return 0
            if due > clock.timestamp():
                clock.set(to_datetime(due))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
