"""The seam the core reports traces and metrics through, without knowing OpenTelemetry.

Rooms call `telemetry.start(...)`, `telemetry.count(...)`, ...; by default that is `NO_TELEMETRY`,
whose methods do nothing (no import of opentelemetry, nothing allocated on the send path: callers
check `telemetry.enabled` before building attributes). `omnisdk.otel.OpenTelemetry` is the real
one. Attributes carry ids, channels, providers, statuses and reasons, never personal data: the
implementation keeps only the keys in `ATTRIBUTE_KEYS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Final, Protocol

__all__ = ["ATTRIBUTE_KEYS", "NO_TELEMETRY", "Attributes", "NoTelemetry", "Telemetry"]

Attributes = Mapping[str, str | int | float | bool]

#: The only attribute keys spans and metrics carry: ids and labels, nothing a person is known by.
ATTRIBUTE_KEYS: Final = frozenset({
    "omnisdk.customer_id", "omnisdk.touchpoint_id", "omnisdk.delivery_id", "omnisdk.run_id", "omnisdk.journey",
    "omnisdk.step", "omnisdk.template", "omnisdk.event", "omnisdk.channel", "omnisdk.provider", "omnisdk.status",
    "omnisdk.action", "omnisdk.reason", "omnisdk.policy", "omnisdk.outcome", "omnisdk.attempt", "omnisdk.count",
    "omnisdk.table", "omnisdk.endpoint",
})


class Telemetry(Protocol):
    """Spans (opaque handles) and metrics."""

    enabled: bool

    def start(self, name: str, attributes: Attributes | None = None, *, parent: Any = None,
              start_time: float | None = None) -> Any:
        """A started span: `parent` is a span handle, a W3C traceparent string, or None for the
        caller's current span; `start_time` in epoch seconds (real time) when it began earlier."""
        ...

    def end(self, span: Any, attributes: Attributes | None = None, *, end_time: float | None = None,
            error: str | None = None) -> None: ...

    def span(self, name: str, attributes: Attributes | None = None) -> AbstractContextManager[Any]:
        """A context manager: a child of the current span, current inside, ended (as an error if
        the block raised) on exit; yields the span handle (None when off)."""
        ...

    def annotate(self, span: Any, attributes: Attributes) -> None:
        """Attributes learnt after the span started (the customer id a `who` resolved to)."""
        ...

    def current(self, span: Any) -> Any:
        """A context manager making `span` the current one (so spans started inside are its children)."""
        ...

    def traceparent(self, span: Any = None) -> str | None:
        """The W3C traceparent of `span` (default: the current span), to store with queued work."""
        ...

    def count(self, name: str, value: int = 1, attributes: Attributes | None = None) -> None: ...

    def observe(self, name: str, value: float, attributes: Attributes | None = None) -> None:
        """A histogram sample (latencies in seconds)."""
        ...

    def gauge(self, name: str, unit: str, description: str,
              read: Callable[[], Iterable[tuple[float, Attributes]]]) -> None:
        """An observable gauge: `read` is called at each collection."""
        ...


class _Nothing(AbstractContextManager[None]):
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NOTHING: Final = _Nothing()


class NoTelemetry:
    """Telemetry switched off: every call returns at once."""

    enabled = False

    def start(self, name: str, attributes: Attributes | None = None, *, parent: Any = None,
              start_time: float | None = None) -> Any:
        return None

    def end(self, span: Any, attributes: Attributes | None = None, *, end_time: float | None = None,
            error: str | None = None) -> None:
        return None

    def current(self, span: Any) -> Any:
        return _NOTHING

    def span(self, name: str, attributes: Attributes | None = None) -> AbstractContextManager[Any]:
        return _NOTHING

    def annotate(self, span: Any, attributes: Attributes) -> None:
        return None

    def traceparent(self, span: Any = None) -> str | None:
        return None

    def count(self, name: str, value: int = 1, attributes: Attributes | None = None) -> None:
        return None

    def observe(self, name: str, value: float, attributes: Attributes | None = None) -> None:
        return None

    def gauge(self, name: str, unit: str, description: str,
              read: Callable[[], Iterable[tuple[float, Attributes]]]) -> None:
        return None


NO_TELEMETRY: Final = NoTelemetry()
