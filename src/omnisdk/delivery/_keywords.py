"""What a verified webhook event does to the consent ledger: the carriers' keyword rules and the rest.

- An unsubscribe revokes marketing; on SMS (a STOP-family keyword, which carriers enforce for
  every message from the sender) it revokes marketing and transactional.
- START/UNSTOP on SMS restores only what STOP revoked: each purpose whose latest entries are STOP
  revocations goes back to what it was before them (a marketing grant never given is not given).
- YES/Y grants SMS marketing only as the answer to a double opt-in prompt: a delivery of one of
  `webhooks.double_opt_in_templates` sent to the customer by SMS within
  `webhooks.double_opt_in_window_seconds`, after their latest SMS marketing consent change.
  Any other YES is an ordinary reply.
- A complaint revokes email marketing; a hard bounce revokes the channel's marketing and drops
  the address from the profile.
- A grant older (by the event's own time) than the latest revocation is ignored: providers may
  deliver webhooks out of order. Revocations always apply.

Every entry keeps its source (`webhook:<provider>`, with `:<KEYWORD>` for keyword replies) and its
evidence (the provider's message id of the reply, or the event id).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from .._errors import ConfigError
from .._touchpoints import MESSAGE_CHANNELS, Events
from ..providers import WebhookEvent
from ..store import Transaction
from ..store._consents import consent_ledger, insert_consent
from ..store._deliveries import EventDelivery, latest_prompt
from ..store._identities import forget_address

__all__ = ["DOUBLE_OPT_IN_WINDOW_SECONDS", "ConsentRules"]

#: How long after the prompt a YES still answers it (config `webhooks.double_opt_in_window_seconds`).
DOUBLE_OPT_IN_WINDOW_SECONDS: Final = 24 * 3600
_PURPOSES: Final = ("marketing", "transactional")


def _evidence(event: WebhookEvent) -> str | None:
    found = event.properties.get("message_id") or event.provider_message_id or event.id
    return str(found)[:256] if found else None


@attrs.frozen
class ConsentRules:
    prompts: Sequence[str] = ()
    window: float = DOUBLE_OPT_IN_WINDOW_SECONDS

    @classmethod
    def from_config(cls, settings: Mapping[str, Any]) -> ConsentRules:
        prompts = settings.get("double_opt_in_templates", [])
        if not isinstance(prompts, list | tuple) or not all(isinstance(p, str) and p for p in prompts):
            raise ConfigError("expected a list of template names", field="webhooks.double_opt_in_templates")
        window = settings.get("double_opt_in_window_seconds", DOUBLE_OPT_IN_WINDOW_SECONDS)
        if not isinstance(window, int | float) or isinstance(window, bool) or not 0 < window < 10**9:
            raise ConfigError("expected a positive number of seconds", field="webhooks.double_opt_in_window_seconds")
        return cls(tuple(prompts), float(window))

    def apply(
        self, tx: Transaction, provider: str, event: WebhookEvent, customer_id: str, delivery: EventDelivery | None,
        now: float,
    ) -> None:
        channel = event.channel if event.channel in MESSAGE_CHANNELS else None
        if channel is None:
            return
        keyword = event.properties.get("keyword")
        keyword = keyword.upper() if isinstance(keyword, str) else None
        evidence = _evidence(event)
        if event.name == Events.UNSUBSCRIBED:
            purposes = _PURPOSES if channel == "sms" else ("marketing",)
            source = f"webhook:{provider}:{keyword or 'STOP'}" if channel == "sms" else f"webhook:{provider}"
            for purpose in purposes:
                self._record(tx, customer_id, channel, purpose, False, source, now, evidence)
        elif event.name == Events.SUBSCRIBED and channel == "sms":
            self._restore(tx, provider, event, customer_id, now, keyword or "START", evidence)
        elif event.name == Events.SUBSCRIBED:
            if not self._stale(tx, event, customer_id, channel, "marketing"):
                self._record(tx, customer_id, channel, "marketing", True, f"webhook:{provider}", now, evidence)
        elif channel == "sms" and keyword == "YES":
            self._answer_prompt(tx, provider, event, customer_id, now, evidence)
        elif event.name == Events.MESSAGE_COMPLAINED:
            self._record(tx, customer_id, "email", "marketing", False, f"webhook:{provider}", now, evidence)
        elif event.name == Events.MESSAGE_BOUNCED and event.properties.get("bounce_type") == "hard":
            self._record(tx, customer_id, channel, "marketing", False, f"webhook:{provider}", now, evidence)
            address = delivery.address if delivery is not None else None
            if address:
                forget_address(tx, customer_id, address)

    def _record(self, tx: Transaction, customer_id: str, channel: str, purpose: str, granted: bool, source: str,
                now: float, evidence: str | None) -> None:
        insert_consent(tx, customer_id, channel, purpose, granted, source, now, evidence)

    @staticmethod
    def _ledger(tx: Transaction, customer_id: str, channel: str, purpose: str) -> list[tuple[bool, str, float]]:
        """The channel's entries for one purpose, newest first: (granted, source, recorded_at)."""
        return consent_ledger(tx, customer_id, channel, purpose)

    def _stale(self, tx: Transaction, event: WebhookEvent, customer_id: str, channel: str, purpose: str) -> bool:
        """A grant that happened before the latest revocation was recorded (out-of-order delivery)."""
        if event.occurred_at is None:
            return False
        ledger = self._ledger(tx, customer_id, channel, purpose)
        return bool(ledger) and not ledger[0][0] and float(ledger[0][2]) > event.occurred_at.timestamp()

    def _restore(self, tx: Transaction, provider: str, event: WebhookEvent, customer_id: str, now: float,
                 keyword: str, evidence: str | None) -> None:
        for purpose in _PURPOSES:
            ledger = self._ledger(tx, customer_id, "sms", purpose)
            stops = 0
            while stops < len(ledger) and not ledger[stops][0] and str(ledger[stops][1]).endswith(":STOP"):
                stops += 1
            if not stops or self._stale(tx, event, customer_id, "sms", purpose):
                continue  # not revoked by STOP: START has nothing to restore
            before = bool(ledger[stops][0]) if stops < len(ledger) else purpose == "transactional"
            if before:
                self._record(tx, customer_id, "sms", purpose, True, f"webhook:{provider}:{keyword}", now, evidence)

    def _answer_prompt(self, tx: Transaction, provider: str, event: WebhookEvent, customer_id: str, now: float,
                       evidence: str | None) -> None:
        if not self.prompts:
            return
        ledger = self._ledger(tx, customer_id, "sms", "marketing")
        since = max(now - self.window, float(ledger[0][2]) if ledger else now - self.window)
        prompt = latest_prompt(tx, customer_id, self.prompts, since=since, until=now)
        if prompt is None:
            return  # no prompt was sent (recently): a YES is an ordinary reply
        proof = f"{evidence} answering {prompt}" if evidence else str(prompt)
        self._record(tx, customer_id, "sms", "marketing", True, f"webhook:{provider}:YES", now, proof)
