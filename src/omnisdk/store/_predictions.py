"""Predicted customer value: the purchases the models read, the fitted models, and each customer's
latest prediction (migration 0017).

Purchases are touchpoints named by the caller (Order Completed from every channel, POS included);
their value is the `revenue` property, else `total`, else 0. Every SQL statement about predictions
lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from .._clock import to_datetime
from .._customers import Prediction
from ._base import Transaction, dumps, json_table, loads
from ._rows import integer, text, timestamp

__all__ = [
    "PredictionModelRow",
    "PredictionRow",
    "Purchase",
    "customers_to_rescore",
    "latest_model",
    "latest_purchase_seq",
    "merge_predictions",
    "predictions_of",
    "purchasers",
    "purchases_of",
    "save_model",
    "save_predictions",
    "set_scored",
]

_CHUNK = 500


@attrs.frozen
class Purchase:
    """One purchase touchpoint: who, when (epoch seconds) and its value."""

    customer_id: str
    occurred_at: float
    value: float


@attrs.frozen
class PredictionModelRow:
    """A stored fit: its parameters (as JSON), when, on how many customers, and how far it scored."""

    id: int
    fitted_at: float
    params: Mapping[str, Any]
    customers: int
    scored_seq: int
    scored_at: float


@attrs.frozen
class PredictionRow:
    """One customer's stored prediction (the columns of `predictions`)."""

    customer_id: str
    expected_purchases: float
    probability_alive: float
    churn_risk: float
    expected_order_value: float
    predicted_clv: float
    horizon_days: float
    scored_at: float
    model_id: int
    stale: bool = False

    def prediction(self) -> Prediction:
        """The profile's view of this row."""
        return Prediction(expected_purchases=self.expected_purchases, probability_alive=self.probability_alive,
                          churn_risk=self.churn_risk, expected_order_value=self.expected_order_value,
                          predicted_clv=self.predicted_clv, horizon_days=self.horizon_days,
                          scored_at=to_datetime(self.scored_at), stale=self.stale)


def _value(tx: Transaction) -> str:
    number = tx.dialect.json_number
    return f"COALESCE({number('t.properties', 'revenue')}, {number('t.properties', 'total')}, 0)"


def latest_purchase_seq(tx: Transaction, event: str) -> int:
    """The `seq` of the newest purchase touchpoint (0 when there is none): the next run's watermark."""
    return int(tx.scalar("SELECT MAX(seq) FROM touchpoints WHERE name = ?", (event,)) or 0)


def purchasers(tx: Transaction, event: str, *, after: str, page: int) -> list[str]:
    """Up to `page` ids of live customers with a purchase, after `after` in id order (a full refit)."""
    rows = tx.query(
        "SELECT DISTINCT t.customer_id FROM touchpoints t JOIN customers c ON c.id = t.customer_id "
        "WHERE t.name = ? AND c.merged_into IS NULL AND t.customer_id > ? ORDER BY t.customer_id LIMIT ?",
        (event, after, page),
    )
    return [text(cid) for (cid,) in rows]


def customers_to_rescore(tx: Transaction, event: str, *, since_seq: int, through_seq: int, after: str,
                         page: int) -> list[str]:
    """Up to `page` live customers, after `after` in id order, who bought after `since_seq` (up to
    `through_seq`) or whose prediction a merge made stale."""
    rows = tx.query(
        "SELECT u.customer_id FROM ("
        "SELECT t.customer_id FROM touchpoints t WHERE t.seq > ? AND t.seq <= ? AND t.name = ? "
        "UNION SELECT p.customer_id FROM predictions p WHERE p.stale = 1"
        ") AS u JOIN customers c ON c.id = u.customer_id "
        "WHERE c.merged_into IS NULL AND u.customer_id > ? ORDER BY u.customer_id LIMIT ?",
        (since_seq, through_seq, event, after, page),
    )
    return [text(cid) for (cid,) in rows]


def purchases_of(tx: Transaction, customer_ids: Sequence[str], event: str) -> list[Purchase]:
    """Every purchase of these customers, by customer and oldest first."""
    found: list[Purchase] = []
    value = _value(tx)
    for start in range(0, len(customer_ids), _CHUNK):
        chunk = customer_ids[start:start + _CHUNK]
        rows = tx.query(
            f"SELECT t.customer_id, t.occurred_at, {value} FROM touchpoints t "
            f"WHERE t.customer_id IN ({','.join('?' * len(chunk))}) AND t.name = ? "
            "ORDER BY t.customer_id, t.occurred_at, t.seq",
            (*chunk, event),
        )
        found.extend(Purchase(text(cid), timestamp(when), float(amount)) for cid, when, amount in rows)
    return found


def save_model(tx: Transaction, *, fitted_at: float, params: Mapping[str, Any], customers: int) -> int:
    """Store a fit (not yet scored: `scored_seq` 0); returns its id."""
    row = tx.one(
        "INSERT INTO prediction_models (fitted_at, params, customers, scored_seq, scored_at) "
        "VALUES (?, ?, ?, 0, ?) RETURNING id",
        (fitted_at, dumps(params), customers, fitted_at),
    )
    assert row is not None
    return int(row[0])


def set_scored(tx: Transaction, model_id: int, *, seq: int, at: float) -> None:
    """Record that every purchase up to `seq` is scored with model `model_id` (the next run's start)."""
    tx.execute("UPDATE prediction_models SET scored_seq = ?, scored_at = ? WHERE id = ?", (seq, at, model_id))


def latest_model(tx: Transaction) -> PredictionModelRow | None:
    row = tx.one("SELECT id, fitted_at, params, customers, scored_seq, scored_at FROM prediction_models "
                 "ORDER BY id DESC LIMIT 1")
    if row is None:
        return None
    model_id, fitted_at, params, customers, seq, scored_at = row
    return PredictionModelRow(integer(model_id), timestamp(fitted_at), loads(params), integer(customers),
                              integer(seq), timestamp(scored_at))


_COLUMNS = ("customer_id, expected_purchases, probability_alive, churn_risk, expected_order_value, predicted_clv, "
            "horizon_days, scored_at, model_id")


def save_predictions(tx: Transaction, rows: Iterable[PredictionRow]) -> int:
    """Insert or replace customers' predictions, a batch in one statement; clears their `stale` mark."""
    batch = [attrs.astuple(r)[:9] for r in rows]
    if not batch:
        return 0
    source, columns = json_table(tx, "tfffffffi")
    tx.execute(
        f"INSERT INTO predictions ({_COLUMNS}, stale) SELECT {', '.join(columns)}, 0 FROM {source} WHERE TRUE "
        "ON CONFLICT (customer_id) DO UPDATE SET expected_purchases = excluded.expected_purchases, "
        "probability_alive = excluded.probability_alive, churn_risk = excluded.churn_risk, "
        "expected_order_value = excluded.expected_order_value, predicted_clv = excluded.predicted_clv, "
        "horizon_days = excluded.horizon_days, scored_at = excluded.scored_at, model_id = excluded.model_id, "
        "stale = 0",
        (dumps(batch),),
    )
    return len(batch)


def predictions_of(tx: Transaction, customer_ids: Sequence[str]) -> dict[str, PredictionRow]:
    """The stored predictions of these customers (those without one are left out)."""
    found: dict[str, PredictionRow] = {}
    for start in range(0, len(customer_ids), _CHUNK):
        chunk = customer_ids[start:start + _CHUNK]
        rows = tx.query(f"SELECT {_COLUMNS}, stale FROM predictions "
                        f"WHERE customer_id IN ({','.join('?' * len(chunk))})", chunk)
        for cid, purchases, alive, churn, order_value, clv, horizon, scored_at, model_id, stale in rows:
            found[text(cid)] = PredictionRow(text(cid), float(purchases), float(alive), float(churn),
                                             float(order_value), float(clv), float(horizon), timestamp(scored_at),
                                             integer(model_id), bool(stale))
    return found


def merge_predictions(tx: Transaction, winner: str, loser: str) -> None:
    """A merge: the winner keeps one prediction (its own, else the loser's) and is marked stale, so
    the next run scores it on the purchases of both profiles."""
    tx.execute("DELETE FROM predictions WHERE customer_id = ? AND EXISTS "
               "(SELECT 1 FROM predictions w WHERE w.customer_id = ?)", (loser, winner))
    tx.execute("UPDATE predictions SET customer_id = ? WHERE customer_id = ?", (winner, loser))
    tx.execute("UPDATE predictions SET stale = 1 WHERE customer_id = ?", (winner,))
