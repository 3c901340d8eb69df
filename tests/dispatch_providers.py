"""Test-only providers whose answers a test scripts: what the dispatcher must cope with, on demand.

They are real plugins (registered through the `register_providers` hook), configured through
`[channels.<kind>]` like any other; the `Script` a test passes in the config is their backend.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

import omnisdk
from omnisdk.providers import InDoubt, NotSent, Outcome, Reconciliation

SECRET = "whsec-test"


@attrs.define(eq=False)
class Script:
    """Outcomes to give, in order (exceptions are raised), then `Accepted` for everything."""

    queue: list[Any] = attrs.field(factory=list)
    sent: list[omnisdk.Outgoing] = attrs.field(factory=list)
    batches: list[int] = attrs.field(factory=list)
    #: When set, `send` waits for it: a call in flight that a test can cut off (a crash mid-call).
    gate: asyncio.Event | None = None
    #: Calls that go through before the gate applies (the first `free_calls` are answered at once).
    free_calls: int = 0
    calls: int = 0

    def to(self) -> list[str]:
        return [m.to for m in self.sent]


def signed(body: Mapping[str, Any] | Sequence[Any], secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    raw = json.dumps(body).encode()
    return {"X-Signature": hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()}, raw


class ScriptedProvider(omnisdk.Provider):
    name = "scripted"
    channel = "sms"
    capabilities = omnisdk.Capabilities(max_batch_size=10)

    @attrs.define
    class Config:
        script: Script
        secret: str = omnisdk.secret(SECRET)

    async def send(self, batch: Sequence[omnisdk.Outgoing]) -> Sequence[Outcome]:
        script: Script = self.config.script
        script.calls += 1
        if script.gate is not None and script.calls > script.free_calls:
            await script.gate.wait()
        script.batches.append(len(batch))
        outcomes: list[Outcome] = []
        for message in batch:
            outcome = script.queue.pop(0) if script.queue else None
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome is None:
                outcome = omnisdk.Accepted(provider_message_id=f"{self.name}-{message.delivery_id}",
                                           details={"segments": 1}, cost=0.0075)
            if isinstance(outcome, omnisdk.Accepted):
                script.sent.append(message)
            outcomes.append(outcome)
        return outcomes

    def verify_webhook(self, request: omnisdk.WebhookRequest) -> None:
        given = request.header("X-Signature")
        if not given:
            raise omnisdk.WebhookError("missing X-Signature", status=401)
        expected = hmac.new(self.config.secret.encode(), request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given, expected):
            raise omnisdk.WebhookError("bad signature", status=401)

    def parse_webhook(self, request: omnisdk.WebhookRequest) -> omnisdk.WebhookResult:
        try:
            items = json.loads(request.body)
        except ValueError:
            raise omnisdk.WebhookError("body is not JSON", status=400) from None
        if items == "explode":
            raise RuntimeError("plugin bug")
        events = [
            omnisdk.WebhookEvent(
                name=item["event"], channel=item.get("channel", self.channel), id=item.get("id"),
                provider_message_id=item.get("message_id"), who=item.get("who", {}),
                properties=item.get("properties", {}),
            )
            for item in items
        ]
        return omnisdk.WebhookResult(events=events, response=omnisdk.WebhookResponse(status=204))


class ScriptedEmail(ScriptedProvider):
    channel = "email"
    capabilities = omnisdk.Capabilities(max_batch_size=3)


class BackupEmail(ScriptedProvider):
    name = "backup"
    channel = "email"


class ScriptedPush(ScriptedProvider):
    channel = "push"
    capabilities = omnisdk.Capabilities(max_batch_size=500, crash_policy="at_least_once")


class KeyedEmail(ScriptedProvider):
    """Accepts idempotency keys (like Lob and Square): a resend after a crash cannot duplicate."""

    name = "keyed"
    channel = "email"
    capabilities = omnisdk.Capabilities(max_batch_size=10, idempotency_keys=True)


class TestProviders:
    @omnisdk.hookimpl
    def register_providers(self, register: Any) -> None:
        for cls in (ScriptedProvider, ScriptedEmail, BackupEmail, ScriptedPush, KeyedEmail):
            register(cls)


class DropBeforeSend:
    """A `Script.queue` item: the connection dropped before the provider read the request (it has no trace)."""


class DropAfterAccept:
    """A `Script.queue` item: the provider took the message, then the connection dropped before the answer."""


AMBIGUOUS = omnisdk.RetryableError(reason="connection error: RemoteProtocolError; the provider may have accepted it",
                                   ambiguous=True)


@attrs.define(eq=False)
class LookupScript(Script):
    """A provider that can be asked what became of a message: `taken` is its side of the story."""

    taken: dict[str, str] = attrs.field(factory=dict)  # delivery id → provider message id
    #: Answers (or exceptions) of `reconcile` to give first, one per looked-up message; then the truth.
    lookup_queue: list[Any] = attrs.field(factory=list)
    looked_up: list[InDoubt] = attrs.field(factory=list)


class LookupSMS(ScriptedProvider):
    """Like Twilio with its Message list: no idempotency key, but a lookup by recipient, window and body."""

    name = "lookup"
    capabilities = omnisdk.Capabilities(max_batch_size=5, reconcile=True)

    async def send(self, batch: Sequence[omnisdk.Outgoing]) -> Sequence[Outcome]:
        script: LookupScript = self.config.script
        if script.gate is not None:
            await script.gate.wait()
        script.batches.append(len(batch))
        outcomes: list[Outcome] = []
        for message in batch:
            fault = script.queue.pop(0) if script.queue else None
            if isinstance(fault, BaseException):
                raise fault
            if fault is DropBeforeSend:
                outcomes.append(AMBIGUOUS)
                continue
            script.sent.append(message)
            pmid = script.taken[message.delivery_id] = f"SM{len(script.sent):04d}"
            outcomes.append(AMBIGUOUS if fault is DropAfterAccept else omnisdk.Accepted(provider_message_id=pmid))
        return outcomes

    async def reconcile(self, batch: Sequence[InDoubt]) -> Sequence[Reconciliation]:
        script: LookupScript = self.config.script
        script.looked_up.extend(batch)
        answers: list[Reconciliation] = []
        for item in batch:
            scripted = script.lookup_queue.pop(0) if script.lookup_queue else None
            if isinstance(scripted, BaseException):
                raise scripted
            if scripted is not None:
                answers.append(scripted)
            elif item.outgoing.delivery_id in script.taken:
                answers.append(omnisdk.Accepted(provider_message_id=script.taken[item.outgoing.delivery_id]))
            else:
                answers.append(NotSent(reason="no message to this number in the window"))
        return answers


class LookupTestProviders:
    @omnisdk.hookimpl
    def register_providers(self, register: Any) -> None:
        register(LookupSMS)
