"""The checks every webhook verifier needs, in one place so that each plugin does them the same way.

`signatures_match` compares in constant time whatever the header held (non-ASCII text makes
`hmac.compare_digest` raise on `str`). `webhook_json` and `unique_pairs` refuse a body that could
be read two ways (a field given twice): a signature covers the bytes, and two readers of the same
bytes must never record different values. `fresh_timestamp` refuses what is too old or too new.
"""

from __future__ import annotations

import hmac
import json
import math
import re
from collections.abc import Iterable
from typing import Any, Final

from ._errors import WebhookError

__all__ = ["fresh_timestamp", "signatures_match", "unique_pairs", "webhook_json"]

#: Status of a request whose signed parts do not cover, unambiguously, what it would record.
NOT_COVERED: Final = 403
_UNIX: Final = re.compile(r"[0-9]{1,16}(\.[0-9]{1,9})?")


def signatures_match(expected: str | bytes, given: str | bytes | None) -> bool:
    """Constant-time equality of a computed signature and the one a request carried."""
    if given is None:
        return False
    a = expected.encode("utf-8", "surrogatepass") if isinstance(expected, str) else bytes(expected)
    b = given.encode("utf-8", "surrogatepass") if isinstance(given, str) else bytes(given)
    return hmac.compare_digest(a, b)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise WebhookError(f"field {name!r} given twice: ambiguous", status=NOT_COVERED)
        result[name] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def webhook_json(body: bytes, *, provider: str) -> Any:
    """The body as JSON; 400 when it is not strict JSON, 403 when an object repeats a key."""
    try:
        return json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except WebhookError:
        raise
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise WebhookError(f"{provider} webhook body is not JSON", status=400) from None


def unique_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Form or query pairs as a dict, refusing (403) a name given twice with different values:
    schemes that sort or merge values sign `a=1&a=2` and `a=2&a=1` alike, and a reader keeps one."""
    result: dict[str, str] = {}
    for name, value in pairs:
        if result.setdefault(name, value) != value:
            raise WebhookError(f"field {name!r} given twice with different values: ambiguous", status=NOT_COVERED)
    return result


def fresh_timestamp(value: str | None, *, now: float, tolerance: float, what: str, millis_above: float = math.inf
                    ) -> float:
    """A signed Unix timestamp (seconds; milliseconds when at least `millis_above`) within `tolerance`
    seconds of `now`, past or future; 401 otherwise (too old is a replay, far future a forgery)."""
    if not value or not _UNIX.fullmatch(value.strip()):
        raise WebhookError(f"missing or malformed {what}", status=401)
    stamp = float(value.strip())
    if stamp >= millis_above:
        stamp /= 1000
    if not abs(now - stamp) <= tolerance:
        raise WebhookError(f"{what} is more than {tolerance:g} s from now (replay?)", status=401)
    return stamp
