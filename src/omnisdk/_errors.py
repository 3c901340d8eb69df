"""The exception hierarchy. Every error says what was wrong and where.

OmniError
├── ConfigError                 a configuration key is missing or wrong (`.field`)
├── ValidationError             bad input from the caller (`.field`, `.value`)
│   ├── BatchValidationError    some items of a batch were refused, the others stored (`.errors`, `.recorded`)
│   ├── InvalidIdentifierError  an email, phone or other identifier that cannot be used
│   ├── UnknownChannelError     a channel name omnisdk does not know
│   └── SuppressedError         a consent for an address erased at its owner's request (`omni.forget`)
├── NotFoundError               a customer, template, journey or run that does not exist
├── PluginError                 a plugin failed to load or registered something invalid
├── StoreError                  the store cannot be opened or migrated
├── TemplateError               a template failed to render (undefined variable, syntax)
│   └── TemplateBudgetExceeded  a render did more work than its budget allows (`.limit`)
├── JourneyError                a journey definition or run is inconsistent
│   └── NonDeterminismError     a replayed step changed kind or arguments under a recorded run
├── ProviderError               a provider was misused or answered something unusable
└── WebhookError                an inbound webhook was rejected (`.status` is the HTTP status)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from ._secrets import scrub, witness

__all__ = [
    "BatchItemError",
    "BatchValidationError",
    "ConfigError",
    "InvalidIdentifierError",
    "JourneyError",
    "NonDeterminismError",
    "NotFoundError",
    "OmniError",
    "PluginError",
    "ProviderError",
    "StoreError",
    "SuppressedError",
    "TemplateBudgetExceeded",
    "TemplateError",
    "UnknownChannelError",
    "ValidationError",
    "WebhookError",
]


class OmniError(Exception):
    """Base class of every error omnisdk raises on purpose. Its text never shows a configured secret
    (`_secrets`), whatever a message was built from: a provider's answer, a value that failed a check."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        witness("error", self)

    def __str__(self) -> str:
        return scrub(super().__str__())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigError(OmniError):
    """A configuration value is missing or malformed; `field` is its dotted path."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class ValidationError(OmniError, ValueError):
    """Input from the caller is invalid; `field` names the argument or key."""

    def __init__(self, message: str, *, field: str, value: Any = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.value = value


@attrs.frozen
class BatchItemError:
    """One refused item of a batch: its position, the field at fault, and why."""

    index: int
    field: str
    reason: str


class BatchValidationError(ValidationError):
    """Some items of a batch were refused; the valid ones were stored (`recorded` counts the new ones)."""

    def __init__(self, errors: Sequence[BatchItemError], *, recorded: int) -> None:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{len(errors)} item(s) refused, {recorded} recorded; first: {first.field}: "
                         f"{first.reason}{more}", field="items")
        self.errors = list(errors)
        self.recorded = recorded


class InvalidIdentifierError(ValidationError):
    """An identifier (email, phone, token…) is malformed or on the block list."""


class UnknownChannelError(ValidationError):
    """A channel name that is not one of omnisdk's channels."""


class SuppressedError(ValidationError):
    """A marketing consent for an identifier whose owner asked to be forgotten: the suppression record
    refuses it (an old list imported again must not re-subscribe them); `omni.lift_suppression` is for
    a customer who comes back and opts in themselves."""


class NotFoundError(OmniError, LookupError):
    """Something looked up by id does not exist."""


class PluginError(OmniError):
    """A plugin could not be loaded or registered something invalid."""

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        super().__init__(f"plugin {plugin!r}: {message}" if plugin else message)
        self.plugin = plugin


class StoreError(OmniError):
    """The store cannot be opened, migrated or written."""


class TemplateError(OmniError):
    """A template failed to render; the delivery fails, the runner does not."""


class TemplateBudgetExceeded(TemplateError):
    """A render went over a `[templates.budget]` limit; `limit` is its dotted key."""

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class JourneyError(OmniError):
    """A journey definition or one of its runs is inconsistent."""


class NonDeterminismError(JourneyError):
    """A step replayed with another kind or other arguments than the run recorded."""


class ProviderError(OmniError):
    """A provider was misused or answered something omnisdk cannot use."""


class WebhookError(OmniError):
    """An inbound webhook was rejected before anything was recorded."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
