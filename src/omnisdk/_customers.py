"""The unified customer: identities from every channel, traits, consent, time zone and locale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

import attrs

__all__ = [
    "DEVICE_KINDS",
    "IDENTITY_KINDS",
    "PERSON_KINDS",
    "PURPOSES",
    "Consent",
    "Customer",
    "Identity",
    "Merge",
    "Prediction",
]

#: Identifier kinds the core knows, in priority order (used when two profiles must be merged).
#: Kinds a vendor brings (a POS's customer id, a messaging app's user id) are declared by its
#: plugin (`register_identity_kinds`) and rank after the person kinds or the device kinds.
PERSON_KINDS: Final = ("user_id", "email", "phone", "loyalty_id", "pos_customer_id")
DEVICE_KINDS: Final = ("push_token", "apns_token", "fcm_token", "webpush_endpoint")
IDENTITY_KINDS: Final = (*PERSON_KINDS, *DEVICE_KINDS, "anonymous_id")

PURPOSES: Final = ("marketing", "transactional")
Purpose = Literal["marketing", "transactional"]


@attrs.frozen
class Identity:
    kind: str
    value: str


@attrs.frozen(kw_only=True)
class Consent:
    """One entry of the consent ledger: the latest entry per channel and purpose wins.

    `source` says who changed it ("webhook:twilio", "checkout-form"); `evidence` what the change
    rests on, when there is a record of it (the provider's message id of a STOP reply).
    """

    channel: str
    purpose: str
    granted: bool
    source: str
    recorded_at: datetime
    evidence: str | None = None


@attrs.frozen(kw_only=True)
class Merge:
    """A record of two profiles becoming one: `loser_id`'s touchpoints now belong to `winner_id`."""

    winner_id: str
    loser_id: str
    reason: str
    merged_at: datetime


@attrs.frozen(kw_only=True)
class Prediction:
    """The customer's predicted value, as last scored (`omni.predict_value`): purchases expected over the
    next `horizon_days`, the probability they are still a customer (`churn_risk` is its complement), the
    expected order value and the discounted CLV over the horizon. `stale` after a merge, until rescored."""

    expected_purchases: float
    probability_alive: float
    churn_risk: float
    expected_order_value: float
    predicted_clv: float
    horizon_days: float
    scored_at: datetime
    stale: bool = False


@attrs.frozen(kw_only=True)
class Customer:
    """A unified profile. Read-only: change it through `Omni.identify` and `Omni.consent`."""

    id: str
    identities: Sequence[Identity] = ()
    traits: Mapping[str, Any] = attrs.field(factory=dict)
    timezone: str | None = None
    locale: str | None = None
    address: Mapping[str, Any] | None = None
    preferred_channels: Sequence[str] = ()
    consents: Sequence[Consent] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: The latest predicted value (None until `omni.predict_value` scored a purchase of theirs).
    prediction: Prediction | None = None

    def identifiers(self, kind: str) -> list[str]:
        return [i.value for i in self.identities if i.kind == kind]

    def identifier(self, kind: str) -> str | None:
        values = self.identifiers(kind)
        return values[-1] if values else None

    @property
    def email(self) -> str | None:
        return self.identifier("email")

    @property
    def phone(self) -> str | None:
        return self.identifier("phone")

    @property
    def first_name(self) -> Any:
        return self.traits.get("first_name")

    @property
    def predicted_clv(self) -> float | None:
        return None if self.prediction is None else self.prediction.predicted_clv

    @property
    def churn_risk(self) -> float | None:
        return None if self.prediction is None else self.prediction.churn_risk

    @property
    def expected_purchases(self) -> float | None:
        return None if self.prediction is None else self.prediction.expected_purchases

    @property
    def probability_alive(self) -> float | None:
        return None if self.prediction is None else self.prediction.probability_alive

    def consent_for(self, channel: str, purpose: str = "marketing") -> Consent | None:
        """The customer's current consent entry for a channel and purpose (an "all" entry counts too)."""
        latest = None
        for entry in self.consents:
            matches = entry.channel in (channel, "all") and entry.purpose == purpose
            if matches and (latest is None or entry.recorded_at >= latest.recorded_at):
                latest = entry
        return latest

    def has_consent(self, channel: str, purpose: str = "marketing") -> bool:
        """Marketing needs an explicit grant; transactional is allowed unless revoked."""
        entry = self.consent_for(channel, purpose)
        if entry is None:
            return purpose == "transactional"
        return entry.granted

    def __getattr__(self, name: str) -> Any:
        # Templates say {{ customer.first_name }}: traits read as attributes.
        traits = object.__getattribute__(self, "traits")
        if name in traits:
            return traits[name]
        raise AttributeError(name)
