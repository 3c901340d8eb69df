"""Logging: structlog, with secrets and personal data redacted from every line omnisdk writes.

omnisdk's own loggers redact before anything reaches structlog, whatever the application
configured; `redact_processor` does the same for the application's own lines. Secrets are masked
by value, as their providers declared them (`_secrets`); the key names below are only a backstop
for the application's own fields (`password=...`), which no provider declared.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from ._secrets import REDACTED, is_secret, scrub

__all__ = ["configure_logging", "get_logger", "redact", "redact_processor"]

_SECRET_KEY = re.compile(
    r"(pass(word)?|secret|token|api_?key|auth|authorization|credential|private_?key|signature|cookie|session)",
    re.IGNORECASE,
)
_PII_KEY = re.compile(r"^(email|phone|to|from|address|first_name|last_name|name|ip|body|text|html)$", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(\.[\w-]+)+")
# Not inside a word: a run of digits in a hex id ("dlv_0193ab4567890123…") is not a phone number.
_PHONE = re.compile(r"(?<![\w+])\+?\d[\d \-().]{7,}\d(?!\w)")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def _scrub_text(text: str) -> str:
    text = scrub(text)  # the secrets providers declared, by value
    text = _BEARER.sub(lambda m: f"{m[1]} {REDACTED}", text)
    text = _EMAIL.sub("[email]", text)
    return _PHONE.sub("[phone]", text)


def redact(value: Any, key: str | None = None, _depth: int = 0) -> Any:
    """A copy of `value` with secrets (by key) and emails/phones (by key or by shape) removed."""
    if key is not None and _SECRET_KEY.search(key) and value is not None:
        return REDACTED
    if key is not None and _PII_KEY.match(key) and isinstance(value, str | int) and value != "":
        return REDACTED
    if _depth > 8:
        return "…"
    if isinstance(value, str):
        return REDACTED if is_secret(value) else _scrub_text(value)
    if isinstance(value, Mapping):
        return {k: redact(v, str(k), _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [redact(v, None, _depth + 1) for v in value]
    if isinstance(value, BaseException):
        return _scrub_text(f"{type(value).__name__}: {value}")
    if isinstance(value, int | float | bool) or value is None:
        return value
    return _scrub_text(repr(value))


def redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: put it first in your chain to redact your own log lines too."""
    for key in list(event_dict):
        if key in ("event", "level", "timestamp", "logger"):
            if isinstance(event_dict[key], str):
                event_dict[key] = _scrub_text(event_dict[key])
            continue
        event_dict[key] = redact(event_dict[key], key)
    return event_dict


class _RedactingLogger:
    """What `get_logger` returns: redaction happens here, before the app's structlog chain."""

    def __init__(self, name: str, bound: Mapping[str, Any] | None = None) -> None:
        self._name = name
        self._bound = dict(bound or {})
        self._logger = structlog.get_logger(name)

    def bind(self, **values: Any) -> _RedactingLogger:
        return _RedactingLogger(self._name, {**self._bound, **values})

    def _log(self, method: str, event: str, values: Mapping[str, Any]) -> None:
        clean = redact_processor(None, method, {**self._bound, **values, "logger": self._name})
        getattr(self._logger, method)(_scrub_text(event), **clean)

    def debug(self, event: str, **values: Any) -> None:
        self._log("debug", event, values)

    def info(self, event: str, **values: Any) -> None:
        self._log("info", event, values)

    def warning(self, event: str, **values: Any) -> None:
        self._log("warning", event, values)

    def error(self, event: str, **values: Any) -> None:
        self._log("error", event, values)

    def exception(self, event: str, **values: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is not None:
            values = {**values, "error": exc}
        self._log("error", event, values)


def get_logger(name: str = "omnisdk") -> _RedactingLogger:
    return _RedactingLogger(name)


def configure_logging(*, json: bool | None = None, level: str = "info") -> None:
    """Set up structlog for omnisdk's CLI and workers: JSON when not on a terminal, pretty when on one."""
    import logging

    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.format_exc_info,  # tracebacks become text before redaction, not after
            redact_processor,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        # Look sys.stderr up when a logger is made, not now: it may be replaced (and closed) later.
        logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
