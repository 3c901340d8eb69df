"""The experiment_exposures table, and what exposed customers did afterwards.

An exposure is written once per experiment and customer (`record_exposure`: the first one stays, so
replays, re-entries and other journey versions change nothing). Conversions are read from the
touchpoints of every channel, POS included: a goal event within `window` after the exposure.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import attrs

from ._base import Transaction
from ._rows import optional_text, text, timestamp

__all__ = ["CustomerRevenue", "ExperimentOverview", "Exposure", "Reached", "VariantOutcome", "customer_revenues",
           "experiment_overviews", "exposures", "marketing_reach", "move_exposures", "record_exposure",
           "variant_outcomes"]

_COLUMNS = "experiment, customer_id, variant, run_id, journey, exposed_at"
#: Where a goal touchpoint's revenue is read from: the first of these properties that is a number.
REVENUE_PROPERTIES = ("revenue", "value")


@attrs.frozen(kw_only=True)
class Exposure:
    """A customer shown (or held out from) a variant, and where and when that happened."""

    experiment: str
    customer_id: str
    variant: str
    exposed_at: float
    run_id: str | None = None
    journey: str | None = None


@attrs.frozen(kw_only=True)
class VariantOutcome:
    """One variant's exposed customers and what they did within the window: conversions count each
    customer once; revenue is summed per customer (zeros included), with its sum of squares."""

    variant: str
    exposures: int
    conversions: int
    revenue: float
    revenue_squares: float


@attrs.frozen(kw_only=True)
class ExperimentOverview:
    """An experiment as the exposures know it: its variants and when it ran."""

    experiment: str
    variants: tuple[str, ...]
    exposures: int
    first_exposed_at: float
    last_exposed_at: float


def _exposure(row: Sequence[Any]) -> Exposure:
    return Exposure(experiment=text(row[0]), customer_id=text(row[1]), variant=text(row[2]),
                    run_id=optional_text(row[3]), journey=optional_text(row[4]), exposed_at=timestamp(row[5]))


def record_exposure(tx: Transaction, exposure: Exposure) -> str:
    """Store the exposure unless the customer already has one for this experiment; returns the
    variant that counts (the stored one when it was there first)."""
    inserted = tx.query(
        f"INSERT INTO experiment_exposures ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (experiment, customer_id) DO NOTHING RETURNING variant",
        (exposure.experiment, exposure.customer_id, exposure.variant, exposure.run_id, exposure.journey,
         exposure.exposed_at),
    )
    if inserted:
        return text(inserted[0][0])
    return text(tx.scalar("SELECT variant FROM experiment_exposures WHERE experiment = ? AND customer_id = ?",
                          (exposure.experiment, exposure.customer_id)))


def exposures(tx: Transaction, experiment: str, *, customer_id: str | None = None) -> list[Exposure]:
    """The experiment's exposures (one customer's with `customer_id`), oldest first."""
    sql = f"SELECT {_COLUMNS} FROM experiment_exposures WHERE experiment = ?"
    params: list[Any] = [experiment]
    if customer_id is not None:
        sql += " AND customer_id = ?"
        params.append(customer_id)
    return [_exposure(row) for row in tx.query(sql + " ORDER BY exposed_at, customer_id", params)]


def _revenue(tx: Transaction) -> str:
    """SQL for a touchpoint's revenue: the first of `REVENUE_PROPERTIES` that is a number, else 0."""
    return "COALESCE(" + ", ".join(tx.dialect.json_number("t.properties", p) for p in REVENUE_PROPERTIES) + ", 0)"


def variant_outcomes(
    tx: Transaction, experiment: str, *, goal: Collection[str], window: float, until: float | None = None,
) -> list[VariantOutcome]:
    """Per variant (by name): exposures, customers with a `goal` touchpoint on any channel at or after
    their exposure and less than `window` seconds later, and their revenue; with `until`, as the store
    stood then (exposures and touchpoints after it left out)."""
    goals = sorted(goal)
    exposed = " AND x.exposed_at <= ?" if until is not None else ""
    bound = " AND t.occurred_at <= ?" if until is not None else ""
    sql = (
        "SELECT e.variant, COUNT(*), SUM(CASE WHEN c.customer_id IS NULL THEN 0 ELSE 1 END), "
        "SUM(COALESCE(c.revenue, 0)), SUM(COALESCE(c.revenue, 0) * COALESCE(c.revenue, 0)) "
        "FROM experiment_exposures AS e LEFT JOIN ("
        f"SELECT x.customer_id, SUM({_revenue(tx)}) AS revenue FROM experiment_exposures AS x "
        "JOIN touchpoints AS t ON t.customer_id = x.customer_id "
        f"WHERE x.experiment = ?{exposed} AND t.name IN ({','.join('?' * len(goals))}) "
        f"AND t.occurred_at >= x.exposed_at AND t.occurred_at < x.exposed_at + ?{bound} "
        "GROUP BY x.customer_id) AS c ON c.customer_id = e.customer_id "
        f"WHERE e.experiment = ?{exposed.replace('x.', 'e.')} GROUP BY e.variant ORDER BY e.variant"
    )
    params: list[Any] = [experiment]
    if until is not None:
        params.append(float(until))
    params += [*goals, float(window)]
    if until is not None:
        params.append(float(until))
    params.append(experiment)
    if until is not None:
        params.append(float(until))
    return [
        VariantOutcome(variant=text(row[0]), exposures=int(row[1]), conversions=int(row[2] or 0),
                       revenue=float(row[3] or 0), revenue_squares=float(row[4] or 0))
        for row in tx.query(sql, params)
    ]


@attrs.frozen(kw_only=True)
class CustomerRevenue:
    """One exposed customer: whether they converted within the window after the exposure, their `goal`
    revenue then, and their revenue in the pre-period before it (the covariate CUPED pairs with it)."""

    variant: str
    converted: bool
    revenue: float
    pre_revenue: float


def customer_revenues(
    tx: Transaction, experiment: str, *, goal: Collection[str], window: float, pre_period: float,
    until: float | None = None,
) -> list[CustomerRevenue]:
    """Every exposed customer (by variant, then id) with their `goal` touchpoints on any channel in
    [exposure, exposure + `window`) and their revenue in [exposure - `pre_period`, exposure); with
    `until`, as the store stood then. One statement, so the customers and their figures agree."""
    goals = sorted(goal)
    names = ",".join("?" * len(goals))
    bound = " AND t.occurred_at <= ?" if until is not None else ""
    after = (f"FROM touchpoints AS t WHERE t.customer_id = e.customer_id AND t.name IN ({names}) "
             f"AND t.occurred_at >= e.exposed_at AND t.occurred_at < e.exposed_at + ?{bound}")
    sql = (
        f"SELECT e.variant, (SELECT COUNT(*) {after}), (SELECT COALESCE(SUM({_revenue(tx)}), 0) {after}), "
        f"(SELECT COALESCE(SUM({_revenue(tx)}), 0) FROM touchpoints AS t "
        f"WHERE t.customer_id = e.customer_id AND t.name IN ({names}) AND t.occurred_at >= e.exposed_at - ? "
        "AND t.occurred_at < e.exposed_at) "
        f"FROM experiment_exposures AS e WHERE e.experiment = ?{' AND e.exposed_at <= ?' if until is not None else ''} "
        "ORDER BY e.variant, e.customer_id"
    )
    window_params: list[Any] = [*goals, float(window), *([float(until)] if until is not None else [])]
    params = [*window_params, *window_params, *goals, float(pre_period), experiment,
              *([float(until)] if until is not None else [])]
    return [CustomerRevenue(variant=text(row[0]), converted=int(row[1] or 0) > 0, revenue=float(row[2] or 0),
                            pre_revenue=float(row[3] or 0))
            for row in tx.query(sql, params)]


def experiment_overviews(tx: Transaction) -> list[ExperimentOverview]:
    """Every experiment with an exposure, by name."""
    rows = tx.query(
        "SELECT experiment, variant, COUNT(*), MIN(exposed_at), MAX(exposed_at) FROM experiment_exposures "
        "GROUP BY experiment, variant ORDER BY experiment, variant"
    )
    found: dict[str, ExperimentOverview] = {}
    for name, variant, count, first, last in rows:
        seen = found.get(name)
        if seen is None:
            found[name] = ExperimentOverview(experiment=text(name), variants=(text(variant),), exposures=int(count),
                                             first_exposed_at=timestamp(first), last_exposed_at=timestamp(last))
        else:
            found[name] = attrs.evolve(seen, variants=(*seen.variants, text(variant)),
                                       exposures=seen.exposures + int(count),
                                       first_exposed_at=min(seen.first_exposed_at, timestamp(first)),
                                       last_exposed_at=max(seen.last_exposed_at, timestamp(last)))
    return list(found.values())


@attrs.frozen(kw_only=True)
class Reached:
    """A customer some marketing message was meant for: when first, and what they did within the window."""

    customer_id: str
    first_at: float
    conversions: int
    revenue: float


def _first_channel(tx: Transaction) -> str:
    """SQL for the first channel of a delivery's waterfall (NULL for "the customer's preferred")."""
    return "(channels ->> 0)" if tx.dialect.name == "postgresql" else "json_extract(channels, '$[0]')"


def marketing_reach(
    tx: Transaction, *, goal: Collection[str], window: float, since: float | None = None,
    until: float | None = None, journey: str | None = None, channel: str | None = None,
) -> list[Reached]:
    """Every customer with a marketing delivery queued in [`since`, `until`) (of `journey` only, and
    meant first for `channel` only, when given), whether it went out or was skipped, with the `goal`
    touchpoints on any channel at or after the first such delivery and less than `window` seconds
    later: what the global control group's lift compares (members have their deliveries skipped, so
    they are counted alike; the channel is the one asked for, which both groups have)."""
    goals = sorted(goal)
    revenue = _revenue(tx)
    where = ["purpose = 'marketing'"]
    params: list[Any] = []
    for condition, value in (("created_at >= ?", since), ("created_at < ?", until), ("journey = ?", journey),
                             (f"{_first_channel(tx)} = ?", channel)):
        if value is not None:
            where.append(condition)
            params.append(value)
    sql = (
        f"SELECT f.customer_id, f.first_at, COUNT(t.seq), COALESCE(SUM({revenue}), 0) FROM ("
        f"SELECT customer_id, MIN(created_at) AS first_at FROM deliveries WHERE {' AND '.join(where)} "
        "GROUP BY customer_id) AS f "
        f"LEFT JOIN touchpoints AS t ON t.customer_id = f.customer_id AND t.name IN ({','.join('?' * len(goals))}) "
        "AND t.occurred_at >= f.first_at AND t.occurred_at < f.first_at + ? "
        "GROUP BY f.customer_id, f.first_at ORDER BY f.customer_id"
    )
    rows = tx.query(sql, [*params, *goals, float(window)])
    return [Reached(customer_id=text(r[0]), first_at=timestamp(r[1]), conversions=int(r[2]), revenue=float(r[3]))
            for r in rows]


def move_exposures(tx: Transaction, winner: str, loser: str) -> None:
    """A merge: the loser's exposures become the winner's, except to experiments the winner was
    already exposed to (one exposure per customer: the winner's stays, the loser's goes)."""
    tx.execute(
        "UPDATE experiment_exposures SET customer_id = ? WHERE customer_id = ? AND experiment NOT IN ("
        "SELECT experiment FROM experiment_exposures WHERE customer_id = ?)",
        (winner, loser, winner),
    )
    tx.execute("DELETE FROM experiment_exposures WHERE customer_id = ?", (loser,))
