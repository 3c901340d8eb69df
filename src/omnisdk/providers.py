"""The contract a channel plugin implements: one class per provider.

A provider only maps messages to one provider's API. Retries, rate limits, circuit
breaking, consent, quiet hours and fallback are the core's job.

    class EchoSMS(omnisdk.Provider):
        name = "echo"
        channel = "sms"

        @attrs.define
        class Config:
            token: str = omnisdk.secret()

        async def send(self, batch):
            return [omnisdk.Accepted(provider_message_id=m.delivery_id) for m in batch]
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal

import attrs
import httpx

from ._clock import Clock, SystemClock
from ._content import Content
from ._customers import Customer
from ._errors import ProviderError, WebhookError
from ._logging import get_logger
from ._products import InventoryLevel, Variant
from ._secrets import SECRET
from ._signatures import fresh_timestamp, signatures_match, unique_pairs, webhook_json

__all__ = [
    "Accepted",
    "Capabilities",
    "InDoubt",
    "InventoryLevel",
    "NotSent",
    "Outcome",
    "Outgoing",
    "PermanentError",
    "Provider",
    "ProviderError",
    "Reconciliation",
    "RetryableError",
    "StillUnknown",
    "Variant",
    "WebhookError",
    "WebhookEvent",
    "WebhookRequest",
    "WebhookResponse",
    "WebhookResult",
    "absent",
    "event_time",
    "fresh_timestamp",
    "get_logger",
    "http_error_outcome",
    "lookup_error",
    "lookup_window",
    "reconcile_each",
    "response_object",
    "retry_after_seconds",
    "secret",
    "signatures_match",
    "transport_error_outcome",
    "unique_pairs",
    "webhook_json",
]


def secret(default: Any = attrs.NOTHING) -> Any:
    """An attrs field for a secret, the one place it is declared: left out of the `Config`'s repr, and its
    value masked in config reprs, omnisdk's errors and log lines from the moment the `Config` is built."""
    return attrs.field(default=default, repr=False, metadata={SECRET: True})


@attrs.frozen(kw_only=True)
class Capabilities:
    """What the core needs to know to drive a provider well."""

    #: How many `Outgoing` one `send` call may carry (SendGrid: 1000 personalizations).
    max_batch_size: int = 1
    #: The provider deduplicates on our idempotency key (Lob, Square).
    idempotency_keys: bool = False
    #: Default sustained rate, messages per second (None: no limit known).
    rate_limit: float | None = None
    #: Requests in flight at once.
    max_concurrency: int = 32
    #: Content limits the core checks before sending, e.g. {"payload_bytes": 4096}.
    content_limits: Mapping[str, int] = attrs.field(factory=dict)
    #: What to do with a delivery left `sending` by a crash, when the provider has no
    #: idempotency key: "at_most_once" marks it failed (never a duplicate), "at_least_once"
    #: sends it again (never a loss).
    crash_policy: Literal["at_most_once", "at_least_once"] = "at_most_once"
    #: The provider implements `Provider.reconcile`: a delivery whose outcome is unknown is looked
    #: up at the provider before anything else happens to it, and `crash_policy` applies only to
    #: what the lookup cannot settle.
    reconcile: bool = False


@attrs.frozen(kw_only=True)
class Outgoing:
    """One rendered message for one recipient, ready for a provider."""

    delivery_id: str
    idempotency_key: str
    customer_id: str
    #: The channel address: an email, an E.164 phone, a device token, a PSID, a POS customer id.
    to: str
    content: Content
    purpose: str = "marketing"
    customer: Customer | None = None
    #: The customer's postal address (direct mail).
    address: Mapping[str, Any] | None = None
    #: Last time the customer wrote to us on this channel (messaging windows).
    last_inbound_at: datetime | None = None
    #: journey, step, run_id, and links such as the one-click unsubscribe URL.
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    #: True when the core took `to` from the customer's profile, where identifiers are normalised
    #: and checked when recorded (phones valid E.164, emails well formed): a plugin may then
    #: check only its shape instead of validating it again on every send.
    from_profile: bool = False


@attrs.frozen(kw_only=True)
class Accepted:
    """The provider took the message."""

    provider_message_id: str
    cost: float | None = None
    details: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class RetryableError:
    """Try again later (429, 5xx, timeouts); `retry_after` in seconds when the provider said.

    `ambiguous` means the request may have been acted on (a timeout or a dropped connection after
    it was written): like a crash mid-call, the core then follows the provider's `crash_policy`
    instead of retrying blindly.
    """

    reason: str
    retry_after: float | None = None
    status: int | None = None
    ambiguous: bool = False


@attrs.frozen(kw_only=True)
class PermanentError:
    """Never retry this message on this provider. `forget_address` drops a dead token or number."""

    reason: str
    status: int | None = None
    code: str | None = None
    forget_address: bool = False
    #: Try the next channel of the send's waterfall (e.g. WhatsApp outside its window).
    fallback: bool = True


Outcome = Accepted | RetryableError | PermanentError


@attrs.frozen(kw_only=True)
class InDoubt:
    """A message whose send may or may not have reached the provider (a dropped connection after
    the request was written, a read timeout, a crash or cancellation while `sending`).

    `outgoing` is the message as it was sent (same delivery id, recipient and content);
    `attempted_at` is when the call that may have gone out started, so a lookup can bound its window.
    """

    outgoing: Outgoing
    attempted_at: datetime
    #: How many times this delivery has been looked up already (0 the first time).
    lookups: int = 0


@attrs.frozen(kw_only=True)
class NotSent:
    """The provider has no trace of the message: sending it again cannot duplicate it."""

    reason: str


@attrs.frozen(kw_only=True)
class StillUnknown:
    """The lookup could not settle it yet (the provider's index lags, or the lookup failed): ask again
    later, `retry_after` seconds from now when the provider said. The core bounds how often."""

    reason: str
    retry_after: float | None = None


#: One answer of `Provider.reconcile`: `Accepted` (it was sent; the provider's id), `NotSent`, or `StillUnknown`.
Reconciliation = Accepted | NotSent | StillUnknown


def lookup_window(item: InDoubt, now: datetime, *, skew: float) -> tuple[datetime, datetime]:
    """Where a lookup searches: from `skew` seconds before the attempt to `skew` seconds after now, since
    the provider stamps with its own clock, which may run behind or ahead of ours."""
    margin = timedelta(seconds=skew)
    return item.attempted_at - margin, now + margin


def absent(item: InDoubt, now: datetime, *, lag: float, where: str) -> NotSent | StillUnknown:
    """What a lookup that found no trace means: not sent once the provider's index has had `lag` seconds
    since the attempt to show it; before that, ask again when it has."""
    waited = (now - item.attempted_at).total_seconds()
    if waited >= lag:
        return NotSent(reason=f"no trace in {where} {waited:.0f}s after the attempt")
    return StillUnknown(reason=f"not in {where} yet; its index lags up to {lag:.0f}s", retry_after=lag - waited)


async def reconcile_each(
    batch: Sequence[InDoubt], lookup: Callable[[InDoubt], Awaitable[Reconciliation]]
) -> list[Reconciliation]:
    """One lookup per message, in order. A lookup that fails in transport leaves only its own message
    unknown, so one bad answer does not hold up the others."""
    answers: list[Reconciliation] = []
    for item in batch:
        try:
            answers.append(await lookup(item))
        except httpx.TransportError as exc:
            answers.append(StillUnknown(reason=f"lookup failed: {type(exc).__name__}"))
    return answers


def lookup_error(response: httpx.Response, where: str, now: float) -> StillUnknown:
    """A lookup the provider did not answer: ask again, after its Retry-After when it gave one."""
    retry_after = retry_after_seconds(response.headers.get("Retry-After"), now)
    return StillUnknown(reason=f"{where} answered {response.status_code}", retry_after=retry_after)
def event_time(value: Any, *, millis: bool = False) -> datetime | None:
    """A provider's epoch timestamp (seconds, or milliseconds) as an aware datetime; None for anything
    that is not a number in datetime's range (webhook bodies are data from outside)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        return datetime.fromtimestamp(float(value) / (1000 if millis else 1), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def http_error_outcome(
    status: int, reason: str, *, retry_after: float | None = None, code: str | None = None
) -> RetryableError | PermanentError:
    """The usual mapping of an HTTP error: 408, 425, 429 and 5xx are retryable, other 4xx permanent."""
    if status in (408, 425, 429) or status >= 500:
        return RetryableError(reason=reason, retry_after=retry_after, status=status)
    return PermanentError(reason=reason, status=status, code=code)


#: Failures that happen before a request leaves whole, so the provider cannot have acted on it.
_NOT_SENT: tuple[type[BaseException], ...] = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteTimeout, httpx.UnsupportedProtocol,
    httpx.ProxyError, ConnectionRefusedError, socket.gaierror,
)


def response_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is anything else (a proxy's HTML page, an empty body).

    Read a provider's answer with it: an exception out of `send` after a request went out leaves
    the core unable to tell whether the message was taken."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def transport_error_outcome(exc: BaseException, *, request_sent: bool | None = None) -> RetryableError:
    """A timeout or a dropped connection. Retryable; `ambiguous` when the request may have reached the
    provider (a read timeout, a connection closed after the request was written), which is the case
    unless `request_sent=False` or the error (or its cause) shows the request never left."""
    kind = "timeout" if isinstance(exc, httpx.TimeoutException | TimeoutError) else "connection error"
    sent = request_sent if request_sent is not None else not _never_sent(exc)
    reason = f"{kind}: {type(exc).__name__}" + ("; the provider may have accepted it" if sent else "")
    return RetryableError(reason=reason, ambiguous=sent)


def _never_sent(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, _NOT_SENT):
            return True
        if isinstance(seen, httpx.TransportError):
            return False  # httpx named the phase: a read or a protocol error, after the request went out
        seen = seen.__cause__ or seen.__context__
    return False


@attrs.frozen(kw_only=True)
class WebhookRequest:
    """An inbound HTTP request exactly as received: the raw body is what signatures cover."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@attrs.frozen(kw_only=True)
class WebhookResponse:
    status: int = 200
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""

    @classmethod
    def text(cls, status: int, text: str) -> WebhookResponse:
        """A plain-text answer, e.g. the reason a request was refused."""
        return cls(status=status, headers={"content-type": "text/plain; charset=utf-8"}, body=text.encode())


@attrs.frozen(kw_only=True)
class WebhookEvent:
    """What a webhook reported, as a touchpoint to record.

    Tied to a delivery by `provider_message_id` or `delivery_id`, or to a customer by `who`
    (identifiers, e.g. {"phone": "+14155550100"} for an inbound SMS). The core derives delivery
    status and consent changes from `name` (Message Delivered, Message Bounced, Unsubscribed…).
    """

    name: str
    channel: str
    id: str | None = None
    provider_message_id: str | None = None
    delivery_id: str | None = None
    who: Mapping[str, str] = attrs.field(factory=dict)
    properties: Mapping[str, Any] = attrs.field(factory=dict)
    occurred_at: datetime | None = None


@attrs.frozen(kw_only=True)
class WebhookResult:
    """What a verified webhook said: touchpoints to record, catalog updates (a shop's or a POS's
    variants and stock levels, stored in the same transaction), and the answer to give."""

    events: Sequence[WebhookEvent] = ()
    response: WebhookResponse = attrs.field(factory=WebhookResponse)
    catalog: Sequence[Variant | InventoryLevel] = ()


class Provider:
    """Base class of provider plugins. Subclasses set the class attributes and implement `send`."""

    name: ClassVar[str]
    channel: ClassVar[str]
    Config: ClassVar[type]
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: The HTTP methods the provider's webhooks use; the core answers any other with 405.
    webhook_methods: ClassVar[frozenset[str]] = frozenset({"POST"})

    def __init__(self, config: Any, *, http: httpx.AsyncClient, clock: Clock | None = None) -> None:
        self.config = config
        self.http = http
        self.clock: Clock = clock or SystemClock()

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[Outcome]:
        """Send up to `capabilities.max_batch_size` messages; one outcome per message, in order."""
        raise NotImplementedError

    async def reconcile(self, batch: Sequence[InDoubt]) -> Sequence[Reconciliation]:
        """Ask the provider what became of messages whose send outcome is unknown; one answer per item,
        in order. Only called when `capabilities.reconcile` is true. An exception or a wrong number of
        answers counts as `StillUnknown` for the whole batch."""
        raise NotImplementedError

    async def check_credentials(self) -> Sequence[str]:
        """Problems with the configured credentials, in plain words, found by a harmless authenticated call
        where the provider's API has one (`omnisdk doctor`); empty when none were found or none can be checked."""
        return ()

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Raise `WebhookError` unless the request is authentic. Called before anything is parsed."""
        raise WebhookError(f"provider {self.name!r} does not accept webhooks", status=404)

    def parse_webhook(self, request: WebhookRequest) -> WebhookResult:
        """Turn a verified request into events, and the HTTP answer the provider expects."""
        return WebhookResult()

    def webhook_nonce(self, request: WebhookRequest) -> str | None:
        """The signed value that makes a verified request unique (Mailgun's token), if the scheme has
        one. The core remembers it: the same nonce with other content is refused as a replay. None:
        the digest of the body serves (of the URL for a bodiless GET), so an identical repeat is
        acknowledged and records nothing, and the same body on another URL or method is refused."""
        return None

    async def aclose(self) -> None:
        """Release pooled connections (SMTP pools, HTTP/2 sessions)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.channel}/{self.name} {self.config!r}>"
