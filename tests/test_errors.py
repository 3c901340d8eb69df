"""Bad input raises a typed OmniError naming the field, and nothing stored is lost."""

from __future__ import annotations

import pytest

from omnisdk import (
    BatchValidationError,
    ConfigError,
    InvalidIdentifierError,
    Omni,
    OmniError,
    UnknownChannelError,
    ValidationError,
)


def count_touchpoints(omni: Omni) -> int:
    with omni.store.transaction() as tx:
        return int(tx.scalar("SELECT COUNT(*) FROM touchpoints"))


def test_invalid_phone_names_the_field(omni: Omni) -> None:
    with pytest.raises(InvalidIdentifierError) as err:
        omni.identify("c-1", phone="not a phone")
    assert err.value.field == "phone"
    assert "phone" in str(err.value)


def test_a_national_phone_without_a_default_region_says_how_to_write_it(omni: Omni) -> None:
    with pytest.raises(InvalidIdentifierError) as err:
        omni.identify("c-1", phone="0612345678")
    assert "+<country code>" in str(err.value) and "identity.default_region" in str(err.value)
    assert "(0)" not in str(err.value)  # not phonenumbers' internal error code


def test_invalid_email_names_the_field(omni: Omni) -> None:
    with pytest.raises(InvalidIdentifierError) as err:
        omni.track({"email": "ada@"}, "Signed Up")
    assert err.value.field == "who.email"


def test_unknown_channel(omni: Omni) -> None:
    with pytest.raises(UnknownChannelError) as err:
        omni.track("c-1", "Product Viewed", channel="fax")
    assert err.value.field == "channel"
    with pytest.raises(UnknownChannelError):
        omni.consent("c-1", channel="pager", granted=True)


@pytest.mark.parametrize("bad", ["", "   ", None, 42])
def test_empty_customer_id(omni: Omni, bad: object) -> None:
    with pytest.raises(ValidationError) as err:
        omni.track(bad, "Product Viewed")  # type: ignore[arg-type]
    assert err.value.field in ("who", "customer_id")


def test_a_bad_item_is_reported_and_the_good_ones_are_stored(omni: Omni) -> None:
    omni.track("c-1", "Product Viewed", channel="web")
    before = count_touchpoints(omni)

    with pytest.raises(BatchValidationError) as err:
        omni.track_many([("c-1", "Product Added", {"price": 1}), {"who": "c-1", "event": "X", "channel": "telex"}])

    assert [(e.index, e.field) for e in err.value.errors] == [(1, "items[1].channel")]
    assert err.value.recorded == 1
    assert count_touchpoints(omni) == before + 1
    assert [t.name for t in omni.timeline("c-1")] == ["Product Viewed", "Product Added"]


def test_properties_must_be_json(omni: Omni) -> None:
    with pytest.raises(ValidationError) as err:
        omni.track("c-1", "Product Viewed", {"when": object()})
    assert err.value.field == "properties.when"


def test_unknown_timezone(omni: Omni) -> None:
    with pytest.raises(ValidationError) as err:
        omni.identify("c-1", timezone="Mars/Olympus")
    assert err.value.field == "timezone"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"channels": {"fax": {"provider": "x"}}}, "channels.fax"),
        ({"channels": {"sms": {"account_sid": "AC1"}}}, "channels.sms.provider"),
        ({"channels": {"sms": {"provider": "twilio", "auth_token": "${OMNISDK_TEST_UNSET_VAR}"}}},
         "channels.sms.auth_token"),
        ({"policy": {}}, "policy"),
    ],
)
def test_malformed_config_names_the_key(config: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        Omni("sqlite://:memory:", config=config)
    assert err.value.field == field


def test_every_error_is_an_omni_error() -> None:
    for cls in (ConfigError, InvalidIdentifierError, UnknownChannelError, ValidationError):
        assert issubclass(cls, OmniError)


def test_a_message_with_no_rendition_is_refused() -> None:
    from omnisdk import Message

    with pytest.raises(ValidationError) as err:
        Message("empty")
    assert err.value.field == "empty" and "rendition" in str(err.value)
