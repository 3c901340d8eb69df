"""One event path: every touchpoint and delivery change is stored through here, then announced.

Whoever writes a touchpoint (the app's `track`, a webhook, the dispatcher, a segment, a POS
import) hands its rows to `Recorder.touchpoints` inside its own transaction; the rows are
stored there and `touchpoint_recorded` fires once that transaction has committed, so a plugin
never hears of a row that was rolled back and never misses one that was written. Delivery status
changes go the same way through `Recorder.deliveries` and `delivery_updated`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ._logging import get_logger
from ._plugins import PluginHost
from ._telemetry import NO_TELEMETRY, Telemetry
from ._touchpoints import Touchpoint
from .store import Transaction, touchpoint_from_row
from .store._events import stage_deliveries, stage_touchpoints
from .store._touchpoints import insert_touchpoints

__all__ = ["Recorder"]

log = get_logger("omnisdk")


class Recorder:
    """Stores touchpoints, then tells plugins; a plugin's failure is logged, never raised."""

    def __init__(self, plugins: PluginHost, telemetry: Telemetry = NO_TELEMETRY) -> None:
        self.plugins = plugins
        self.telemetry = telemetry
        #: Called with each batch's new rows inside the transaction that stores them (the catalog's
        #: record of views, carts and purchases): what they write commits or rolls back with the rows.
        self.observers: list[Callable[[Transaction, Sequence[Sequence[Any]]], None]] = []

    def observe(self, observer: Callable[[Transaction, Sequence[Sequence[Any]]], None]) -> None:
        self.observers.append(observer)

    @property
    def _omni(self) -> Any:
        return self.plugins.context.get("omni")

    def listening(self, hook: str = "touchpoint_recorded") -> bool:
        """Whether any plugin implements `hook` (writers skip building objects nobody reads)."""
        return self.plugins.has_impls(hook)

    def touchpoints(self, tx: Transaction, rows: Sequence[Sequence[Any]], *, skip_existing: bool = True) -> int:
        """Store touchpoint rows (id, customer_id, channel, name, properties JSON, occurred_at,
        recorded_at) in `tx`; announce each new one after `tx` commits (a row already stored is not
        announced again). Returns how many were new."""
        new = insert_touchpoints(tx, rows, skip_existing=skip_existing)
        if not new:
            return 0
        fresh = set(new)
        stored = []
        for row in rows:  # each new row once, in the order given (a repeated id was stored once)
            if row[0] in fresh:
                fresh.discard(row[0])
                stored.append(row)
        for observer in self.observers:
            observer(tx, stored)
        stage_touchpoints(tx, stored)  # the event stream (store/_events.py), in this same transaction
        if self.telemetry.enabled:
            for channel, n in Counter(row[2] for row in stored).items():
                self.telemetry.count("omnisdk.touchpoints", n, {"omnisdk.channel": channel})
        if self.listening():
            announced = [touchpoint_from_row((None, *row[:6])) for row in stored]
            tx.after_commit(lambda: self.announce_touchpoints(announced))
        return len(new)

    def announce_touchpoints(self, touchpoints: Sequence[Touchpoint]) -> None:
        self._announce("touchpoint_recorded", "touchpoint", touchpoints)

    def deliveries(self, tx: Transaction, ids: Sequence[str], load: Callable[[], Sequence[Any]]) -> None:
        """Put the changed deliveries `ids` on the event stream (in `tx`) and announce them after `tx`
        commits; `load` reads them (as `Delivery`s) then, and is only called when a plugin listens."""
        stage_deliveries(tx, ids)
        if self.listening("delivery_updated"):
            tx.after_commit(lambda: self.announce_deliveries(load()))

    def announce_deliveries(self, deliveries: Sequence[Any]) -> None:
        self._announce("delivery_updated", "delivery", deliveries)

    def _announce(self, hook_name: str, argument: str, items: Sequence[Any]) -> None:
        """Tell each listening plugin of each item through pluggy, one plugin at a time: a plugin's
        bug is logged and neither loses the caller's event nor keeps the other plugins from hearing it."""
        callers = self.plugins.callers(hook_name)
        omni = self._omni
        for item in items:
            for plugin, call in callers:
                try:
                    call(**{argument: item, "omni": omni})
                except Exception as exc:
                    log.error(f"{argument}_hook_failed", plugin=plugin, error=exc)
