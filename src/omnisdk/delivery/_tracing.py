"""The dispatcher's spans and metrics: one `omnisdk.deliver` span per delivery a tick works on.

The span's parent is the trace context stored with the queued delivery (`omni.send` inside the
app's span stores it), so the worker's spans join the app's trace across the outbox. Its children:
`omnisdk.decide` (the policies), `omnisdk.render`, `omnisdk.provider.call`. The dispatcher works
in batches, so a child's times are its batch's. Built only when telemetry is enabled: with
`NO_TELEMETRY` the dispatcher holds None and does no work for it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from .._telemetry import Telemetry
from ..policies import SendDecision
from ..providers import Accepted, PermanentError, RetryableError
from ..store import Transaction
from ..store._deliveries import DueRow, traceparents
from ._held import Claimed

__all__ = ["DeliveryTracing"]


def skip_reason(decision: SendDecision) -> str:
    """The policy that stopped a send (a label of few values, never the free-text reason)."""
    failed = [check.policy for check in decision.checks if not check.passed]
    return failed[-1] if failed else "none"


class DeliveryTracing:
    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        #: The open `omnisdk.deliver` span of each delivery claimed and not yet recorded.
        self.open: dict[str, Any] = {}

    def decided(
        self, tx: Transaction, started: float, decided_at: float, pairs: Sequence[tuple[DueRow, SendDecision]],
        claimed: set[str],
    ) -> None:
        """The claim's rows, decided (and those in `claimed` rendered and leased)."""
        t = self.telemetry
        parents = traceparents(tx, [row.id for row, _ in pairs])
        now = time.time()
        for row, decision in pairs:
            attributes: dict[str, str | int | float | bool] = {
                "omnisdk.delivery_id": row.id, "omnisdk.customer_id": row.customer_id,
                "omnisdk.template": row.template, "omnisdk.attempt": row.attempts + 1}
            if row.run_id:
                attributes.update({"omnisdk.run_id": row.run_id, "omnisdk.journey": row.journey or "",
                                   "omnisdk.step": row.step or ""})
            span = t.start("omnisdk.deliver", attributes, parent=parents.get(row.id), start_time=started)
            reason = skip_reason(decision)
            decide = t.start("omnisdk.decide", {"omnisdk.action": decision.action, "omnisdk.policy": reason,
                                                "omnisdk.channel": decision.channel or ""},
                             parent=span, start_time=started)
            t.end(decide, end_time=decided_at)
            if row.id in claimed:
                render = t.start("omnisdk.render", {"omnisdk.channel": decision.channel or ""}, parent=span,
                                 start_time=decided_at)
                t.end(render, end_time=now)
                self.open[row.id] = span
                continue
            status = "skipped" if decision.action == "skip" else "deferred" if decision.action == "defer" else "failed"
            if decision.action != "send":
                t.count("omnisdk.policy.skips", 1, {"omnisdk.action": decision.action, "omnisdk.policy": reason,
                                                    "omnisdk.channel": decision.channel or ""})
            t.end(span, {"omnisdk.status": status}, end_time=now)

    def called(self, batch: Sequence[Claimed], started: float, outcomes: Sequence[Any]) -> None:
        """One provider request came back: a `omnisdk.provider.call` span per delivery in it."""
        t = self.telemetry
        now = time.time()
        provider = batch[0].provider.key
        labels = {"omnisdk.provider": provider, "omnisdk.channel": batch[0].channel}
        t.observe("omnisdk.provider.duration", now - started, labels)
        for item, outcome in zip(batch, outcomes, strict=False):
            kind = ("accepted" if isinstance(outcome, Accepted) else "retryable" if isinstance(outcome, RetryableError)
                    else "permanent" if isinstance(outcome, PermanentError) else "other")
            if kind != "accepted":
                t.count("omnisdk.provider.errors", 1, {**labels, "omnisdk.outcome": kind})
            call = t.start("omnisdk.provider.call", {**labels, "omnisdk.outcome": kind,
                                                     "omnisdk.delivery_id": item.id},
                           parent=self.open.get(item.id), start_time=started)
            t.end(call, end_time=now, error=None if kind == "accepted" else kind)

    def recorded(self, claimed: Sequence[Claimed], outcomes: Mapping[str, Any]) -> None:
        """The batch's outcomes were written: each delivery's span ends with its status."""
        t = self.telemetry
        for item in claimed:
            outcome = outcomes.get(item.id)
            status = ("sent" if isinstance(outcome, Accepted) else "retry" if isinstance(outcome, RetryableError)
                      else "failed" if isinstance(outcome, PermanentError) else "not_sent")
            t.count("omnisdk.sends", 1, {"omnisdk.channel": item.channel, "omnisdk.provider": item.provider.key,
                                         "omnisdk.status": status})
            t.end(self.open.pop(item.id, None), {"omnisdk.status": status, "omnisdk.provider": item.provider.key,
                                                 "omnisdk.channel": item.channel})
