"""`JourneyContext` (`ctx`): the steps a journey awaits, memoised by step name.

A run re-executes its function from the top each time it resumes. Every step looks up its
name in the run's step log first: a recorded step returns its recorded result without doing
anything again, so only the steps after the last recorded one do real work. A step that has to
wait (a sleep, a `wait_for` with nothing in the inbox) raises `Suspend`, which unwinds the
function; the runtime stores the run and lets it leave memory until it is due.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from .._clock import to_datetime
from .._customers import Customer
from .._errors import JourneyError, NonDeterminismError, ValidationError
from .._identity import load_customer
from .._touchpoints import Touchpoint
from ..experiments._assign import GlobalControl, Split
from ..experiments._exposure import expose
from ..sendtime import SendTime
from ..store import Transaction, touchpoint_from_json
from ..store._runs import StepRecord
from ..store._touchpoints import recent_touchpoints, touchpoints_after
from ._bandits import BanditRule, BanditShares, goals
from ._sends import Sends, new_message

__all__ = ["JourneyContext", "StepRecord", "Suspend"]

#: A `where` filter: property values to match, or a predicate on the touchpoint.
Where = Mapping[str, Any] | Callable[[Touchpoint], bool]


class Suspend(BaseException):
    """Unwinds a journey function that must wait. A BaseException, so `except Exception` in a
    journey cannot swallow it."""

    def __init__(self, step: str, due_at: float | None, wait_event: str | None) -> None:
        super().__init__(step)
        self.step = step
        self.due_at = due_at
        self.wait_event = wait_event


def _touchpoint_json(tp: Touchpoint) -> dict[str, Any]:
    return {
        "seq": tp.seq, "id": tp.id, "customer_id": tp.customer_id, "channel": tp.channel, "name": tp.name,
        "properties": dict(tp.properties), "occurred_at": tp.occurred_at.timestamp(),
    }


def _seconds(value: timedelta, field: str) -> float:
    if not isinstance(value, timedelta):
        raise ValidationError("expected a datetime.timedelta", field=field, value=value)
    if value < timedelta():
        raise ValidationError("must not be negative", field=field, value=value)
    return value.total_seconds()


def _step_name(step: Any) -> str:
    if not isinstance(step, str) or not step.strip():
        raise ValidationError("every step needs an explicit name, unique within the journey", field="step", value=step)
    return step


class JourneyContext:
    """What a journey function receives as `ctx`. Every step takes an explicit name first."""

    def __init__(
        self,
        *,
        tx: Transaction,
        run_id: str,
        journey_id: str,
        version: str,
        customer_id: str,
        trigger: Mapping[str, Any],
        trigger_seq: int,
        now: float,
        steps: dict[str, StepRecord],
        sends: Sends,
        sendtime: SendTime | None,
        global_control: GlobalControl | None = None,
        bandits: BanditShares | None = None,
    ) -> None:
        self.run_id = run_id
        self.journey_id = journey_id
        self.version = version
        self.customer_id = customer_id
        self._tx = tx
        self._trigger = trigger
        self._trigger_seq = trigger_seq
        self._now = now
        self.steps = steps
        self._sends = sends
        self._sendtime = sendtime
        self._global_control = global_control
        self._bandits = bandits
        self._seen: set[str] = set()
        self._customer: Customer | None = None

    # -- what the run knows
    def now(self) -> datetime:
        """The time this execution of the run started (virtual in tests)."""
        return to_datetime(self._now)

    @property
    def customer(self) -> Customer:
        """The customer's unified profile, as of this execution."""
        if self._customer is None:
            self._customer = load_customer(self._tx, self.customer_id)
        return self._customer

    @property
    def trigger(self) -> Touchpoint:
        """The touchpoint that started the run."""
        return touchpoint_from_json(self._trigger)

    def history(
        self, event: str | None = None, *, channels: Sequence[str] | None = None, limit: int = 50
    ) -> list[Touchpoint]:
        """The customer's most recent touchpoints on any channel (oldest first).

        Read live: branch on it through `ctx.run` if the branch must survive replays unchanged.
        """
        return recent_touchpoints(self._tx, self.customer_id, event=event, channels=channels, limit=limit)

    # -- the step log
    def _replay(self, step: str, kind: str, args: dict[str, Any]) -> StepRecord | None:
        step = _step_name(step)
        if step in self._seen:
            raise JourneyError(f"journey {self.journey_id!r}: step name {step!r} used twice in one run")
        self._seen.add(step)
        record = self.steps.get(step)
        if record is not None and (record.kind != kind or record.args != args):
            raise NonDeterminismError(
                f"run {self.run_id} of journey {self.journey_id!r} version {self.version!r}: step {step!r} was "
                f"recorded as {record.kind} {json.dumps(record.args, sort_keys=True)} but now runs as {kind} "
                f"{json.dumps(args, sort_keys=True)}; keep step names stable, or give changed steps new names "
                "in a new version"
            )
        return record

    def _record(self, step: str, kind: str, args: dict[str, Any], result: Any, *, done: bool) -> None:
        existing = self.steps.get(step)
        if existing is None:
            self.steps[step] = StepRecord(kind, args, result, done, new=True)
        else:
            existing.result, existing.done, existing.dirty = result, done, True

    # -- steps
    async def send(
        self,
        step: str,
        template: str,
        *,
        channel: str | None = None,
        channels: Sequence[str] | None = None,
        data: Mapping[str, Any] | None = None,
        purpose: str = "marketing",
        at: datetime | Literal["best_time"] | None = None,
        within: timedelta | None = None,
    ) -> str:
        """Queue a message (in this step's transaction) and return the delivery id.

        `channels` is a waterfall: the first reachable, consented one is used; neither means the
        customer's preferred channel. `at` defers the send; `at="best_time"` picks the customer's
        most engaged hour within `within` (24 hours by default), outside quiet hours.
        """
        if channel is not None and channels is not None:
            raise ValidationError("give channel or channels, not both", field=f"{step}.channels")
        if not isinstance(template, str) or not template:
            raise ValidationError("expected a template name", field=f"{step}.template", value=template)
        chosen = [channel] if channel is not None else list(channels or [])
        args = {"template": template, "channels": chosen}
        record = self._replay(step, "send", args)
        if record is not None:
            return str(record.result)
        due_at = self._due_at(step, at, within, chosen, purpose)
        message = new_message(
            key=f"{self.run_id}:{step}", customer_id=self.customer_id, template=template, channels=chosen,
            due_at=self._now if due_at is None else due_at, purpose=purpose, data=data, run_id=self.run_id,
            journey=self.journey_id, step=step,
        )
        delivery_id = self._sends.queue(self._tx, message, self._now)
        self._record(step, "send", args, delivery_id, done=True)
        return delivery_id

    def _due_at(
        self, step: str, at: Any, within: timedelta | None, channels: Sequence[str], purpose: str
    ) -> float | None:
        if at == "best_time":
            window = _seconds(within if within is not None else timedelta(hours=24), f"{step}.within")
            if self._sendtime is None:
                raise JourneyError("at='best_time' needs the client's send-time optimiser")
            return self._sendtime.best_time(self._tx, self.customer_id, channel=channels[0] if channels else None,
                                                now=self._now, within=window, purpose=purpose)
        if within is not None:
            raise ValidationError("within= goes with at='best_time'", field=f"{step}.within", value=within)
        if at is not None and not isinstance(at, datetime):
            raise ValidationError("expected a datetime or 'best_time'", field=f"{step}.at", value=at)
        return at.timestamp() if at is not None else None

    async def sleep(self, step: str, duration: timedelta) -> None:
        """Pause the run; it is stored and leaves memory until `duration` has passed."""
        seconds = _seconds(duration, f"{step}.duration")
        await self._pause(step, "sleep", {"seconds": seconds}, lambda: self._now + seconds)

    async def sleep_until(self, step: str, when: datetime) -> None:
        """Pause the run until `when` (computed once: later replays keep the first answer)."""
        if not isinstance(when, datetime):
            raise ValidationError("expected a datetime", field=f"{step}.when", value=when)
        await self._pause(step, "sleep", {}, when.timestamp)

    async def _pause(self, step: str, kind: str, args: dict[str, Any], until: Callable[[], float]) -> None:
        record = self._replay(step, kind, args)
        if record is None:
            wake = until()
            self._record(step, kind, args, {"until": wake}, done=True)
        else:
            wake = float(record.result["until"])
        if self._now < wake:
            raise Suspend(step, wake, None)

    async def wait_for(
        self, step: str, event: str, *, where: Where | None = None, timeout: timedelta | None
    ) -> Touchpoint | None:
        """The first `event` of this customer since the run started that `where` accepts, or None
        after `timeout` (None: wait forever). Events that arrived before this call count too.
        """
        if not isinstance(event, str) or not event:
            raise ValidationError("expected an event name", field=f"{step}.event", value=event)
        seconds = None if timeout is None else _seconds(timeout, f"{step}.timeout")
        if where is not None and not (isinstance(where, Mapping) or callable(where)):
            raise ValidationError("expected a dict of properties or a predicate", field=f"{step}.where")
        args = {"event": event, "timeout": seconds, "where": dict(where) if isinstance(where, Mapping) else None}
        record = self._replay(step, "wait", args)
        if record is not None and record.done:
            return touchpoint_from_json(record.result) if record.result else None
        deadline = (None if seconds is None else self._now + seconds) if record is None else record.result["deadline"]
        found = self._inbox(event, where, deadline)
        if found is not None:
            self._record(step, "wait", args, _touchpoint_json(found), done=True)
            return found
        if deadline is not None and self._now >= deadline:
            self._record(step, "wait", args, None, done=True)
            return None
        if record is None:
            self._record(step, "wait", args, {"deadline": deadline}, done=False)
        raise Suspend(step, deadline, event)

    def _inbox(self, event: str, where: Where | None, deadline: float | None) -> Touchpoint | None:
        """The oldest matching touchpoint after the trigger that no earlier wait of this run returned."""
        consumed = {
            r.result["seq"] for r in self.steps.values() if r.kind == "wait" and r.done and r.result
        }
        for touchpoint in touchpoints_after(self._tx, self.customer_id, event, after_seq=self._trigger_seq,
                                            recorded_by=deadline):
            if touchpoint.seq in consumed:
                continue
            if where is None:
                return touchpoint
            if isinstance(where, Mapping):
                if all(touchpoint.properties.get(k) == v for k, v in where.items()):
                    return touchpoint
            elif where(touchpoint):
                return touchpoint
        return None

    async def experiment(
        self, name: str, variants: Mapping[str, float], *, step: str | None = None,
        holdouts: Collection[str] = (), purpose: str = "marketing",
        allocation: Literal["fixed", "thompson"] = "fixed", goal: str | Collection[str] = "Order Completed",
        window: timedelta = timedelta(days=7), control: str | None = None, control_floor: float = 0.1,
    ) -> str:
        """The customer's variant of experiment `name` (shares adding up to 1), recorded once as an exposure.

        The variant is a hash of `name` and the customer id (`experiments.Split`), so every worker,
        replay and journey version agrees; the first exposure stored for the customer wins, so a
        customer keeps their variant even if the shares change later. `holdouts` name variants that
        get no message: branch on the returned name and send nothing for them. Members of the global
        control group get a variant too but are not exposed to a marketing experiment (`purpose`):
        they receive none of its messages, and counting them would only dilute the difference.
        `allocation="thompson"` starts from `variants` and then moves traffic to the variant most
        likely best on `goal` within `window` (Thompson sampling, refreshed hourly), keeping `control`
        at `control_floor` at least; each customer's variant still holds once exposed.
        The step is named `step` (default `experiment:<name>`) and memoised like any other.
        """
        split = Split(variants, holdouts=holdouts)
        step = f"experiment:{name}" if step is None else step
        args = {"experiment": name, "variants": sorted(split.shares)}
        record = self._replay(step, "experiment", args)
        if record is not None:
            return str(record.result["variant"])
        if allocation == "thompson":
            if control is None:
                raise ValidationError("a bandit needs its control variant", field=f"{step}.control")
            rule = BanditRule(goal=goals(goal), window=_seconds(window, f"{step}.window"), control=control,
                              control_floor=control_floor)
            if self._bandits is None:
                self._bandits = BanditShares()
            split = Split(self._bandits.shares(self._tx, name, rule, split.shares, self._now), holdouts=holdouts)
        elif allocation != "fixed":
            raise ValidationError("expected 'fixed' or 'thompson'", field=f"{step}.allocation", value=allocation)
        chosen, exposed = expose(self._tx, split, name, self.customer_id, now=self._now,
                                 global_control=self._global_control, purpose=purpose, run_id=self.run_id,
                                 journey=self.journey_id)
        self._record(step, "experiment", args, {"variant": chosen, "exposed": exposed}, done=True)
        return chosen

    async def run(self, step: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call `fn(*args)` once per run and remember its (JSON) result; replays return the memo.

        The call happens before the step's transaction commits: an effect outside the store may
        repeat if the worker dies at that moment, so make it idempotent.
        """
        if not callable(fn):
            raise ValidationError("expected a function", field=f"{step}.fn", value=fn)
        fp = {"fn": getattr(fn, "__qualname__", type(fn).__name__)}
        record = self._replay(step, "run", fp)
        if record is not None:
            return record.result
        result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
        try:
            result = json.loads(json.dumps(result, allow_nan=False))  # what replays will return
        except (TypeError, ValueError) as exc:
            raise JourneyError(f"step {step!r}: ctx.run results are stored as JSON ({exc})") from None
        self._record(step, "run", fp, result, done=True)
        return result
