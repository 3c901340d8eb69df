"""Meta Custom Audience sync: normalised + hashed identifiers, consent respected, batched adds and removals."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from omnisdk_social.audiences import AudienceError, AudienceSync, MetaAudience, add_to_audience, audience_row

from omnisdk import ConfigError, Consent, Customer, Identity, Omni, VirtualClock, journey
from omnisdk.testing.imitations import Faults, MetaGraphImitation

pytestmark = pytest.mark.anyio
TOKEN = "EAAG-ads"
AUDIENCE = "23851234567890"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def graph() -> Iterator[MetaGraphImitation]:
    with MetaGraphImitation(access_token=TOKEN, faults=Faults()) as server:
        yield server


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def customer(cid: str, *, email: str | None = None, phone: str | None = None, consent: bool | None = True,
             **traits: str) -> Customer:
    identities = [Identity("email", email)] if email else []
    identities += [Identity("phone", phone)] if phone else []
    consents = [] if consent is None else [Consent(channel="social", purpose="marketing", granted=consent,
                                                   source="test", recorded_at=T0)]
    return Customer(id=cid, identities=identities, consents=consents, traits=traits,
                    address={"city": "San Francisco", "state": "CA", "postal_code": "94107-1234", "country": "US"})


def audience(graph: MetaGraphImitation, **extra: object) -> MetaAudience:
    config = MetaAudience.Config(audience_id=AUDIENCE, access_token=TOKEN, base_url=graph.base_url,
                                 **extra)  # type: ignore[arg-type]
    return MetaAudience(config, http=httpx.AsyncClient())


def test_identifiers_are_normalised_then_hashed_but_the_external_id_goes_raw() -> None:
    ada = customer("c-1", email="  Ada.Lovelace@Example.COM ", phone="+1 (415) 555-0100", first_name="Adà-Marie",
                   last_name="O'Lovelace")
    assert audience_row(ada) == {
        "EMAIL": sha("ada.lovelace@example.com"), "PHONE": sha("14155550100"), "FN": sha("admarie"),
        "LN": sha("olovelace"), "CT": sha("sanfrancisco"), "ST": sha("ca"), "ZIP": sha("94107"),
        "COUNTRY": sha("us"), "EXTERN_ID": "c-1",
    }


# Names, places and codes as shops store them; each row is (traits, address).
TRICKY = [
    ({"first_name": "Adà-Marie", "last_name": "O'Lovelace"}, {"postal_code": "94107-1234", "country": "US"}),
    ({"first_name": "  José ", "last_name": "Núñez García"}, {"city": "São Paulo", "state": "SP",
                                                              "postal_code": "01310-100", "country": "br"}),
    ({"first_name": "François", "last_name": "L'Écuyer."}, {"city": "Saint-Étienne", "postal_code": "42 000",
                                                            "country": " FR "}),
    ({"first_name": "Zoë", "last_name": "Brontë-Smith"}, {"city": "London", "region": "Greater London",
                                                         "zip": "SW1A 1AA", "country_code": "GB"}),
    ({"first_name": "Ærøskøbing", "last_name": "Øster"}, {"city": "Århus C", "postal_code": " 8000 ",
                                                          "country": "dk"}),
    ({"first_name": "Ольга", "last_name": "Łukasz"}, {"city": "Kraków", "postal_code": "31-001", "country": "PL"}),
    ({"first_name": "Mary Ann", "last_name": "Smith Jr.", "extra": "x"}, {"city": "St. Louis", "state": "M.O.",
                                                                          "postal_code": "63101", "country": "U.S."}),
    ({"first_name": "İlkay", "last_name": "\tKelvin\u212a\n"}, {"city": "İstanbul", "postal_code": "34000",
                                                               "country": "TR"}),
]


@pytest.mark.parametrize(("traits", "address"), TRICKY)
def test_rows_hash_as_the_facebook_business_sdk_hashes_them(traits: dict[str, str], address: dict[str, str]) -> None:
    """Meta's own SDK is the oracle: given the same raw values, every key we send must be byte for byte
    what `CustomAudienceMixin.format_params` uploads for a multi-key customer list."""
    from facebook_business.adobjects.helpers.customaudiencemixin import CustomAudienceMixin

    person = Customer(id="Shop-Customer-42", identities=[Identity("email", "Ada@Example.com."),
                                                         Identity("phone", "+44 20 7946 0958")],
                      traits=traits, address=address)
    raw = {"EMAIL": person.email, "PHONE": person.phone, "FN": traits.get("first_name"),
           "LN": traits.get("last_name"), "CT": address.get("city"), "ST": address.get("state", address.get("region")),
           "ZIP": address.get("postal_code", address.get("zip")),
           "COUNTRY": address.get("country", address.get("country_code")), "EXTERN_ID": person.id}
    keys = [key for key, value in raw.items() if value]
    [expected] = CustomAudienceMixin.format_params(keys, [[raw[k] for k in keys]], is_raw=True)["payload"]["data"]

    row = audience_row(person)

    assert row is not None
    assert {key: value for key, value in zip(keys, expected, strict=True) if key in row} == row
    # Left out: what the SDK reduces to nothing (it would upload the hash of ""), and a country name.
    emptied = {key for key, value in zip(keys, expected, strict=True) if value == sha("")}
    assert set(keys) - set(row) <= emptied | {"COUNTRY"}
    assert row["EXTERN_ID"] == "shop-customer-42"


def test_a_customer_without_email_or_phone_cannot_be_matched() -> None:
    assert audience_row(customer("c-1", first_name="Ada")) is None


async def test_add_uploads_only_consenting_customers(graph: MetaGraphImitation) -> None:
    people = [customer("c-1", email="ada@example.com"), customer("c-2", email="bob@example.com", consent=False),
              customer("c-3", email="cy@example.com", consent=None), customer("c-4", first_name="NoContact")]
    result = await audience(graph).add(people)
    graph.assert_no_violations()
    assert result == AudienceSync(added=1, skipped_no_consent=2, skipped_no_identifiers=1)
    [member] = graph.audiences[AUDIENCE]
    assert sha("ada@example.com") in member
    assert "ada@example.com" not in str(graph.requests[0].raw)  # no personal data in clear


async def test_remove_takes_customers_out_whatever_their_consent(graph: MetaGraphImitation) -> None:
    ada = customer("c-1", email="ada@example.com")
    await audience(graph).add([ada])
    withdrawn = customer("c-1", email="ada@example.com", consent=False)
    result = await audience(graph).remove([withdrawn])
    assert result == AudienceSync(removed=1)
    assert graph.audiences[AUDIENCE] == set()
    assert graph.requests[-1].method == "DELETE"


async def test_sync_adds_the_consenting_and_removes_those_who_withdrew(graph: MetaGraphImitation) -> None:
    ada, bob = customer("c-1", email="ada@example.com"), customer("c-2", phone="+14155550101")
    await audience(graph).add([ada, bob])
    bob_withdrew = customer("c-2", phone="+14155550101", consent=False)
    result = await audience(graph).sync([ada, bob_withdrew])
    assert (result.added, result.removed) == (1, 1)
    assert len(graph.audiences[AUDIENCE]) == 1


async def test_large_uploads_are_batched_in_one_session(graph: MetaGraphImitation) -> None:
    people = [customer(f"c-{i}", email=f"user{i}@example.com") for i in range(5)]
    result = await audience(graph, batch_size=2).add(people)
    graph.assert_no_violations()
    assert result.added == 5 and len(graph.audiences[AUDIENCE]) == 5
    sessions = [r.body["session"] for r in graph.requests]
    assert [s["batch_seq"] for s in sessions] == [1, 2, 3]
    assert [s["last_batch_flag"] for s in sessions] == [False, False, True]
    assert len({s["session_id"] for s in sessions}) == 1


async def test_rate_limit_is_a_retryable_audience_error(graph: MetaGraphImitation) -> None:
    graph.faults.fail_next(1, "rate_limit")
    with pytest.raises(AudienceError) as info:
        await audience(graph).add([customer("c-1", email="ada@example.com")])
    assert info.value.retryable and info.value.retry_after == 1.0
    assert TOKEN not in str(info.value)


async def test_bad_token_is_a_permanent_audience_error(graph: MetaGraphImitation) -> None:
    config = MetaAudience.Config(audience_id=AUDIENCE, access_token="wrong", base_url=graph.base_url)
    with pytest.raises(AudienceError) as info:
        await MetaAudience(config, http=httpx.AsyncClient()).add([customer("c-1", email="ada@example.com")])
    assert not info.value.retryable and "190" in str(info.value)


@pytest.mark.parametrize(("change", "field"), [({"audience_id": "my-audience"}, "audience_id"),
                                               ({"batch_size": 20_000}, "batch_size")])
def test_config_errors_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        MetaAudience.Config(**{"audience_id": AUDIENCE, "access_token": TOKEN, **change})  # type: ignore[arg-type]
    assert info.value.field == field


def test_access_token_stays_out_of_repr() -> None:
    config = MetaAudience.Config(audience_id=AUDIENCE, access_token=TOKEN)
    assert TOKEN not in repr(config) and TOKEN not in repr(MetaAudience(config, http=httpx.AsyncClient()))


def test_a_journey_adds_the_customer_once_across_replays(graph: MetaGraphImitation, tmp_path) -> None:
    ads = audience(graph)

    @journey("retarget", version="1", trigger="Product Added", exit_on=["Order Completed"])
    async def retarget(ctx):  # type: ignore[no-untyped-def]
        await add_to_audience(ctx, "add-to-ads", ads)
        await ctx.sleep("wait", timedelta(hours=1))  # suspends: the run replays from the top later

    clock = VirtualClock()
    with Omni(f"sqlite:///{tmp_path}/omni.db", clock=clock) as omni:
        omni.register(retarget)
        omni.identify("c-1", email="ada@example.com")
        omni.consent("c-1", channel="social", granted=True)
        omni.track("c-1", "Product Added", {"product_id": "sku-1"}, channel="web")
        omni.run_until_idle()
        clock.advance(hours=2)
        omni.run_until_idle()
    assert [r.method for r in graph.requests] == ["POST"]
    assert len(graph.audiences[AUDIENCE]) == 1
