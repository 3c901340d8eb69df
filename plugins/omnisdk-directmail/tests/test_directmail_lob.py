"""Lob postcards and letters against the local Lob imitation (requests checked against Lob's OpenAPI contract)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from omnisdk_directmail import LobDirectMail

import omnisdk
from omnisdk import Accepted, ConfigError, Letter, Outgoing, PermanentError, Postcard, RetryableError, VirtualClock
from omnisdk.testing.imitations import Faults, LobImitation

API_KEY = "test_0123456789abcdef"
HOME = {"name": "Ada Lovelace", "line1": "185 Berry St", "line2": "Ste 6100", "city": "San Francisco",
        "state": "CA", "postal_code": "94107", "country": "US"}
SHOP = {"name": "Acme Outfitters", "line1": "210 King St", "city": "San Francisco", "state": "CA",
        "postal_code": "94107"}
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def lob() -> Iterator[LobImitation]:
    with LobImitation(api_key=API_KEY, faults=Faults(seed=1)) as server:
        yield server


def provider(base_url: str, **settings: Any) -> LobDirectMail:
    config = LobDirectMail.Config(**{"api_key": API_KEY, "from_address": SHOP, "base_url": base_url,
                                     "prices": {"postcard_4x6": 0.63, "letter": 0.91}, **settings})
    return LobDirectMail(config, http=httpx.AsyncClient(timeout=5), clock=VirtualClock(START))


def outgoing(content: Postcard | Letter, *, key: str = "run-1:winback:direct_mail", address: Any = HOME) -> Outgoing:
    return Outgoing(delivery_id="d-" + hashlib.sha1(key.encode()).hexdigest()[:8], idempotency_key=key,
                    customer_id="c-42", to="", content=content, address=address)


def send(mailer: LobDirectMail, *messages: Outgoing) -> Sequence[Any]:
    async def run() -> Sequence[Any]:
        try:
            return [outcome for m in messages for outcome in await mailer.send([m])]
        finally:
            await mailer.http.aclose()

    return asyncio.run(run())


POSTCARD = Postcard(front_html="<h1>We miss you, Ada</h1>", back_html="<p>15% off in store</p>")


def test_postcard_is_verified_then_created_with_idempotency_key_send_date_and_cost(lob: LobImitation) -> None:
    [outcome] = send(provider(lob.base_url, lead_time_days=2), outgoing(POSTCARD))

    assert isinstance(outcome, Accepted)
    assert outcome.provider_message_id in lob.postcards
    assert outcome.cost == 0.63
    assert outcome.details["deliverability"] == "deliverable"
    assert [r.path for r in lob.requests] == ["/v1/us_verifications", "/v1/postcards"]
    verification, create = lob.requests
    assert verification.body["primary_line"] == "185 Berry St" and verification.body["zip_code"] == "94107"
    assert create.headers["Idempotency-Key"] == "run-1:winback:direct_mail"
    assert create.body["send_date"] == "2026-03-04T09:00:00Z"
    assert create.body["use_type"] == "marketing"
    assert create.body["to"]["address_zip"] == "94107-1741"  # printed to the verified ZIP+4
    assert create.body["from"]["address_line1"] == "210 King St"
    assert create.body["metadata"] == {"omnisdk_delivery_id": outgoing(POSTCARD).delivery_id}
    lob.assert_no_violations()


def test_retried_send_with_the_same_key_prints_one_piece(lob: LobImitation) -> None:
    first, again = send(provider(lob.base_url), outgoing(POSTCARD), outgoing(POSTCARD))

    assert isinstance(first, Accepted) and isinstance(again, Accepted)
    assert first.provider_message_id == again.provider_message_id
    assert len(lob.postcards) == 1


def test_letter_is_created_with_its_html_and_cost(lob: LobImitation) -> None:
    letter = Letter(html="<p>Dear Ada, your order is ready.</p>")
    [outcome] = send(provider(lob.base_url), outgoing(letter, key="run-2:letter:direct_mail"))

    assert isinstance(outcome, Accepted) and outcome.cost == 0.91
    created = lob.letters[outcome.provider_message_id]
    assert created["color"] is False
    assert lob.requests[-1].body["file"] == letter.html
    lob.assert_no_violations()


def test_undeliverable_address_is_permanent_and_prints_nothing(lob: LobImitation) -> None:
    [outcome] = send(provider(lob.base_url), outgoing(POSTCARD, address={**HOME, "line1": "undeliverable"}))

    assert isinstance(outcome, PermanentError)
    assert outcome.code == "undeliverable_address"
    assert lob.postcards == {}


def test_strict_verification_refuses_an_address_missing_its_unit(lob: LobImitation) -> None:
    address = {**HOME, "line1": "deliverable_missing_unit"}
    lenient, strict = (send(provider(lob.base_url, strict_verification=s), outgoing(POSTCARD, address=address))[0]
                       for s in (False, True))

    assert isinstance(lenient, Accepted)
    assert isinstance(strict, PermanentError) and strict.code == "undeliverable_address"


@pytest.mark.parametrize("address", [None, {"city": "Paris"}, {**HOME, "country": "USA"}, {"line1": "1 Main St"}])
def test_unusable_address_is_permanent_before_any_request(lob: LobImitation, address: Any) -> None:
    [outcome] = send(provider(lob.base_url), outgoing(POSTCARD, address=address))

    assert isinstance(outcome, PermanentError) and outcome.code == "invalid_address"
    assert lob.requests == []


def test_oversize_html_and_wrong_content_are_permanent(lob: LobImitation) -> None:
    big = Postcard(front_html="<p>" + "x" * 10_000 + "</p>", back_html="<p>b</p>")
    too_big, wrong = send(provider(lob.base_url), outgoing(big), outgoing(omnisdk.SMS(text="hi")))

    assert isinstance(too_big, PermanentError) and too_big.code == "content_too_large"
    assert isinstance(wrong, PermanentError) and wrong.code == "unsupported_content"
    assert lob.requests == []


def test_rate_limit_and_server_errors_are_retryable(lob: LobImitation) -> None:
    lob.faults.fail_next(1, "rate_limit")
    [throttled] = send(provider(lob.base_url), outgoing(POSTCARD))
    lob.faults.fail_next(1, "unavailable")
    [unavailable] = send(provider(lob.base_url), outgoing(POSTCARD))
    lob.faults.fail_next(1, "drop")
    [dropped] = send(provider(lob.base_url), outgoing(POSTCARD))

    assert isinstance(throttled, RetryableError) and throttled.status == 429 and throttled.retry_after == 1
    assert isinstance(unavailable, RetryableError) and unavailable.status == 503
    assert isinstance(dropped, RetryableError)
    assert lob.postcards == {}


def test_wrong_api_key_is_permanent(lob: LobImitation) -> None:
    [outcome] = send(provider(lob.base_url, api_key="test_wrong"), outgoing(POSTCARD))

    assert isinstance(outcome, PermanentError) and outcome.status == 401


def test_international_postcard_must_be_4x6() -> None:
    from omnisdk_directmail._address import verification_request

    path, body = verification_request({"line1": "1 Rue de Rivoli", "city": "Paris", "postal_code": "75001",
                                       "country": "fr"})
    assert path == "/intl_verifications"
    assert body == {"primary_line": "1 Rue de Rivoli", "country": "FR", "city": "Paris", "postal_code": "75001"}


@pytest.mark.parametrize(("settings", "field"), [
    ({"from_address": {**SHOP, "line1": ""}}, "from_address.line1"),
    ({"from_address": {**SHOP, "country": "FR"}}, "from_address.country"),
    ({"from_address": "Acme, 210 King St"}, "from_address"),
    ({"lead_time_days": -1}, "lead_time_days"),
])
def test_config_errors_name_the_key(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LobDirectMail.Config(**{"api_key": API_KEY, "from_address": SHOP, **settings})
    assert caught.value.field == field


def test_secrets_stay_out_of_repr() -> None:
    mailer = provider("http://127.0.0.1:9", webhook_secret="whsec_hush")

    assert API_KEY not in repr(mailer) and "whsec_hush" not in repr(mailer)
    asyncio.run(mailer.http.aclose())


def test_cost_is_unknown_without_a_price(lob: LobImitation) -> None:
    [outcome] = send(provider(lob.base_url, prices={}), outgoing(POSTCARD))

    assert isinstance(outcome, Accepted) and outcome.cost is None



# -- international addresses, checked with openapi-core against Lob's published OpenAPI ---------------

ABROAD = [
    {"name": "Jean Dupont", "line1": "1 Rue de Rivoli", "city": "Paris", "postal_code": "75001", "country": "fr"},
    {"name": "Harry Zhang", "line1": "370 Water St", "city": "Summerside", "state": "PE", "postal_code": "C1N 1C4",
     "country": "CA"},  # city, state and postal code: Lob's oneOf refuses all three side by side
    {"name": "Ana García", "line1": "Calle de Alcalá 1", "line2": "3º izq.", "city": "Madrid", "state": "Madrid",
     "country": "ES"},
    {"name": "Ada Lovelace", "line1": "10 Downing St", "city": "London", "postal_code": "SW1A 2AA", "country": "GB"},
    {"name": "山田太郎", "line1": "1-1 Chiyoda", "city": "Chiyoda-ku", "state": "Tokyo", "postal_code": "100-0001",
     "country": "JP"},
]


def lob_contract_problems(path: str, body: dict[str, Any]) -> list[Exception]:
    """What openapi-core, reading Lob's OpenAPI file, finds wrong with a request body."""
    import json

    import openapi_core
    from openapi_core.testing import MockRequest

    from omnisdk.testing.imitations import CONTRACTS

    spec = openapi_core.OpenAPI.from_dict(json.loads((CONTRACTS / "lob_print_mail.json").read_text()))
    request = MockRequest("https://api.lob.com", "post", path, data=json.dumps(body),
                          content_type="application/json", headers={"Authorization": "Basic dGVzdDo="})
    return list(spec.unmarshal_request(request).errors)


@pytest.mark.filterwarnings("ignore:Unsupported scheme type")
@pytest.mark.parametrize("address", ABROAD, ids=[a["country"].upper() for a in ABROAD])
def test_international_addresses_go_out_in_lob_s_international_shape(lob: LobImitation, address: dict[str, str]
                                                                    ) -> None:
    [outcome] = send(provider(lob.base_url), outgoing(POSTCARD, address=address))

    assert isinstance(outcome, Accepted), outcome
    lob.assert_no_violations()
    verification, create = lob.requests
    assert verification.path == "/v1/intl_verifications" and verification.body["country"] == address["country"].upper()
    to = create.body["to"]
    assert to["address_country"] == address["country"].upper() and to["name"] == address["name"]
    assert ("address_zip" in to) != ("address_state" in to)  # exactly one of Lob's two last-line forms
    for request in (verification, create):
        assert lob_contract_problems(request.path, request.body) == []


@pytest.mark.filterwarnings("ignore:Unsupported scheme type")
def test_us_addresses_keep_the_us_shape(lob: LobImitation) -> None:
    [outcome] = send(provider(lob.base_url), outgoing(POSTCARD, address={**HOME, "country": "us"}))

    assert isinstance(outcome, Accepted)
    verification, create = lob.requests
    assert verification.path == "/v1/us_verifications"
    assert {k: create.body["to"][k] for k in ("address_city", "address_state", "address_zip", "address_country")} == {
        "address_city": "SAN FRANCISCO", "address_state": "CA", "address_zip": "94107-1741", "address_country": "US"}
    assert lob_contract_problems("/v1/postcards", create.body) == []


def test_the_contract_oracle_refuses_an_international_address_with_city_state_and_zip() -> None:
    to = {"name": "Harry Zhang", "address_line1": "370 WATER ST", "address_city": "SUMMERSIDE",
          "address_state": "PE", "address_zip": "C1N 1C4", "address_country": "CA"}
    body = {"to": to, "from": provider("http://127.0.0.1:9").config.from_address, "front": "<p>a</p>",
            "back": "<p>b</p>", "use_type": "marketing"}
    assert lob_contract_problems("/v1/postcards", body) != []


def test_our_list_of_countries_is_lob_s() -> None:
    import json

    from omnisdk_directmail._address import INTL_COUNTRIES, US_REGIONS

    from omnisdk.testing.imitations import CONTRACTS

    schemas = json.loads((CONTRACTS / "lob_print_mail.json").read_text())["components"]["schemas"]
    assert set(schemas["country_extended"]["enum"]) == INTL_COUNTRIES
    assert US_REGIONS.isdisjoint(INTL_COUNTRIES)


@pytest.mark.parametrize(("address", "reason"), [
    ({"line1": "1 Main St", "city": "Ramallah", "postal_code": "P400", "country": "PS"}, "does not mail to PS"),
    ({"line1": "1 Abovyan St", "city": "Yerevan", "postal_code": "0001", "country": "AM"}, "does not mail to AM"),
    ({"line1": "1 Queen's Rd", "city": "Hong Kong", "country": "HK"}, "postal_code, or a city and a state"),
    ({"line1": "1 Rue " + "x" * 200, "city": "Paris", "postal_code": "75001", "country": "FR"},
     "address.line1 has 206 characters; Lob takes at most 200"),
    ({**HOME, "line1": "185 Berry St " + "x" * 60}, "address.line1 has 73 characters; Lob takes at most 64"),
    ({"line1": "1 Rue de Rivoli", "city": "Paris", "postal_code": "75001-0000-0000", "country": "FR"},
     "address.postal_code has 15 characters; Lob takes at most 12"),
])
def test_addresses_lob_would_refuse_fail_before_any_request(lob: LobImitation, address: dict[str, str],
                                                           reason: str) -> None:
    [outcome] = send(provider(lob.base_url), outgoing(POSTCARD, address=address))

    assert isinstance(outcome, PermanentError) and outcome.code == "invalid_address"
    assert reason in outcome.reason
    assert lob.requests == []
