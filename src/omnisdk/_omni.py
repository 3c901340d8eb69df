"""`Omni` (sync) and `AsyncOmni`: the whole public surface of an embedded omnisdk."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime, time, timedelta
from os import PathLike
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from ._clock import Clock, to_datetime
from ._config import Config
from ._content import Content, Message
from ._core import Core
from ._customers import Consent, Customer, Prediction
from ._errors import NotFoundError
from ._identity import Who
from ._telemetry import Telemetry
from ._topics import Preferences
from ._touchpoints import Touchpoint
from .broadcasts import Broadcast, BroadcastStatus
from .broadcasts._admin import BroadcastAdmin
from .commerce import AsyncCatalog, Catalog
from .delivery import Delivery
from .events import EventPage
from .journeys import Journey, JourneyRun
from .messages import Templates
from .providers import Provider, WebhookResponse
from .segments import Condition, Segment
from .sendtime import EngagementHours
from .store import (
    QuarantinedRow,
    QuarantineRepair,
    SQLStore,
    drop_quarantined,
    list_quarantined,
    repair_quarantined,
)

if TYPE_CHECKING:
    from .analytics import AttributionResult, Funnel, KPITable
    from .commerce import Recommendation, ValueModel
    from .commerce._predict import PredictionRun
    from .experiments import ExperimentResult
    from .experiments._results import Method, Metric
    from .privacy import RetentionStatus
    from .reports import Report
    from .store._experiments import ExperimentOverview
    from .store._forget import ForgetRequest

__all__ = ["AsyncOmni", "Omni"]

P = ParamSpec("P")
T = TypeVar("T")


class _Base:
    def __init__(
        self,
        store: str | SQLStore | None = None,
        config: Mapping[str, Any] | str | None = None,
        clock: Clock | None = None,
        *,
        plugins: Iterable[Any] = (),
        load_entry_points: bool = True,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._core = Core(store, config, clock, plugins, load_entry_points, facade=self, telemetry=telemetry)
        self._broadcasts = BroadcastAdmin(self._core.store, self._core.clock, self._core.templates)

    @property
    def clock(self) -> Clock:
        return self._core.clock

    @property
    def store(self) -> SQLStore:
        return self._core.store

    @property
    def config(self) -> Config:
        """The configuration as loaded (`${ENV}` resolved); its repr masks every secret."""
        return self._core.config

    @property
    def templates(self) -> Templates:
        """The message registry: `add(Message)`, `get(id)`, rendering, and tracked links."""
        return self._core.templates

    def register(self, *journeys: Journey) -> None:
        """Register journeys (or new versions of them); the version registered last starts new runs."""
        for journey in journeys:
            self._core.journeys.register(journey)
            self._core.catalog_watcher.watch_events(journey.trigger)  # a catalog trigger turns itself on

    def provider(self, channel: str, name: str | None = None) -> Provider:
        """The configured provider instance for a channel (its primary, or the one called `name`,
        webhook-only sources included): for plugins' template filters and admin tasks."""
        pool = self._core.dispatcher.pool
        configured = pool.primary.get(channel) if name is None else pool.find(channel, name)
        if configured is None:
            named = f" {name!r}" if name else ""
            raise NotFoundError(f"no provider{named} configured for channel {channel!r}")
        return pool.instance(configured)

    def segment(self, condition: Condition) -> Segment:
        """The customers matching `condition` (see `omnisdk.segments`): `.customers()`, `.count()`."""
        return self._core.segments.segment(condition)

    def watch_segment(self, name: str, condition: Condition) -> Segment:
        """Re-evaluate a segment periodically; entering and leaving it are touchpoints journeys can use."""
        return self._core.segments.watch(name, condition)

    @property
    def plugin_errors(self) -> list[Exception]:
        """Plugins that failed to load or register, with why; the others loaded."""
        return list(self._core.plugins.errors)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} store={self._core.store.redacted_url}>"


class Omni(_Base):
    """The synchronous client, for web apps and scripts. Not for use inside a running event loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _run(self, coro: Awaitable[T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    @property
    def catalog(self) -> Catalog:
        """Products, variants and stock per location: `upsert_many`, `variant`, `set_inventory`,
        `available`, `subscribe`, and `watch` for the catalog triggers (see docs/catalog.md)."""
        return self._core.catalog

    def identify(
        self,
        /,
        customer_id: str | None = None,
        *,
        traits: Mapping[str, Any] | None = None,
        timezone: str | None = None,
        locale: str | None = None,
        address: Mapping[str, Any] | None = None,
        preferred_channels: Sequence[str] | None = None,
        **identifiers: Any,
    ) -> Customer:
        """Attach identifiers and profile data to a customer; profiles sharing an identifier merge."""
        return self._core.identify(
            customer_id,
            traits=traits,
            timezone=timezone,
            locale=locale,
            address=address,
            preferred_channels=preferred_channels,
            **identifiers,
        )

    def consent(
        self, who: Who, *, channel: str, granted: bool, purpose: str = "marketing", source: str = "api"
    ) -> Consent:
        """Record a consent decision in the customer's ledger (channel "all" covers every channel)."""
        return self._core.consent(who, channel=channel, granted=granted, purpose=purpose, source=source)

    def track(
        self,
        who: Who,
        event: str,
        properties: Mapping[str, Any] | None = None,
        *,
        channel: str = "server",
        timestamp: datetime | float | str | None = None,
        id: str | None = None,
    ) -> Touchpoint:
        """Record one touchpoint; `id` makes it idempotent."""
        return self._core.track(who, event, properties, channel=channel, timestamp=timestamp, id=id)

    def track_many(self, items: Iterable[Any]) -> int:
        """Record many touchpoints at once; returns how many were new. Bad items are left out and
        reported afterwards by `BatchValidationError`; the valid ones are stored."""
        return self._core.track_many(items)

    def send(
        self,
        who: Who,
        template: str,
        *,
        channel: str | None = None,
        channels: Sequence[str] | None = None,
        data: Mapping[str, Any] | None = None,
        purpose: str = "marketing",
        idempotency_key: str | None = None,
        topic: str | None = None,
    ) -> Delivery:
        """Queue one message outside a journey (an order confirmation from the app's own code).

        `channels` is a waterfall (the first reachable, consented one); neither means the customer's
        preferred channel. Consent, quiet hours, caps and suppression apply as to journey sends, and the
        worker sends it exactly once; `purpose="transactional"` needs no marketing consent (a revocation
        still counts). The same `idempotency_key` again is a no-op that returns the first delivery.
        `topic` names what it is about (`[topics]`; a marketing send must name one when topics are
        configured): the customer's choices for that topic and channel apply.
        """
        return self._core.send(who, template, channel=channel, channels=channels, data=data, purpose=purpose,
                               idempotency_key=idempotency_key, topic=topic)

    def preferences(self, who: Who) -> Preferences:
        """The customer's topic choices: per configured topic and channel, whether it is sent, and the ledger."""
        return self._core.preference_ledger.preferences(who)

    def set_preferences(self, who: Who, choices: Mapping[str, Mapping[str, bool]], *, source: str = "api",
                        evidence: str | None = None) -> Preferences:
        """Record `{topic: {channel: subscribed}}` in the preference ledger, with `source` and `evidence`
        kept like consent's (`"*"` is every marketing topic, `"all"` every channel)."""
        return self._core.preference_ledger.set_preferences(who, choices, source=source, evidence=evidence)

    def customer(self, customer_id: str) -> Customer:
        """The unified profile (a merged-away id leads to the profile it merged into)."""
        return self._core.customer(customer_id)

    def timeline(
        self,
        customer_id: str,
        *,
        channels: Sequence[str] | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Touchpoint]:
        """Touchpoints on every channel, oldest first."""
        return self._core.timeline(customer_id, channels=channels, since=since, limit=limit)

    def predict_value(self, *, refit: bool | None = None, model: ValueModel | None = None) -> PredictionRun:
        """Score predicted customer value into the store (BG/NBD + Gamma-Gamma on Order Completed from every
        channel, POS included): only customers who bought since the last run, refitting the models first when
        `refit`, or when the last fit is older than `[predictions] refit_every` (`refit=None`); `model` scores
        with given parameters. Segments (`predicted_clv() > 200`) and templates (`customer.churn_risk`) read it."""
        return self._core.predictor.run(refit=refit, model=model)

    def predictions(self, customer_id: str) -> Prediction | None:
        """The customer's stored predicted value (expected purchases, probability alive, churn risk,
        predicted CLV), or None before their first purchase was scored."""
        return self._core.customer(customer_id).prediction

    def recommend(
        self, customer_id: str, k: int = 4, *, exclude: Iterable[str] = (), location: str | None = None
    ) -> list[Recommendation]:
        """Up to `k` products for the customer, best first, from what every customer bought and viewed on
        any channel (`[recommendations] chain`): never one they bought or in `exclude`, and, with a catalog,
        never one out of stock (or, given a store `location`, not stocked there, for a pickup message)."""
        core = self._core
        customer = core.customer(customer_id)
        with core.store.transaction(immediate=False) as tx:
            recommendations = core.recommendations
            history = recommendations.histories(tx, [customer.id])[customer.id]
            return recommendations.recommend(tx, history, k, exclude=exclude, location=location)

    def preview(
        self, template: str | Message, customer_id: str, channel: str, *, data: Mapping[str, Any] | None = None,
        locale: str | None = None,
    ) -> Content:
        """`template` rendered for the customer on `channel` as a delivery would be (recent history, product
        blocks and recommendations included), without sending anything; links are attributed to "preview"."""
        core = self._core
        customer = core.customer(customer_id)
        history = core.timeline(customer.id, limit=20)
        with core.store.transaction(immediate=False) as tx:
            context = core.templates.context(customer, history=tuple(history), data=dict(data or {}), locale=locale,
                                             journey="preview", step="preview", shop=core.shop(tx))
            return core.templates.render(template, channel, context)

    def kpis(
        self,
        by: str | Sequence[str] | None = "channel",
        *,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        conversion: str | Collection[str] = "Order Completed",
        window: timedelta = timedelta(days=7),
    ) -> KPITable:
        """Sent, delivered, opened, clicked, converted, cost and revenue of messages, grouped by channel,
        provider, journey, step, template or broadcast (see `omnisdk.analytics.kpis`)."""
        from .analytics import kpis

        return kpis(self._core.store, by, since=since, until=until, conversion=conversion, window=window)

    def funnel(
        self,
        steps: Sequence[str],
        *,
        within: timedelta = timedelta(days=7),
        by: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
    ) -> Funnel:
        """Customers doing `steps` (event names) in order within `within` of the first, per step, with
        conversion and median time between steps; `by="channel"` breaks it down by the first step's channel."""
        from .analytics import funnel

        return funnel(self._core.store, steps, within=within, by=by, since=since, until=until)

    def attribution(
        self,
        /,
        model: str = "markov",
        *,
        order: int = 1,
        conversion: str | Collection[str] = "Order Completed",
        lookback: timedelta = timedelta(days=30),
        touches: Collection[str] | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        **params: Any,
    ) -> AttributionResult:
        """Credit conversions (online or POS) and their revenue to the channels touched within `lookback`
        before them, with `model` (see `omnisdk.analytics.attribute`), streamed from the store."""
        from .analytics import attribution

        return attribution(self._core.store, model, order=order, conversion=conversion, lookback=lookback,
                           touches=touches, since=since, until=until, **params)

    def assign(self, experiment: str, who: Who, variants: Mapping[str, float], *, holdouts: Collection[str] = (),
               purpose: str = "marketing") -> str:
        """The customer's variant of `experiment` (shares adding up to 1), recorded once as an exposure:
        the same hash, exposure and global-control rule as `ctx.experiment`, for the app's own code. The
        first exposure stored wins, so a later call (or journey) with other shares keeps the variant."""
        return self._core.assign(experiment, who, variants, holdouts=holdouts, purpose=purpose)

    def experiment(
        self,
        name: str,
        *,
        goal: str | Collection[str] = "Order Completed",
        window: timedelta = timedelta(days=7),
        control: str,
        metric: Metric = "conversion",
        method: Method = "sequential",
        alpha: float = 0.05,
        horizon: int | None = None,
        equivalence: float | None = None,
        until: datetime | float | None = None,
        previous: ExperimentResult | None = None,
        cuped: bool = False,
        pre_period: timedelta = timedelta(days=30),
    ) -> ExperimentResult:
        """Experiment `name` so far (or as of `until`): per variant exposures, conversions on `goal` (any
        channel, POS included) within `window` of the exposure, revenue per exposed customer, lifts against
        `control` with always-valid intervals (`method="fixed"` for a fixed-horizon test), and a decision.
        Pass the last look's result as `previous` to carry the sequential test on; `cuped=True` takes out of
        revenue what each customer's revenue in the `pre_period` before exposure predicted."""
        from .experiments import DEFAULT_HORIZON
        from .experiments._measure import experiment_result

        return experiment_result(self._core.store, name, goal=goal, window=window, control=control,
                                 metric=metric, method=method, alpha=alpha,
                                 horizon=horizon or DEFAULT_HORIZON, equivalence=equivalence,
                                 until=self._core.clock.timestamp() if until is None else until,
                                 previous=previous, cuped=cuped, pre_period=pre_period)

    def experiments(self) -> list[ExperimentOverview]:
        """Every experiment with an exposure: its variants, how many were exposed, and when."""
        from .store._experiments import experiment_overviews

        with self._core.store.transaction(immediate=False) as tx:
            return experiment_overviews(tx)

    def marketing_lift(
        self,
        *,
        goal: str | Collection[str] = "Order Completed",
        window: timedelta = timedelta(days=7),
        journey: str | None = None,
        channel: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        metric: Metric = "conversion",
        method: Method = "sequential",
    ) -> ExperimentResult:
        """What all marketing (or one `journey`'s, or the messages meant first for one `channel`) earns
        against the global control group (`[experiments] global_control`): "marketed" against "global control"."""
        from .experiments._measure import marketing_lift

        return marketing_lift(self._core.store, self._core.experiment_settings.global_control, goal=goal,
                              window=window, since=since, until=until, journey=journey, channel=channel,
                              metric=metric, method=method)

    def report(
        self,
        html: str | PathLike[str] | None = None,
        csv: str | PathLike[str] | None = None,
        *,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        conversion: str | Collection[str] = "Order Completed",
        funnel: Sequence[str] | None = None,
        window: timedelta = timedelta(days=7),
        lookback: timedelta = timedelta(days=30),
    ) -> Report:
        """KPIs by channel and journey step, a funnel (by default viewed → added → checkout → conversion),
        attribution by model side by side, every experiment (a table, and its lift with always-valid and
        fixed-horizon intervals day by day) and marketing against the global control group; writes a
        self-contained HTML page and/or CSV files when given paths. `print(report.text())` shows it as tables."""
        from .reports import create_report

        return create_report(self._core.store, now=self._core.clock.timestamp(), html=html, csv=csv, since=since,
                             until=until, conversion=conversion, funnel=funnel, window=window, lookback=lookback,
                             global_control=self._core.experiment_settings.global_control)

    def broadcast(
        self,
        template: str | Message,
        segment: Segment | Condition,
        *,
        at: datetime | None = None,
        local_time: time | None = None,
        send_time: str | None = None,
        within: timedelta | None = None,
        channel: str | None = None,
        channels: Sequence[str] | None = None,
        purpose: str = "marketing",
        data: Mapping[str, Any] | None = None,
        name: str | None = None,
        topic: str | None = None,
    ) -> Broadcast:
        """Send one message to everyone in a segment: now, `at` a time, at `local_time` in each
        customer's zone, or at each one's best time (`send_time="best"`, within `within`, 24 h by
        default). Stored at once; the worker queues it page by page through the usual policies,
        the recipients' choices for `topic` included."""
        template_id = self._core.templates.add(template).id if isinstance(template, Message) else template
        if not (data is not None and not isinstance(data, Mapping)):
            data = self._core.check_send(template_id, purpose, topic, data)
        return self._broadcasts.create(
            template, segment, at=at, local_time=local_time, send_time=send_time, within=within, channel=channel,
            channels=channels, purpose=purpose, data=data, name=name,
        )

    def broadcasts(self, *, limit: int = 100) -> list[BroadcastStatus]:
        """The latest broadcasts, newest first, with their progress."""
        return self._broadcasts.list(limit=limit)

    def broadcast_status(self, broadcast_id: str) -> BroadcastStatus:
        """Recipients queued, deliveries by status, and percent done."""
        return self._broadcasts.status(broadcast_id)

    def cancel_broadcast(self, broadcast_id: str) -> BroadcastStatus:
        """Stop queueing and cancel the broadcast's messages not yet being sent."""
        return self._broadcasts.cancel(broadcast_id)

    def best_time(
        self, customer_id: str, *, channel: str | None = None, within: timedelta = timedelta(hours=24),
        purpose: str = "marketing",
    ) -> datetime:
        """When, within `within` from now and outside quiet hours, the customer is likeliest to engage."""
        return self._core.sendtime.when(customer_id, channel=channel, within=within, purpose=purpose)

    def engagement_hours(self, customer_id: str, *, channel: str | None = None) -> EngagementHours:
        """The customer's engagement by local hour, smoothed towards everyone's (what `best_time` uses)."""
        return self._core.sendtime.hours(customer_id, channel=channel)

    def next_due(self) -> datetime | None:
        """When scheduled work (a journey's sleep or wait, a deferred or retried delivery, a broadcast) is
        next due, or None: for apps that run `run_until_idle()` from their own scheduler."""
        due = self._core.next_due()
        return None if due is None else to_datetime(due)

    def run_until_idle(self) -> int:
        """Run the journeys and deliveries that are due now, then return how much was done."""
        return self._run(self._core.run_until_idle())

    def run_worker(self, stop: threading.Event | None = None, *, poll_interval: float | None = None) -> int:
        """Work until `stop` is set or SIGTERM: due runs and deliveries, then wait for more."""
        return self._run(self._core.run_worker(stop=stop, poll_interval=poll_interval))

    def runs(
        self,
        *,
        journey: str | None = None,
        customer_id: str | None = None,
        status: str | Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[JourneyRun]:
        """Journey runs, newest first."""
        return self._core.runs.runs(journey=journey, customer_id=customer_id, status=status, limit=limit)

    def cancel_run(self, run_id: str) -> JourneyRun:
        """End an active run; what it queued but did not send is cancelled."""
        return self._core.runs.cancel(run_id, now=self._core.clock.timestamp())

    def retry_run(self, run_id: str) -> JourneyRun:
        """Resume a failed run from its recorded steps."""
        return self._core.runs.retry(run_id, now=self._core.clock.timestamp())

    def migrate_run(self, run_id: str, version: str) -> JourneyRun:
        """Move a run (active or failed) to another registered version of its journey."""
        return self._core.runs.migrate(run_id, version, now=self._core.clock.timestamp())

    def forget(self, who: Who, *, requested_by: str = "app", reason: str = "") -> ForgetRequest:
        """Erase a customer (right to erasure): their profile, identifiers, consents and memberships are
        deleted; touchpoints, deliveries, runs and exposures kept for the aggregates, anonymised (a
        tombstone id, no content, addresses or provider ids); queued messages and active runs cancelled.
        A keyed hash of each identifier stays, so they are not re-subscribed. Batched and resumable:
        the returned request is `done`, or finished by the worker (a delivery in flight, a plugin to retry).
        `requested_by` and `reason` are recorded with the request (say who asked: a name, a ticket)."""
        return self._core.forget(who, requested_by=requested_by, reason=reason)

    def forget_requests(self, *, limit: int = 100) -> list[ForgetRequest]:
        """Erasure requests, newest first: when, by whom, status, rows removed per table (never who)."""
        from .store._forget import list_requests

        with self._core.store.transaction(immediate=False) as tx:
            return list_requests(tx, limit)

    def export(self, who: Who) -> dict[str, Any]:
        """Everything held about a customer as one JSON-ready document (right of access and portability;
        its format is in docs/privacy.md): profile, identities, consents with evidence, touchpoints,
        deliveries with content and decisions, runs and steps, experiment exposures, predictions,
        and whether they are suppressed."""
        return self._core.export(who)

    def lift_suppression(self, who: Who, *, requested_by: str) -> int:
        """Drop the suppression of a forgotten customer's identifiers who came back and opts in themselves
        (never for an import); how many suppressions went."""
        return self._core.lift_suppression(who, requested_by=requested_by)

    def retention(self) -> list[RetentionStatus]:
        """Each `[retention]` rule: its period, the rows past it now, when it last ran and what it removed."""
        return self._core.retention.status()

    def quarantine(self, *, table: str | None = None, limit: int | None = 100) -> list[QuarantinedRow]:
        """Rows the store holds but no read could decode, oldest first: moved aside so the runner goes on."""
        return list_quarantined(self._core.store, table=table, limit=limit)

    def repair_quarantined(self, ids: Sequence[int] | None = None, *, table: str | None = None) -> QuarantineRepair:
        """Put quarantined rows (all, or `ids`, or a table's) back once they decode, after the known fixes."""
        return repair_quarantined(self._core.store, ids, table=table)

    def drop_quarantined(self, ids: Sequence[int] | None = None, *, table: str | None = None) -> int:
        """Delete quarantined rows for good (`ids`, or every one of `table`); returns how many."""
        return drop_quarantined(self._core.store, ids, table=table)

    def deliveries(
        self,
        *,
        customer_id: str | None = None,
        run_id: str | None = None,
        status: str | Sequence[str] | None = None,
        journey: str | None = None,
        channel: str | None = None,
        limit: int | None = None,
    ) -> list[Delivery]:
        """Queued and sent messages with their status, attempts and decision log (why sent, skipped, deferred)."""
        return self._core.deliveries(customer_id=customer_id, run_id=run_id, status=status, journey=journey,
                                     channel=channel, limit=limit)

    def events(
        self, *, after: str | int | None = None, limit: int = 100, kinds: Sequence[str] | None = None
    ) -> EventPage:
        """Touchpoints recorded and delivery status changes, oldest first, after `after` (a page's
        `cursor`; None for the start): pass each page's cursor back to resume where you left off.
        `kinds` keeps "touchpoint" or "delivery" events only."""
        return self._core.events(after=after, limit=limit, kinds=kinds)

    def handle_webhook(
        self, provider: str, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> WebhookResponse:
        """Verify a provider's webhook, then record its events; returns the HTTP answer to give."""
        return self._core.handle_webhook(provider, method, url, headers, body)

    def close(self) -> None:
        if self._loop is not None:
            self._run(self._core.aclose())
            self._loop.close()
            self._loop = None
        else:
            self._core.close()

    def __enter__(self) -> Omni:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _in_thread(method: Callable[Concatenate[Any, P], T]) -> Callable[Concatenate[AsyncOmni, P], Coroutine[Any, Any, T]]:
    """The async twin of a blocking `Omni` method, with its signature and docstring, run in a thread so the
    event loop keeps serving. Only for methods that use nothing but the shared `_Base` state."""

    @functools.wraps(method)
    async def in_thread(self: AsyncOmni, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(method, self, *args, **kwargs)

    in_thread.__qualname__ = f"AsyncOmni.{method.__name__}"
    return in_thread


class AsyncOmni(_Base):
    """The same API as `Omni`, with async methods, for asyncio apps and workers."""

    @property
    def catalog(self) -> AsyncCatalog:
        """Like `Omni.catalog`, with awaitable methods."""
        return AsyncCatalog(self._core.catalog)

    identify = _in_thread(Omni.identify)
    consent = _in_thread(Omni.consent)
    track = _in_thread(Omni.track)
    send = _in_thread(Omni.send)
    preferences = _in_thread(Omni.preferences)
    set_preferences = _in_thread(Omni.set_preferences)

    async def track_many(self, items: Iterable[Any]) -> int:
        """Like `Omni.track_many`; the items are gathered on the caller's thread, then stored in another."""
        return await asyncio.to_thread(self._core.track_many, list(items))

    customer = _in_thread(Omni.customer)
    timeline = _in_thread(Omni.timeline)
    predict_value = _in_thread(Omni.predict_value)
    predictions = _in_thread(Omni.predictions)
    recommend = _in_thread(Omni.recommend)
    preview = _in_thread(Omni.preview)
    kpis = _in_thread(Omni.kpis)
    funnel = _in_thread(Omni.funnel)
    attribution = _in_thread(Omni.attribution)
    report = _in_thread(Omni.report)
    assign = _in_thread(Omni.assign)
    experiment = _in_thread(Omni.experiment)
    experiments = _in_thread(Omni.experiments)
    marketing_lift = _in_thread(Omni.marketing_lift)
    broadcast = _in_thread(Omni.broadcast)
    broadcasts = _in_thread(Omni.broadcasts)
    broadcast_status = _in_thread(Omni.broadcast_status)
    cancel_broadcast = _in_thread(Omni.cancel_broadcast)
    best_time = _in_thread(Omni.best_time)
    engagement_hours = _in_thread(Omni.engagement_hours)
    next_due = _in_thread(Omni.next_due)

    async def run_until_idle(self) -> int:
        return await self._core.run_until_idle()

    async def run_worker(
        self, stop: asyncio.Event | None = None, *, poll_interval: float | None = None, handle_signals: bool = False
    ) -> int:
        """Like `Omni.run_worker`; SIGTERM/SIGINT are left to the application unless `handle_signals`."""
        return await self._core.run_worker(stop=stop, poll_interval=poll_interval, handle_signals=handle_signals)

    runs = _in_thread(Omni.runs)
    cancel_run = _in_thread(Omni.cancel_run)
    retry_run = _in_thread(Omni.retry_run)
    migrate_run = _in_thread(Omni.migrate_run)
    deliveries = _in_thread(Omni.deliveries)
    forget = _in_thread(Omni.forget)
    forget_requests = _in_thread(Omni.forget_requests)
    export = _in_thread(Omni.export)
    lift_suppression = _in_thread(Omni.lift_suppression)
    retention = _in_thread(Omni.retention)
    quarantine = _in_thread(Omni.quarantine)
    repair_quarantined = _in_thread(Omni.repair_quarantined)
    drop_quarantined = _in_thread(Omni.drop_quarantined)
    handle_webhook = _in_thread(Omni.handle_webhook)
    events = _in_thread(Omni.events)

    async def aclose(self) -> None:
        await self._core.dispatcher.aclose()
        await self._core.event_webhooks.aclose()
        await asyncio.to_thread(self._core.close)

    async def __aenter__(self) -> AsyncOmni:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
