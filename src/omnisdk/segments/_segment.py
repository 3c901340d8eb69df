"""Evaluating segments: streamed ids, counts, and watched segments whose entries and exits are events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .._errors import ValidationError
from .._logging import get_logger
from .._touchpoints import new_id
from ..store import Transaction
from ._dsl import NOW, Condition, Sql

if TYPE_CHECKING:
    from .._core import Core

__all__ = ["SEGMENT_ENTERED", "SEGMENT_EXITED", "Segment", "SegmentWatcher"]

log = get_logger("omnisdk.segments")
SEGMENT_ENTERED = "Segment Entered"
SEGMENT_EXITED = "Segment Exited"


class Segment:
    """The customers matching a condition now. Iterating streams ids in pages: memory stays flat."""

    def __init__(self, core: Core, condition: Condition, name: str | None = None) -> None:
        if not isinstance(condition, Condition):
            raise ValidationError("expected a segment condition (did, trait, count…)", field="condition")
        self._core = core
        self.condition = condition
        self.name = name

    def _where(self, now: float) -> tuple[str, list[Any]]:
        compiled: Sql = self.condition.compile(self._core.store.dialect)
        params = [now if p is NOW else p for p in compiled.params]
        return f"c.merged_into IS NULL AND COALESCE({compiled.text}, FALSE)", params

    def customers(self, *, page: int = 5000) -> Iterator[str]:
        """Customer ids in the segment, in id order, fetched `page` at a time."""
        now = self._core.clock.timestamp()
        where, params = self._where(now)
        after = ""
        while True:
            with self._core.store.transaction(immediate=False) as tx:
                rows = tx.query(f"SELECT c.id FROM customers c WHERE {where} AND c.id > ? ORDER BY c.id LIMIT ?",
                                (*params, after, page))
            for (cid,) in rows:
                yield cid
            if len(rows) < page:
                return
            after = rows[-1][0]

    def count(self) -> int:
        where, params = self._where(self._core.clock.timestamp())
        with self._core.store.transaction(immediate=False) as tx:
            return int(tx.scalar(f"SELECT COUNT(*) FROM customers c WHERE {where}", params) or 0)

    def contains(self, customer_id: str) -> bool:
        where, params = self._where(self._core.clock.timestamp())
        with self._core.store.transaction(immediate=False) as tx:
            return bool(tx.scalar(f"SELECT 1 FROM customers c WHERE {where} AND c.id = ?", (*params, customer_id)))

    def refresh(self, tx: Transaction, now: float) -> tuple[int, int]:
        """Update the watched membership; record entries and exits as touchpoints. Set-based SQL."""
        if not self.name:
            raise ValidationError("only named segments can be watched", field="name")
        where, params = self._where(now)
        tx.execute(
            "INSERT INTO segment_members (segment, customer_id, entered_at, seen_at) "
            f"SELECT ?, c.id, ?, ? FROM customers c WHERE {where} "
            "ON CONFLICT (segment, customer_id) DO UPDATE SET seen_at = excluded.seen_at",
            (self.name, now, now, *params),
        )
        props = json.dumps({"segment": self.name})
        entered = tx.query("SELECT customer_id FROM segment_members WHERE segment = ? AND entered_at = ?",
                           (self.name, now))
        left = tx.query(
            "SELECT m.customer_id, c.merged_into FROM segment_members m JOIN customers c ON c.id = m.customer_id "
            "WHERE m.segment = ? AND m.seen_at < ?",
            (self.name, now),
        )
        events = [(new_id(), cid, "server", SEGMENT_ENTERED, props, now, now) for (cid,) in entered]
        events += [(new_id(), cid, "server", SEGMENT_EXITED, props, now, now) for cid, merged in left if not merged]
        tx.executemany(
            "INSERT INTO touchpoints (id, customer_id, channel, name, properties, occurred_at, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            events,
        )
        tx.execute("DELETE FROM segment_members WHERE segment = ? AND seen_at < ?", (self.name, now))
        return len(entered), len(left)


class SegmentWatcher:
    """A worker that re-evaluates watched segments every `interval` seconds of (virtual) time."""

    def __init__(self, core: Core, interval: float = 3600.0) -> None:
        self._core = core
        self.interval = interval
        self.segments: dict[str, Segment] = {}
        self._last: float | None = None

    def watch(self, name: str, condition: Condition) -> Segment:
        if not isinstance(name, str) or not name:
            raise ValidationError("a watched segment needs a name", field="name", value=name)
        segment = Segment(self._core, condition, name)
        self.segments[name] = segment
        self._last = None  # evaluate at the next tick
        return segment

    def next_due(self) -> float | None:
        if not self.segments:
            return None
        return self._core.clock.timestamp() if self._last is None else self._last + self.interval

    async def tick(self) -> int:
        due = self.next_due()
        now = self._core.clock.timestamp()
        if due is None or due > now:
            return 0
        self._last = now
        changes = 0
        for segment in self.segments.values():
            with self._core.store.transaction() as tx:
                entered, left = segment.refresh(tx, now)
            changes += entered + left
            if entered or left:
                log.info("segment_changed", segment=segment.name, entered=entered, left=left)
        return changes
