"""What Messenger, WhatsApp Cloud and Custom Audiences share: the Graph API's errors and Meta's webhooks.

Meta signs every webhook POST with `X-Hub-Signature-256: sha256=<hex HMAC of the raw body>` under
the app secret, and checks a subscription with a GET carrying the verify token we chose.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from omnisdk import PermanentError, RetryableError, WebhookError, WebhookRequest, WebhookResponse, WebhookResult
from omnisdk.providers import http_error_outcome, retry_after_seconds, signatures_match, webhook_json

__all__ = [
    "MESSAGING_WINDOW",
    "GraphError",
    "graph_error",
    "graph_outcome",
    "handshake",
    "in_window",
    "json_object",
    "obj",
    "objs",
    "text",
    "verify_meta_webhook",
]

#: Meta's customer-service window: free-form messages within 24 hours of the customer's last message.
MESSAGING_WINDOW = timedelta(hours=24)
#: Graph error codes that mean "slow down" or "try again", whatever the HTTP status.
RETRY_CODES = frozenset({1, 2, 4, 17, 32, 613, 80007, 130429, 131000, 131016, 131048, 131056})


class GraphError:
    """The `error` object of a Graph API answer."""

    def __init__(self, status: int, code: int | None, subcode: int | None, message: str) -> None:
        self.status, self.code, self.subcode, self.message = status, code, subcode, message

    def key(self) -> str:
        return f"{self.code}/{self.subcode}" if self.subcode else str(self.code)


def graph_error(response: httpx.Response) -> GraphError:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):  # a proxy or an outage page, not the Graph API
        error = {"message": str(error)}
    code, subcode = error.get("code"), error.get("error_subcode")
    return GraphError(
        response.status_code,
        code if isinstance(code, int) else None,
        subcode if isinstance(subcode, int) else None,
        str(error.get("message") or response.reason_phrase),
    )


def graph_outcome(
    response: httpx.Response,
    now: float,
    *,
    forget_codes: frozenset[str] = frozenset(),
) -> RetryableError | PermanentError:
    """A failed send: Graph rate limits and transient codes retry; the rest fail (falling back to the next
    channel), naming Meta's code; `forget_codes` ("code" or "code/subcode") mean the address is dead."""
    error = graph_error(response)
    reason = f"Graph error {error.key()}: {error.message}"
    wait = retry_after_seconds(response.headers.get("retry-after"), now)
    if error.code in RETRY_CODES:
        return RetryableError(reason=reason, retry_after=wait, status=error.status)
    outcome = http_error_outcome(error.status, reason, retry_after=wait, code=error.key())
    if isinstance(outcome, PermanentError):
        keys = {error.key(), str(error.code)}
        return PermanentError(reason=reason, status=error.status, code=error.key(),
                              forget_address=bool(keys & forget_codes))
    return outcome


def in_window(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Whether the customer wrote to us within the last 24 hours."""
    return last_inbound_at is not None and now - last_inbound_at < MESSAGING_WINDOW


def _query(request: WebhookRequest) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))


def verify_meta_webhook(request: WebhookRequest, *, app_secret: str, verify_token: str) -> None:
    """A GET must carry our verify token; a POST must be signed with the app secret."""
    if request.method.upper() == "GET":
        query = _query(request)
        if query.get("hub.mode") != "subscribe" or not verify_token:
            raise WebhookError("not a subscription check (hub.mode=subscribe)", status=403)
        if not signatures_match(verify_token, query.get("hub.verify_token", "")):
            raise WebhookError("hub.verify_token does not match", status=403)
        return
    header = request.header("X-Hub-Signature-256") or ""
    if not header.startswith("sha256="):
        raise WebhookError("missing X-Hub-Signature-256", status=401)
    expected = hmac.new(app_secret.encode(), request.body, hashlib.sha256).hexdigest()
    if not signatures_match(expected, header[len("sha256="):].strip().lower()):
        raise WebhookError("X-Hub-Signature-256 does not match the body", status=401)


def handshake(request: WebhookRequest) -> WebhookResult | None:
    """The answer to a verified subscription check: echo hub.challenge. None for a POST."""
    if request.method.upper() != "GET":
        return None
    challenge = _query(request).get("hub.challenge", "")
    return WebhookResult(response=WebhookResponse(headers={"Content-Type": "text/plain"}, body=challenge.encode()))



def obj(value: Any) -> Mapping[str, Any]:
    """A part of a notification that should be an object: anything else reads as empty."""
    return value if isinstance(value, Mapping) else {}


def objs(value: Any) -> list[Mapping[str, Any]]:
    """A part that should be a list of objects: the objects in it, if it is a list."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def text(value: Any) -> str | None:
    """A part that should be a non-empty string (ids, names, texts)."""
    return value if isinstance(value, str) and value else None


def json_object(request: WebhookRequest) -> dict[str, Any]:
    """The body of a verified POST as a JSON object, or a 400 saying it is not one."""
    data = webhook_json(request.body, provider="meta")
    if not isinstance(data, dict):
        raise WebhookError("body is not a JSON object", status=400)
    return data
