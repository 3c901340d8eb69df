"""What the facade calls: plan a broadcast, read progress, cancel (each in its own transaction)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._content import Message
from .._errors import ValidationError
from ..segments import Condition, Segment
from ._plan import Broadcast, plan_broadcast
from ._progress import BroadcastStatus, broadcast_status, cancel_broadcast, list_broadcasts

if TYPE_CHECKING:
    from .._core import Core

__all__ = ["BroadcastAdmin"]


class BroadcastAdmin:
    def __init__(self, core: Core) -> None:
        self.core = core

    def create(self, template: str | Message, segment: Segment | Condition, **options: Any) -> Broadcast:
        """Check the template exists (a `Message` is registered first), then store the plan
        (`options` are `plan_broadcast`'s: at, local_time, send_time, within, channel(s), purpose, data, name)."""
        if isinstance(template, Message):
            template_id = self.core.templates.add(template).id
        elif isinstance(template, str) and template:
            template_id = self.core.templates.get(template).id
        else:
            raise ValidationError("expected a template id or a Message", field="template", value=template)
        with self.core.store.transaction() as tx:
            return plan_broadcast(tx, template=template_id, segment=segment, now=self.core.clock.timestamp(), **options)

    def status(self, broadcast_id: str) -> BroadcastStatus:
        with self.core.store.transaction(immediate=False) as tx:
            return broadcast_status(tx, broadcast_id)

    def list(self, *, limit: int = 100) -> list[BroadcastStatus]:
        with self.core.store.transaction(immediate=False) as tx:
            return list_broadcasts(tx, limit=limit)

    def cancel(self, broadcast_id: str) -> BroadcastStatus:
        with self.core.store.transaction() as tx:
            return cancel_broadcast(tx, broadcast_id, self.core.clock.timestamp())
