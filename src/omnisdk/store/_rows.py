"""What a readable row of each table looks like: column codecs, table keys, and the shared row decoders.

Rows come from old versions, other tools or corruption as well as from omnisdk, so every read
decodes through these codecs: a value a codec refuses raises (`ValueError`/`TypeError`), and the
reader quarantines that row instead of failing (`_quarantine.decode_rows`). The codecs are cheap
(type checks; JSON is parsed once, by `loads`), since the hot paths run them on every row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

import attrs

from .._touchpoints import CHANNELS, Touchpoint
from ._base import loads

__all__ = [
    "TABLES",
    "TOUCHPOINT_COLUMNS",
    "TableSpec",
    "json_array",
    "json_object",
    "optional_text",
    "optional_timestamp",
    "text",
    "timestamp",
    "timezone",
    "touchpoint_from_row",
    "touchpoint_json",
]

#: Epoch seconds a `datetime` can hold (years 1 to 9999): epoch milliseconds are far outside.
MIN_TIMESTAMP: Final = datetime(1, 1, 2, tzinfo=UTC).timestamp()
MAX_TIMESTAMP: Final = datetime(9999, 12, 30, tzinfo=UTC).timestamp()
_CHANNELS: Final = frozenset(CHANNELS)


def timestamp(value: Any) -> float:
    """Epoch seconds, finite and within what `datetime` holds."""
    if type(value) is not float and type(value) is not int:
        raise TypeError(f"expected epoch seconds, got {type(value).__name__}")
    if not MIN_TIMESTAMP <= value <= MAX_TIMESTAMP:  # NaN fails both comparisons
        raise ValueError(f"epoch seconds out of range: {value!r}")
    return float(value)


def optional_timestamp(value: Any) -> float | None:
    return None if value is None else timestamp(value)


def text(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def optional_text(value: Any) -> str | None:
    return None if value is None else text(value)


def integer(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def optional_number(value: Any) -> float | None:
    if value is None:
        return None
    if (type(value) is not float and type(value) is not int) or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def json_object(value: Any) -> dict[str, Any]:
    """A JSON column that holds an object (SQL NULL and JSON null read as `{}`, as they always did)."""
    decoded = loads(value)
    if decoded is None:
        return {}
    if type(decoded) is not dict:
        raise TypeError(f"expected a JSON object, got {type(decoded).__name__}")
    return decoded


def optional_object(value: Any) -> dict[str, Any] | None:
    decoded = loads(value)
    if decoded is not None and type(decoded) is not dict:
        raise TypeError(f"expected a JSON object, got {type(decoded).__name__}")
    return decoded


def json_array(value: Any) -> list[Any]:
    decoded = loads(value)
    if decoded is None:
        return []
    if type(decoded) is not list:
        raise TypeError(f"expected a JSON array, got {type(decoded).__name__}")
    return decoded


def json_any(value: Any) -> Any:
    return loads(value)


def channel(value: Any) -> str:
    if value not in CHANNELS:
        raise ValueError(f"unknown channel {value!r}")
    return str(value)


@lru_cache(maxsize=1024)
def _zone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def timezone(value: Any) -> str | None:
    """An IANA zone name (or None): quiet hours and send times read it with `ZoneInfo`."""
    if value is None:
        return None
    if type(value) is not str or not _zone(value):
        raise ValueError("not an IANA time zone")
    return value


def touchpoint_json(value: Any) -> dict[str, Any] | None:
    """A journey run's trigger: a touchpoint as JSON (or nothing), checked as `touchpoint_from_json`
    would read it (inlined: every claimed run has one)."""
    decoded = optional_object(value)
    if decoded:
        occurred: Any = decoded.get("occurred_at")
        properties = decoded.get("properties")
        if (type(decoded.get("id")) is not str or type(decoded.get("customer_id")) is not str
                or type(decoded.get("name")) is not str or decoded.get("channel") not in _CHANNELS
                or type(occurred) not in (float, int) or not MIN_TIMESTAMP <= occurred <= MAX_TIMESTAMP
                or (properties is not None and type(properties) is not dict)):
            touchpoint_from_json(decoded)  # says what is wrong
            raise ValueError("not a touchpoint")
    return decoded


TOUCHPOINT_COLUMNS: Final = "seq, id, customer_id, channel, name, properties, occurred_at"


def _to_datetime(value: Any) -> datetime:
    return datetime.fromtimestamp(timestamp(value), UTC)


def touchpoint_from_row(row: Sequence[Any]) -> Touchpoint:
    """A touchpoint from `TOUCHPOINT_COLUMNS`: every reader of touchpoints decodes through this.

    The checks are inlined (a timeline decodes thousands of rows); `Touchpoint` checks the channel
    and the name, and `fromtimestamp` refuses what is not epoch seconds within years 1 to 9999."""
    seq, tp_id, customer_id, channel_, name, props, occurred = row
    properties = loads(props)
    if type(properties) is not dict or type(tp_id) is not str or type(customer_id) is not str:
        properties, _, _ = json_object(props), text(tp_id), text(customer_id)  # {} for NULL, else raises
    return Touchpoint(
        id=tp_id, customer_id=customer_id, channel=channel_, name=name, properties=properties,
        occurred_at=datetime.fromtimestamp(occurred, UTC), seq=seq,
    )


def touchpoint_from_json(data: Mapping[str, Any]) -> Touchpoint:
    """A touchpoint as a journey run keeps its trigger."""
    properties = data.get("properties")
    if properties is not None and type(properties) is not dict:
        raise TypeError("trigger properties: expected a JSON object")
    return Touchpoint(
        id=text(data["id"]), customer_id=text(data["customer_id"]), channel=data["channel"], name=data["name"],
        properties=properties or {}, occurred_at=_to_datetime(data["occurred_at"]), seq=data.get("seq"),
    )


Codec = Callable[[Any], Any]
#: The codecs of JSON columns (JSONB on PostgreSQL, text on SQLite).
JSON_CODECS: Final[frozenset[Codec]] = frozenset({json_object, optional_object, json_array, json_any, touchpoint_json})


@attrs.frozen
class TableSpec:
    """A table as the quarantine sees it: its key, the codec of each column it checks, and whether
    the key may appear in logs (an identity's key is an email or a phone number)."""

    key: tuple[str, ...]
    columns: Mapping[str, Codec]
    loggable_key: bool = True

    def check(self, values: Mapping[str, Any]) -> None:
        """Raise if any checked column of a whole row (as stored) would not decode."""
        for column, codec in self.columns.items():
            if column in values:
                try:
                    codec(values[column])
                except Exception as exc:
                    raise ValueError(f"{column}: {exc}") from exc


TABLES: Final[Mapping[str, TableSpec]] = {
    "customers": TableSpec(("id",), {
        "id": text, "traits": json_object, "timezone": timezone, "locale": optional_text, "address": optional_object,
        "preferred_channels": json_array, "created_at": timestamp, "updated_at": timestamp,
        "merged_into": optional_text}),
    "identities": TableSpec(("kind", "value"), {
        "kind": text, "value": text, "customer_id": text, "created_at": timestamp}, loggable_key=False),
    "consents": TableSpec(("id",), {
        "customer_id": text, "channel": text, "purpose": text, "granted": integer, "source": text,
        "recorded_at": timestamp, "evidence": optional_text}),
    "touchpoints": TableSpec(("seq",), {
        "id": text, "customer_id": text, "channel": channel, "name": text, "properties": json_object,
        "occurred_at": timestamp, "recorded_at": timestamp}),
    "merges": TableSpec(("id",), {"winner_id": text, "loser_id": text, "merged_at": timestamp}),
    "journey_runs": TableSpec(("id",), {
        "id": text, "journey": text, "version": text, "customer_id": text, "status": text,
        "trigger": touchpoint_json, "trigger_seq": integer, "due_at": optional_timestamp, "attempts": integer,
        "created_at": timestamp, "updated_at": timestamp, "ended_at": optional_timestamp}),
    "journey_steps": TableSpec(("run_id", "step"), {
        "kind": text, "args": json_object, "result": json_object, "done": integer, "recorded_at": timestamp}),
    "deliveries": TableSpec(("id",), {
        "id": text, "idempotency_key": text, "customer_id": text, "template": text, "channels": json_array,
        "purpose": text, "data": json_object, "status": text, "attempts": integer, "due_at": timestamp,
        "lease_until": optional_timestamp, "decisions": json_array, "failed_channels": json_array,
        "fallback_after": optional_number, "sent_at": optional_timestamp, "created_at": timestamp,
        "updated_at": timestamp, "attempted_at": optional_timestamp, "sent_content": optional_object}),
    "broadcasts": TableSpec(("id",), {
        "template": text, "channels": json_array, "purpose": text, "data": json_object, "segment_sql": text,
        "segment_params": json_array, "segment_now": json_array, "timing": text, "send_at": timestamp,
        "status": text, "start_at": timestamp, "evaluated_at": optional_timestamp, "after_customer": text,
        "created_at": timestamp, "updated_at": timestamp, "enqueued_at": optional_timestamp}),
    "segment_members": TableSpec(("segment", "customer_id"), {"entered_at": timestamp, "seen_at": timestamp}),
    "sendtime_prior": TableSpec(("channel", "hour"), {
        "channel": text, "hour": integer, "weight": optional_number, "computed_at": timestamp}),
    "signing_keys": TableSpec(("name",), {"name": text, "secret": text, "created_at": timestamp}),
    "catalog_variants": TableSpec(("sku",), {
        "sku": text, "product_id": text, "title": text, "price": text, "currency": text, "url": optional_text,
        "image_url": optional_text, "category": optional_text, "brand": optional_text, "attributes": json_object,
        "updated_at": timestamp}),
}
