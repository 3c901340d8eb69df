"""Where a send's CPU goes, and how much each part could give back at most.

A diagnostic next to `dispatch.py` (same server, same pipeline, same bare aiohttp loop): every
round runs the bare loop and then the pipeline once as shipped and once with each part switched
off in turn, so each figure is measured in the same conditions as the others. Switching a part
off breaks a guarantee (the last-moment re-check, the decision log, the event stream, rendering):
it shows the most that making the part cheaper could ever give, never a setting.

It also times the pipeline's steps as shipped (claim, the re-check and `sending` marks, record;
the rest is the plugin, the HTTP client and the event loop), and inside the re-check the queries
and the policies it runs again, so what a cheaper re-check could give is visible.

    .venv/bin/python benchmarks/dispatch_parts.py [--messages 2000] [--repeat 5]

Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import dispatch

import omnisdk
from omnisdk.delivery import _claim, _held, _outcomes, _recheck, _send, _sending
from omnisdk.store import _events


@contextmanager
def replaced(owner: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextmanager
def nothing() -> Iterator[None]:
    yield


#: What is switched off, and how.
PARTS: dict[str, Callable[[], Any]] = {
    "as shipped": nothing,
    "no re-check": lambda: replaced(_send, "stop_revoked", lambda *a, **k: set()),
    "no event stream": lambda: replaced(_events, "_write", lambda tx, staged: None),
    "no decision log": lambda: replaced(_held, "append_decisions", lambda tx, entries: None),
    "no rendering": lambda: replaced(_sending.SendContext, "render",
                                     lambda self, message, channel, *a, **k: message.renditions[channel]),
}

#: The steps timed in the shipped pipeline.
STEPS = {"claim": (_claim.Claimer, "claim"), "re-check and marks": (_send.Sender, "mark_sending"),
         "record": (_outcomes.OutcomeRecorder, "record")}
#: Parts timed inside a step (the functions it calls, by the names it calls them).
PARTS_OF = {"re-check and marks": {"profile fingerprints": (_recheck, "profile_fingerprints"),
                                   "recent activity": (_recheck, "load_recent"),
                                   "policies again": (_recheck, "decide_many"),
                                   "the sending marks' UPDATE": (_send, "mark_sending")}}
TIMED = {**STEPS, **{part: where for parts in PARTS_OF.values() for part, where in parts.items()}}


def timed_steps(spent: Counter[str]) -> list[Any]:
    managers = []
    for step, (owner, name) in TIMED.items():
        original = getattr(owner, name)

        def timer(*args: Any, _original: Any = original, _step: str = step, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_step] += time.process_time() - start

        managers.append(replaced(owner, name, timer))
    return managers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.messages
    server = dispatch.Server("twilio")
    twilio = {"provider": "twilio", "account_sid": dispatch.SID, "auth_token": dispatch.TOKEN,
              "from": dispatch.SENDER, "base_url": server.address, "max_concurrency": 64}
    message = omnisdk.Message("ready", sms=omnisdk.SMS(text="Hi {{ customer.first_name }}, it's ready"))
    cpu: dict[str, list[float]] = {part: [] for part in PARTS}
    ratio: dict[str, list[float]] = {part: [] for part in PARTS}
    order = [name for step in STEPS for name in (step, *PARTS_OF.get(step, ()))]  # a part under its step
    steps: dict[str, list[float]] = {step: [] for step in order}
    try:
        for round_ in range(args.repeat):
            bare = dispatch.bare_aiohttp(server.address, n, 64)
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            bare()
            bare_rate = n / (time.perf_counter() - start)
            bare_cpu = (time.process_time() - start_cpu) / n * 1e6
            for part, switch_off in PARTS.items():
                spent: Counter[str] = Counter()
                with ExitStack() as stack:
                    stack.enter_context(switch_off())
                    if part == "as shipped":  # before the pipeline is built: it keeps bound methods
                        for manager in timed_steps(spent):
                            stack.enter_context(manager)
                    run, check = dispatch.omnisdk_pipeline("sms", twilio, message, n,
                                                           lambda i: {"phone": dispatch.phone(i)})
                    gc.collect()
                    start, start_cpu = time.perf_counter(), time.process_time()
                    run()
                    rate = n / (time.perf_counter() - start)
                    used = (time.process_time() - start_cpu) / n * 1e6
                check()
                cpu[part].append(used)
                ratio[part].append(rate / bare_rate)
                for step in spent:
                    steps[step].append(spent[step] / n * 1e6)
            print(f"  round {round_ + 1}: bare loop {bare_cpu:.0f} µs/msg; "
                  + ", ".join(f"{part} {cpu[part][-1]:.0f}" for part in PARTS), flush=True)
    finally:
        server.stop()
    shipped = statistics.median(cpu["as shipped"])
    print(f"\n{n} SMS, {args.repeat} rounds (medians)   client CPU µs/msg   saved   x bare aiohttp loop")
    for part in PARTS:
        median = statistics.median(cpu[part])
        print(f"  {part:<24} {median:12.0f} {shipped - median:9.0f}   {statistics.median(ratio[part]):.2f}x")
    print("\nthe shipped pipeline's steps, µs/msg:")
    for step, values in steps.items():
        indent = "  " if step in STEPS else "    "
        print(f"{indent}{step:<26} {statistics.median(values) if values else 0:6.0f}")
    rest = shipped - sum(statistics.median(v) for step, v in steps.items() if step in STEPS)
    print(f"  {'the rest (plugin, HTTP, event loop)':<26} {rest:6.0f}")


if __name__ == "__main__":
    main()
