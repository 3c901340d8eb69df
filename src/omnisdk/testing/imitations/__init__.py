"""Local HTTP servers that answer like each provider and check every request against its contract.

Example::

    from omnisdk.testing.imitations import Faults, TwilioImitation

    def test_sms_is_sent():
        with TwilioImitation(faults=Faults(rate_limit=0.1)) as twilio:
            ...  # point the provider's base_url at twilio.base_url, then send
        twilio.assert_no_violations()
        assert twilio.messages[0]["to"] == "+15558675310"

A request the contract forbids gets the provider's own error and lands in `violations`;
`requests` keeps every request; each imitation keeps the provider's state (messages, orders...).
Subclass `Imitation` and declare handlers with `route` to imitate an endpoint not covered here.
"""

from ._base import Imitation, Violation, route
from ._call import Call, Invalid, Problem, RecordedRequest
from ._contract import CONTRACTS, Contract, Operation, SchemaCheck, contract, load_contract
from ._faults import FaultKind, Faults
from ._fcm import FCMImitation
from ._lob import LobImitation
from ._mailgun import MailgunImitation
from ._meta import MetaGraphImitation
from ._sendgrid import SendGridImitation
from ._shopify import ShopifyImitation
from ._square import SquareImitation
from ._twilio import TwilioImitation, twilio_signature
from ._vonage import VonageImitation
from ._webpush import Push, Subscription, WebPushImitation, decrypt_aes128gcm

__all__ = [
    "CONTRACTS",
    "Call",
    "Contract",
    "FCMImitation",
    "FaultKind",
    "Faults",
    "Imitation",
    "Invalid",
    "LobImitation",
    "MailgunImitation",
    "MetaGraphImitation",
    "Operation",
    "Problem",
    "Push",
    "RecordedRequest",
    "SchemaCheck",
    "SendGridImitation",
    "ShopifyImitation",
    "SquareImitation",
    "Subscription",
    "TwilioImitation",
    "Violation",
    "VonageImitation",
    "WebPushImitation",
    "contract",
    "decrypt_aes128gcm",
    "load_contract",
    "route",
    "twilio_signature",
]
