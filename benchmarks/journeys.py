"""Durable journeys: omnisdk next to DBOS Transact on the same workload, send -> sleep 1 day -> send.

    python benchmarks/journeys.py                     # 10,000 runs each, 1,000,000 parked, PostgreSQL 1 and 4 workers
    python benchmarks/journeys.py --quick             # 2,000 runs, 100,000 parked
    python benchmarks/journeys.py --no-postgres --parked 0 --dbos-runs 2000

What is measured:
- runs/s to park: from recording the trigger events until every run has done its first send and
  is asleep (omnisdk: `track_many` + the journey worker; DBOS: `start_workflow` until every workflow
  has run its first step and sits in `DBOS.sleep`). Both on SQLite files in the same run.
- omnisdk only: runs/s to complete (virtual clock moved one day, every run wakes and sends again);
  DBOS's sleep is wall-clock time, so its second half cannot be measured in a benchmark.
- memory: RSS growth per parked run, and the worker's peak RSS with `--parked` runs asleep.
- PostgreSQL: the same workload with 1 and 4 worker processes sharing the store.

A "send" is what each system does durably in the workflow: omnisdk queues a delivery in its outbox
(the dispatcher that talks to providers is not part of this figure); DBOS records a step's result.
Each peer runs in its own child process (started by this script, one after the other) so that RSS
and threads are each one's own: DBOS keeps a thread per sleeping workflow that cannot be shut down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def rss_kb() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process in KiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


# -- omnisdk
def _omnisdk_journey() -> Any:
    from omnisdk import JourneyContext, journey

    @journey("bench", version="1", trigger="Signed Up")
    async def bench(ctx: JourneyContext) -> None:
        await ctx.send("first", "bench-first", channel="email")
        await ctx.sleep("pause", timedelta(days=1))
        await ctx.send("second", "bench-second", channel="email")

    return bench


def _drive(omni: Any) -> int:
    """Run the journey worker until nothing is due now (the delivery dispatcher is not driven)."""
    runtime = omni._core.journeys

    async def loop() -> int:
        done = 0
        while True:
            n = await runtime.tick()
            done += n
            if n == 0:
                due = runtime.next_due()
                if due is None or due > omni.clock.timestamp():
                    return done

    return asyncio.run(loop())


def peer_omnisdk(args: argparse.Namespace) -> dict[str, Any]:
    from omnisdk import Omni, VirtualClock

    clock = VirtualClock(START)
    url = args.store or f"sqlite:///{tempfile.mkdtemp()}/journeys.db"
    with Omni(url, clock=clock, load_entry_points=False) as omni:
        omni.register(_omnisdk_journey())
        before, _ = rss_kb()
        activity = omni.store.activity
        statements, transactions = activity.statements, activity.transactions
        t0 = time.perf_counter()
        omni.track_many([(f"c{i}", "Signed Up", {}) for i in range(args.runs)])
        _drive(omni)
        parked = time.perf_counter() - t0
        after, _ = rss_kb()
        asleep = len(omni.runs(status="waiting", limit=args.runs + 1))
        clock.advance(days=1, seconds=1)
        t1 = time.perf_counter()
        _drive(omni)
        completed_in = time.perf_counter() - t1
        statements, transactions = activity.statements - statements, activity.transactions - transactions
        done = len(omni.runs(status="completed", limit=args.runs + 1))
        with omni.store.transaction(immediate=False) as tx:
            queued = int(tx.scalar("SELECT COUNT(*) FROM deliveries"))
    assert asleep == args.runs and done == args.runs and queued == 2 * args.runs, (asleep, done, queued)
    return {
        "park_per_s": args.runs / parked, "complete_per_s": args.runs / completed_in,
        "statements_per_run": statements / args.runs, "transactions_per_run": transactions / args.runs,
        "end_to_end_per_s": args.runs / (parked + completed_in),
        "rss_per_parked_run_bytes": max(0, after - before) * 1024 / args.runs,
        "threads": len(os.listdir("/proc/self/task")),
    }


def peer_park(args: argparse.Namespace) -> dict[str, Any]:
    """A fresh worker process parks runs whose triggers another process recorded; its peak RSS is the figure."""
    from omnisdk import Omni, VirtualClock

    with Omni(args.store, clock=VirtualClock(START), load_entry_points=False) as omni:
        omni.register(_omnisdk_journey())
        t0 = time.perf_counter()
        _drive(omni)
        elapsed = time.perf_counter() - t0
        with omni.store.transaction(immediate=False) as tx:
            asleep = int(tx.scalar("SELECT COUNT(*) FROM journey_runs WHERE status = 'waiting'"))
    current, peak = rss_kb()
    return {"asleep": asleep, "park_per_s": asleep / elapsed, "rss_mb": current / 1024, "peak_rss_mb": peak / 1024}


def peer_ingest(args: argparse.Namespace) -> dict[str, Any]:
    from omnisdk import Omni, VirtualClock

    with Omni(args.store, clock=VirtualClock(START), load_entry_points=False) as omni:
        t0 = time.perf_counter()
        for start in range(0, args.runs, 50_000):
            omni.track_many([(f"c{i}", "Signed Up", {}) for i in range(start, min(args.runs, start + 50_000))])
        return {"ingest_per_s": args.runs / (time.perf_counter() - t0)}


def peer_pg_worker(args: argparse.Namespace) -> dict[str, Any]:
    """One of several worker processes on one PostgreSQL store; `--days` is where its virtual clock stands."""
    from omnisdk import Omni, VirtualClock

    clock = VirtualClock(START + timedelta(days=args.days, seconds=args.days))
    with Omni(args.store, clock=clock, load_entry_points=False) as omni:
        omni.register(_omnisdk_journey())
        began = time.time()
        done = _drive(omni)
        return {"began": began, "ended": time.time(), "done": done}


# -- DBOS
def peer_dbos(args: argparse.Namespace) -> dict[str, Any]:
    import logging
    import threading

    from dbos import DBOS, DBOSConfig

    logging.getLogger("dbos").setLevel(logging.WARNING)
    path = Path(tempfile.mkdtemp()) / "dbos.db"
    config: DBOSConfig = {"name": "journeys-bench", "system_database_url": f"sqlite:///{path}", "log_level": "WARNING"}
    DBOS(config=config)
    first_sends = [0]
    lock = threading.Lock()

    @DBOS.step()
    def send(customer: str, step: str) -> str:
        if step == "first":
            with lock:
                first_sends[0] += 1
        return f"{customer}:{step}"

    @DBOS.workflow()
    def bench(customer: str) -> None:
        send(customer, "first")
        DBOS.sleep(86_400)
        send(customer, "second")

    DBOS.launch()
    before, _ = rss_kb()
    t0 = time.perf_counter()
    for i in range(args.runs):
        DBOS.start_workflow(bench, f"c{i}")
    while first_sends[0] < args.runs:
        time.sleep(0.005)
    time.sleep(0.5)  # let the last workflows reach their sleep
    parked = time.perf_counter() - t0 - 0.5
    after, _ = rss_kb()
    result = {
        "park_per_s": args.runs / parked,
        "rss_per_parked_run_bytes": max(0, after - before) * 1024 / args.runs,
        "threads": len(os.listdir("/proc/self/task")),
    }
    print(json.dumps(result), flush=True)
    os._exit(0)  # the sleeping workflows' threads would keep the process alive for a day


PEERS = {"omnisdk": peer_omnisdk, "dbos": peer_dbos, "park": peer_park, "ingest": peer_ingest,
         "pg-worker": peer_pg_worker}


# -- the orchestration
def child(peer: str, **options: Any) -> subprocess.Popen[str]:
    argv = [sys.executable, __file__, "--peer", peer]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def result_of(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"benchmark child failed ({process.returncode}): {out[-2000:]}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def postgres_figures(url: str, runs: int, workers: int) -> dict[str, float]:
    import psycopg

    schema = "bench_journeys_" + uuid.uuid4().hex[:8]
    store = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    try:
        result_of(child("ingest", store=store, runs=runs))
        phases = {}
        for phase, days in (("park", 0), ("complete", 1)):
            procs = [child("pg-worker", store=store, days=days) for _ in range(workers)]
            outcomes = [result_of(p) for p in procs]
            elapsed = max(o["ended"] for o in outcomes) - min(o["began"] for o in outcomes)
            phases[f"{phase}_per_s"] = runs / elapsed
        with psycopg.connect(url, autocommit=True) as conn:
            done = conn.execute(
                f'SELECT COUNT(*) FROM "{schema}".journey_runs WHERE status = %s', ("completed",)
            ).fetchone()
        assert done is not None and done[0] == runs, done
        phases["end_to_end_per_s"] = 1 / (1 / phases["park_per_s"] + 1 / phases["complete_per_s"])
        return phases
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--dbos-runs", type=int, help="default: --runs")
    parser.add_argument("--parked", type=int, default=1_000_000, help="runs to park for the RSS figure (0: skip)")
    parser.add_argument("--postgres", default=os.environ.get("OMNISDK_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test"))
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--peer", choices=sorted(PEERS), help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        print(json.dumps(PEERS[args.peer](args)), flush=True)
        return
    if args.quick:
        args.runs, args.parked = 2_000, 100_000
    dbos_runs = args.dbos_runs or args.runs

    print(f"workload: send -> sleep 1 day -> send; {args.runs:,} omnisdk runs, {dbos_runs:,} DBOS workflows, "
          f"SQLite files, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    ours = result_of(child("omnisdk", runs=args.runs))
    theirs = result_of(child("dbos", runs=dbos_runs))
    print(f"{'':34}{'omnisdk':>12}{'DBOS':>12}{'ratio':>9}")
    print(f"{'runs/s, trigger -> parked':34}{ours['park_per_s']:>12,.0f}{theirs['park_per_s']:>12,.1f}"
          f"{ours['park_per_s'] / theirs['park_per_s']:>8,.0f}x")
    print(f"{'RSS per parked run (bytes)':34}{ours['rss_per_parked_run_bytes']:>12,.0f}"
          f"{theirs['rss_per_parked_run_bytes']:>12,.0f}")
    print(f"{'OS threads while parked':34}{ours['threads']:>12}{theirs['threads']:>12}")
    print(f"{'runs/s, wake -> completed':34}{ours['complete_per_s']:>12,.0f}{'n/a':>12}")
    print(f"{'runs/s, end to end':34}{ours['end_to_end_per_s']:>12,.0f}{'n/a':>12}")
    print(f"{'SQL statements per run':34}{ours['statements_per_run']:>12,.2f}{'n/a':>12}")
    print(f"{'transactions per run':34}{ours['transactions_per_run']:>12,.3f}{'n/a':>12}")

    if args.parked:
        store = f"sqlite:///{tempfile.mkdtemp()}/parked.db"
        ingest = result_of(child("ingest", store=store, runs=args.parked))
        parked = result_of(child("park", store=store))
        print(f"\n{parked['asleep']:,} runs parked by one worker process: {parked['park_per_s']:,.0f} runs/s, "
              f"peak RSS {parked['peak_rss_mb']:.0f} MB (RSS at the end {parked['rss_mb']:.0f} MB); "
              f"triggers ingested beforehand at {ingest['ingest_per_s']:,.0f}/s")

    if not args.no_postgres:
        print(f"\nPostgreSQL ({args.runs:,} runs; worker processes share the store):")
        print(f"{'workers':>8}{'park/s':>12}{'complete/s':>12}{'end to end/s':>14}")
        for workers in (int(w) for w in args.workers.split(",")):
            pg = postgres_figures(args.postgres, args.runs, workers)
            print(f"{workers:>8}{pg['park_per_s']:>12,.0f}{pg['complete_per_s']:>12,.0f}{pg['end_to_end_per_s']:>14,.0f}")


if __name__ == "__main__":
    main()
