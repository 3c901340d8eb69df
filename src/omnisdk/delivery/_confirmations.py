"""Double opt-in: a marketing grant on a configured channel waits for the customer's confirmation.

`[consent.double_opt_in] email = true` makes `omni.consent(..., channel="email", granted=True)`
store a pending request and queue a transactional confirmation email (template
`email_template`, default "confirm-subscription") whose `data.confirm_url` is a signed link that
expires with the request (`expiry`, default 7 days); consent is granted only when that link's
form is posted, with the time, IP and user agent as evidence. `sms = true` queues the
`sms_template` prompt (default "confirm-sms"); a YES reply through the inbound webhook grants SMS
marketing, with the reply's message id as evidence (`webhooks.double_opt_in_window_seconds`
bounds how long a YES still answers it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from .._errors import ConfigError, WebhookError
from .._touchpoints import new_id
from ..policies import parse_duration
from ..store import Transaction
from ..store._consents import insert_consent
from ..store._preferences import OptInRequest, confirm_opt_in, expire_opt_ins, insert_opt_in, opt_in
from ._outbox import enqueue_delivery

__all__ = ["DoubleOptIn"]

_CHANNELS: Final = ("email", "sms")
_DEFAULT_TEMPLATES: Final = {"email": "confirm-subscription", "sms": "confirm-sms"}
DEFAULT_EXPIRY: Final = 7 * 86400.0


@attrs.frozen(kw_only=True)
class DoubleOptIn:
    """`[consent.double_opt_in]`: the channels whose marketing grants need a confirmation."""

    channels: frozenset[str] = frozenset()
    templates: Mapping[str, str] = attrs.field(factory=lambda: dict(_DEFAULT_TEMPLATES))
    expiry: float = DEFAULT_EXPIRY

    @classmethod
    def from_config(cls, section: Any) -> DoubleOptIn:
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise ConfigError("must be a table", field="consent")
        for key in section:
            if key != "double_opt_in":
                raise ConfigError("unknown key; expected double_opt_in", field=f"consent.{key}")
        table = section.get("double_opt_in", {})
        where = "consent.double_opt_in"
        if not isinstance(table, Mapping):
            raise ConfigError("must be a table", field=where)
        known = (*_CHANNELS, "email_template", "sms_template", "expiry")
        channels = set()
        for key, value in table.items():
            if key not in known:
                raise ConfigError(f"unknown key; expected one of {', '.join(known)}", field=f"{where}.{key}")
            if key in _CHANNELS:
                if not isinstance(value, bool):
                    raise ConfigError("expected true or false", field=f"{where}.{key}")
                if value:
                    channels.add(key)
        templates = dict(_DEFAULT_TEMPLATES)
        for channel in _CHANNELS:
            name = table.get(f"{channel}_template")
            if name is not None:
                if not isinstance(name, str) or not name:
                    raise ConfigError("expected a template name", field=f"{where}.{channel}_template")
                templates[channel] = name
        expiry = parse_duration(table.get("expiry", DEFAULT_EXPIRY), f"{where}.expiry")
        if expiry <= 0:
            raise ConfigError("expected a positive duration", field=f"{where}.expiry")
        return cls(channels=frozenset(channels), templates=templates, expiry=expiry)

    def applies(self, channel: str, purpose: str, granted: bool) -> bool:
        return granted and purpose == "marketing" and channel in self.channels

    def request(self, tx: Transaction, customer_id: str, channel: str, *, source: str, now: float,
                confirm_url: Any) -> OptInRequest:
        """Store a pending request and queue its confirmation message (transactional: it asks, it does not sell).
        `confirm_url(customer_id, channel, request_id, expires_at)` signs the email's link."""
        expire_opt_ins(tx, now)
        request = OptInRequest(id="optin_" + new_id(), customer_id=customer_id, channel=channel, purpose="marketing",
                               source=source, status="pending", requested_at=now, expires_at=now + self.expiry)
        insert_opt_in(tx, request)
        data = {"opt_in_id": request.id}
        if channel == "email":
            data["confirm_url"] = confirm_url(customer_id, channel, request.id, expires_at=request.expires_at)
        enqueue_delivery(tx, key=f"optin:{request.id}", customer_id=customer_id, template=self.templates[channel],
                         channels=[channel], now=now, purpose="transactional", data=data)
        return request

    def confirm(self, tx: Transaction, request_id: str, customer_id: str, *, evidence: str, now: float) -> OptInRequest:
        """Grant the request's consent, once; `WebhookError` 410 when it expired, 409 when already used."""
        found = opt_in(tx, request_id)
        if found is None or found.customer_id != customer_id:
            raise WebhookError("no such confirmation request", status=403)
        if found.status == "confirmed":
            return found
        if found.status != "pending" or found.expires_at <= now:
            expire_opt_ins(tx, now)
            raise WebhookError("this confirmation link has expired", status=410)
        proof = f"{request_id} confirmed: {evidence}"
        confirm_opt_in(tx, request_id, proof, now)
        insert_consent(tx, found.customer_id, found.channel, found.purpose, True, f"double-opt-in:{found.source}",
                       now, proof[:1024])
        return attrs.evolve(found, status="confirmed", confirmed_at=now, evidence=proof)
