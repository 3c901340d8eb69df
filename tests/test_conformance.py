"""The conformance kit itself: each of its checks fails for a provider that gets that thing wrong.

The example plugin (plugins/omnisdk-example) passes the whole suite; here each broken variant of
it must fail the check that covers its defect, so no check of the kit is one that cannot fail.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import omnisdk_example
import pytest
import structlog

import omnisdk
from omnisdk.testing.conformance import ProviderSuite, Reply

AcmeSMS = omnisdk_example.AcmeSMS


class AcmeSuite(ProviderSuite):
    """The example plugin's own suite (tests/test_example_conformance.py), reused on broken variants."""

    provider = AcmeSMS
    config = {"api_key": "acme-key-1", "webhook_secret": "acme-hook-secret", "from": "+15550001111"}  # noqa: RUF012
    ok_reply = Reply(201, body={"id": "msg-1"})
    reject_reply = Reply(400, body={"error": "invalid recipient"})
    signature_headers = ("X-Acme-Signature",)

    def outgoing(self, i: int) -> omnisdk.Outgoing:
        return self.make_outgoing(to=f"+1415555{i:04d}", content=omnisdk.SMS(text="Your order is ready"))

    def webhook(self) -> omnisdk.WebhookRequest:
        import hashlib
        import hmac

        body = b'{"event_id": "evt-1", "message_id": "msg-1", "status": "delivered"}'
        signature = hmac.new(b"acme-hook-secret", body, hashlib.sha256).hexdigest()
        return omnisdk.WebhookRequest(method="POST", url="https://shop.example/hooks/acme",
                                      headers={"X-Acme-Signature": signature}, body=body)


def suite_for(provider: type[omnisdk.Provider]) -> AcmeSuite:
    return type("BrokenSuite", (AcmeSuite,), {"provider": provider})()


def fails(check: Callable[[], None]) -> str:
    with pytest.raises((AssertionError, pytest.fail.Exception)) as caught:
        check()
    return str(caught.value)


def variant(**overrides: Any) -> type[omnisdk.Provider]:
    return type("BrokenAcme", (AcmeSMS,), overrides)


async def accept_everything(self: Any, batch: Sequence[omnisdk.Outgoing]) -> list[omnisdk.providers.Outcome]:
    return [omnisdk.Accepted(provider_message_id="x") for _ in batch]


async def retry_without_delay(self: Any, batch: Sequence[omnisdk.Outgoing]) -> list[omnisdk.providers.Outcome]:
    outcomes = await AcmeSMS.send(self, batch)
    return [attrs.evolve(o, retry_after=None) if isinstance(o, omnisdk.RetryableError) else o for o in outcomes]


async def log_the_key(self: Any, batch: Sequence[omnisdk.Outgoing]) -> Sequence[omnisdk.providers.Outcome]:
    structlog.get_logger("acme").info("sending", key=self.config.api_key, to=batch[0].to)
    return await AcmeSMS.send(self, batch)


def accept_any(self: Any, request: omnisdk.WebhookRequest) -> None:
    """A verify_webhook that checks nothing."""


def random_ids(self: Any, request: omnisdk.WebhookRequest) -> omnisdk.WebhookResult:
    result = AcmeSMS.parse_webhook(self, request)
    return attrs.evolve(result, events=[attrs.evolve(e, id=uuid.uuid4().hex) for e in result.events])


@attrs.define(kw_only=True)
class LeakyConfig:
    api_key: str
    webhook_secret: str = omnisdk.secret()
    from_: str = "+15550001111"
    base_url: str = "https://api.acme-sms.example"


def test_the_example_plugin_passes_every_check() -> None:
    suite = AcmeSuite()
    for name in dir(suite):
        if name.startswith("test_"):
            with contextlib.suppress(pytest.skip.Exception):  # checks that do not apply (stale timestamps)
                getattr(suite, name)()


@pytest.mark.parametrize(("provider", "check", "says"), [
    (variant(send=accept_everything), "test_rejection_is_permanent", "PermanentError"),
    (variant(send=accept_everything), "test_timeout_is_retryable", "RetryableError"),
    (variant(send=retry_without_delay), "test_rate_limit_is_retryable_after_the_providers_delay", "Retry-After"),
    (variant(send=log_the_key), "test_secrets_and_recipients_stay_out_of_logs_and_errors", "leaked"),
    (variant(Config=LeakyConfig), "test_credentials_are_declared_secret", "api_key"),
    (variant(verify_webhook=accept_any), "test_webhook_with_a_tampered_body_is_refused", "WebhookError"),
    (variant(verify_webhook=accept_any), "test_webhook_without_a_signature_is_refused", "WebhookError"),
    (variant(verify_webhook=accept_any), "test_webhook_signed_with_another_key_is_refused", "WebhookError"),
    (variant(parse_webhook=random_ids), "test_repeated_webhook_yields_the_same_event_ids", "other event ids"),
    (variant(name="unregistered"), "test_found_through_its_entry_point", "entry-point group"),
])
def test_each_check_catches_its_defect(provider: type[omnisdk.Provider], check: str, says: str) -> None:
    assert says in fails(getattr(suite_for(provider), check))


def test_config_checks_name_the_key() -> None:
    suite = suite_for(AcmeSMS)
    object.__setattr__(suite, "invalid_settings", {"base_url": "anything"})  # the example accepts any base_url
    assert "no ConfigError with 'base_url'" in fails(suite.test_invalid_values_are_config_errors)


def test_conformance_is_importable_without_loading_pytest_fixtures() -> None:
    from omnisdk.testing import conformance

    assert conformance.ProviderSuite.__name__ == "ProviderSuite"
    assert "how to use it" in (conformance.__doc__ or "").lower()


def test_the_docs_show_the_example_plugin_as_it_is() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "plugin-authoring.md").read_text("utf-8")
    for path in ("plugins/omnisdk-example/src/omnisdk_example/__init__.py",
                 "plugins/omnisdk-example/tests/test_example_conformance.py"):
        assert f"```python\n{(root / path).read_text('utf-8')}```" in doc, f"docs/plugin-authoring.md is stale: {path}"
