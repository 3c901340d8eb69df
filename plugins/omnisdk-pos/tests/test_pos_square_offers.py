"""In-store offers: `PosOffer` → Square Loyalty points and rewards on the customer's account.

The shared SquareImitation has no Loyalty API yet, so this file extends it with the four Loyalty
endpoints the provider uses, shaped after Square's API reference (SearchLoyaltyAccounts,
RetrieveLoyaltyProgram, AdjustLoyaltyPoints, CreateLoyaltyReward).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from aiohttp import web
from omnisdk_pos import SquarePOS

from omnisdk import Accepted, ConfigError, Outgoing, PermanentError, PosOffer, RetryableError, VirtualClock
from omnisdk.testing.imitations import Call, Invalid, SchemaCheck, SquareImitation, route

TOKEN = "EAAAl-test"
_KEYED = {"type": "object", "required": ["idempotency_key"], "properties": {
    "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 128}}}


class LoyaltySquare(SquareImitation):
    """Square with a loyalty program: tier "TIER10" (10% off) costs 100 points."""

    def __init__(self) -> None:
        super().__init__(access_token=TOKEN)
        self.accounts: dict[str, dict[str, Any]] = {"SQ9": {"id": "loy-1", "customer_id": "SQ9", "balance": 5}}
        self.rewards: list[dict[str, Any]] = []

    @route("GET", "/v2/loyalty/programs/{program_id}")
    def retrieve_program(self, call: Call) -> web.StreamResponse:
        tiers = [{"id": "TIER10", "name": "10% off", "points": 100}]
        return web.json_response({"program": {"id": "prog-1", "status": "ACTIVE", "reward_tiers": tiers}})

    @route("POST", "/v2/loyalty/accounts/search", check=SchemaCheck({"type": "object", "properties": {
        "query": {"type": "object", "properties": {"customer_ids": {"type": "array", "items": {"type": "string"}}}},
        "limit": {"type": "integer", "minimum": 1, "maximum": 200}}}))
    def search_accounts(self, call: Call) -> web.StreamResponse:
        wanted = call.json.get("query", {}).get("customer_ids", [])
        return web.json_response({"loyalty_accounts": [a for c, a in self.accounts.items() if c in wanted]})

    @route("POST", "/v2/loyalty/accounts/{account_id}/adjust", check=SchemaCheck(_KEYED | {
        "required": ["idempotency_key", "adjust_points"]}))
    def adjust(self, call: Call) -> web.StreamResponse:
        def apply(body: dict[str, Any]) -> web.Response:
            account = next(a for a in self.accounts.values() if a["id"] == call.params["account_id"])
            account["balance"] += body["adjust_points"]["points"]
            return web.json_response({"event": {"id": f"evt-{len(self.requests)}", "type": "ADJUST_POINTS"}})

        return self._once(call, "adjust", apply)

    @route("POST", "/v2/loyalty/rewards", check=SchemaCheck(_KEYED | {"required": ["idempotency_key", "reward"]}))
    def create_reward(self, call: Call) -> web.StreamResponse:
        def create(body: dict[str, Any]) -> web.Response:
            account = next(a for a in self.accounts.values() if a["id"] == body["reward"]["loyalty_account_id"])
            if account["balance"] < 100:
                raise Invalid.body("insufficient points", "reward")
            account["balance"] -= 100
            reward = {"id": f"rwd-{len(self.rewards) + 1}", "status": "ISSUED", **body["reward"], "points": 100}
            self.rewards.append(reward)
            return web.json_response({"reward": reward})

        return self._once(call, "reward", create)


@pytest.fixture
def square() -> Iterator[LoyaltySquare]:
    with LoyaltySquare() as server:
        yield server


def offer_to(square: LoyaltySquare, offer: PosOffer, *, to: str = "SQ9", key: str = "run-1:offer:pos",
             **settings: Any) -> Sequence[Any]:
    config = SquarePOS.Config(**{"access_token": TOKEN, "base_url": square.base_url,
                                 "reward_tiers": {"10%": "TIER10"}, **settings})

    async def run() -> Sequence[Any]:
        async with httpx.AsyncClient() as http:
            provider = SquarePOS(config, http=http, clock=VirtualClock())
            message = Outgoing(delivery_id="d-1", idempotency_key=key, customer_id="c-42", to=to, content=offer)
            try:
                return await provider.send([message])
            finally:
                await provider.aclose()

    return asyncio.run(run())


TEN_OFF = PosOffer(title="10% off your next visit", discount_percent=10)


def test_discount_becomes_a_loyalty_reward_ready_to_redeem(square: LoyaltySquare) -> None:
    [outcome] = offer_to(square, TEN_OFF)

    assert isinstance(outcome, Accepted) and outcome.provider_message_id == "rwd-1"
    assert square.rewards == [{"id": "rwd-1", "status": "ISSUED", "loyalty_account_id": "loy-1",
                               "reward_tier_id": "TIER10", "points": 100}]
    assert square.accounts["SQ9"]["balance"] == 5  # the gifted points were locked into the reward
    adjust = next(r for r in square.requests if r.path.endswith("/adjust"))
    assert adjust.body["adjust_points"] == {"points": 100, "reason": TEN_OFF.title}
    assert adjust.headers["Square-Version"] == "2025-08-20"
    square.assert_no_violations()


def test_a_retried_offer_gives_nothing_twice(square: LoyaltySquare) -> None:
    [first] = offer_to(square, TEN_OFF)
    [again] = offer_to(square, TEN_OFF)

    assert isinstance(first, Accepted) and isinstance(again, Accepted)
    assert first.provider_message_id == again.provider_message_id
    assert len(square.rewards) == 1 and square.accounts["SQ9"]["balance"] == 5


def test_points_only_offer_adjusts_the_balance(square: LoyaltySquare) -> None:
    [outcome] = offer_to(square, PosOffer(title="Double points week", reward_points=50))

    assert isinstance(outcome, Accepted) and outcome.details["points"] == 50
    assert square.accounts["SQ9"]["balance"] == 55 and square.rewards == []


@pytest.mark.parametrize(("offer", "to", "code"), [
    (TEN_OFF, "SQ-NOBODY", "no_loyalty_account"),
    (TEN_OFF, "", "invalid_address"),
    (PosOffer(title="5 off", discount_amount=5), "SQ9", "no_reward_tier"),
    (PosOffer(title="nothing"), "SQ9", "empty_offer"),
])
def test_offers_that_cannot_be_given_are_permanent(square: LoyaltySquare, offer: PosOffer, to: str, code: str) -> None:
    [outcome] = offer_to(square, offer, to=to)

    assert isinstance(outcome, PermanentError) and outcome.code == code
    assert square.rewards == [] and square.accounts["SQ9"]["balance"] == 5


def test_rate_limits_and_outages_are_retryable(square: LoyaltySquare) -> None:
    square.faults.fail_next(1, "rate_limit")
    [throttled] = offer_to(square, TEN_OFF)
    square.faults.fail_next(1, "drop")
    [dropped] = offer_to(square, TEN_OFF)

    assert isinstance(throttled, RetryableError) and throttled.status == 429 and throttled.retry_after == 1
    assert isinstance(dropped, RetryableError)


def test_wrong_token_is_permanent_and_secrets_stay_out_of_repr(square: LoyaltySquare) -> None:
    [outcome] = offer_to(square, TEN_OFF, access_token="EAAAl-wrong")
    config = SquarePOS.Config(access_token="EAAAl-wrong", signature_key="sig-key-secret")

    assert isinstance(outcome, PermanentError) and outcome.status == 401
    assert "EAAAl-wrong" not in repr(config) and "sig-key-secret" not in repr(config)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        SquarePOS.Config(access_token=TOKEN, inventory_cache_seconds=0)
    assert caught.value.field == "inventory_cache_seconds"
