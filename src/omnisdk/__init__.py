"""omnisdk: embeddable omnichannel marketing.

One customer stitched from every channel, every touchpoint on one timeline, durable journeys,
consistent messages, and measurement. Channel integrations are plugins.

`__all__` holds what an application needs; the rest lives in namespaces: `omnisdk.errors` (every
typed error), `omnisdk.providers` (what a plugin author implements), `omnisdk.testing`,
`omnisdk.analytics`, `omnisdk.journeys`, `omnisdk.broadcasts`, `omnisdk.segments`, `omnisdk.store`.
The names that used to be exported here still import from `omnisdk` (see `_ELSEWHERE`), without a
warning: code written against them keeps working. docs/architecture.md says why each name is where.
"""

import importlib as _importlib
import sys as _sys
import typing as _typing

from ._clock import Clock, SystemClock, VirtualClock
from ._content import SMS, Email, Letter, Message, PosOffer, Postcard, Push, Social
from ._customers import Consent, Customer, Identity
from ._errors import BatchValidationError, ConfigError, NotFoundError, OmniError, ValidationError
from ._logging import configure_logging, redact_processor
from ._omni import AsyncOmni, Omni
from ._touchpoints import Events, Touchpoint
from .delivery import Delivery
from .hookspecs import hookimpl
from .journeys import Journey, JourneyContext, journey
from .providers import secret

if _typing.TYPE_CHECKING:  # what `_ELSEWHERE` serves, for type checkers and editors (`X as X`: re-exported)
    from ._errors import BatchItemError as BatchItemError
    from ._errors import InvalidIdentifierError as InvalidIdentifierError
    from ._errors import JourneyError as JourneyError
    from ._errors import NonDeterminismError as NonDeterminismError
    from ._errors import PluginError as PluginError
    from ._errors import ProviderError as ProviderError
    from ._errors import StoreError as StoreError
    from ._errors import TemplateBudgetExceeded as TemplateBudgetExceeded
    from ._errors import TemplateError as TemplateError
    from ._errors import UnknownChannelError as UnknownChannelError
    from ._errors import WebhookError as WebhookError
    from ._logging import get_logger as get_logger
    from ._validation import Limits as Limits
    from .broadcasts import Broadcast as Broadcast
    from .broadcasts import BroadcastStatus as BroadcastStatus
    from .journeys import JourneyRun as JourneyRun
    from .providers import Accepted as Accepted
    from .providers import Capabilities as Capabilities
    from .providers import Outgoing as Outgoing
    from .providers import PermanentError as PermanentError
    from .providers import Provider as Provider
    from .providers import RetryableError as RetryableError
    from .providers import WebhookEvent as WebhookEvent
    from .providers import WebhookRequest as WebhookRequest
    from .providers import WebhookResponse as WebhookResponse
    from .providers import WebhookResult as WebhookResult
    from .store import QuarantinedRow as QuarantinedRow
    from .store import QuarantineRepair as QuarantineRepair

__version__ = "0.1.0"

__all__ = [
    "AsyncOmni",
    "BatchValidationError",
    "Clock",
    "ConfigError",
    "Consent",
    "Customer",
    "Delivery",
    "Email",
    "Events",
    "Identity",
    "Journey",
    "JourneyContext",
    "Letter",
    "Message",
    "NotFoundError",
    "Omni",
    "OmniError",
    "PosOffer",
    "Postcard",
    "Push",
    "SMS",
    "Social",
    "SystemClock",
    "Touchpoint",
    "ValidationError",
    "VirtualClock",
    "__version__",
    "configure_logging",
    "hookimpl",
    "journey",
    "redact_processor",
    "secret",
]

#: Names exported here before the surface shrank, and the namespace each lives in now.
_ELSEWHERE: dict[str, str] = {
    **dict.fromkeys(
        ("BatchItemError", "InvalidIdentifierError", "JourneyError", "NonDeterminismError", "PluginError",
         "ProviderError", "StoreError", "TemplateBudgetExceeded", "TemplateError", "UnknownChannelError",
         "WebhookError"),
        "errors",
    ),
    **dict.fromkeys(
        ("Accepted", "Capabilities", "Outgoing", "PermanentError", "Provider", "RetryableError", "WebhookEvent",
         "WebhookRequest", "WebhookResponse", "WebhookResult", "get_logger"),
        "providers",
    ),
    "Broadcast": "broadcasts",
    "BroadcastStatus": "broadcasts",
    "JourneyRun": "journeys",
    "Limits": "_validation",  # the defaults of `[limits]`; docs/security.md reads them as `omnisdk.Limits`
    "QuarantineRepair": "store",
    "QuarantinedRow": "store",
}


def __getattr__(name: str) -> object:
    """The names that moved to a namespace, still importable from here (not cached: `__all__` stays the truth)."""
    home = _ELSEWHERE.get(name)
    if home is None:
        raise AttributeError(f"module 'omnisdk' has no attribute {name!r}")
    # Read from the loaded module when it is (a plugin reads `omnisdk.Accepted` per message, and
    # `import_module` takes the import lock each time); imported the first time.
    module = _sys.modules.get(f"{__name__}.{home}") or _importlib.import_module(f"{__name__}.{home}")
    return getattr(module, name)
