"""Every typed error omnisdk raises, under `OmniError` (the hierarchy is drawn in `omnisdk._errors`).

`omnisdk` itself exports the base and the errors an application commonly catches; the rest are here.
A provider's answers (`RetryableError`, `PermanentError`) are outcomes, not exceptions: `omnisdk.providers`.
"""

from ._errors import (
    BatchItemError,
    BatchValidationError,
    ConfigError,
    InvalidIdentifierError,
    JourneyError,
    NonDeterminismError,
    NotFoundError,
    OmniError,
    PluginError,
    ProviderError,
    StoreError,
    SuppressedError,
    TemplateBudgetExceeded,
    TemplateError,
    UnknownChannelError,
    ValidationError,
    WebhookError,
)

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
