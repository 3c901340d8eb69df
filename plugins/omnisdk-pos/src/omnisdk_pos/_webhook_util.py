"""What the Square and Shopify parsers share: HMAC checks, JSON bodies, and defensive readers.

Webhooks and API answers are data from outside. The readers here turn a field of the wrong type
or an unparsable number into "absent" (an empty mapping or list, None), so a parser skips what it
cannot use instead of raising `ValueError`, `TypeError` or `KeyError` out of a webhook handler
or a template filter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from omnisdk import WebhookError
from omnisdk.providers import signatures_match, webhook_json

__all__ = ["as_id", "as_list", "as_mapping", "check_hmac_sha256", "decimal_amount", "json_body", "minor_units",
           "timestamp"]

#: ISO 4217 currencies without minor units (Square's amounts are in the smallest unit).
ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
                          "XAF", "XOF", "XPF"})


def check_hmac_sha256(secret: str, message: bytes, signature: str | None, *, provider: str, header: str) -> None:
    """Raise `WebhookError` (401) unless `signature` is base64(HMAC-SHA256(secret, message))."""
    if not secret:
        raise WebhookError(f"{provider} webhooks need a signing secret in the pos channel config", status=401)
    if not signature:
        raise WebhookError(f"{provider} webhook without the {header} header", status=401)
    expected = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    if not signatures_match(expected, signature.strip()):
        raise WebhookError(f"{header} does not match the body", status=401)


def json_body(body: bytes, provider: str) -> dict[str, Any]:
    payload = webhook_json(body, provider=provider)
    if not isinstance(payload, dict):
        raise WebhookError(f"{provider} webhook body is not a JSON object", status=400)
    return payload


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_id(value: Any) -> str | None:
    """An identifier as text: a non-empty string or an integer (Shopify's ids); anything else is None."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def minor_units(money: Any) -> tuple[float | None, str | None]:
    """Square's {"amount": 1999, "currency": "USD"} as (19.99, "USD")."""
    money = as_mapping(money)
    amount, currency = money.get("amount"), money.get("currency")
    if not isinstance(amount, int) or isinstance(amount, bool) or not isinstance(currency, str):
        return None, currency if isinstance(currency, str) else None
    return (float(amount) if currency in ZERO_DECIMAL else amount / 100), currency


def decimal_amount(value: Any) -> float | None:
    """A decimal number as Shopify's money ("199.00") and Square's quantities ("2.5") carry it, as a float;
    None for anything else, including NaN, infinities and numbers too large for a float."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = float(Decimal(str(value).strip()))
    except (InvalidOperation, ValueError):
        return None
    return number if math.isfinite(number) else None


def timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
