"""Square at the point of sale: purchases, refunds and pickups in, in-store offers out.

An offer (`omnisdk.PosOffer`) goes to the customer's Square Loyalty account, where the cashier
sees it when the customer is attached to the sale:
- `reward_points` only: AdjustLoyaltyPoints gives the points;
- a discount: the points the matching reward tier costs are given (AdjustLoyaltyPoints), then
  CreateLoyaltyReward locks them into that tier's reward, ready to redeem. Tiers are set up in
  Square; `reward_tiers` maps the offer ("10%", or an amount such as "5.00") to the tier id.
Every write carries an idempotency key derived from the delivery's, so retries give nothing twice.
That also makes an answer we cannot read (a body that is not JSON, an id missing or of the wrong
type) safe to retry: it is a `RetryableError` naming the field, never an exception out of `send`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import httpx

import omnisdk
from omnisdk import (
    Accepted,
    Capabilities,
    ConfigError,
    Outgoing,
    PermanentError,
    PosOffer,
    Provider,
    ProviderError,
    RetryableError,
    WebhookError,
    WebhookRequest,
    WebhookResult,
)
from omnisdk.providers import Outcome, http_error_outcome, retry_after_seconds, transport_error_outcome

from ._inventory import Inventory
from ._square_api import SquareAPI, square_error
from ._square_catalog import CATALOG_EVENTS, SquareCatalog
from ._square_webhooks import SquareEvents, verify_square_signature
from ._webhook_util import as_id, as_list, as_mapping, json_body

__all__ = ["SquarePOS"]

log = omnisdk.get_logger("omnisdk.pos.square")

MAX_IDEMPOTENCY_KEY = 128


def _positive(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not isinstance(value, int | float) or value <= 0:
        raise ConfigError("must be a number > 0", field=attribute.name)


def offer_key(offer: PosOffer) -> str | None:
    """How `reward_tiers` names a discount: "10%" for 10 percent, "5.00" for a fixed amount."""
    if offer.discount_percent is not None:
        return f"{offer.discount_percent:g}%"
    if offer.discount_amount is not None:
        return f"{offer.discount_amount:.2f}"
    return None


def _key(base: str, suffix: str) -> str:
    key = f"{base}:{suffix}"
    return key if len(key) <= MAX_IDEMPOTENCY_KEY else hashlib.sha256(key.encode()).hexdigest()


class _Failed(Exception):
    """A Square call failed; `outcome` is what the delivery gets."""

    def __init__(self, outcome: RetryableError | PermanentError) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


def _required_id(value: Any, where: str) -> str:
    """An id the next step needs from Square's answer; its absence is retryable (every write is idempotent)."""
    found = as_id(value)
    if found is None:
        raise _Failed(RetryableError(reason=f"Square's answer has no usable {where}"))
    return found


class SquarePOS(Provider):
    """`[channels.pos] provider = "square"`: the address is the customer's Square customer id."""

    name = "square"
    channel = "pos"
    capabilities = Capabilities(max_batch_size=1, idempotency_keys=True, rate_limit=10.0, max_concurrency=4)

    @attrs.define(kw_only=True)
    class Config:
        access_token: str = omnisdk.secret()
        #: The webhook subscription's signature key (Developer Dashboard → Webhooks).
        signature_key: str = omnisdk.secret(default="")
        #: The subscription's notification URL exactly as registered; the signature covers it.
        #: Empty: the URL the request arrived at.
        notification_url: str = ""
        base_url: str = "https://connect.squareup.com"
        square_version: str = "2025-08-20"
        #: Store names by Square location id; inventory lookups search these locations, in this order.
        locations: dict[str, str] = attrs.field(factory=dict)
        #: Loyalty reward tier ids by offer ("10%", "5.00").
        reward_tiers: dict[str, str] = attrs.field(factory=dict)
        #: How long an inventory count is reused by templates.
        inventory_cache_seconds: float = attrs.field(default=60.0, validator=_positive)
        #: A catalog.version.updated notification re-reads the variations changed this long before it.
        catalog_sync_seconds: float = attrs.field(default=3600.0, validator=_positive)
        #: Timeout of the blocking lookups (orders for webhooks, inventory for templates).
        lookup_timeout: float = attrs.field(default=5.0, validator=_positive)

    config: Config

    def __init__(self, config: Any, *, http: httpx.AsyncClient, clock: Any = None) -> None:
        super().__init__(config, http=http, clock=clock)
        self.api = SquareAPI(self.config.base_url, self.config.access_token, self.config.square_version,
                             self.config.lookup_timeout)
        self.inventory = Inventory(self.api, self.config.locations, ttl=self.config.inventory_cache_seconds,
                                   clock=self.clock)
        self._events = SquareEvents(self.api.retrieve_order, self.config.locations)
        self._catalog = SquareCatalog(self.api, sync_window=self.config.catalog_sync_seconds)
        self._tier_points: dict[str, int] = {}

    # -- outbound offers
    async def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.config.access_token}", "Square-Version": self.config.square_version}
        try:
            response = await self.http.request(method, self.config.base_url.rstrip("/") + path, json=body,
                                               headers=headers)
        except httpx.TransportError as exc:
            raise _Failed(transport_error_outcome(exc)) from None
        if response.is_error:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"), self.clock.timestamp())
            raise _Failed(http_error_outcome(response.status_code, f"Square: {square_error(response)}",
                                             retry_after=retry_after))
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            reason = f"Square answered {method} {path} with a body that is not a JSON object"
            raise _Failed(RetryableError(reason=reason, status=response.status_code))
        return data

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[Outcome]:
        outcomes: list[Outcome] = []
        for message in batch:
            try:
                outcomes.append(await self._offer(message))
            except _Failed as failed:
                outcomes.append(failed.outcome)
        return outcomes

    async def _offer(self, message: Outgoing) -> Outcome:
        offer = message.content
        if not isinstance(offer, PosOffer):
            return PermanentError(reason=f"Square takes PosOffer content, not {type(offer).__name__}",
                                  code="unsupported_content")
        tier = offer_key(offer)
        if tier is None and not offer.reward_points:
            return PermanentError(reason="the PosOffer gives nothing: set discount_percent, discount_amount or "
                                  "reward_points", code="empty_offer")
        if tier is not None and tier not in self.config.reward_tiers:
            return PermanentError(reason=f"no Square reward tier configured for a {tier} offer "
                                  f"(channels.pos.reward_tiers)", code="no_reward_tier")
        if not message.to:
            return PermanentError(reason="the customer has no Square customer id", code="invalid_address")
        found = await self._call("POST", "/v2/loyalty/accounts/search",
                                 {"query": {"customer_ids": [message.to]}, "limit": 1})
        accounts = as_list(found.get("loyalty_accounts"))
        if not accounts:
            return PermanentError(reason="the customer has no Square Loyalty account", code="no_loyalty_account")
        account_id = _required_id(as_mapping(accounts[0]).get("id"), "loyalty_accounts[0].id")
        tier_id = self.config.reward_tiers[tier] if tier is not None else None
        points = (offer.reward_points or 0) + (await self._points_for(tier_id) if tier_id else 0)
        adjusted = await self._call("POST", f"/v2/loyalty/accounts/{account_id}/adjust", {
            "idempotency_key": _key(message.idempotency_key, "points"),
            "adjust_points": {"points": points, "reason": offer.title[:255] or "omnisdk offer"},
        })
        details: dict[str, Any] = {"loyalty_account_id": account_id, "points": points}
        if tier_id is None:
            return Accepted(provider_message_id=_required_id(as_mapping(adjusted.get("event")).get("id"), "event.id"),
                            details=details)
        created = await self._call("POST", "/v2/loyalty/rewards", {
            "idempotency_key": _key(message.idempotency_key, "reward"),
            "reward": {"loyalty_account_id": account_id, "reward_tier_id": tier_id},
        })
        reward_id = _required_id(as_mapping(created.get("reward")).get("id"), "reward.id")
        return Accepted(provider_message_id=reward_id, details=details | {"reward_tier_id": tier_id})

    async def _points_for(self, tier_id: str) -> int:
        """What the tier costs, from the seller's loyalty program (read once per provider). A tier
        without an id or a whole number of points is skipped, and the reason logged."""
        if not self._tier_points:
            program = as_mapping((await self._call("GET", "/v2/loyalty/programs/main")).get("program"))
            for tier in map(as_mapping, as_list(program.get("reward_tiers"))):
                ident, points = as_id(tier.get("id")), tier.get("points")
                if ident is None or not isinstance(points, int) or isinstance(points, bool):
                    log.warning("square_reward_tier_skipped", reward_tier_id=ident,
                                reason="id or points is not usable")
                    continue
                self._tier_points[ident] = points
        if tier_id not in self._tier_points:
            raise _Failed(PermanentError(reason=f"reward tier {tier_id!r} is not in the Square loyalty program",
                                         code="no_reward_tier"))
        return self._tier_points[tier_id]

    # -- webhooks
    def verify_webhook(self, request: WebhookRequest) -> None:
        verify_square_signature(request, self.config.signature_key, self.config.notification_url)

    def parse_webhook(self, request: WebhookRequest) -> WebhookResult:
        payload = json_body(request.body, "Square")
        try:
            if payload.get("type") in CATALOG_EVENTS:
                return WebhookResult(catalog=self._catalog.parse(payload))
            return WebhookResult(events=self._events.parse(request.body))
        except ProviderError as exc:
            # Square retries a notification that did not get a 2xx: nothing is recorded meanwhile.
            raise WebhookError(f"cannot look up the order or catalog: {exc}", status=503) from None

    async def aclose(self) -> None:
        self.api.close()
