"""`[privacy]` and `[retention]`, parsed once: the suppression key, what touchpoint properties survive an
erasure, batch sizes, and how long each table's rows are kept."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from .._errors import ConfigError

__all__ = ["DEFAULT_KEEP_PROPERTIES", "RETENTION_RULES", "PrivacySettings", "RetentionSettings", "parse_duration"]

#: Touchpoint properties an erasure keeps: the amounts and product references KPIs, revenue,
#: attribution and experiments read, and the delivery a message event belongs to. Everything else
#: (IP, user agent, free text, addresses, order references) goes.
DEFAULT_KEEP_PROPERTIES: Final = ("revenue", "value", "total", "price", "quantity", "currency", "product_id",
                                  "sku", "category", "delivery_id", "template", "journey", "step")

#: The retention rules `[retention]` accepts, each a duration ("25 months", "90 days").
RETENTION_RULES: Final = ("touchpoints", "delivery_bodies", "deliveries", "decision_log", "journey_runs",
                          "webhook_requests", "webhook_events", "quarantine", "forget_requests")

_UNITS: Final = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0,
                 "month": 30.436875 * 86400.0, "year": 365.2425 * 86400.0}
_DURATION: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(second|minute|hour|day|week|month|year)s?\s*")


def parse_duration(value: Any, field: str) -> float:
    """Seconds in "25 months", "90 days", "1 year" (a month is a twelfth of a Gregorian year)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None or float(match[1]) <= 0:
        raise ConfigError('expected a duration such as "25 months" or "90 days"', field=field)
    return float(match[1]) * _UNITS[match[2]]


def _positive_int(section: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError("expected a positive whole number", field=f"{where}.{key}")
    return value


@attrs.frozen(kw_only=True)
class PrivacySettings:
    #: The HMAC key of suppression hashes; None: one generated once and kept in the store.
    suppression_key: str | None = attrs.field(default=None, repr=False)
    keep_properties: tuple[str, ...] = DEFAULT_KEEP_PROPERTIES
    batch_size: int = 500
    #: SQLite: VACUUM after an erasure, so deleted rows leave no trace in free pages or the WAL.
    vacuum: bool = True
    #: Seconds before a failed plugin or a delivery in flight is tried again.
    retry_seconds: float = 300.0

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> PrivacySettings:
        section = section or {}
        known = ("suppression_key", "keep_properties", "batch_size", "vacuum", "retry_seconds")
        for key in section:
            if key not in known:
                raise ConfigError(f"unknown key; expected one of {', '.join(known)}", field=f"privacy.{key}")
        secret = section.get("suppression_key")
        if secret is not None and (not isinstance(secret, str) or len(secret) < 16):
            raise ConfigError("expected a secret of at least 16 characters", field="privacy.suppression_key")
        keep = section.get("keep_properties", DEFAULT_KEEP_PROPERTIES)
        if isinstance(keep, str) or not all(isinstance(k, str) for k in keep):
            raise ConfigError("expected a list of property names", field="privacy.keep_properties")
        vacuum = section.get("vacuum", True)
        if not isinstance(vacuum, bool):
            raise ConfigError("expected true or false", field="privacy.vacuum")
        return cls(suppression_key=secret, keep_properties=tuple(keep),
                   batch_size=_positive_int(section, "batch_size", 500, "privacy"), vacuum=vacuum,
                   retry_seconds=parse_duration(section.get("retry_seconds", 300.0), "privacy.retry_seconds"))


@attrs.frozen(kw_only=True)
class RetentionSettings:
    #: Seconds each rule keeps rows for; a rule not configured keeps them for ever.
    periods: Mapping[str, float] = attrs.field(factory=dict)
    batch_size: int = 1000
    #: Seconds between passes.
    interval: float = 3600.0

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> RetentionSettings:
        section = dict(section or {})
        batch = _positive_int(section, "batch_size", 1000, "retention")
        interval = parse_duration(section.pop("interval", 3600.0), "retention.interval")
        section.pop("batch_size", None)
        periods = {}
        for key, value in section.items():
            if key not in RETENTION_RULES:
                raise ConfigError(f"unknown rule; expected one of {', '.join(RETENTION_RULES)}, batch_size, "
                                  "interval", field=f"retention.{key}")
            periods[key] = parse_duration(value, f"retention.{key}")
        return cls(periods=periods, batch_size=batch, interval=interval)
