"""Secrets are declared once, on the provider's `Config` (`omnisdk.secret()`), and never shown: not in
config, channel or provider reprs, not in omnisdk's errors, not in a log line."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import structlog

import omnisdk
from omnisdk import get_logger

TWILIO_TOKEN = "twilio-auth-token-9f8e7d6c"
SENDGRID_KEY = "SG.sendgrid-key-0a1b2c3d"
SMTP_PASSWORD = "smtp-password-5e6f7a8b"
SHOPIFY_SECRET = "shopify-webhook-secret-4c5d"
SIGNING_KEY = "link-signing-key-1234567890abcdef"


def shop_config() -> dict[str, Any]:
    return {
        "channels": {
            "sms": {"provider": "twilio", "account_sid": "AC" + "a" * 32, "auth_token": TWILIO_TOKEN,
                    "from": "+15017122661"},
            "email": {"provider": "sendgrid", "api_key": SENDGRID_KEY, "from": "shop@example.com",
                      "fallback_provider": "smtp",
                      "smtp": {"host": "smtp.example.com", "password": SMTP_PASSWORD, "from": "shop@example.com"}},
        },
        "webhooks": {"signing_key": SIGNING_KEY, "sources": {"shopify": {"channel": "pos",
                                                                         "webhook_secret": SHOPIFY_SECRET}}},
    }


SECRETS = (TWILIO_TOKEN, SENDGRID_KEY, SMTP_PASSWORD, SHOPIFY_SECRET, SIGNING_KEY)


def assert_no_secret(text: str) -> None:
    assert [secret for secret in SECRETS if secret in text] == []


def test_the_config_repr_masks_every_secret_and_keeps_the_rest() -> None:
    with omnisdk.Omni("sqlite://:memory:", config=shop_config()) as omni:
        text = repr(omni.config)
        channel = repr(omni.config.channels["email"])
    assert_no_secret(text + channel)
    assert text.count("'[redacted]'") == 5
    assert "'account_sid': 'AC" in text and "'host': 'smtp.example.com'" in text  # what is not secret stays
    assert "'password': '[redacted]'" in channel


def test_provider_reprs_leave_their_secrets_out() -> None:
    with omnisdk.Omni("sqlite://:memory:", config=shop_config()) as omni:
        texts = [repr(omni.provider("sms")), repr(omni.provider("email")), repr(omni.provider("pos", "shopify")),
                 repr(omni.provider("email", "smtp")), repr(omni._core.dispatcher.pool.primary)]
    assert_no_secret("\n".join(texts))
    assert "TwilioSMS.Config(account_sid='AC" in texts[0]


class Vault(omnisdk.Provider):
    """A provider whose Config check quotes the value it refused, as third-party validators do."""

    name = "vault"
    channel = "sms"

    @attrs.define(kw_only=True)
    class Config:
        token: str = omnisdk.secret()

        @token.validator
        def _long_enough(self, attribute: Any, value: str) -> None:
            if len(value) < 40:
                raise ValueError(f"token {value!r} is shorter than 40 characters")


class Plugin:
    @omnisdk.hookimpl
    def register_providers(self, register: Any) -> None:
        register(Vault)


def test_a_config_error_quoting_a_secret_masks_it() -> None:
    token = "vault-token-short-7a7a"
    with pytest.raises(omnisdk.ConfigError) as caught:
        omnisdk.Omni("sqlite://:memory:", config={"channels": {"sms": {"provider": "vault", "token": token}}},
                     plugins=[Plugin()])
    assert token not in str(caught.value) and token not in repr(caught.value)
    assert "shorter than 40 characters" in str(caught.value)
    assert caught.value.field == "channels.sms"


def test_errors_mask_secrets_however_their_message_was_built() -> None:
    with omnisdk.Omni("sqlite://:memory:", config=shop_config()):
        error = omnisdk.ProviderError(f"Twilio answered 401 for Basic AC:{TWILIO_TOKEN}")
    assert_no_secret(str(error) + repr(error))
    assert str(error) == "Twilio answered 401 for Basic AC:[redacted]"


def test_a_value_equal_to_a_short_secret_is_masked_in_reprs() -> None:
    """Free text keeps words as short as a test's "token", but a config value that *is* one is masked."""
    config = shop_config()
    config["channels"]["sms"]["auth_token"] = "tok3n"
    with omnisdk.Omni("sqlite://:memory:", config=config) as omni:
        assert "'auth_token': '[redacted]'" in repr(omni.config)


@pytest.fixture
def structlog_defaults() -> Iterator[None]:
    """structlog's own defaults for this test (another test may have set a level that drops `info`)."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("structlog_defaults")
def test_log_lines_never_carry_a_secret() -> None:
    with omnisdk.Omni("sqlite://:memory:", config=shop_config()), structlog.testing.capture_logs() as logs:
        log = get_logger("omnisdk.test")
        log.info(f"calling with {SENDGRID_KEY}", credentials=TWILIO_TOKEN, note=f"the key is {SMTP_PASSWORD}",
                 nested={"deep": [SHOPIFY_SECRET]})
        try:
            raise RuntimeError(f"upstream refused {SIGNING_KEY}")
        except RuntimeError:
            log.exception("call failed")
    assert len(logs) == 2
    assert_no_secret(repr(logs))


def test_the_http_librarys_request_lines_mask_a_credential_in_the_url(caplog: pytest.LogCaptureFixture) -> None:
    """httpx logs every request's URL at INFO; Vonage's Reports API wants the (declared secret) API key
    in the query as `account_id`, so those lines are masked too."""
    import asyncio
    from datetime import timedelta

    import httpx
    from omnisdk_sms import VonageSMS

    from omnisdk.providers import InDoubt
    from omnisdk.testing import provider_config
    from omnisdk.testing.conformance import ProviderSuite
    from omnisdk.testing.imitations import VonageImitation

    api_key = "vonage-key-7c6b5a49"
    clock = omnisdk.VirtualClock()
    with VonageImitation(api_key=api_key, clock=clock) as api, caplog.at_level("INFO", logger="httpx"):
        config = provider_config(VonageSMS, {"api_key": api_key, "api_secret": api.api_secret, "from": "+15017122661",
                                             "base_url": api.base_url, "reports_url": api.base_url}, "channels.sms")

        async def lookup() -> None:
            async with httpx.AsyncClient() as http:
                provider = VonageSMS(config, http=http, clock=clock)
                message = ProviderSuite.make_outgoing(to="+14155550100", content=omnisdk.SMS(text="hi"))
                await provider.reconcile([InDoubt(outgoing=message, attempted_at=clock.now() - timedelta(hours=1))])

        asyncio.run(lookup())
    lines = [record.getMessage() for record in caplog.records if record.name == "httpx"]
    assert any("/v2/reports/records" in line for line in lines)
    assert not [line for line in lines if api_key in line]


def test_a_traceback_the_app_logs_through_the_configured_chain_is_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from omnisdk._logging import configure_logging

    with omnisdk.Omni("sqlite://:memory:", config=shop_config()):
        configure_logging(json=True)
        try:
            try:
                raise RuntimeError(f"upstream refused {SENDGRID_KEY}")
            except RuntimeError:
                structlog.get_logger("shop").error("checkout failed", exc_info=True)
        finally:
            structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "RuntimeError: upstream refused [redacted]" in err
    assert_no_secret(err)


def test_the_apps_own_structlog_lines_are_masked_by_the_processor() -> None:
    with omnisdk.Omni("sqlite://:memory:", config=shop_config()):
        line = omnisdk.redact_processor(None, "info", {"event": f"token {TWILIO_TOKEN}", "shop": SENDGRID_KEY})
    assert_no_secret(repr(line))


LEAKING_TEST = textwrap.dedent('''
    import omnisdk

    def test_prints_a_secret():
        config = {"channels": {"sms": {"provider": "twilio", "account_sid": "AC" + "a" * 32,
                                       "auth_token": "audit-me-token-31337", "from": "+15017122661"}}}
        with omnisdk.Omni("sqlite://:memory:", config=config) as omni:
            print(omni.provider("sms").config.auth_token)

    def test_keeps_it():
        config = {"channels": {"sms": {"provider": "twilio", "account_sid": "AC" + "a" * 32,
                                       "auth_token": "quiet-token-27182818", "from": "+15017122661"}}}
        with omnisdk.Omni("sqlite://:memory:", config=config) as omni:
            print(repr(omni.config), repr(omni.provider("sms")))
''')


def test_the_session_audit_fails_a_suite_that_shows_a_secret(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaks=LEAKING_TEST)
    result = pytester.runpytest_subprocess("-p", "omnisdk.testing.secret_audit", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*secret audit:*1 configured secrets shown*",
                                 "*aud… (20 characters) shown in test_leaks.py::test_prints_a_secret*"])
    assert "audit-me-token-31337" not in result.stdout.str()


def test_the_session_audit_passes_a_suite_that_keeps_its_secrets(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_quiet=LEAKING_TEST.replace(
        "print(omni.provider(\"sms\").config.auth_token)", "print(repr(omni.config))"))
    result = pytester.runpytest_subprocess("-p", "omnisdk.testing.secret_audit", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*secret audit:*0 configured secrets shown*"])
