"""Validation at the door: every value a caller hands to a public entry point is checked here, once.

Checks are types, sizes and ranges; each refusal is a `ValidationError` naming the field and the
`[limits]` key to raise, so nothing reaches the store that a later read cannot decode. JSON
payloads take a fast path (the C encoder, then cheap scans of its output) and are walked in
Python only when that output hints at a problem, so well-formed events cost little.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from ._errors import ConfigError, InvalidIdentifierError, ValidationError, WebhookError

__all__ = ["Limits", "Validator"]

# One encoder, reused (building one per call is slow); ASCII output, so its length is its size in bytes.
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_LOCALE = re.compile(r"[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*")
_METHOD = re.compile(r"[A-Za-z]{1,16}")
#: In the encoder's ASCII output, the escapes of NUL and of surrogates (a pair is fine, a lone one is not).
_SUSPECT = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


@attrs.frozen(kw_only=True)
class Limits:
    """The sizes and ranges input must fit, from config `[limits]` (each key is a field here)."""

    max_id_length: int = 256
    max_event_name_length: int = 200
    max_identifier_length: int = 512
    max_identifier_values: int = 100
    max_locale_length: int = 35
    max_timezone_length: int = 64
    max_source_length: int = 256
    max_properties_bytes: int = 64 * 1024
    max_traits_bytes: int = 64 * 1024
    max_address_bytes: int = 4 * 1024
    max_depth: int = 32
    max_batch_items: int = 100_000
    min_year: int = 1970
    max_year: int = 2199
    max_template_bytes: int = 256 * 1024
    max_url_length: int = 8 * 1024
    max_headers_bytes: int = 32 * 1024
    max_header_count: int = 100

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> Limits:
        known = {a.name for a in attrs.fields(cls)}
        for key, value in section.items():
            if key not in known:
                raise ConfigError(f"unknown limit; expected one of {', '.join(sorted(known))}", field=f"limits.{key}")
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError("expected a positive integer", field=f"limits.{key}")
        limits = cls(**section)
        if not 1 <= limits.min_year < limits.max_year <= 9998:
            raise ConfigError("expected 1 <= min_year < max_year <= 9998", field="limits.max_year")
        return limits


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text (PostgreSQL refuses NUL and lone surrogates), or None."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode (it holds a lone surrogate)"
    if "\x00" in value:
        return "holds a NUL character"
    return None


def _short(value: Any) -> Any:
    """What an error keeps of a rejected value: never megabytes of it."""
    if isinstance(value, str | bytes) and len(value) > 64:
        return value[:32]
    return value if isinstance(value, str | bytes | int | float | type(None)) else type(value).__name__


class Validator:
    """The checks, bound to one client's `Limits`."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        lim = self.limits
        self._min_ts = datetime(lim.min_year, 1, 1, tzinfo=UTC).timestamp()
        self._max_ts = datetime(lim.max_year + 1, 1, 1, tzinfo=UTC).timestamp()

    # -- text
    def text(self, value: Any, field: str, *, limit: str, what: str = "a string", required: bool = True) -> str:
        """`value` as a non-empty (when `required`) string of at most `limits.<limit>` characters."""
        if not isinstance(value, str):
            raise ValidationError(f"expected {what}, got {type(value).__name__}", field=field, value=_short(value))
        size: int = getattr(self.limits, limit)
        if len(value) > size:
            raise ValidationError(f"longer than {size} characters (limits.{limit})", field=field, value=_short(value))
        if required and not value.strip():
            raise ValidationError(f"expected {what}, got an empty string", field=field, value=value)
        problem = text_problem(value)
        if problem:
            raise ValidationError(problem, field=field, value=_short(value))
        return value

    def customer_id(self, value: Any, field: str = "customer_id") -> str:
        return self.text(value, field, limit="max_id_length", what="a customer id (a non-empty string)")

    def touchpoint_id(self, value: Any, field: str = "id") -> str:
        return self.text(value, field, limit="max_id_length", what="a touchpoint id (a non-empty string)")

    def event(self, value: Any, field: str = "event") -> str:
        return self.text(value, field, limit="max_event_name_length", what="an event name (a non-empty string)")

    def source(self, value: Any, field: str = "source") -> str:
        return self.text(value, field, limit="max_source_length", what="a consent source (a non-empty string)")

    def locale(self, value: Any, field: str = "locale") -> str:
        locale = self.text(value, field, limit="max_locale_length", what="a locale such as 'en-US'")
        if not _LOCALE.fullmatch(locale):
            raise ValidationError("not a locale tag such as 'en-US' or 'fr'", field=field, value=_short(value))
        return locale

    def timezone(self, value: Any, field: str = "timezone") -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        name = self.text(value, field, limit="max_timezone_length", what="an IANA time zone such as 'America/New_York'")
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValidationError("not an IANA time zone (e.g. 'America/New_York')", field=field,
                                  value=_short(name)) from None
        return name

    def identifiers(self, identifiers: Mapping[str, Any], field: str) -> None:
        """Raw identifier values, before normalising: strings (or integers) of sane size, few of them."""
        lim = self.limits
        for kind, raw in identifiers.items():
            where = f"{field}.{kind}" if field else str(kind)
            values = raw if isinstance(raw, list | tuple | set) else (raw,)
            if len(values) > lim.max_identifier_values:
                raise ValidationError(f"more than {lim.max_identifier_values} values (limits.max_identifier_values)",
                                      field=where)
            for value in values:
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, str | int):
                    raise InvalidIdentifierError(f"expected a string, got {type(value).__name__}", field=where,
                                                 value=_short(value))
                if isinstance(value, int):
                    if abs(value) >= 10**18:
                        raise InvalidIdentifierError("integer identifier larger than 18 digits", field=where)
                    continue
                if len(value) > lim.max_identifier_length:
                    raise InvalidIdentifierError(
                        f"longer than {lim.max_identifier_length} characters (limits.max_identifier_length)",
                        field=where, value=_short(value))
                problem = text_problem(value)
                if problem:
                    raise InvalidIdentifierError(problem, field=where, value=_short(value))

    # -- JSON payloads
    def properties(self, value: Any, field: str = "properties") -> str:
        return self.json_object(value, field, limit="max_properties_bytes")

    def traits(self, value: Any, field: str = "traits") -> str:
        return self.json_object(value, field, limit="max_traits_bytes")

    def address(self, value: Any, field: str = "address") -> str:
        return self.json_object(value, field, limit="max_address_bytes",
                                what="a dict (line1, city, postal_code, country…)")

    def json_object(self, value: Any, field: str, *, limit: str, what: str = "a dict") -> str:
        """The compact JSON of a dict of JSON values: finite numbers, valid text, bounded size and depth."""
        if value is None:
            return "{}"
        if not isinstance(value, Mapping):
            raise ValidationError(f"expected {what}, got {type(value).__name__}", field=field, value=_short(value))
        try:
            text = _encode(value if isinstance(value, dict) else dict(value))
        except (TypeError, ValueError, RecursionError) as exc:
            self._walk(value, field)  # names the offending key; raises for every cause but the one below
            raise ValidationError(f"not JSON-serialisable: {exc}", field=field) from None
        size: int = getattr(self.limits, limit)
        if len(text) > size:
            raise ValidationError(f"larger than {size} bytes as JSON (limits.{limit})", field=field)
        # Brackets beyond the depth limit, or \u escapes (NUL, surrogates), call for a closer look.
        if _SUSPECT.search(text) or text.count("{") + text.count("[") > self.limits.max_depth:
            self._walk(value, field)
        return text

    def _walk(self, root: Any, field: str) -> None:
        """Every value in `root`, without recursion (a 100 000-deep payload must not blow the stack)."""
        depth_limit = self.limits.max_depth
        stack: list[tuple[Any, str, int]] = [(root, field, 1)]
        seen = 0
        while stack:
            value, where, depth = stack.pop()
            seen += 1
            if isinstance(value, str):
                problem = text_problem(value)
                if problem:
                    raise ValidationError(problem, field=where, value=_short(value))
            elif value is None or isinstance(value, bool | int):
                continue
            elif isinstance(value, float):
                if not math.isfinite(value):
                    raise ValidationError(f"expected a finite number, got {value}", field=where, value=value)
            elif isinstance(value, Mapping | list | tuple):
                if depth > depth_limit:
                    raise ValidationError(f"nested deeper than {depth_limit} levels (limits.max_depth)", field=field)
                if isinstance(value, Mapping):
                    for key, item in value.items():
                        if not isinstance(key, str):
                            raise ValidationError(f"keys must be strings, got {type(key).__name__}", field=where)
                        problem = text_problem(key)
                        if problem:
                            raise ValidationError(f"a key {problem}", field=where, value=_short(key))
                        stack.append((item, f"{where}.{key}", depth + 1))
                else:
                    stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
            else:
                raise ValidationError(f"not a JSON value: {type(value).__name__}", field=where)

    # -- time
    def timestamp(self, value: Any, field: str, default: float) -> float:
        """Epoch seconds from an aware datetime, an ISO 8601 string with an offset, or epoch seconds,
        within `min_year`..`max_year` (epoch milliseconds land in year 50 000 and are refused)."""
        if value is None:
            return default
        if isinstance(value, datetime):
            when = self._aware(value, field)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value) or not self._min_ts <= value < self._max_ts:
                raise ValidationError(self._range_message("epoch seconds"), field=field, value=_short(value))
            return float(value)
        elif isinstance(value, str):
            if len(value) > 64:
                raise ValidationError("not an ISO 8601 timestamp (longer than 64 characters)", field=field,
                                      value=_short(value))
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValidationError("not an ISO 8601 timestamp", field=field, value=_short(value)) from None
            when = self._aware(parsed, field)
        else:
            raise ValidationError("expected an aware datetime, epoch seconds or an ISO 8601 string", field=field,
                                  value=_short(value))
        if not self.limits.min_year <= when.astimezone(UTC).year <= self.limits.max_year:
            raise ValidationError(self._range_message("timestamp"), field=field, value=value.isoformat()
                                  if isinstance(value, datetime) else _short(value))
        return when.timestamp()

    def _aware(self, value: datetime, field: str) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError("a datetime without a time zone is ambiguous; give tzinfo (e.g. UTC) or an offset",
                                  field=field, value=value.isoformat())
        return value

    def _range_message(self, what: str) -> str:
        lim = self.limits
        return f"{what} outside the years {lim.min_year}..{lim.max_year} (limits.min_year, limits.max_year)"

    # -- batches, templates, webhooks
    def batch_size(self, count: int, field: str = "items") -> None:
        if count > self.limits.max_batch_items:
            raise ValidationError(f"more than {self.limits.max_batch_items} items (limits.max_batch_items)",
                                  field=field)

    def template_text(self, value: Any, field: str) -> None:
        """A template source: valid text, at most `max_template_bytes` of UTF-8."""
        if value is None:
            return
        if not isinstance(value, str):
            raise ValidationError(f"expected a string, got {type(value).__name__}", field=field, value=_short(value))
        size = self.limits.max_template_bytes
        if len(value) > size or (not value.isascii() and len(value.encode("utf-8", "surrogatepass")) > size):
            raise ValidationError(f"larger than {size} bytes (limits.max_template_bytes)", field=field)
        problem = text_problem(value)
        if problem:
            raise ValidationError(problem, field=field, value=_short(value))

    def message(self, message: Any, field: str = "message") -> None:
        """A `Message` for `omni.templates.add`: its id, and every text of every rendition and locale."""
        pending = [(message, field)]
        while pending:
            current, where = pending.pop()
            self.text(current.id, f"{where}.id", limit="max_id_length", what="a message id")
            for channel, content in current.renditions.items():
                for attribute in attrs.fields(type(content)):
                    value = getattr(content, attribute.name)
                    if isinstance(value, Mapping):
                        for key, item in value.items():
                            self.template_text(item, f"{where}.{channel}.{attribute.name}.{key}")
                    elif isinstance(value, str):
                        self.template_text(value, f"{where}.{channel}.{attribute.name}")
            if len(pending) + len(current.locales) > 1000:
                raise ValidationError("more than 1000 locales", field=f"{where}.locales")
            for locale, variant in current.locales.items():
                self.locale(locale, f"{where}.locales")
                pending.append((variant, f"{where}.locales.{locale}"))

    def request(self, method: Any, url: Any, headers: Any) -> None:
        """An HTTP request's head (headers as a mapping, or the (name, value) pairs as received): a wrong
        type is the caller's bug (`ValidationError`); a malformed or oversized head is the sender's,
        answered with `WebhookError` (400, 414 or 431)."""
        lim = self.limits
        if not isinstance(method, str):
            raise ValidationError(f"expected an HTTP method, got {type(method).__name__}", field="method")
        if not isinstance(url, str):
            raise ValidationError(f"expected the URL as a string, got {type(url).__name__}", field="url")
        if not isinstance(headers, Mapping | list | tuple):
            raise ValidationError(f"expected a mapping of headers, got {type(headers).__name__}", field="headers")
        pairs = list(headers.items()) if isinstance(headers, Mapping) else headers
        if not _METHOD.fullmatch(method):
            raise WebhookError("malformed HTTP method", status=400)
        if len(url) > lim.max_url_length:
            raise WebhookError(f"URL longer than {lim.max_url_length} characters (limits.max_url_length)", status=414)
        if text_problem(url):
            raise WebhookError("the URL is not valid Unicode", status=400)
        if len(pairs) > lim.max_header_count:
            raise WebhookError(f"more than {lim.max_header_count} headers (limits.max_header_count)", status=431)
        size = 0
        for pair in pairs:
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise ValidationError("expected (name, value) pairs", field="headers")
            name, value = pair
            if not isinstance(name, str) or not isinstance(value, str):
                raise ValidationError("header names and values must be strings", field="headers")
            size += len(name) + len(value) + 4
            if text_problem(name) or text_problem(value):
                raise WebhookError("a header is not valid text", status=400)
        if size > lim.max_headers_bytes:
            raise WebhookError(f"headers larger than {lim.max_headers_bytes} bytes (limits.max_headers_bytes)",
                               status=431)
