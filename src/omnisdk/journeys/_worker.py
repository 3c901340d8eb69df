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
from typing import Any, Protocol

from .._clock import Clock
from .._errors import StoreError
from .._logging import get_logger
from ..delivery import Dispatcher
from ..store import SQLStore
from ..store._runs import WorkListener, install_notify_triggers
from ._runtime import JourneySettings

__all__ = ["WorkLoop", "install_notify_triggers", "run_worker"]

log = get_logger("omnisdk.worker")


class WorkLoop(Protocol):
    """The client's round of every worker (the facade owns it; the loop calls back up through this)."""

    async def run_until_idle(self) -> int: ...

    def next_due(self) -> float | None: ...


@contextlib.contextmanager
def _listening(store: SQLStore, wake: asyncio.Event, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """A thread holding a second connection in LISTEN, setting `wake` on each notification."""
    listener = WorkListener(store)
    done = threading.Event()

    def listen() -> None:
        while not done.is_set():
            try:
                if listener.wait(0.5):
                    loop.call_soon_threadsafe(wake.set)
            except StoreError as exc:
                log.warning("worker_listen_failed", error_type=type(exc.__cause__ or exc).__name__)
                done.wait(1.0)

    thread = threading.Thread(target=listen, name="omnisdk-listen", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=2.0)
        listener.close()


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


async def _until_stopped(work_loop: WorkLoop, dispatcher: Dispatcher, stopping: asyncio.Event) -> int:
    """`run_until_idle`, drained when `stopping` is set meanwhile: no new claims, the calls in flight
    get `[delivery] drain_seconds` to finish, and what is still in flight then is left in doubt."""
    work = asyncio.ensure_future(work_loop.run_until_idle())
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if not work.done():
        log.warning("worker_draining", seconds=dispatcher.settings.drain_seconds)  # shown at the CLI's level
        await dispatcher.drain()
    return await work


async def run_worker(
    work_loop: WorkLoop,
    *,
    store: SQLStore,
    clock: Clock,
    dispatcher: Dispatcher,
    settings: JourneySettings,
    stop: asyncio.Event | threading.Event | None = None,
    poll_interval: float | None = None,
    handle_signals: bool = True,
) -> int:
    """Run due work until `stop` is set (or SIGTERM/SIGINT arrives); returns how much was done."""
    postgres = store.dialect.name == "postgresql"
    interval = float(poll_interval or settings.poll_interval or (5.0 if postgres else 1.0))
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
    listening = _listening(store, wake, loop) if postgres else contextlib.nullcontext()
    log.info("worker_started", store=store.redacted_url, poll_interval=interval)
    dispatcher.resume()
    try:
        with listening:
            while not stopping.is_set():
                wake.clear()
                total += await _until_stopped(work_loop, dispatcher, stopping)
                if stopping.is_set():
                    break
                due = work_loop.next_due()
                delay = interval if due is None else min(interval, max(0.0, due - clock.timestamp()))
                waiters = [asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(wake.wait())]
                await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        log.info("worker_stopped", done=total)
    return total
