"""Predicted customer value, persisted: BG/NBD + Gamma-Gamma fitted on the stored purchases (every
channel, POS included) and each customer's expected purchases, churn risk and CLV written to the
`predictions` table, which segments and templates read.

Refreshed incrementally: a run rescores only the customers who bought since the last run (or whose
profiles merged), with the stored parameters, in batches of one transaction each; the parameters
describe the customer base, so they are refitted on a schedule (`refit_every`) or when asked, and
a refit rescores everyone. A crash mid-run loses nothing: the watermark moves only at the end, so
the next run scores the same customers again (an upsert).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from .._clock import Clock
from .._errors import ConfigError, OmniError, ValidationError
from .._logging import get_logger
from ..store import SQLStore
from ..store._predictions import (
    PredictionRow,
    Purchase,
    customers_to_rescore,
    latest_model,
    latest_purchase_seq,
    purchasers,
    purchases_of,
    save_model,
    save_predictions,
    set_scored,
)
from ._clv import _DAYS_PER, _MONTH_DAYS, BetaGeo, GammaGamma, PurchaseSummary, Unit, ValueModel, summarize_purchases

__all__ = ["PredictionRun", "PredictionSettings", "ValuePredictor"]

log = get_logger("omnisdk.commerce")


@attrs.frozen(kw_only=True)
class PredictionSettings:
    """`[predictions]`: which touchpoints are purchases, the time unit and horizon of the models, how often
    the worker rescores (`every` seconds; unset: only `omni.predict_value()`) and refits (`refit_every`),
    customers per transaction, and the time zone whose calendar days count as purchase days."""

    event: str = "Order Completed"
    unit: Unit = "weeks"
    horizon_months: int = 12
    discount_rate: float = 0.01
    every: float | None = None
    refit_every: float = 7 * 86400.0
    batch_size: int = 1000
    timezone: str = "UTC"

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None, *, default_timezone: str = "UTC") -> PredictionSettings:
        section = section or {}
        if not isinstance(section, Mapping):
            raise ConfigError("must be a table", field="predictions")
        known = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"unknown key (known: {', '.join(sorted(known))})", field=f"predictions.{unknown[0]}")
        kwargs: dict[str, Any] = {"timezone": section.get("timezone", default_timezone)}
        for key, kind, low in (("horizon_months", int, 1), ("batch_size", int, 1), ("every", float, 1e-9),
                               ("refit_every", float, 0.0), ("discount_rate", float, 0.0)):
            if key in section:
                value = section[key]
                if not isinstance(value, int | float) or isinstance(value, bool) or value < low \
                        or (kind is int and not isinstance(value, int)):
                    raise ConfigError(f"expected a{'n integer' if kind is int else ' number'} >= {low:g}",
                                      field=f"predictions.{key}")
                kwargs[key] = kind(value)
        if "event" in section:
            if not isinstance(section["event"], str) or not section["event"]:
                raise ConfigError("expected an event name", field="predictions.event")
            kwargs["event"] = section["event"]
        if "unit" in section:
            if not isinstance(section["unit"], str) or section["unit"] not in _DAYS_PER:
                raise ConfigError("expected 'days' or 'weeks'", field="predictions.unit")
            kwargs["unit"] = section["unit"]
        try:
            ZoneInfo(str(kwargs["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone {kwargs['timezone']!r}", field="predictions.timezone") from None
        return cls(**kwargs)

    @property
    def period(self) -> float:
        """A month in the models' time unit."""
        return _MONTH_DAYS / _DAYS_PER[self.unit]

    @property
    def horizon_days(self) -> float:
        return self.horizon_months * _MONTH_DAYS


@attrs.frozen(kw_only=True)
class PredictionRun:
    """What one run did: the model it scored with (None when there were no purchases yet), its stored id,
    whether it was fitted by this run, how many customers were rescored, and the end of the purchases read."""

    model: ValueModel | None
    model_id: int | None
    refit: bool
    rescored: int
    scored_at: datetime


def _check_finite(model: ValueModel, summaries: Mapping[str, PurchaseSummary]) -> None:
    """Refuse a fit whose predictions are not numbers (a degenerate optimum, e.g. a and b in the tens of
    thousands when almost nobody drops out), before it is stored: the last good model stays in use."""
    for cid, value in model.predict(summaries).items():
        if not all(math.isfinite(x) for x in attrs.astuple(value)):
            raise ValidationError(f"the fitted model gives no finite prediction (customer {cid!r}): "
                                  f"{model_params(model)}; too little data to fit, or pass model=", field="model")


def model_params(model: ValueModel) -> dict[str, Any]:
    """What is stored of a fit: both models' parameters and the unit they are in."""
    purchases, spend = model.purchases, model.spend
    return {"r": purchases.r, "alpha": purchases.alpha, "a": purchases.a, "b": purchases.b,
            "p": spend.p, "q": spend.q, "gamma": spend.gamma, "unit": model.unit}


class ValuePredictor:
    """Scores customers' predicted value into the store; also a `Worker` when `[predictions] every` is set."""

    def __init__(self, store: SQLStore, clock: Clock, settings: PredictionSettings) -> None:
        self._store = store
        self._clock = clock
        self.settings = settings
        self._zone = ZoneInfo(settings.timezone)
        self._next: float | None = None

    # -- the model
    def _horizon(self, purchases: BetaGeo, spend: GammaGamma) -> ValueModel:
        s = self.settings
        return ValueModel(purchases=purchases, spend=spend, unit=s.unit, periods=s.horizon_months, period=s.period,
                          discount_rate=s.discount_rate)

    def _stored(self, params: Mapping[str, Any]) -> ValueModel | None:
        """The stored fit with this client's horizon, or None when it cannot be used (another unit)."""
        if params.get("unit") != self.settings.unit:
            return None
        try:
            return self._horizon(BetaGeo(*(float(params[k]) for k in ("r", "alpha", "a", "b"))),
                                 GammaGamma(*(float(params[k]) for k in ("p", "q", "gamma"))))
        except (KeyError, TypeError, ValueError):
            return None

    def current_model(self) -> ValueModel | None:
        """The latest stored fit (None before the first one)."""
        with self._store.transaction(immediate=False) as tx:
            stored = latest_model(tx)
        return None if stored is None else self._stored(stored.params)

    # -- a run
    def run(self, *, refit: bool | None = None, model: ValueModel | None = None) -> PredictionRun:
        """Rescore who bought since the last run; refit first when `refit`, when the last fit is older than
        `refit_every` (`refit=None`), or when there is none. `model` scores with given parameters instead
        of fitting (and rescores everyone)."""
        now = self._clock.timestamp()
        end = datetime.fromtimestamp(now, self._zone)
        settings = self.settings
        with self._store.transaction(immediate=False) as tx:
            stored = latest_model(tx)
            through = latest_purchase_seq(tx, settings.event)
        current = None if stored is None else self._stored(stored.params)
        if model is not None and model.unit != settings.unit:
            raise ValidationError(f"the predictions are in {settings.unit}", field="model.unit", value=model.unit)
        due = stored is None or current is None or now - stored.fitted_at >= settings.refit_every
        if refit is False and current is None and model is None:
            raise ValidationError("there is no fitted model yet: fit one first", field="refit", value=refit)
        fitted = model is not None or bool(refit) or (refit is None and due)
        if fitted:
            summaries = dict(self._all_summaries(end))
            if not summaries:
                return PredictionRun(model=None, model_id=None, refit=False, rescored=0, scored_at=end)
            given = model or ValueModel.fit(summaries.values(), periods=settings.horizon_months,
                                            period=settings.period, discount_rate=settings.discount_rate)
            current = self._horizon(given.purchases, given.spend)
            _check_finite(current, summaries)
            model_id = self._save_model(current, now, len(summaries))
            rescored = self._score(current, model_id, summaries, now)
        else:
            assert stored is not None and current is not None
            model_id, rescored = stored.id, self._rescore(current, stored.id, stored.scored_seq, through, end, now)
        with self._store.transaction() as tx:
            set_scored(tx, model_id, seq=through, at=now)
        log.info("predictions_scored", refit=fitted, rescored=rescored, model_id=model_id)
        return PredictionRun(model=current, model_id=model_id, refit=fitted, rescored=rescored, scored_at=end)

    def _save_model(self, model: ValueModel, now: float, customers: int) -> int:
        with self._store.transaction() as tx:
            return save_model(tx, fitted_at=now, params=model_params(model), customers=customers)

    def _summaries(self, purchases: Sequence[Purchase], end: datetime) -> Iterator[tuple[str, PurchaseSummary]]:
        by_customer: dict[str, list[tuple[datetime, float]]] = {}
        for p in purchases:
            by_customer.setdefault(p.customer_id, []).append(
                (datetime.fromtimestamp(p.occurred_at, self._zone), p.value))
        for cid, items in by_customer.items():
            summary = summarize_purchases(items, end=end, unit=self.settings.unit)
            if summary is not None:
                yield cid, summary

    def _all_summaries(self, end: datetime) -> Iterator[tuple[str, PurchaseSummary]]:
        """Every live purchaser's summary, read a batch of customers per transaction."""
        after, page = "", self.settings.batch_size
        while True:
            with self._store.transaction(immediate=False) as tx:
                ids = purchasers(tx, self.settings.event, after=after, page=page)
                purchases = purchases_of(tx, ids, self.settings.event) if ids else []
            yield from self._summaries(purchases, end)
            if len(ids) < page:
                return
            after = ids[-1]

    def _score(self, model: ValueModel, model_id: int, summaries: Mapping[str, PurchaseSummary], now: float) -> int:
        ids, page, done = list(summaries), self.settings.batch_size, 0
        for start in range(0, len(ids), page):
            batch = {cid: summaries[cid] for cid in ids[start:start + page]}
            with self._store.transaction() as tx:
                done += save_predictions(tx, self._rows(model, model_id, batch, now))
        return done

    def _rescore(self, model: ValueModel, model_id: int, since: int, through: int, end: datetime, now: float) -> int:
        after, page, done = "", self.settings.batch_size, 0
        while True:
            with self._store.transaction() as tx:
                ids = customers_to_rescore(tx, self.settings.event, since_seq=since, through_seq=through, after=after,
                                           page=page)
                summaries = dict(self._summaries(purchases_of(tx, ids, self.settings.event), end)) if ids else {}
                done += save_predictions(tx, self._rows(model, model_id, summaries, now))
            if len(ids) < page:
                return done
            after = ids[-1]

    def _rows(self, model: ValueModel, model_id: int, summaries: Mapping[str, PurchaseSummary],
              now: float) -> list[PredictionRow]:
        horizon = self.settings.horizon_days
        rows = [
            PredictionRow(cid, v.expected_purchases, v.probability_alive, v.churn_risk, v.expected_order_value,
                          v.predicted_clv, horizon, now, model_id)
            for cid, v in model.predict(summaries).items()
        ]
        for row in rows:  # never store a NaN a segment would silently leave out
            if not all(math.isfinite(x) for x in attrs.astuple(row)[1:6]):
                raise ValidationError(f"the model gives no finite prediction for customer {row.customer_id!r} "
                                      f"({model_params(model)})", field="model")
        return rows

    # -- the worker
    def next_due(self) -> float | None:
        if self.settings.every is None:
            return None
        return self._clock.timestamp() if self._next is None else self._next

    async def tick(self) -> int:
        due = self.next_due()
        now = self._clock.timestamp()
        if due is None or due > now:
            return 0
        every = self.settings.every
        assert every is not None
        if self._next is None:  # first tick of this process: the store knows when the last run was
            with self._store.transaction(immediate=False) as tx:
                stored = latest_model(tx)
            if stored is not None and stored.scored_at + every > now:
                self._next = stored.scored_at + every
                return 0
        self._next = now + every
        try:
            return self.run().rescored
        except OmniError as exc:  # e.g. a fit that does not converge on too few customers: try again later
            log.warning("predictions_failed", error=str(exc))
            return 0

