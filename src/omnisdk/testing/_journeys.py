"""`JourneyTester`: prove a journey over weeks of virtual time in milliseconds, in your own pytest.

```python
from omnisdk.testing import JourneyTester

def test_cart_abandonment():
    with JourneyTester(cart_abandonment) as t:
        t.emit("c-1", "Product Added", {"cart_id": "k1"})
        t.advance(hours=2)
        assert [d.step for d in t.deliveries("c-1")] == ["nudge"]
        t.emit("c-1", "Order Completed", channel="pos")
        assert t.run("c-1").status == "exited"
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._clock import VirtualClock
from .._errors import NotFoundError
from .._identity import Who
from .._omni import Omni
from .._touchpoints import Touchpoint
from ..journeys import Journey, JourneyRun

if TYPE_CHECKING:
    from ..delivery import Delivery

__all__ = ["JourneyTester"]


class JourneyTester:
    """An `Omni` on a `VirtualClock` with journeys registered; every action runs due work at once.

    `store` defaults to an in-memory SQLite database; pass a PostgreSQL URL to test there.
    `config` is the usual omnisdk configuration (channels on `provider = "memory"`, policies…);
    installed provider plugins load as in the application unless `load_entry_points=False`.
    """

    def __init__(
        self,
        *journeys: Journey,
        store: str = "sqlite://:memory:",
        config: Mapping[str, Any] | str | None = None,
        start: datetime | None = None,
        load_entry_points: bool = True,
    ) -> None:
        self.clock = VirtualClock(start)
        self.omni = Omni(store, config=config, clock=self.clock, load_entry_points=load_entry_points)
        self.omni.register(*journeys)

    # -- acting as the customer and the app
    def identify(self, customer_id: str, **kwargs: Any) -> None:
        """`Omni.identify`: identifiers, traits, time zone…"""
        self.omni.identify(customer_id, **kwargs)

    def consent(self, who: Who, channel: str, granted: bool = True, purpose: str = "marketing") -> None:
        self.omni.consent(who, channel=channel, granted=granted, purpose=purpose)

    def emit(
        self, who: Who, event: str, properties: Mapping[str, Any] | None = None, *, channel: str = "web"
    ) -> Touchpoint:
        """Record a touchpoint now and run everything it makes due."""
        touchpoint = self.omni.track(who, event, properties, channel=channel)
        self.omni.run_until_idle()
        return touchpoint

    def advance(self, delta: timedelta | None = None, /, **kwargs: float) -> datetime:
        """Move virtual time forward, stopping at every due time on the way so that runs wake in order."""
        target = self.clock.now() + (delta or timedelta()) + timedelta(**kwargs)
        self.omni.run_until_idle()
        while True:
            due = self.omni.next_due()
            if due is None or due > target or due <= self.clock.now():
                break
            self.clock.set(due)
            self.omni.run_until_idle()
        self.clock.set(target)
        self.omni.run_until_idle()
        return target

    # -- looking at the outcome
    def deliveries(self, customer_id: str | None = None, *, journey: str | None = None) -> list[Delivery]:
        """Messages the journeys queued (any status), oldest first; those of one instant by step name."""
        found = self.omni.deliveries(customer_id=customer_id, journey=journey)
        return sorted(found, key=lambda d: (d.created_at, d.step or "", d.id))

    def steps(self, customer_id: str, *, journey: str | None = None) -> list[str]:
        """The names of the steps that queued the customer's messages, in order."""
        return [d.step or "" for d in self.deliveries(customer_id, journey=journey)]

    def runs(self, customer_id: str | None = None, *, journey: str | None = None) -> list[JourneyRun]:
        """The customer's runs, oldest first."""
        return list(reversed(self.omni.runs(customer_id=customer_id, journey=journey, limit=100_000)))

    def run(self, customer_id: str, *, journey: str | None = None) -> JourneyRun:
        """The customer's latest run."""
        runs = self.runs(customer_id, journey=journey)
        if not runs:
            raise NotFoundError(f"customer {customer_id!r} has no journey run")
        return runs[-1]

    def statuses(self, customer_id: str, *, journey: str | None = None) -> Sequence[str]:
        return [r.status for r in self.runs(customer_id, journey=journey)]

    def close(self) -> None:
        self.omni.close()

    def __enter__(self) -> JourneyTester:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
