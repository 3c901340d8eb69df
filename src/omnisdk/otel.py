"""OpenTelemetry for omnisdk (`pip install 'omnisdk[otel]'`): `Omni(..., telemetry=OpenTelemetry())`.

Spans and metrics go to the tracer and meter providers given, or to the global ones the application
configured (`opentelemetry.trace.set_tracer_provider`, ...). Only this module imports opentelemetry;
without it omnisdk reports nothing and imports nothing (`omnisdk._telemetry.NO_TELEMETRY`).
Attributes are filtered to `_telemetry.ATTRIBUTE_KEYS`: ids and labels, never personal data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ._telemetry import ATTRIBUTE_KEYS, Attributes

__all__ = ["OpenTelemetry"]

#: Units of the counters and histograms omnisdk reports (docs/operations.md lists them all).
_UNITS = {"omnisdk.provider.duration": "s"}
_PROPAGATOR = TraceContextTextMapPropagator()


def _clean(attributes: Attributes | None) -> dict[str, str | int | float | bool]:
    """Only known keys with plain values: nothing else reaches an exporter."""
    if not attributes:
        return {}
    return {k: v for k, v in attributes.items()
            if k in ATTRIBUTE_KEYS and isinstance(v, str | int | float | bool)}


def _nanos(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1e9)


class OpenTelemetry:
    """The `Telemetry` omnisdk reports through when OpenTelemetry is installed."""

    enabled = True

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.tracer = trace.get_tracer("omnisdk", tracer_provider=tracer_provider)
        self.meter = metrics.get_meter("omnisdk", meter_provider=meter_provider)
        self._counters: dict[str, Any] = {}
        self._histograms: dict[str, Any] = {}

    def start(self, name: str, attributes: Attributes | None = None, *, parent: Any = None,
              start_time: float | None = None) -> Span:
        context = None
        if isinstance(parent, str):
            context = _PROPAGATOR.extract({"traceparent": parent})
        elif parent is not None:
            context = trace.set_span_in_context(parent)
        return self.tracer.start_span(name, context=context, attributes=_clean(attributes),
                                      start_time=_nanos(start_time))

    def end(self, span: Any, attributes: Attributes | None = None, *, end_time: float | None = None,
            error: str | None = None) -> None:
        if span is None:
            return
        if attributes:
            span.set_attributes(_clean(attributes))
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=_nanos(end_time))

    def current(self, span: Any) -> Any:
        return trace.use_span(span, end_on_exit=False)

    @contextmanager
    def span(self, name: str, attributes: Attributes | None = None) -> Iterator[Span]:
        with self.tracer.start_as_current_span(name, attributes=_clean(attributes)) as span:
            yield span

    def annotate(self, span: Any, attributes: Attributes) -> None:
        if span is not None:
            span.set_attributes(_clean(attributes))

    def traceparent(self, span: Any = None) -> str | None:
        context = otel_context.get_current() if span is None else trace.set_span_in_context(span)
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=context)
        return carrier.get("traceparent")

    def count(self, name: str, value: int = 1, attributes: Attributes | None = None) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = self.meter.create_counter(name, unit=_UNITS.get(name, "1"))
        counter.add(value, _clean(attributes))

    def observe(self, name: str, value: float, attributes: Attributes | None = None) -> None:
        histogram = self._histograms.get(name)
        if histogram is None:
            histogram = self._histograms[name] = self.meter.create_histogram(name, unit=_UNITS.get(name, "s"))
        histogram.record(value, _clean(attributes))

    def gauge(self, name: str, unit: str, description: str,
              read: Callable[[], Iterable[tuple[float, Attributes]]]) -> None:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(value, _clean(attributes)) for value, attributes in read()]

        self.meter.create_observable_gauge(name, callbacks=[observe], unit=unit, description=description)
