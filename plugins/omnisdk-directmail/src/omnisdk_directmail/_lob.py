"""Lob print & mail: postcards and letters, each preceded by an address verification.

Every create carries our idempotency key as `Idempotency-Key`, so a retry after a timeout never
prints a second piece. Lob's answer has no price, so the cost recorded on the delivery comes from
the `prices` table in the config (your contract's rates).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar

import attrs
import httpx

import omnisdk
from omnisdk import (
    Accepted,
    Capabilities,
    ConfigError,
    Letter,
    Outgoing,
    PermanentError,
    Postcard,
    Provider,
    RetryableError,
    WebhookRequest,
    WebhookResult,
)
from omnisdk.providers import Outcome, transport_error_outcome

from ._address import US_REGIONS, AddressProblem, verification_request, verified_address
from ._http import error_outcome
from ._lob_webhooks import parse_tracking_event, verify_signature

__all__ = ["LobDirectMail"]

MAX_HTML = 10_000
MAX_IDEMPOTENCY_KEY = 256
#: Lob's `use_type` for our send purposes.
USE_TYPES: Mapping[str, str] = {"marketing": "marketing", "transactional": "operational"}
FROM_FIELDS = (("name", "name"), ("line1", "address_line1"), ("line2", "address_line2"),
               ("city", "address_city"), ("state", "address_state"), ("postal_code", "address_zip"))


def _return_address(value: Any) -> dict[str, str]:
    """The sender as Lob prints it, from omnisdk's address form (name, line1, city, state, postal_code)."""
    if not isinstance(value, Mapping):
        raise ConfigError("must be a table (name, line1, line2, city, state, postal_code)", field="from_address")
    for key in ("name", "line1", "city", "state", "postal_code"):
        if not isinstance(value.get(key), str) or not value[key].strip():
            raise ConfigError("is required for Lob's return address", field=f"from_address.{key}")
    country = str(value.get("country") or "US").upper()
    if country not in US_REGIONS:
        raise ConfigError("Lob mails from US addresses only", field="from_address.country")
    lob = {lob_key: str(value[key]).strip() for key, lob_key in FROM_FIELDS if value.get(key)}
    lob["address_country"] = "US"
    return lob


def _non_negative(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not isinstance(value, int | float) or value < 0:
        raise ConfigError("must be a number >= 0", field=attribute.name)


class LobDirectMail(Provider):
    """`[channels.direct_mail] provider = "lob"`: postcards (`omnisdk.Postcard`) and letters (`omnisdk.Letter`)."""

    name = "lob"
    channel = "direct_mail"
    # Lob allows 150 requests per 5 s; each piece costs two (verification + create).
    capabilities = Capabilities(max_batch_size=1, idempotency_keys=True, rate_limit=30.0, max_concurrency=8,
                                content_limits={"html_chars": MAX_HTML})

    @attrs.define(kw_only=True)
    class Config:
        api_key: str = omnisdk.secret()
        #: The return address printed on every piece (omnisdk's address form).
        from_address: dict[str, str] = attrs.field(converter=_return_address)
        base_url: str = "https://api.lob.com"
        #: Lob signs tracking webhooks with it (Settings → Webhooks).
        webhook_secret: str = omnisdk.secret(default="")
        #: How old a signed webhook timestamp may be before it counts as a replay.
        webhook_tolerance_seconds: float = attrs.field(default=300.0, validator=_non_negative)
        #: Days between the send and Lob's `send_date`: the window in which a piece can still be cancelled.
        lead_time_days: float = attrs.field(default=0.0, validator=_non_negative)
        #: "usps_first_class" (Lob's default) or "usps_standard"; None leaves Lob's default.
        mail_type: str | None = None
        #: Also refuse addresses Lob finds deliverable only to the building (missing or wrong unit).
        strict_verification: bool = False
        #: Cost per piece recorded on the delivery: keys "postcard_4x6", "postcard_6x9", "postcard_6x11",
        #: "letter", "letter_color".
        prices: dict[str, float] = attrs.field(factory=dict)

    config: Config
    _content_paths: ClassVar[Mapping[type, str]] = {Postcard: "/postcards", Letter: "/letters"}

    def _auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.config.api_key, "")

    async def _post(self, path: str, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
                    ) -> httpx.Response | RetryableError:
        try:
            return await self.http.post(f"{self.config.base_url.rstrip('/')}/v1{path}", json=body,
                                        auth=self._auth(), headers=headers)
        except httpx.TransportError as exc:
            return transport_error_outcome(exc)

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[Outcome]:
        return [await self._send_one(message) for message in batch]

    async def _send_one(self, message: Outgoing) -> Outcome:
        content = message.content
        path = self._content_paths.get(type(content))
        if path is None:
            return PermanentError(reason=f"Lob prints Postcard or Letter content, not {type(content).__name__}",
                                  code="unsupported_content")
        if any(len(part) > MAX_HTML for part in _html_parts(content)):
            return PermanentError(reason=f"Lob takes HTML of at most {MAX_HTML} characters", code="content_too_large")
        try:
            verify_path, verify_body = verification_request(message.address)
        except AddressProblem as exc:
            return PermanentError(reason=str(exc), code="invalid_address")
        answer = await self._post(verify_path, verify_body)
        if isinstance(answer, RetryableError):
            return answer
        if answer.is_error:
            return error_outcome(answer, self.clock.timestamp())
        try:
            address = verified_address(answer.json(), self._recipient(message),
                                       us=verify_path == "/us_verifications", strict=self.config.strict_verification)
        except AddressProblem as exc:
            return PermanentError(reason=str(exc), code="undeliverable_address")
        if isinstance(content, Postcard) and address.international and content.size != "4x6":
            return PermanentError(reason="Lob mails only 4x6 postcards abroad", code="unsupported_size")
        answer = await self._post(path, self._piece(message, address.to),
                                  headers={"Idempotency-Key": _idempotency_key(message.idempotency_key)})
        if isinstance(answer, RetryableError):
            return answer
        if answer.is_error:
            return error_outcome(answer, self.clock.timestamp())
        piece = answer.json()
        return Accepted(
            provider_message_id=str(piece["id"]),
            cost=self._price(content),
            details={key: piece[key] for key in ("expected_delivery_date", "send_date") if piece.get(key)}
            | {"deliverability": address.deliverability},
        )

    def _recipient(self, message: Outgoing) -> str:
        name = (message.address or {}).get("name")
        if isinstance(name, str) and name.strip():
            return name.strip()
        traits = message.customer.traits if message.customer is not None else {}
        return " ".join(str(traits[k]) for k in ("first_name", "last_name") if traits.get(k))

    def _piece(self, message: Outgoing, to: Mapping[str, str]) -> dict[str, Any]:
        content = message.content
        body: dict[str, Any] = {
            "to": dict(to),
            "from": self.config.from_address,
            "use_type": USE_TYPES.get(message.purpose, "marketing"),
            # Ties tracking webhooks back to the delivery; Lob metadata must carry no personal data.
            "metadata": {"omnisdk_delivery_id": message.delivery_id},
        }
        if isinstance(content, Postcard):
            body.update(front=content.front_html, back=content.back_html, size=content.size)
        elif isinstance(content, Letter):
            body.update(file=content.html, color=content.color)
        if self.config.mail_type:
            body["mail_type"] = self.config.mail_type
        if self.config.lead_time_days:
            send_at = self.clock.now() + timedelta(days=self.config.lead_time_days)
            body["send_date"] = send_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        return body

    def _price(self, content: object) -> float | None:
        if isinstance(content, Postcard):
            key = f"postcard_{content.size}"
        else:
            key = "letter_color" if getattr(content, "color", False) else "letter"
        price = self.config.prices.get(key)
        return float(price) if price is not None else None

    def verify_webhook(self, request: WebhookRequest) -> None:
        verify_signature(request, self.config.webhook_secret, now=self.clock.timestamp(),
                         tolerance=self.config.webhook_tolerance_seconds)

    def parse_webhook(self, request: WebhookRequest) -> WebhookResult:
        return parse_tracking_event(request)


def _html_parts(content: object) -> tuple[str, ...]:
    if isinstance(content, Postcard):
        return (content.front_html, content.back_html)
    return (content.html,) if isinstance(content, Letter) else ()


def _idempotency_key(key: str) -> str:
    """Lob takes at most 256 characters; longer keys are hashed (still unique, still stable)."""
    return key if len(key) <= MAX_IDEMPOTENCY_KEY else hashlib.sha256(key.encode()).hexdigest()
