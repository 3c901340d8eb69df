"""Turning push service answers into outcomes, one request per message.

The three services share HTTP's meaning of a status (the core's `http_error_outcome`) and each
adds its own reason codes on top: which ones mean "this device is gone" and which mean "later".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence

import attrs
import httpx

from omnisdk import Outgoing, PermanentError, RetryableError
from omnisdk.providers import Outcome, http_error_outcome, retry_after_seconds, transport_error_outcome

__all__ = ["failure", "send_each"]


def failure(
    response: httpx.Response,
    reason: str,
    now: float,
    *,
    code: str | None = None,
    forget_codes: Collection[str] = (),
    forget_statuses: Collection[int] = (),
    retry_codes: Collection[str] = (),
) -> Outcome:
    """A non-2xx answer; a dead device token (by status or code) is forgotten, a retryable code retried."""
    status = response.status_code
    wait = retry_after_seconds(response.headers.get("retry-after"), now)
    if code is not None and code in retry_codes:
        return RetryableError(reason=reason, retry_after=wait, status=status)
    outcome = http_error_outcome(status, reason, retry_after=wait, code=code)
    if isinstance(outcome, PermanentError) and (status in forget_statuses or code in forget_codes):
        return attrs.evolve(outcome, forget_address=True)
    return outcome


async def send_each(batch: Sequence[Outgoing], send_one: Callable[[Outgoing], Awaitable[Outcome]]) -> list[Outcome]:
    """One request per message (the core runs sends concurrently); a network failure is a retryable outcome."""
    outcomes: list[Outcome] = []
    for message in batch:
        try:
            outcomes.append(await send_one(message))
        except httpx.TransportError as exc:
            outcomes.append(transport_error_outcome(exc))
    return outcomes
