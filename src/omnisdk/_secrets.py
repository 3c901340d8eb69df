"""Secrets: declared once, on a provider's `Config` (`omnisdk.secret()`), and never shown.

The declaration is the only list of what is secret: no key names are guessed. When a provider's
`Config` is built (and for the core's own `webhooks.signing_key`), the values of its declared
fields are remembered here, process-wide like logging itself, and everything omnisdk shows as
text masks them: config, channel and provider reprs (`masked`), omnisdk's errors, and every log
line omnisdk writes (`scrub`). A value equal to a secret is masked whatever its length; inside
free text only secrets of `MIN_LENGTH` characters or more are replaced, since a shorter one would
blank out ordinary words (a test's `auth_token = "token"`).

`witness` lets `omnisdk.testing.secret_audit` see each config, provider and error as it is made,
to check their reprs across a whole test suite; nothing is kept when no audit listens.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

__all__ = ["MIN_LENGTH", "REDACTED", "SECRET", "declared", "is_secret", "known", "masked", "remember",
           "remember_declared", "scrub", "witness", "witnesses"]

#: The attrs field metadata key `omnisdk.secret()` sets.
SECRET = "secret"
REDACTED = "[redacted]"
MIN_LENGTH = 6

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None
#: Callbacks `witness` calls with (kind, object); the secret audit of a test session adds one.
witnesses: list[Callable[[str, object], None]] = []
#: Loggers of the HTTP libraries under the providers: they log request URLs, where some APIs want a
#: credential (Vonage's Reports API takes the API key as `account_id`).
HTTP_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy",
                "aiohttp.client")


class _ScrubFilter(logging.Filter):
    """Masks remembered secrets in the records of loggers omnisdk does not write itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is not None:
            message = record.getMessage()
            cleaned = scrub(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


_SCRUB_FILTER = _ScrubFilter()


def declared(cls: type) -> tuple[attrs.Attribute[Any], ...]:
    """The fields of an attrs `Config` class declared secret."""
    if not attrs.has(cls):
        return ()
    return tuple(field for field in attrs.fields(cls) if field.metadata.get(SECRET))


def remember(values: Iterable[object]) -> None:
    """Mask these values from now on (strings, bytes and numbers, as TOML may give a numeric secret;
    the values of a table or list, as in Twilio's `webhook_shared_keys`; empty ones and anything
    else are ignored)."""
    global _pattern
    fresh = set()
    for value in _leaves(values):
        text: object = value
        if isinstance(value, bytes):
            text = value.decode("utf-8", "replace")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            text = str(value)
        if isinstance(text, str) and text and text not in _values:
            fresh.add(text)
    if not fresh:
        return
    with _lock:
        _values.update(fresh)
        long_ones = sorted((v for v in _values if len(v) >= MIN_LENGTH), key=len, reverse=True)
        _pattern = re.compile("|".join(map(re.escape, long_ones))) if long_ones else None
    for name in HTTP_LOGGERS:
        logging.getLogger(name).addFilter(_SCRUB_FILTER)  # a no-op when it is there already


def _leaves(values: Iterable[object]) -> Iterable[object]:
    for value in values:
        if isinstance(value, Mapping):
            yield from _leaves(value.values())
        elif isinstance(value, list | tuple):
            yield from _leaves(value)
        else:
            yield value


def remember_declared(cls: type, settings: Mapping[str, Any]) -> None:
    """Remember the values `settings` (keyed by field name or alias) gives the secret fields of `cls`."""
    names = set()
    for field in declared(cls):
        names.update({field.name, field.name.rstrip("_"), getattr(field, "alias", None) or field.name})
    remember(value for key, value in settings.items() if key in names)


def is_secret(value: str) -> bool:
    """Whether `value` is, whole, a remembered secret."""
    return value in _values


def known() -> frozenset[str]:
    """Every secret value remembered so far."""
    with _lock:
        return frozenset(_values)


def scrub(text: str) -> str:
    """`text` with every remembered secret (of `MIN_LENGTH` or more) replaced by `[redacted]`."""
    pattern = _pattern
    return pattern.sub(REDACTED, text) if pattern is not None and text else text


def masked(value: Any) -> Any:
    """A copy of a settings value for a repr: mappings and lists walked, secrets replaced."""
    if isinstance(value, str | bytes) and value:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return REDACTED if is_secret(text) else scrub(text)
    if isinstance(value, Mapping):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [masked(item) for item in value]
    return value


def witness(kind: str, obj: object) -> None:
    """Show a config, provider or error just made to the listening audits, if any."""
    for callback in witnesses:
        callback(kind, obj)
