"""`Delivery`: what `omni.deliveries(...)` returns, one message and the story of its sending.

The story is the decision log (`Delivery.decisions`): append-only rows, read in order, which is also
what answers "why was this message (not) sent"."""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import ValidationError
from ..store import SQLStore, Transaction
from ..store._deliveries import DELIVERY_STATUSES, Decision, Delivery, select_deliveries

__all__ = ["Decision", "Delivery", "DeliveryReader", "query_deliveries"]


def query_deliveries(
    tx: Transaction,
    *,
    customer_id: str | None = None,
    run_id: str | None = None,
    status: str | Sequence[str] | None = None,
    journey: str | None = None,
    channel: str | None = None,
    limit: int | None = None,
) -> list[Delivery]:
    """Deliveries matching every filter given, oldest first."""
    filters: dict[str, str] = {}
    for column, value in (("customer_id", customer_id), ("run_id", run_id), ("journey", journey),
                          ("channel", channel)):
        if value is not None:
            if not isinstance(value, str):
                raise ValidationError("expected a string", field=column, value=value)
            filters[column] = value
    statuses = None
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        for s in statuses:
            if s not in DELIVERY_STATUSES:
                raise ValidationError(f"expected one of {', '.join(DELIVERY_STATUSES)}", field="status", value=s)
    return select_deliveries(tx, filters=filters, statuses=statuses, limit=limit)


class DeliveryReader:
    """Reads deliveries by id in a transaction of its own: what `delivery_updated` listeners get,
    loaded after the change committed."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    def __call__(self, ids: Sequence[str]) -> list[Delivery]:
        with self.store.transaction(immediate=False) as tx:
            return select_deliveries(tx, ids=list(ids))
