"""`run_worker` (woken by LISTEN/NOTIFY on PostgreSQL, polling on SQLite) and the `omnisdk journeys` CLI."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from omnisdk import Omni, VirtualClock
from omnisdk.cli import main

JOURNEYS_MODULE = '''
from datetime import timedelta
from omnisdk import journey

@journey("cli-demo", version="1", trigger="Signed Up")
async def v1(ctx):
    await ctx.send("hi", "cli-hi", channel="email")
    await ctx.sleep("wait", timedelta(days=1))
    await ctx.run("explode", boom)

@journey("cli-demo", version="2", trigger="Signed Up")
async def v2(ctx):
    await ctx.send("hi", "cli-hi", channel="email")
    await ctx.sleep("wait", timedelta(days=1))
    await ctx.send("bye", "cli-bye", channel="email")

def boom():
    raise ValueError("v1 is broken")
'''


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """`omnisdk` (the CLI) points structlog at the captured stderr; undo it after each test."""
    yield
    structlog.reset_defaults()


def _wait_until(condition: object, seconds: float = 20.0) -> bool:
    """Wait for another thread's work (the worker under test), not for journey time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.02)
    return False


def test_run_worker_picks_up_new_work_until_stopped(store_url: str) -> None:
    from omnisdk import journey

    @journey("worker-demo", version="1", trigger="Signed Up")
    async def demo(ctx: object) -> None:
        await ctx.send("hi", "worker-hi", channel="email")  # type: ignore[attr-defined]

    clock = VirtualClock()
    stop = threading.Event()
    postgres = store_url.startswith("postgresql")
    with Omni(store_url, clock=clock) as worker, Omni(store_url, clock=clock) as app:
        worker.register(demo)
        done: list[int] = []
        # On PostgreSQL the poll interval is far longer than the test: only a NOTIFY can wake the worker.
        thread = threading.Thread(
            target=lambda: done.append(worker.run_worker(stop, poll_interval=600 if postgres else 0.05))
        )
        thread.start()
        try:
            time.sleep(0.3) if postgres else None  # let the idle worker LISTEN before the event arrives
            app.track("ada", "Signed Up")
            assert _wait_until(lambda: [r.status for r in app.runs(customer_id="ada")] == ["completed"])
        finally:
            stop.set()
            thread.join(timeout=20)
        assert not thread.is_alive()
        assert done and done[0] >= 2
        assert [d.step for d in app.deliveries(customer_id="ada")] == ["hi"]


def test_cli_lists_retries_migrates_and_cancels_runs(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cli_journeys_mod.py").write_text(JOURNEYS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import cli_journeys_mod

    clock = VirtualClock()
    with Omni(store_url, clock=clock, config={"journeys": {"max_attempts": 1}}) as omni:
        omni.register(cli_journeys_mod.v1)
        omni.track("ada", "Signed Up")
        omni.track("bob", "Signed Up")
        omni.run_until_idle()
        clock.advance(days=2)
        omni.run_until_idle()
        failed = {r.customer_id: r.id for r in omni.runs(status="failed")}
    assert set(failed) == {"ada", "bob"}

    assert main(["--store", store_url, "journeys", "runs", "--status", "failed"]) == 0
    out = capsys.readouterr().out
    assert failed["ada"] in out and "ValueError: v1 is broken" in out

    args = ["--store", store_url, "journeys"]
    assert main([*args, "migrate", failed["ada"], "--to", "2", "--import", "cli_journeys_mod"]) == 0
    assert capsys.readouterr().out.split("\t")[2:] == ["2", "running\n"]
    assert main([*args, "cancel", failed["ada"]]) == 0
    assert capsys.readouterr().out.rstrip().endswith("cancelled")
    assert main([*args, "retry", failed["bob"], "--import", "cli_journeys_mod"]) == 0  # still v1: fails again
    assert main([*args, "cancel", "run_nope"]) == 1
    assert "no journey run with id 'run_nope'" in capsys.readouterr().err
    del sys.modules["cli_journeys_mod"]


def test_async_run_worker_stops_on_its_event(store_url: str) -> None:
    import asyncio

    from omnisdk import AsyncOmni, JourneyContext, journey

    @journey("async-worker-demo", version="1", trigger="Signed Up")
    async def demo(ctx: JourneyContext) -> None:
        await ctx.send("hi", "async-hi", channel="email")

    async def scenario() -> tuple[int, list[str]]:
        async with AsyncOmni(store_url, clock=VirtualClock()) as omni:
            omni.register(demo)
            stop = asyncio.Event()
            worker = asyncio.create_task(omni.run_worker(stop, poll_interval=0.01))
            await omni.track("ada", "Signed Up")
            for _ in range(2000):  # the worker task runs on this loop: yield to it until it has done the run
                statuses = [r.status for r in await omni.runs(customer_id="ada")]
                if statuses == ["completed"]:
                    break
                await asyncio.sleep(0.01)
            stop.set()
            return await asyncio.wait_for(worker, timeout=20), statuses

    done, statuses = asyncio.run(scenario())
    assert statuses == ["completed"] and done >= 2
