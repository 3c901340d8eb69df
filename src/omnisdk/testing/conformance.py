"""The provider conformance kit: one suite every channel plugin runs, like `sqlalchemy.testing.suite`.

How to use it, as a plugin vendor (a complete example is `plugins/omnisdk-example`):

    # tests/test_acme_conformance.py
    from omnisdk.testing.conformance import ProviderSuite, Reply, Requirements
    from omnisdk_acme import AcmeSMS

    class TestAcmeConformance(ProviderSuite):
        provider = AcmeSMS
        config = {"api_key": "key-123", "from": "+15550001111"}       # valid settings, as in omnisdk.toml
        invalid_settings = {"from": "not a number"}                    # key -> a value Config must refuse
        requirements = Requirements(webhooks=True, webhook_timestamps=False)
        ok_reply = Reply(201, body={"id": "msg-1"})                    # the provider's success answer
        reject_reply = Reply(400, body={"error": "invalid recipient"})  # its answer to a bad request
        signature_headers = ("X-Acme-Signature",)

        def outgoing(self, i):                                         # a message this provider can send
            return self.make_outgoing(to=f"+1415555{i:04d}", content=omnisdk.SMS(text="hi"))

        def webhook(self):                                             # a correctly signed webhook
            return omnisdk.WebhookRequest(method="POST", url="https://shop.example/hooks/acme",
                                          headers={...}, body=b"...")

Run it with pytest like any test class. It checks:

- **discovery**: the provider is found through the `omnisdk` entry-point group by `PluginHost`;
- **config**: the valid settings build, each required key left out, an unknown key, and each
  value of `invalid_settings` raise `ConfigError` naming the key;
- **secrets**: secret fields (`omnisdk.secret()`) stay out of `repr` and out of every log line
  (captured with `structlog.testing.capture_logs`) and error reason, and so do recipients;
- **error mapping**, against a scripted local endpoint: success → `Accepted` with an id, one
  outcome per message; 4xx → `PermanentError`; 429 → `RetryableError` honouring Retry-After;
  500/503, dropped connections and timeouts → `RetryableError`; the idempotency key reaches the
  provider when `capabilities.idempotency_keys` says it is supported;
- **lookups**, when `capabilities.reconcile` says the provider has one: `reconcile` is implemented,
  answers once per message, and a lookup the provider refused (4xx, 429, 5xx, a dropped
  connection) is `StillUnknown`, never `NotSent` (which would send the message again);
- **webhooks**: a good signature passes; a tampered body, a missing signature, a wrong key and
  (with `webhook_timestamps`) a stale timestamp are refused with a 4xx `WebhookError`; parsing
  yields standard event names on the provider's channel, each with an id, the same ids when the
  same webhook comes twice (the core records an event id once); a provider without webhooks
  refuses them with a 4xx.

By default the endpoint is `ScriptedHTTPEndpoint` built from `ok_reply`, `reject_reply`,
`rate_limit_reply` and `server_error_reply`; a provider that does not speak HTTP overrides
`endpoint()` (the SMTP providers return an `SMTPEndpoint`). Override `tampered_webhook`,
`unsigned_webhook`, `wrong_key_settings` and `stale_webhook` when the defaults (change the body's
last character, drop `signature_headers`, change every secret, none) do not fit the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

import attrs
import httpx
import pytest
from structlog.testing import capture_logs

from .._clock import VirtualClock
from .._config import load_config
from .._content import Content
from .._errors import ConfigError, WebhookError
from .._logging import _SECRET_KEY
from .._plugins import PluginHost
from .._secrets import MIN_LENGTH
from .._touchpoints import MESSAGE_CHANNELS, Events
from ..delivery._providers import build_config, new_http_client
from ..providers import (
    Accepted,
    Capabilities,
    InDoubt,
    Outcome,
    Outgoing,
    PermanentError,
    Provider,
    Reconciliation,
    RetryableError,
    StillUnknown,
    WebhookRequest,
)
from ._conformance_endpoints import FAULTS, Endpoint, Fault, Reply, ScriptedHTTPEndpoint, SMTPEndpoint, free_port

__all__ = ["FAULTS", "Endpoint", "Fault", "ProviderSuite", "Reply", "Requirements", "SMTPEndpoint",
           "ScriptedHTTPEndpoint", "free_port"]

T = TypeVar("T")
#: The client timeout the kit sets, so a held response is a timeout quickly.
CLIENT_TIMEOUT = 0.5
#: The answers a lookup may get that say nothing of the message (a timeout is the same as a drop here).
LOOKUP_FAULTS: tuple[Fault, ...] = ("reject", "rate_limit", "server_error", "unavailable", "drop")
#: Names like `signature_method` or `webhook_tolerance` describe how a secret is used, not a secret.
_SETTING_ABOUT_A_SECRET = re.compile(r"_(method|algorithm|tolerance|header|url|enabled)$")
STANDARD_EVENTS = frozenset(v for k, v in vars(Events).items() if k.isupper())


@attrs.frozen(kw_only=True)
class Requirements:
    """What the provider supports; the suite skips or inverts the checks for what it does not."""

    #: The provider accepts signed webhooks (delivery status, replies, engagement).
    webhooks: bool = True
    #: Webhook signatures cover a timestamp, and stale ones are refused (replay protection).
    webhook_timestamps: bool = False
    #: A 429's Retry-After reaches `RetryableError.retry_after` (False for SMTP: no such header).
    retry_after: bool = True
    #: The plugin is installed, so its entry point can be found.
    entry_point: bool = True
    #: The provider sends messages. False for webhook-only sources (Shopify POS orders): the
    #: sending checks are replaced by one that `send()` refuses every message permanently.
    sends: bool = True


class ProviderSuite:
    """Subclass as `Test<Something>` and fill in the class attributes; see the module docstring."""

    provider: ClassVar[type[Provider]]
    config: ClassVar[Mapping[str, Any]]
    requirements: ClassVar[Requirements] = Requirements()
    invalid_settings: ClassVar[Mapping[str, Any]] = {}
    ok_reply: ClassVar[Reply] = Reply(200, body={"id": "conformance-1"})
    reject_reply: ClassVar[Reply] = Reply(400, body={"error": "bad request"})
    rate_limit_reply: ClassVar[Reply | None] = None
    server_error_reply: ClassVar[Reply] = Reply(500, body={"error": "internal error"})
    signature_headers: ClassVar[Sequence[str]] = ()
    #: When webhooks are verified (fixed test vectors carry old timestamps); None: the real now.
    webhook_time: ClassVar[datetime | None] = None

    # -- what a vendor provides ---------------------------------------------------------------------

    def outgoing(self, i: int) -> Outgoing:
        """A message this provider can send; `i` tells the messages of one batch apart."""
        raise NotImplementedError("ProviderSuite.outgoing(i) must return an Outgoing for this provider")

    def webhook(self) -> WebhookRequest:
        """A correctly signed webhook (with `config`'s secrets) reporting at least one event."""
        raise NotImplementedError("ProviderSuite.webhook() must return a signed WebhookRequest")

    def endpoint(self) -> Any:
        """An async context manager yielding an `Endpoint`."""
        rate_limit = self.rate_limit_reply or Reply(429, {"Retry-After": "7"}, self.reject_reply.body)
        return ScriptedHTTPEndpoint({
            "ok": self.ok_reply,
            "reject": self.reject_reply,
            "rate_limit": rate_limit,
            "server_error": self.server_error_reply,
            "unavailable": attrs.evolve(self.server_error_reply, status=503),
        })

    def tampered_webhook(self) -> WebhookRequest:
        request = self.webhook()
        body = request.body
        position = max(i for i, byte in enumerate(body) if chr(byte).isalnum())
        changed = b"0" if body[position : position + 1] != b"0" else b"1"
        return attrs.evolve(request, body=body[:position] + changed + body[position + 1 :])

    def unsigned_webhook(self) -> WebhookRequest:
        request = self.webhook()
        dropped = {name.lower() for name in self.signature_headers}
        return attrs.evolve(request, headers={k: v for k, v in request.headers.items() if k.lower() not in dropped})

    def wrong_key_settings(self) -> Mapping[str, Any]:
        """The valid settings with other secrets: a webhook signed with `config`'s must fail."""
        return {key: f"wrong-{value}" if key in self.secret_keys() else value for key, value in self.config.items()}

    def stale_webhook(self) -> WebhookRequest | None:
        """A webhook signed correctly but long ago (when `requirements.webhook_timestamps`)."""
        return None

    # -- helpers for vendors -------------------------------------------------------------------------

    @staticmethod
    def make_outgoing(*, to: str, content: Content, **fields: Any) -> Outgoing:
        tag = hashlib.sha256(to.encode()).hexdigest()[:12]  # ids must not carry the address (it is PII)
        return Outgoing(
            delivery_id=f"dlv_conformance_{tag}",
            idempotency_key=f"run-conformance:step:{tag}",
            customer_id=f"c-{tag}",
            to=to,
            content=content,
            **fields,
        )

    def secret_keys(self) -> set[str]:
        """Keys declared with `omnisdk.secret()`."""
        return {f.name.rstrip("_") for f in attrs.fields(self.provider.Config) if f.metadata.get("secret")}

    def secret_values(self) -> list[str]:
        return [str(v) for k, v in self.config.items() if k in self.secret_keys() and v]

    def build(self, settings: Mapping[str, Any] | None = None, *, http: httpx.AsyncClient | None = None) -> Provider:
        config = build_config(self.provider, self.config if settings is None else settings, self.config_path)
        clock = VirtualClock(self.webhook_time) if self.webhook_time else None
        return self.provider(config, http=http or httpx.AsyncClient(), clock=clock)

    @property
    def config_path(self) -> str:
        return f"channels.{self.provider.channel}"

    def run(self, coroutine: Callable[[], Awaitable[T]]) -> T:
        return asyncio.run(_as_coroutine(coroutine))

    async def send_rounds(
        self, *rounds: Fault, batch_size: int | None = None
    ) -> tuple[list[Sequence[Outcome]], Endpoint]:
        """One batch per round through one provider and one endpoint answering with the round's fault."""
        if not self.requirements.sends:
            pytest.skip("requirements.sends is False")
        size = batch_size or min(self.provider.capabilities.max_batch_size, 3)
        batch = [self.outgoing(i) for i in range(size)]
        results: list[Sequence[Outcome]] = []
        async with self.endpoint() as endpoint:
            http = new_http_client()
            http.timeout = httpx.Timeout(CLIENT_TIMEOUT)
            provider = self.build({**self.config, **endpoint.settings}, http=http)
            try:
                for fault in rounds:
                    endpoint.answer_with(fault)
                    outcomes = await provider.send(batch)
                    assert len(outcomes) == size, f"send() returned {len(outcomes)} outcomes for {size} messages"
                    results.append(outcomes)
            finally:
                await provider.aclose()
                await http.aclose()
        return results, endpoint

    def outcomes_for(self, fault: Fault) -> Sequence[Outcome]:
        return self.run(lambda: self.send_rounds(fault))[0][0]

    # -- the checks: the provider's declaration --------------------------------------------------------

    def test_declares_the_contract(self) -> None:
        cls = self.provider
        assert isinstance(cls.name, str) and cls.name, "provider.name must be a non-empty string"
        assert cls.channel in MESSAGE_CHANNELS, f"provider.channel must be one of {MESSAGE_CHANNELS}"
        assert attrs.has(cls.Config), "provider.Config must be an attrs class"
        assert isinstance(cls.capabilities, Capabilities)
        assert cls.capabilities.max_batch_size >= 1

    def test_found_through_its_entry_point(self) -> None:
        if not self.requirements.entry_point:
            pytest.skip("requirements.entry_point is False")
        host = PluginHost()
        assert host.providers.get(self.provider.channel, self.provider.name) is self.provider, (
            f"no plugin in the 'omnisdk' entry-point group registers {self.provider.__name__}; "
            f"errors: {host.errors}"
        )
        owners = {owner for c, n, cls, owner in host.providers.items() if cls is self.provider}
        from_entry_points = {p.name for p in host.loaded if p.source == "entry point"}
        assert owners & from_entry_points, f"{self.provider.__name__} was registered by {owners}, not an entry point"

    # -- configuration -----------------------------------------------------------------------------

    def test_valid_config_builds(self) -> None:
        provider = self.build()
        assert attrs.has(type(provider.config))

    def test_missing_required_key_is_a_config_error(self) -> None:
        required = [f.name.rstrip("_") for f in attrs.fields(self.provider.Config) if f.default is attrs.NOTHING]
        for key in required:
            self._config_error({k: v for k, v in self.config.items() if k != key}, key, "left out")

    def test_unknown_key_is_a_config_error(self) -> None:
        self._config_error({**self.config, "no_such_key_x": 1}, "no_such_key_x", "unknown")

    def test_invalid_values_are_config_errors(self) -> None:
        if not self.invalid_settings:
            pytest.skip("no invalid_settings declared")
        for key, value in self.invalid_settings.items():
            self._config_error({**self.config, key: value}, key, f"set to {value!r}")

    def _config_error(self, settings: Mapping[str, Any], key: str, what: str) -> None:
        try:
            build_config(self.provider, settings, self.config_path)
        except ConfigError as exc:
            assert key in str(exc), f"the error for {key!r} {what} does not name it: {exc}"
        else:
            pytest.fail(f"no ConfigError with {key!r} {what}")

    # -- secrets and personal data ------------------------------------------------------------------

    def test_credentials_are_declared_secret(self) -> None:
        undeclared = [
            f.name for f in attrs.fields(self.provider.Config) if not f.metadata.get("secret")
            and _SECRET_KEY.search(f.name) and not _SETTING_ABOUT_A_SECRET.search(f.name)
        ]
        assert not undeclared, f"declare {undeclared} with omnisdk.secret(): they look like credentials"

    def test_secrets_stay_out_of_repr(self) -> None:
        secrets = self.secret_values()
        assert secrets, "declare the provider's credentials with omnisdk.secret() and set them in `config`"
        provider = self.build()
        for text in (repr(provider.config), repr(provider)):
            for value in secrets:
                assert value not in text, f"a secret appears in {text!r}"

    def test_secrets_stay_out_of_the_channel_config_and_omnisdk_errors(self) -> None:
        """Declared once on the `Config`, a secret is masked in the core's config tree and in errors too."""
        provider = self.build()
        config = load_config({"channels": {self.provider.channel: {"provider": self.provider.name, **self.config}}})
        texts = [repr(config), repr(provider)]
        for value in self.secret_values():
            texts.append(repr(ConfigError(f"the provider refused {value}", field=self.config_path)))
            assert f"{value!r}" not in texts[0], f"a secret appears in {texts[0]!r}"
        for value in (v for v in self.secret_values() if len(v) >= MIN_LENGTH):
            assert not [text for text in texts if value in text], f"{value[:3]}… appears in {texts}"

    def test_secrets_and_recipients_stay_out_of_logs_and_errors(self) -> None:
        recipients = [self.outgoing(i).to for i in range(3)]
        with capture_logs() as logs:
            outcomes = [o for fault in FAULTS for o in self.outcomes_for(fault)] if self.requirements.sends else []
            if self.requirements.webhooks:
                self._try_webhooks()
        text = "\n".join(map(repr, logs)) + "\n".join(repr(o) for o in outcomes)
        for value in [*self.secret_values(), *recipients]:
            assert value not in text, f"{value!r} leaked into a log line or an outcome"

    def _try_webhooks(self) -> None:
        provider = self.build()
        for request in (self.webhook(), self.tampered_webhook(), self.unsigned_webhook()):
            with contextlib.suppress(WebhookError):
                provider.verify_webhook(request)
                provider.parse_webhook(request)

    # -- error mapping -------------------------------------------------------------------------------

    def test_success_is_accepted_with_an_id(self) -> None:
        for outcome in self.outcomes_for("ok"):
            assert isinstance(outcome, Accepted), outcome
            assert outcome.provider_message_id, "Accepted needs the provider's message id"

    def test_rejection_is_permanent(self) -> None:
        for outcome in self.outcomes_for("reject"):
            assert isinstance(outcome, PermanentError), outcome
            assert outcome.reason

    def test_rate_limit_is_retryable_after_the_providers_delay(self) -> None:
        for outcome in self.outcomes_for("rate_limit"):
            assert isinstance(outcome, RetryableError), outcome
            if self.requirements.retry_after:
                assert outcome.retry_after == 7, f"Retry-After: 7 was not honoured: {outcome}"

    def test_server_errors_are_retryable(self) -> None:
        for fault in ("server_error", "unavailable"):
            for outcome in self.outcomes_for(fault):
                assert isinstance(outcome, RetryableError), f"{fault}: {outcome}"

    def test_dropped_connection_is_retryable(self) -> None:
        for outcome in self.outcomes_for("drop"):
            assert isinstance(outcome, RetryableError), outcome

    def test_timeout_is_retryable(self) -> None:
        for outcome in self.outcomes_for("timeout"):
            assert isinstance(outcome, RetryableError), outcome

    def test_recovers_after_a_failure(self) -> None:
        """A dropped connection or an error must not poison the provider's pooled state."""
        (dropped, failed, ok), _ = self.run(lambda: self.send_rounds("drop", "server_error", "ok"))
        assert all(isinstance(o, RetryableError) for o in [*dropped, *failed]), [*dropped, *failed]
        assert all(isinstance(o, Accepted) for o in ok), ok

    def test_webhook_only_provider_refuses_to_send(self) -> None:
        """A source that cannot send must say so permanently, so the dispatcher moves on."""
        if self.requirements.sends:
            pytest.skip("requirements.sends is True")

        async def send() -> Sequence[Outcome]:
            async with httpx.AsyncClient(transport=httpx.MockTransport(_no_requests)) as http:
                return await self.build(http=http).send([self.outgoing(0), self.outgoing(1)])

        outcomes = self.run(send)
        assert len(outcomes) == 2 and all(isinstance(o, PermanentError) and o.reason for o in outcomes), outcomes

    def test_idempotency_key_reaches_the_provider(self) -> None:
        if not self.provider.capabilities.idempotency_keys:
            pytest.skip("capabilities.idempotency_keys is False")
        _, endpoint = self.run(lambda: self.send_rounds("ok", batch_size=1))
        key = self.outgoing(0).idempotency_key
        assert any(key.encode() in request for request in endpoint.requests), "the idempotency key was not sent"

    # -- lookups of unknown outcomes ------------------------------------------------------------------

    def test_a_failed_lookup_is_never_not_sent(self) -> None:
        """`NotSent` makes the core send again: only an answer that shows no trace of the message may
        say so, never a lookup that failed, however long ago the attempt was."""
        if not self.provider.capabilities.reconcile:
            pytest.skip("capabilities.reconcile is False")
        assert self.provider.reconcile is not Provider.reconcile, "capabilities.reconcile without reconcile()"

        async def lookups() -> list[tuple[Fault, Sequence[Reconciliation]]]:
            answers = []
            async with self.endpoint() as endpoint:
                http = new_http_client()
                http.timeout = httpx.Timeout(CLIENT_TIMEOUT)
                provider = self.build({**self.config, **endpoint.settings}, http=http)
                doubt = [InDoubt(outgoing=self.outgoing(i), attempted_at=provider.clock.now() - timedelta(days=1))
                         for i in range(2)]
                try:
                    for fault in LOOKUP_FAULTS:
                        endpoint.answer_with(fault)
                        answers.append((fault, await provider.reconcile(doubt)))
                finally:
                    await provider.aclose()
                    await http.aclose()
            return answers

        for fault, answers in self.run(lookups):
            assert len(answers) == 2, f"reconcile() gave {len(answers)} answers for 2 messages ({fault})"
            wrong = [a for a in answers if not isinstance(a, StillUnknown)]
            assert not wrong, f"a lookup answered {fault!r} must stay unknown, got {wrong}"

    # -- webhooks --------------------------------------------------------------------------------------

    def _refused(self, request: WebhookRequest | None, what: str, settings: Mapping[str, Any] | None = None) -> None:
        if request is None:
            pytest.skip(f"no {what} webhook declared")
        provider = self.build(settings)
        with pytest.raises(WebhookError) as caught:
            provider.verify_webhook(request)
        assert 400 <= caught.value.status < 500, f"{what} webhook refused with {caught.value.status}, expected 4xx"

    def _needs_webhooks(self) -> None:
        if not self.requirements.webhooks:
            pytest.skip("requirements.webhooks is False")

    def test_webhook_with_a_good_signature_is_accepted(self) -> None:
        self._needs_webhooks()
        provider = self.build()
        request = self.webhook()
        provider.verify_webhook(request)
        result = provider.parse_webhook(request)
        assert result.events, "the suite's webhook() should report at least one event"
        for event in result.events:
            assert event.name in STANDARD_EVENTS, f"{event.name!r} is not a standard omnisdk.Events name"
            assert event.channel == self.provider.channel
            assert event.id, "every webhook event needs an id, so a repeated webhook is recorded once"
        assert 200 <= result.response.status < 300

    def test_webhook_with_a_tampered_body_is_refused(self) -> None:
        self._needs_webhooks()
        self._refused(self.tampered_webhook(), "tampered")

    def test_webhook_without_a_signature_is_refused(self) -> None:
        self._needs_webhooks()
        self._refused(self.unsigned_webhook(), "unsigned")

    def test_webhook_signed_with_another_key_is_refused(self) -> None:
        self._needs_webhooks()
        self._refused(self.webhook(), "wrong-key", self.wrong_key_settings())

    def test_stale_webhook_is_refused(self) -> None:
        self._needs_webhooks()
        if not self.requirements.webhook_timestamps:
            pytest.skip("requirements.webhook_timestamps is False")
        self._refused(self.stale_webhook(), "stale")

    def test_repeated_webhook_yields_the_same_event_ids(self) -> None:
        self._needs_webhooks()
        provider = self.build()
        runs = []
        for _ in range(2):
            request = self.webhook()
            provider.verify_webhook(request)
            runs.append([event.id for event in provider.parse_webhook(request).events])
        assert runs[0] == runs[1], f"the same webhook gave other event ids: {runs}"
        assert len(set(runs[0])) == len(runs[0]), f"two events of one webhook share an id: {runs[0]}"

    def test_webhooks_refused_when_unsupported(self) -> None:
        if self.requirements.webhooks:
            pytest.skip("requirements.webhooks is True")
        request = WebhookRequest(method="POST", url="https://shop.example/webhooks/x", headers={}, body=b"{}")
        self._refused(request, "unsupported")


async def _as_coroutine(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


def _no_requests(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a webhook-only provider sent {request.method} {request.url}")
