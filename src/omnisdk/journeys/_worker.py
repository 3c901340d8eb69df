"""`run_worker()`: the long-running loop of `omnisdk worker` and `Omni.run_worker`.

Work until idle, then wait until the next due time, a wake-up or a stop. On PostgreSQL new
touchpoints and runs NOTIFY the `omnisdk_work` channel, so idle workers wake at once; on SQLite
the worker polls (`[journeys] poll_interval`, 1 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .._logging import get_logger
from ..store import SQLStore

if TYPE_CHECKING:
    from .._core import Core

__all__ = ["install_notify_triggers", "run_worker"]

log = get_logger("omnisdk.worker")

CHANNEL = "omnisdk_work"

_NOTIFY_SQL = (
    "CREATE OR REPLACE FUNCTION omnisdk_notify_work() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME); RETURN NULL; END $$",
    "CREATE OR REPLACE TRIGGER omnisdk_touchpoints_work AFTER INSERT ON touchpoints "
    "FOR EACH STATEMENT EXECUTE FUNCTION omnisdk_notify_work()",
    "CREATE OR REPLACE TRIGGER omnisdk_journey_runs_work AFTER INSERT ON journey_runs "
    "FOR EACH STATEMENT EXECUTE FUNCTION omnisdk_notify_work()",
)


def install_notify_triggers(store: SQLStore) -> None:
    """PostgreSQL only: make inserts of touchpoints and runs wake idle workers."""
    with store.transaction() as tx:
        tx.execute("SELECT pg_advisory_xact_lock(7206313)")
        for statement in _NOTIFY_SQL:
            tx.execute(statement)


@contextlib.contextmanager
def _listening(store: SQLStore, wake: asyncio.Event, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """A thread holding a second connection in LISTEN, setting `wake` on each notification."""
    import psycopg

    install_notify_triggers(store)
    conn = psycopg.connect(getattr(store, "dsn"), autocommit=True)  # noqa: B009  (PostgresStore only)
    conn.execute(f"LISTEN {CHANNEL}")
    done = threading.Event()

    def listen() -> None:
        while not done.is_set():
            try:
                for _ in conn.notifies(timeout=0.5, stop_after=1):
                    loop.call_soon_threadsafe(wake.set)
            except psycopg.Error as exc:
                log.warning("worker_listen_failed", error_type=type(exc).__name__)
                done.wait(1.0)

    thread = threading.Thread(target=listen, name="omnisdk-listen", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=2.0)
        conn.close()


def _watch_stop(stop: Any, stopping: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
    if isinstance(stop, asyncio.Event):
        async def relay() -> None:
            await stop.wait()
            stopping.set()

        loop.create_task(relay())
    elif stop is not None:  # a threading.Event, set from another thread
        def relay_thread() -> None:
            stop.wait()
            loop.call_soon_threadsafe(stopping.set)

        threading.Thread(target=relay_thread, name="omnisdk-stop", daemon=True).start()


async def _until_stopped(core: Core, stopping: asyncio.Event) -> int:
    """`run_until_idle`, drained when `stopping` is set meanwhile: no new claims, the calls in flight
    get `[delivery] drain_seconds` to finish, and what is still in flight then is left in doubt."""
    work = asyncio.ensure_future(core.run_until_idle())
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if not work.done():
        log.warning("worker_draining", seconds=core.dispatcher.settings.drain_seconds)  # shown at the CLI's level
        await core.dispatcher.drain()
    return await work


async def run_worker(
    core: Core,
    *,
    stop: asyncio.Event | threading.Event | None = None,
    poll_interval: float | None = None,
    handle_signals: bool = True,
) -> int:
    """Run due work until `stop` is set (or SIGTERM/SIGINT arrives); returns how much was done."""
    settings = core.config.raw.get("journeys", {}) or {}
    postgres = core.store.dialect.name == "postgresql"
    interval = float(poll_interval or settings.get("poll_interval", 5.0 if postgres else 1.0))
    loop = asyncio.get_running_loop()
    stopping, wake = asyncio.Event(), asyncio.Event()
    _watch_stop(stop, stopping, loop)
    signals: list[signal.Signals] = []
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stopping.set)
                signals.append(sig)
    total = 0
    listening = _listening(core.store, wake, loop) if postgres else contextlib.nullcontext()
    log.info("worker_started", store=core.store.redacted_url, poll_interval=interval)
    core.dispatcher.resume()
    try:
        with listening:
            while not stopping.is_set():
                wake.clear()
                total += await _until_stopped(core, stopping)
                if stopping.is_set():
                    break
                due = core.next_due()
                delay = interval if due is None else min(interval, max(0.0, due - core.clock.timestamp()))
                waiters = [asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(wake.wait())]
                await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        log.info("worker_stopped", done=total)
    return total
