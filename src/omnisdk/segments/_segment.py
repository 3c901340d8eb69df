"""Evaluating segments: streamed ids, counts, and watched segments whose entries and exits are events."""

from __future__ import annotations

from collections.abc import Iterator

from .._clock import Clock
from .._errors import ValidationError
from .._logging import get_logger
from .._recorder import Recorder
from .._touchpoints import new_id
from ..store import SQLStore, Transaction, dumps
from ..store._segments import count_segment, in_segment, refresh_membership, segment_page
from ._dsl import Condition

__all__ = ["SEGMENT_ENTERED", "SEGMENT_EXITED", "Segment", "SegmentWatcher"]

log = get_logger("omnisdk.segments")
SEGMENT_ENTERED = "Segment Entered"
SEGMENT_EXITED = "Segment Exited"


class Segment:
    """The customers matching a condition now. Iterating streams ids in pages: memory stays flat."""

    def __init__(self, store: SQLStore, clock: Clock, condition: Condition, name: str | None = None) -> None:
        if not isinstance(condition, Condition):
            raise ValidationError("expected a segment condition (did, trait, count…)", field="condition")
        self._store = store
        self._clock = clock
        self.condition = condition
        self.name = name

    def customers(self, *, page: int = 5000) -> Iterator[str]:
        """Customer ids in the segment, in id order, fetched `page` at a time."""
        now = self._clock.timestamp()
        after = ""
        while True:
            with self._store.transaction(immediate=False) as tx:
                ids = segment_page(tx, self.condition, now, after=after, page=page)
            yield from ids
            if len(ids) < page:
                return
            after = ids[-1]

    def count(self) -> int:
        with self._store.transaction(immediate=False) as tx:
            return count_segment(tx, self.condition, self._clock.timestamp())

    def contains(self, customer_id: str) -> bool:
        with self._store.transaction(immediate=False) as tx:
            return in_segment(tx, self.condition, self._clock.timestamp(), customer_id)

    def refresh(self, tx: Transaction, now: float, recorder: Recorder) -> tuple[int, int]:
        """Update the watched membership; entries and exits are recorded as touchpoints through
        `recorder` (announced once `tx` commits). Returns how many entered and left."""
        if not self.name:
            raise ValidationError("only named segments can be watched", field="name")
        change = refresh_membership(tx, self.name, self.condition, now)
        props = dumps({"segment": self.name})
        events = [(new_id(), cid, "server", SEGMENT_ENTERED, props, now, now) for cid in change.entered]
        events += [(new_id(), cid, "server", SEGMENT_EXITED, props, now, now) for cid in change.exited]
        recorder.touchpoints(tx, events, skip_existing=False)
        return len(change.entered), change.left


class SegmentWatcher:
    """A worker that re-evaluates watched segments every `interval` seconds of (virtual) time."""

    def __init__(self, store: SQLStore, clock: Clock, recorder: Recorder, interval: float = 3600.0) -> None:
        self._store = store
        self._clock = clock
        self._recorder = recorder
        self.interval = interval
        self.segments: dict[str, Segment] = {}
        self._last: float | None = None

    def segment(self, condition: Condition, name: str | None = None) -> Segment:
        """The customers matching `condition` now, on this watcher's store and clock."""
        return Segment(self._store, self._clock, condition, name)

    def watch(self, name: str, condition: Condition) -> Segment:
        if not isinstance(name, str) or not name:
            raise ValidationError("a watched segment needs a name", field="name", value=name)
        segment = self.segment(condition, name)
        self.segments[name] = segment
        self._last = None  # evaluate at the next tick
        return segment

    def next_due(self) -> float | None:
        if not self.segments:
            return None
        return self._clock.timestamp() if self._last is None else self._last + self.interval

    async def tick(self) -> int:
        due = self.next_due()
        now = self._clock.timestamp()
        if due is None or due > now:
            return 0
        self._last = now
        changes = 0
        for segment in self.segments.values():
            with self._store.transaction() as tx:
                entered, left = segment.refresh(tx, now, self._recorder)
            changes += entered + left
            if entered or left:
                log.info("segment_changed", segment=segment.name, entered=entered, left=left)
        return changes
