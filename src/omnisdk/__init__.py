"""omnisdk: embeddable omnichannel marketing.

One customer stitched from every channel, every touchpoint on one timeline, durable journeys,
consistent messages, and measurement. Channel integrations are plugins.
"""

from ._clock import Clock, SystemClock, VirtualClock
from ._content import SMS, Email, Letter, Message, PosOffer, Postcard, Push, Social
from ._customers import Consent, Customer, Identity
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
    TemplateError,
    UnknownChannelError,
    ValidationError,
    WebhookError,
)
from ._logging import configure_logging, get_logger, redact_processor
from ._omni import AsyncOmni, Omni
from ._touchpoints import Events, Touchpoint
from ._validation import Limits
from .broadcasts import Broadcast, BroadcastStatus
from .delivery import Delivery
from .hookspecs import hookimpl
from .journeys import Journey, JourneyContext, JourneyRun, journey
from .providers import (
    Accepted,
    Capabilities,
    Outgoing,
    PermanentError,
    Provider,
    RetryableError,
    WebhookEvent,
    WebhookRequest,
    WebhookResponse,
    WebhookResult,
    secret,
)
from .store import QuarantinedRow, QuarantineRepair

__version__ = "0.1.0"

__all__ = [
    "Accepted",
    "AsyncOmni",
    "BatchItemError",
    "BatchValidationError",
    "Broadcast",
    "BroadcastStatus",
    "Capabilities",
    "Clock",
    "ConfigError",
    "Consent",
    "Customer",
    "Delivery",
    "Email",
    "Events",
    "Identity",
    "InvalidIdentifierError",
    "Journey",
    "JourneyContext",
    "JourneyError",
    "JourneyRun",
    "Letter",
    "Limits",
    "Message",
    "NonDeterminismError",
    "NotFoundError",
    "Omni",
    "OmniError",
    "Outgoing",
    "PermanentError",
    "PluginError",
    "PosOffer",
    "Postcard",
    "Provider",
    "ProviderError",
    "Push",
    "QuarantineRepair",
    "QuarantinedRow",
    "RetryableError",
    "SMS",
    "Social",
    "StoreError",
    "SystemClock",
    "TemplateError",
    "Touchpoint",
    "UnknownChannelError",
    "ValidationError",
    "VirtualClock",
    "WebhookError",
    "WebhookEvent",
    "WebhookRequest",
    "WebhookResponse",
    "WebhookResult",
    "__version__",
    "configure_logging",
    "get_logger",
    "hookimpl",
    "journey",
    "redact_processor",
    "secret",
]
