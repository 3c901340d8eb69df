"""What the facade calls: plan a broadcast, read progress, cancel (each in its own transaction)."""

from __future__ import annotations

from typing import Any

from .._clock import Clock
from .._content import Message
from .._errors import ValidationError
from ..messages import Templates
from ..segments import Condition, Segment
from ..store import SQLStore
from ._plan import Broadcast, plan_broadcast
from ._progress import BroadcastStatus, broadcast_status, cancel_broadcast, list_broadcasts

__all__ = ["BroadcastAdmin"]


class BroadcastAdmin:
    """The store and clock broadcasts are planned with, and the templates they must name."""

    def __init__(self, store: SQLStore, clock: Clock, templates: Templates) -> None:
        self.store = store
        self.clock = clock
        self.templates = templates

    def create(self, template: str | Message, segment: Segment | Condition, **options: Any) -> Broadcast:
        """Check the template exists (a `Message` is registered first), then store the plan
        (`options` are `plan_broadcast`'s: at, local_time, send_time, within, channel(s), purpose, data, name)."""
        if isinstance(template, Message):
            template_id = self.templates.add(template).id
        elif isinstance(template, str) and template:
            template_id = self.templates.get(template).id
        else:
            raise ValidationError("expected a template id or a Message", field="template", value=template)
        with self.store.transaction() as tx:
            return plan_broadcast(tx, template=template_id, segment=segment, now=self.clock.timestamp(), **options)

    def status(self, broadcast_id: str) -> BroadcastStatus:
        with self.store.transaction(immediate=False) as tx:
            return broadcast_status(tx, broadcast_id)

    def list(self, *, limit: int = 100) -> list[BroadcastStatus]:
        with self.store.transaction(immediate=False) as tx:
            return list_broadcasts(tx, limit=limit)

    def cancel(self, broadcast_id: str) -> BroadcastStatus:
        with self.store.transaction() as tx:
            return cancel_broadcast(tx, broadcast_id, self.clock.timestamp())
