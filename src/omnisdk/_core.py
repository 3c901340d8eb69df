"""The engine behind `Omni` and `AsyncOmni`: ingestion, profiles, and the subsystems' worker loop.

Store calls are synchronous (SQLite and psycopg are fast on a local connection and batched on
hot paths); journeys and deliveries run as async `tick()`s so HTTP sends overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ._clock import Clock, SystemClock, to_datetime
from ._config import Config, load_config
from ._customers import PURPOSES, Consent, Customer
from ._errors import (
    BatchItemError,
    BatchValidationError,
    ConfigError,
    PluginError,
    SuppressedError,
    ValidationError,
    WebhookError,
)
from ._identity import IdentityResolver, IdentityRules, Who, load_customer
from ._logging import get_logger
from ._plugins import PluginHost
from ._recorder import Recorder
from ._telemetry import NO_TELEMETRY, Telemetry
from ._topics import Topics
from ._touchpoints import CHANNELS, MESSAGE_CHANNELS, Touchpoint, check_channel, choose_channels, new_id
from ._validation import Limits, Validator
from .store import SQLStore, Transaction, dumps, open_store
from .store._consents import insert_consent
from .store._customers import read_traits, update_profile
from .store._deliveries import select_deliveries, set_traceparent
from .store._touchpoints import customer_timeline

if TYPE_CHECKING:
    from .commerce._predict import ValuePredictor
    from .commerce._shop import CatalogReads
    from .commerce._stored import StoredRecommendations
    from .delivery import Delivery
    from .events import EventPage
    from .messages import Shop
    from .providers import WebhookResponse
    from .store._forget import ForgetRequest

__all__ = ["Core", "Who", "Worker"]

log = get_logger("omnisdk")


class Worker(Protocol):
    """A subsystem that does due work in batches: journey runs, deliveries, broadcasts."""

    async def tick(self) -> int:
        """Do what is due now; return how much was done (0 when idle)."""
        ...

    def next_due(self) -> float | None:
        """Epoch seconds of the next scheduled work, if any."""
        ...


class Core:
    def __init__(
        self,
        store: str | SQLStore | None = None,
        config: Mapping[str, Any] | str | None = None,
        clock: Clock | None = None,
        plugins: Iterable[Any] = (),
        load_entry_points: bool = True,
        facade: Any = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.config: Config = load_config(config)
        #: Where spans and metrics go: `NO_TELEMETRY` (nothing, opentelemetry never imported) unless
        #: given one or `[telemetry] enabled = true` asks for OpenTelemetry's global providers.
        self.telemetry: Telemetry = telemetry if telemetry is not None else _telemetry_from(self.config.raw)
        self.validate = Validator(Limits.from_config(self.config.limits))
        self.clock: Clock = clock or SystemClock()
        self.plugins = PluginHost(plugins, load_entry_points=load_entry_points)
        #: The Omni/AsyncOmni this core serves; hooks that ask for `omni` get it.
        self.facade: Any = facade
        self.plugins.context["omni"] = facade
        kinds = self.plugins.identity_kinds
        #: "Who is this?": the one identity service every room that ingests events uses.
        self.identity = IdentityResolver(IdentityRules.from_config(self.config.identity, kinds),
                                         region=self.config.default_region, kinds=kinds, validator=self.validate)
        self._owns_store = not isinstance(store, SQLStore)
        self.store: SQLStore = store if isinstance(store, SQLStore) else open_store(store)
        self.workers: list[Worker] = []
        #: The one path every touchpoint and delivery change is stored and announced through.
        self.recorder = Recorder(self.plugins, self.telemetry)
        from ._preferences import PreferenceLedger
        from .delivery._confirmations import DoubleOptIn
        from .messages import Templates
        from .policies import Addresses, PolicyRules, parse_duration

        #: `[topics]`: what sends are about; customers choose them per channel (`omni.set_preferences`).
        self.topics = Topics.from_config(self.config.raw.get("topics"))
        self.preference_ledger = PreferenceLedger(self.store, self.clock, self.identity, self.topics, self.validate)
        self.double_opt_in = DoubleOptIn.from_config(self.config.raw.get("consent"))
        preference_settings = self.config.raw.get("preferences") or {}
        if not isinstance(preference_settings, Mapping) or any(k != "link_expiry" for k in preference_settings):
            raise ConfigError("expected a table with link_expiry", field="preferences")
        ttl = preference_settings.get("link_expiry")
        self.templates = Templates.from_config(
            self.config, plugins=self.plugins, store=self.store,
            record=lambda cid, event, props, channel: self.track(cid, event, props, channel=channel),
            validator=self.validate, clock=self.clock.timestamp,
            preference_ttl=None if ttl is None else parse_duration(ttl, "preferences.link_expiry"),
        )
        from .experiments._settings import ExperimentSettings

        self.experiment_settings = ExperimentSettings.from_config(self.config.raw.get("experiments"))
        self.policy_rules = PolicyRules.from_config(
            self.config.policies, [args[0] for args in self.plugins.collect("register_policies") if args],
            global_control=self.experiment_settings.global_control, topics=self.topics,
            addresses=Addresses.of(kinds),  # which identity kinds reach each channel, the plugins' too
        )
        self._predictor: ValuePredictor | None = None
        self._recommendations: StoredRecommendations | None = None
        #: The catalog's variants and inventory, read by product blocks and the recommenders' stock checks.
        from .commerce._shop import StoreCatalog

        self.catalog_reads: CatalogReads | None = StoreCatalog()
        if (self.config.raw.get("predictions") or {}).get("every") is not None:
            self.workers.append(self.predictor)  # rescored before watched segments read the predictions
        from .segments import SegmentWatcher  # watched segments turn entries/exits into touchpoints first

        interval = float(self.config.raw.get("analytics", {}).get("segment_interval_seconds", 3600))
        self.segments = SegmentWatcher(self.store, self.clock, self.recorder, interval=interval)
        self.workers.append(self.segments)
        from .commerce import Catalog  # catalog triggers record their events before journeys route them
        from .commerce._triggers import CatalogWatcher, rules_from_config

        self.catalog_watcher = CatalogWatcher(self.store, self.clock, self.recorder)
        self.catalog_watcher.watch(*rules_from_config(self.config.raw.get("catalog")))
        self.recorder.observe(self.catalog_watcher.observe)  # views, carts and purchases, as they are stored
        self.workers.append(self.catalog_watcher)
        self.catalog = Catalog(self.store, self.clock, self.identity, self.catalog_watcher)
        from .broadcasts import BroadcastSettings, BroadcastWorker  # broadcasts queue pages before journeys run
        from .sendtime import SendTime, SendTimeSettings

        self.sendtime = SendTime(self.store, self.clock, self.policy_rules,
                                 SendTimeSettings.from_config(self.config.raw.get("analytics", {})))
        self.broadcasts = BroadcastWorker(
            self.store, self.clock, self.sendtime, default_timezone=self.policy_rules.default_timezone,
            settings=BroadcastSettings.from_config(self.config.raw.get("analytics") or {}))
        self.workers.append(self.broadcasts)
        from .journeys import JourneyRuntime, JourneySettings, RunAdmin  # journeys route touchpoints, queue sends

        self.journey_settings = JourneySettings.from_config(self.config.raw.get("journeys"))
        self.journeys = JourneyRuntime(self.store, self.clock, self.journey_settings, sendtime=self.sendtime,
                                       global_control=self.experiment_settings.global_control,
                                       check_send=self.check_send, telemetry=self.telemetry)
        self.runs = RunAdmin(self.store, self.journeys)
        self.workers.append(self.journeys)
        # The dispatcher runs after the journey runtime, so a step's sends go out in the same round.
        from .delivery import DeliverySettings, Dispatcher, ProviderPool, SendContext, WebhookHandler

        delivery = DeliverySettings.from_config(self.config.delivery)
        pool = ProviderPool(self.config, self.plugins.providers, self.clock, http_timeout=delivery.http_timeout,
                            http_transport=delivery.http_transport)
        self.dispatcher = Dispatcher(store=self.store, clock=self.clock, settings=delivery, pool=pool,
                                     send_context=SendContext(self.templates, self.policy_rules, self.shop),
                                     recorder=self.recorder, telemetry=self.telemetry)
        self.workers.append(self.dispatcher)
        webhook_settings = dict(self.config.webhooks)
        if "sms" in self.double_opt_in.channels:  # a YES answers the double opt-in prompt
            prompts = webhook_settings.get("double_opt_in_templates", [])
            if isinstance(prompts, list | tuple):
                webhook_settings["double_opt_in_templates"] = [*prompts, self.double_opt_in.templates["sms"]]
        self.webhooks = WebhookHandler(store=self.store, clock=self.clock, pool=pool, recorder=self.recorder,
                                       identity=self.identity, settings=webhook_settings, catalog=self.catalog)
        # Erasures after the dispatcher: a delivery it was sending has settled before the erasure goes on.
        from .privacy import Forgetter, PrivacySettings, RetentionSettings, RetentionWorker
        from .store._links import signing_key

        self.privacy_settings = PrivacySettings.from_config(self.config.raw.get("privacy"))
        configured = self.privacy_settings.suppression_key
        self.suppression_key = configured.encode() if configured else signing_key(self.store, "privacy")
        self.forgetter = Forgetter(self.store, self.clock, self.identity, self.plugins, self.privacy_settings,
                                   self.suppression_key)
        self.workers.append(self.forgetter)
        self.retention = RetentionWorker(self.store, self.clock,
                                         RetentionSettings.from_config(self.config.raw.get("retention")))
        self.workers.append(self.retention)
        from .events import EventWebhooks, endpoints_from_config  # last: it pushes what this round recorded

        self.event_webhooks = EventWebhooks(self.store, self.clock,
                                            endpoints_from_config(self.config.raw.get("event_webhooks")))
        self.workers.append(self.event_webhooks)
        if self.telemetry.enabled:
            self._observe_gauges()

    @property
    def predictor(self) -> ValuePredictor:
        """Predicted customer value (`[predictions]`), built on first use: it needs numpy and scipy."""
        if self._predictor is None:
            try:
                from .commerce._predict import PredictionSettings, ValuePredictor
            except ImportError as exc:
                raise ConfigError(f"predictions need numpy and scipy: pip install 'omnisdk[commerce]' ({exc})",
                                  field="predictions") from None
            settings = PredictionSettings.from_config(self.config.raw.get("predictions"),
                                                      default_timezone=self.policy_rules.default_timezone)
            self._predictor = ValuePredictor(self.store, self.clock, settings)
        return self._predictor

    @property
    def recommendations(self) -> StoredRecommendations:
        """Recommendations from the stored touchpoints (`[recommendations]`, plugins' `register_recommenders`),
        built on first use: they need numpy and scipy."""
        if self._recommendations is None:
            try:
                from .commerce._stored import BUILT_IN, RecommendationSettings, StoredRecommendations
            except ImportError as exc:
                raise ConfigError(f"recommendations need numpy and scipy: pip install 'omnisdk[commerce]' ({exc})",
                                  field="recommendations") from None
            plugins: dict[str, Any] = {}
            for args in self.plugins.collect("register_recommenders"):
                if len(args) == 2 and isinstance(args[0], str) and args[0] and callable(args[1]):
                    plugins[args[0]] = args[1]
                else:
                    self.plugins.errors.append(PluginError(
                        f"register_recommenders: expected register(name, build), got {args!r}"))
            settings = RecommendationSettings.from_config(self.config.raw.get("recommendations"),
                                                          known=[*BUILT_IN, *plugins])
            self._recommendations = StoredRecommendations(self.clock, settings, plugins=plugins,
                                                          stock=self.catalog_reads)
        return self._recommendations

    def shop(self, tx: Transaction) -> Shop | None:
        """What `products()` and `recommendations()` in one claim's templates read, bound to its transaction."""
        try:
            from .commerce._shop import StoreShop
        except ImportError:  # no numpy: the templates that ask for products fail with a TemplateError
            return None
        return StoreShop(tx, self.catalog_reads, lambda: self.recommendations)

    # -- profiles
    def identify(
        self,
        customer_id: str | None,
        *,
        traits: Mapping[str, Any] | None = None,
        timezone: str | None = None,
        locale: str | None = None,
        address: Mapping[str, Any] | None = None,
        preferred_channels: Sequence[str] | None = None,
        **identifiers: Any,
    ) -> Customer:
        check = self.validate
        if customer_id is not None:
            check.customer_id(customer_id)
        if traits is not None:
            check.traits(traits)
        if timezone is not None:
            check.timezone(timezone)
        if locale is not None:
            check.locale(locale)
        if preferred_channels is not None:
            if isinstance(preferred_channels, str) or not isinstance(preferred_channels, Sequence):
                raise ValidationError("expected a list of channels", field="preferred_channels",
                                      value=type(preferred_channels).__name__)
            for i, ch in enumerate(preferred_channels):
                check_channel(ch, field=f"preferred_channels[{i}]", allowed=MESSAGE_CHANNELS)
        address_json = None if address is None else check.address(address)
        pairs = self.identity.identifiers(identifiers)
        if customer_id is None and not pairs:
            raise ValidationError("identify needs a customer id or at least one identifier", field="customer_id")
        now = self.clock.timestamp()
        with self.telemetry.span("omnisdk.identify") as span, self.store.transaction() as tx:
            cid = self.identity.resolve(tx, customer_id, pairs, now)
            self.telemetry.annotate(span, {"omnisdk.customer_id": cid})
            traits_json = None
            if traits:
                current = read_traits(tx, cid)
                if current is None:  # unreadable and quarantined: a fresh profile takes its place
                    self.identity.resolve_ids(tx, [cid], now)
                    current = {}
                traits_json = check.traits({**current, **traits})
            update_profile(tx, cid, now, traits_json=traits_json, timezone=timezone, locale=locale,
                           address_json=address_json, preferred_channels=preferred_channels)
            return load_customer(tx, cid)

    def consent(
        self, who: Who, *, channel: str, granted: bool, purpose: str = "marketing", source: str = "api"
    ) -> Consent:
        if channel != "all":
            check_channel(channel, allowed=MESSAGE_CHANNELS)
        if purpose not in PURPOSES:
            raise ValidationError(f"expected one of {', '.join(PURPOSES)}", field="purpose", value=purpose)
        if not isinstance(granted, bool):
            raise ValidationError("expected True or False", field="granted", value=granted)
        self.validate.source(source)
        explicit, pairs = self.identity.who(who)
        now = self.clock.timestamp()
        double = self.double_opt_in.applies(channel, purpose, granted)
        if double:
            self.templates.get(self.double_opt_in.templates[channel])  # the confirmation must be sendable
        with self.store.transaction() as tx:
            cid = self.identity.resolve_checked(tx, explicit, pairs, now)
            if granted and purpose == "marketing":
                self._refuse_suppressed(tx, cid, channel)
            if double:
                request = self.double_opt_in.request(tx, cid, channel, source=source, now=now,
                                                     confirm_url=self.templates.links.confirmation_url)
                return Consent(channel=channel, purpose=purpose, granted=False, source=source,
                               recorded_at=to_datetime(now), evidence=f"pending confirmation {request.id}")
            insert_consent(tx, cid, channel, purpose, granted, source, now)
        return Consent(channel=channel, purpose=purpose, granted=granted, source=source, recorded_at=to_datetime(now))

    def confirm_opt_in(self, token: str, *, evidence: str) -> str:
        """Confirm a double opt-in from its signed link (`WebhookError` 403 forged, 410 expired); the customer id."""
        now = self.clock.timestamp()
        link = self.templates.links.resolve_preferences(token, now=now, confirmation=True)
        if link.request_id is None:
            raise WebhookError("not a confirmation link", status=403)
        with self.store.transaction() as tx:
            self.double_opt_in.confirm(tx, link.request_id, link.customer_id, evidence=evidence, now=now)
        return link.customer_id

    # -- topics
    def check_send(self, template: str, purpose: str, topic: Any, data: Mapping[str, Any] | None,
                   field: str = "topic") -> dict[str, Any]:
        """A send's topic and content checked at the door; its data with the topic in it.

        Unknown topic, a marketing send without one (when topics are configured), a topic whose purpose
        is not the send's, or a transactional send of promotional content: `ValidationError`."""
        if purpose not in PURPOSES:
            raise ValidationError(f"expected one of {', '.join(PURPOSES)}", field="purpose", value=purpose)
        found = self.topics.check(topic, purpose, field)
        if purpose == "transactional" and isinstance(template, str) and template in self.templates:
            why = self.templates.get(template).carries_marketing
            if why:
                raise ValidationError(f"template {template!r} is marketing content ({why}): it cannot be sent "
                                      "as transactional", field="template", value=template)
        merged = dict(data or {})
        if found is not None:
            if merged.get("topic", found.name) != found.name:
                raise ValidationError("data.topic differs from the send's topic", field="data.topic")
            merged["topic"] = found.name
        return merged

    def _refuse_suppressed(self, tx: Transaction, customer_id: str, channel: str) -> None:
        from .privacy._guard import suppressed_for

        found = suppressed_for(tx, self.suppression_key, customer_id, channel, self.policy_rules.addresses)
        if found:
            kinds = ", ".join(sorted({s.kind for s in found}))
            raise SuppressedError(f"the {kinds} of this customer was erased at its owner's request; a marketing "
                                  "opt-in needs omni.lift_suppression first (the customer asking, not an import)",
                                  field="who")

    # -- privacy
    def forget(self, who: Who, *, requested_by: str = "app", reason: str = "") -> ForgetRequest:
        return self.forgetter.forget(who, requested_by=requested_by, reason=reason)

    def export(self, who: Who) -> dict[str, Any]:
        from .privacy import export_customer

        return export_customer(self.store, self.clock, self.identity, self.suppression_key, who)

    def lift_suppression(self, who: Who, *, requested_by: str) -> int:
        from .privacy._forget import find_customer
        from .privacy._guard import lift

        if not isinstance(requested_by, str) or not requested_by.strip():
            raise ValidationError("expected who asked", field="requested_by")
        with self.store.transaction() as tx:
            lifted = lift(tx, self.suppression_key, find_customer(tx, self.identity, who))
        log.info("suppression_lifted", requested_by=requested_by.strip(), suppressions=lifted)
        return lifted

    def customer(self, customer_id: str) -> Customer:
        self.validate.customer_id(customer_id)
        with self.store.transaction(immediate=False) as tx:
            return load_customer(tx, customer_id)

    def timeline(
        self,
        customer_id: str,
        *,
        channels: Sequence[str] | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Touchpoint]:
        """Every touchpoint of the customer (merged profiles included), oldest first."""
        customer = self.customer(customer_id)
        for ch in channels or ():
            check_channel(ch, field="channels")
        after = None if since is None else self.validate.timestamp(since, "since", 0.0)
        with self.store.transaction(immediate=False) as tx:
            return customer_timeline(tx, customer.id, channels=channels, since=after, limit=limit)

    # -- touchpoints
    def track(
        self,
        who: Who,
        event: str,
        properties: Mapping[str, Any] | None = None,
        *,
        channel: str = "server",
        timestamp: Any = None,
        id: str | None = None,
    ) -> Touchpoint:
        check_channel(channel)
        check = self.validate
        event = check.event(event)
        props = check.properties(properties)
        now = self.clock.timestamp()
        when = check.timestamp(timestamp, "timestamp", now)
        tp_id = new_id() if id is None else check.touchpoint_id(id)
        explicit, pairs = self.identity.who(who)
        with self.telemetry.span("omnisdk.track", {"omnisdk.event": event, "omnisdk.channel": channel,
                                                   "omnisdk.touchpoint_id": tp_id}) as span, \
                self.store.transaction() as tx:
            cid = self.identity.resolve_checked(tx, explicit, pairs, now)
            self.recorder.touchpoints(tx, [(tp_id, cid, channel, event, props, when, now)])
            self.telemetry.annotate(span, {"omnisdk.customer_id": cid})
        return Touchpoint(
            id=tp_id,
            customer_id=cid,
            channel=channel,
            name=event,
            properties=dict(properties or {}),
            occurred_at=to_datetime(when),
        )

    def track_many(self, items: Iterable[Any]) -> int:
        """Record many touchpoints in one transaction; returns how many were new. Items that fail
        validation are left out and reported together, after the others were stored, by
        `BatchValidationError` (its `errors` say which and why, `recorded` how many were new)."""
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
            raise ValidationError("expected a list of (who, event, properties) tuples or dicts", field="items",
                                  value=type(items).__name__)
        batch = items if isinstance(items, list | tuple) else list(items)
        self.validate.batch_size(len(batch))
        now = self.clock.timestamp()
        parsed: list[tuple[str | None, list[tuple[str, str]], str, str, str, float, str]] = []
        errors: list[BatchItemError] = []
        whos: dict[str, tuple[str | None, list[tuple[str, str]]]] = {}
        for i, item in enumerate(batch):
            try:
                parsed.append(self._batch_item(item, now, whos))
            except ValidationError as exc:  # fields are named inside the item; the item's place is added here
                field = f"items[{i}].{exc.field}" if exc.field else f"items[{i}]"
                errors.append(BatchItemError(i, field, str(exc).removeprefix(f"{exc.field}: ")))
        inserted = self._store_batch(parsed, now) if parsed else 0
        if errors:
            raise BatchValidationError(errors, recorded=inserted)
        return inserted

    def _batch_item(
        self, item: Any, now: float, whos: dict[str, tuple[str | None, list[tuple[str, str]]]]
    ) -> tuple[str | None, list[tuple[str, str]], str, str, str, float, str]:
        """One `track_many` item, checked: (explicit id, identifiers, channel, event, JSON, time, id)."""
        if type(item) is dict or isinstance(item, Mapping):
            if "who" not in item or "event" not in item:
                raise ValidationError("a dict item needs 'who' and 'event'", field="")
            who, event, props = item["who"], item["event"], item.get("properties")
            channel, ts, tp_id = item.get("channel", "server"), item.get("timestamp"), item.get("id")
        elif isinstance(item, tuple | list) and len(item) in (2, 3):
            who, event, props = item[0], item[1], (item[2] if len(item) == 3 else None)
            channel, ts, tp_id = "server", None, None
        else:
            raise ValidationError("expected (who, event, properties) or a dict", field="", value=type(item).__name__)
        if channel not in CHANNELS:
            check_channel(channel)
        check = self.validate
        event = check.event(event)
        props_json = check.properties(props)
        when = check.timestamp(ts, "timestamp", now)
        tp_id = new_id() if tp_id is None else check.touchpoint_id(tp_id)
        explicit: str | None
        pairs: list[tuple[str, str]]
        if isinstance(who, str):
            explicit, pairs = check.customer_id(who, "who"), []
        else:
            key = _who_key(who)
            known = whos.get(key) if key else None
            if known is None:
                known = self.identity.who(who)
                whos[key] = known
            explicit, pairs = known
        return explicit, pairs, channel, event, props_json, when, tp_id

    def _store_batch(
        self, parsed: Sequence[tuple[str | None, list[tuple[str, str]], str, str, str, float, str]], now: float
    ) -> int:
        with self.store.transaction() as tx:
            plain = self.identity.resolve_ids(tx, [p[0] for p in parsed if p[0] is not None and not p[1]], now)
            resolved: dict[str, str] = {}
            rows = []
            for explicit, pairs, channel, event, props, ts, tp_id in parsed:
                if not pairs:
                    cid = plain[explicit]  # type: ignore[index]
                else:
                    key = dumps([explicit, pairs])
                    if key not in resolved:
                        resolved[key] = self.identity.resolve(tx, explicit, pairs, now)
                    cid = resolved[key]
                rows.append((tp_id, cid, channel, event, props, ts, now))
            inserted = self.recorder.touchpoints(tx, rows)
        return int(inserted)

    # -- the worker loop
    async def run_until_idle(self, *, max_rounds: int = 1_000_000) -> int:
        """Run every subsystem's due work until none has any left at the current time."""
        total = 0
        for _ in range(max_rounds):
            done = 0
            for worker in self.workers:
                done += await worker.tick()
            total += done
            if not done or self.dispatcher.draining:  # a worker told to stop takes no new work
                break
        return total

    def next_due(self) -> float | None:
        dues = [d for w in self.workers if (d := w.next_due()) is not None]
        return min(dues) if dues else None

    async def run_worker(
        self, *, stop: Any = None, poll_interval: float | None = None, handle_signals: bool = True
    ) -> int:
        """Long-running: do due work, then wait for the next due time or a wake-up, until stopped."""
        from .journeys import run_worker

        return await run_worker(self, store=self.store, clock=self.clock, dispatcher=self.dispatcher,
                                settings=self.journey_settings, stop=stop, poll_interval=poll_interval,
                                handle_signals=handle_signals)

    # -- one-off messages
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
        """Queue one message outside a journey, in the outbox journey sends use: the dispatcher applies the same
        policies and sends it exactly once. The same `idempotency_key` again returns the first delivery."""
        from .delivery import enqueue_delivery

        check = self.validate
        chosen = list(choose_channels(channel, channels))
        if purpose not in PURPOSES:
            raise ValidationError(f"expected one of {', '.join(PURPOSES)}", field="purpose", value=purpose)
        if not isinstance(template, str) or not template:
            raise ValidationError("expected a template name", field="template", value=template)
        self.templates.get(template)  # an unknown template is the caller's error now, not a skipped delivery later
        check.properties(data, "data")
        data = self.check_send(template, purpose, topic, data)
        key = "send:" + (new_id() if idempotency_key is None else check.text(
            idempotency_key, "idempotency_key", limit="max_id_length", what="an idempotency key (a non-empty string)"))
        now = self.clock.timestamp()
        with self.telemetry.span("omnisdk.send", {"omnisdk.template": template}) as span, \
                self.store.transaction() as tx:
            cid = self.identity.resolve_who(tx, who, now)
            delivery_id = enqueue_delivery(tx, key=key, customer_id=cid, template=template, channels=chosen, now=now,
                                           purpose=purpose, data=data)
            if span is not None:  # the worker's spans for this delivery join this trace
                self.telemetry.annotate(span, {"omnisdk.customer_id": cid, "omnisdk.delivery_id": delivery_id})
                traceparent = self.telemetry.traceparent(span)
                if traceparent:
                    set_traceparent(tx, [delivery_id], traceparent)
            [found] = select_deliveries(tx, ids=[delivery_id])
            if (found.customer_id, found.template, list(found.channels), found.purpose) != (
                    cid, template, chosen, purpose):
                raise ValidationError("already used for another message", field="idempotency_key",
                                      value=idempotency_key)
            return found

    # -- the outbound event stream
    def events(self, *, after: str | int | None = None, limit: int = 100,
               kinds: Sequence[str] | None = None) -> EventPage:
        from .events._stream import page_of_events

        return page_of_events(self.store, after=after, limit=limit, kinds=kinds)

    def assign(self, experiment: str, who: Who, variants: Mapping[str, float], *, holdouts: Collection[str] = (),
               purpose: str = "marketing") -> str:
        """The customer's variant of `experiment`, exposed once: the same assignment and exposure as
        `ctx.experiment`, for an app's own code (a web page choosing its banner, say)."""
        from .experiments._assign import Split
        from .experiments._exposure import expose

        split = Split(variants, holdouts=holdouts)
        now = self.clock.timestamp()
        with self.store.transaction() as tx:
            cid = self.identity.resolve_who(tx, who, now)
            variant, _ = expose(tx, split, experiment, cid, now=now,
                                global_control=self.experiment_settings.global_control, purpose=purpose)
        return variant

    # -- deliveries and inbound webhooks
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
        from .delivery import query_deliveries

        if customer_id is not None:
            customer_id = self.customer(customer_id).id
        with self.store.transaction(immediate=False) as tx:
            return query_deliveries(tx, customer_id=customer_id, run_id=run_id, status=status, journey=journey,
                                    channel=channel, limit=limit)

    def handle_webhook(
        self, provider: str, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> WebhookResponse:
        if not isinstance(provider, str):
            raise ValidationError(f"expected a provider name, got {type(provider).__name__}", field="provider")
        try:
            self.validate.request(method, url, headers)
        except WebhookError as exc:
            from .providers import WebhookResponse

            log.warning("webhook_refused", provider=provider[:64], status=exc.status, reason=str(exc))
            return WebhookResponse.text(exc.status, str(exc))
        return self.webhooks.handle(provider, method, url, headers, body)

    def _observe_gauges(self) -> None:
        """Outbox depth and age, due runs and quarantined rows, read from the store at each collection."""
        from .store._gauges import due_runs, outbox_age, outbox_depth, quarantined_rows

        def read(query: Callable[[Transaction], Any]) -> Any:
            with self.store.transaction(immediate=False) as tx:
                return query(tx)

        t = self.telemetry
        t.gauge("omnisdk.outbox.depth", "{delivery}", "Deliveries queued, deferred or sending, by status",
                lambda: [(n, {"omnisdk.status": s}) for s, n in read(outbox_depth).items()])
        t.gauge("omnisdk.outbox.age", "s", "How long the oldest due delivery has waited past its due time",
                lambda: [(read(lambda tx: outbox_age(tx, self.clock.timestamp())), {})])
        t.gauge("omnisdk.runs.due", "{run}", "Journey runs due now",
                lambda: [(read(lambda tx: due_runs(tx, self.clock.timestamp())), {})])
        t.gauge("omnisdk.quarantined", "{row}", "Rows set aside as unreadable, by table",
                lambda: [(n, {"omnisdk.table": table}) for table, n in read(quarantined_rows).items()])

    async def aclose(self) -> None:
        """Close what lives on the event loop (provider connections), then the store."""
        await self.dispatcher.aclose()
        await self.event_webhooks.aclose()
        self.close()

    def close(self) -> None:
        if self._owns_store:
            self.store.close()


def _telemetry_from(raw: Mapping[str, Any]) -> Telemetry:
    """`[telemetry] enabled = true`: OpenTelemetry's global providers (needs `omnisdk[otel]`)."""
    section = raw.get("telemetry") or {}
    enabled = section.get("enabled", False) if isinstance(section, Mapping) else section
    if not isinstance(enabled, bool):
        raise ConfigError("expected true or false", field="telemetry.enabled")
    if not enabled:
        return NO_TELEMETRY
    try:
        from .otel import OpenTelemetry
    except ImportError as exc:
        raise ConfigError("needs OpenTelemetry: pip install 'omnisdk[otel]'", field="telemetry.enabled") from exc
    return OpenTelemetry()


def _who_key(who: Any) -> str:
    """A batch's cache key for a dict of identifiers, or "" when it has none (the item is checked alone)."""
    if not isinstance(who, Mapping):
        return ""
    try:
        return dumps(sorted(who.items(), key=lambda item: repr(item[0])))
    except (TypeError, ValueError, RecursionError):
        return ""
