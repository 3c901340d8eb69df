"""Retargeting: keep a Meta Custom Audience in step with the customers a segment or a journey picks.

Identifiers are normalised exactly as Meta's own `facebook-business` SDK does for customer lists
(`CustomAudienceMixin.normalize_key`), so a row hashes to what Meta hashed from the same person, and
SHA-256 hashed here, so no personal data leaves in clear. `EXTERN_ID`, our customer id, goes raw:
Meta matches it as given and does not accept it hashed. Only customers who consented to marketing
on the consent channel (social, by default) are added; removing is always allowed, and `sync`
removes everyone who withdrew.

In a journey, the helpers record the call as a step, so a replay does not upload again:

    await add_to_audience(ctx, "retarget", audience)        # after the abandoned-cart message
    if await ctx.wait_for("bought", "Order Completed", timeout=timedelta(days=7)):
        await remove_from_audience(ctx, "converted", audience)
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import httpx

import omnisdk
from omnisdk import ConfigError, Customer, ProviderError
from omnisdk.providers import retry_after_seconds

from ._graph import graph_error

__all__ = [
    "SCHEMA",
    "UNHASHED",
    "AudienceError",
    "AudienceSync",
    "MetaAudience",
    "add_to_audience",
    "audience_row",
    "remove_from_audience",
]

#: The multi-key schema we upload: every key Meta can match on that a profile usually has.
SCHEMA = ("EMAIL", "PHONE", "FN", "LN", "CT", "ST", "ZIP", "COUNTRY", "EXTERN_ID")
#: Meta accepts at most 10,000 rows per request.
MAX_BATCH = 10_000
#: Keys Meta matches as sent; every other key is SHA-256 hashed.
UNHASHED = frozenset({"EXTERN_ID"})
#: What the SDK strips from both ends of every value, before lower-casing it.
_EDGES = " \t\r\n\0\x0b."
_NOT_LETTERS = re.compile(r"[^a-z]")
_NOT_DIGITS = re.compile(r"[^0-9]")


class AudienceError(ProviderError):
    """Meta refused an upload; `retryable` with `retry_after` when it was a rate limit or an outage."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@attrs.frozen(kw_only=True)
class AudienceSync:
    """What one call did. Counts of customers, not of identifiers."""

    added: int = 0
    removed: int = 0
    skipped_no_consent: int = 0
    skipped_no_identifiers: int = 0
    #: Rows Meta received but could not use (Meta's num_invalid_entries).
    invalid: int = 0

    def __add__(self, other: AudienceSync) -> AudienceSync:
        names = [f.name for f in attrs.fields(AudienceSync)]
        return AudienceSync(**{name: getattr(self, name) + getattr(other, name) for name in names})


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _clean(value: object) -> str:
    return str(value).strip(_EDGES).lower()


def _letters(value: str) -> str:
    """Names and places: ASCII letters only. Accented letters are dropped, not folded, as the SDK does."""
    return _NOT_LETTERS.sub("", _clean(value))


def _normalised(customer: Customer) -> dict[str, str]:
    """Each key's value as `facebook-business` normalises it; empty when unknown (then not sent)."""
    address: Mapping[str, Any] = customer.address or {}
    traits = customer.traits

    def text(*keys: str, source: Mapping[str, Any]) -> str:
        return next((str(source[k]) for k in keys if source.get(k)), "")

    country = _letters(text("country", "country_code", source=address))
    return {
        "EMAIL": _clean(customer.email or ""),
        "PHONE": _NOT_DIGITS.sub("", _clean(customer.phone or "")),
        "FN": _letters(text("first_name", source=traits)),
        "LN": _letters(text("last_name", source=traits)),
        "CT": _letters(text("city", source=address)),
        "ST": _letters(text("state", "region", source=address)),
        "ZIP": _clean(text("postal_code", "zip", source=address)).split("-")[0],
        # The SDK keeps the first two letters; a name ("usa", "united states") would become a wrong code.
        "COUNTRY": country if len(country) == 2 else "",
        "EXTERN_ID": _clean(customer.id),
    }


def audience_row(customer: Customer) -> dict[str, str] | None:
    """The customer's identifiers by `SCHEMA` key (only those known), hashed but for `UNHASHED`, or None
    when there is neither an email nor a phone: names and places alone match nobody reliably."""
    values = _normalised(customer)
    if not (values["EMAIL"] or values["PHONE"]):
        return None
    return {key: values[key] if key in UNHASHED else _sha256(values[key]) for key in SCHEMA if values[key]}


class MetaAudience:
    """One Custom Audience (customer list) of an ad account."""

    @attrs.define(kw_only=True)
    class Config:
        audience_id: str
        #: A system user token with ads_management on the ad account.
        access_token: str = omnisdk.secret()
        base_url: str = "https://graph.facebook.com"
        api_version: str = "v21.0"
        #: The consent ledger entry (marketing purpose) that allows ads to a customer.
        consent_channel: str = "social"
        batch_size: int = MAX_BATCH

        def __attrs_post_init__(self) -> None:
            if not self.audience_id.isdigit():
                raise ConfigError("the Custom Audience's numeric id", field="audience_id")
            if not 1 <= self.batch_size <= MAX_BATCH:
                raise ConfigError(f"must be 1 to {MAX_BATCH} rows", field="batch_size")

    def __init__(self, config: Config, *, http: httpx.AsyncClient) -> None:
        self.config = config
        self.http = http

    def __repr__(self) -> str:
        return f"<MetaAudience {self.config.audience_id}>"

    async def add(self, customers: Iterable[Customer]) -> AudienceSync:
        """Add the consenting customers; the others are counted as skipped."""
        consenting, refused = _by_consent(customers, self.config.consent_channel)
        return await self._upload("POST", consenting, "added") + AudienceSync(skipped_no_consent=len(refused))

    async def remove(self, customers: Iterable[Customer]) -> AudienceSync:
        """Remove customers whatever their consent (withdrawing is what consent asks for)."""
        return await self._upload("DELETE", list(customers), "removed")

    async def sync(self, customers: Iterable[Customer]) -> AudienceSync:
        """Add the consenting customers and remove those who withdrew, in one pass over a segment."""
        consenting, refused = _by_consent(customers, self.config.consent_channel)
        return await self._upload("POST", consenting, "added") + await self._upload("DELETE", refused, "removed")

    async def _upload(self, method: str, customers: Sequence[Customer], counter: str) -> AudienceSync:
        # Rows are grouped by the keys they have, so no row carries an empty field.
        groups: dict[tuple[str, ...], list[list[str]]] = {}
        unmatchable = 0
        for customer in customers:
            row = audience_row(customer)
            if row is None:
                unmatchable += 1
            else:
                groups.setdefault(tuple(row), []).append(list(row.values()))
        result = AudienceSync(skipped_no_identifiers=unmatchable)
        size = self.config.batch_size
        batches = [(keys, rows[i:i + size]) for keys, rows in groups.items() for i in range(0, len(rows), size)]
        session_id = secrets.randbits(63)
        total = sum(len(rows) for rows in groups.values())
        for seq, (keys, batch) in enumerate(batches, start=1):
            body = {
                "payload": {"schema": list(keys), "data": batch},
                "session": {"session_id": session_id, "batch_seq": seq, "last_batch_flag": seq == len(batches),
                            "estimated_num_total": total},
            }
            answer = await self._request(method, body)
            invalid = int(answer.get("num_invalid_entries") or 0)
            result += AudienceSync(invalid=invalid, **{counter: len(batch)})
        return result

    async def _request(self, method: str, body: Mapping[str, Any]) -> dict[str, Any]:
        url = f"{self.config.base_url.rstrip('/')}/{self.config.api_version}/{self.config.audience_id}/users"
        try:
            response = await self.http.request(
                method, url, json=body, headers={"Authorization": f"Bearer {self.config.access_token}"}
            )
        except httpx.TransportError as exc:
            raise AudienceError(f"audience {self.config.audience_id}: {type(exc).__name__}", retryable=True) from None
        if response.is_success:
            answer = response.json()
            return answer if isinstance(answer, dict) else {}
        error = graph_error(response)
        raise AudienceError(
            f"audience {self.config.audience_id}: Graph error {error.key()}: {error.message}",
            retryable=response.status_code == 429 or response.status_code >= 500 or error.code in (4, 17, 613),
            retry_after=retry_after_seconds(response.headers.get("retry-after"), 0.0),
        )


def _by_consent(customers: Iterable[Customer], channel: str) -> tuple[list[Customer], list[Customer]]:
    consenting: list[Customer] = []
    refused: list[Customer] = []
    for customer in customers:
        (consenting if customer.has_consent(channel, "marketing") else refused).append(customer)
    return consenting, refused


async def _add_customer(audience: MetaAudience, customer: Customer) -> dict[str, int]:
    return attrs.asdict(await audience.add([customer]))


async def _remove_customer(audience: MetaAudience, customer: Customer) -> dict[str, int]:
    return attrs.asdict(await audience.remove([customer]))


async def add_to_audience(ctx: Any, step: str, audience: MetaAudience) -> dict[str, int]:
    """In a journey: add the run's customer to the audience once (a memoised `ctx.run` step)."""
    result: dict[str, int] = await ctx.run(step, _add_customer, audience, ctx.customer)
    return result


async def remove_from_audience(ctx: Any, step: str, audience: MetaAudience) -> dict[str, int]:
    """In a journey: take the run's customer out of the audience once, e.g. after they converted."""
    result: dict[str, int] = await ctx.run(step, _remove_customer, audience, ctx.customer)
    return result
