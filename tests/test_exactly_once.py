"""Exactly once, without idempotency keys: through imitations that drop one sending call in 9 before the
provider acts on it and one in 11 after it accepted the message, every allowed message reaches the
provider once and every delivery record carries the provider's message id.

Both drops look the same to the client (a connection closed before the answer), so each delivery is
in doubt; the dispatcher asks the provider (`Provider.reconcile`: Twilio's Message list, Vonage's
Reports API, Mailgun's Events API, SendGrid's Email Activity) and resends only what it did not find.
Each imitation stamps with the test's virtual clock, which the loop moves past the lookup lags.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from omnisdk import SMS, Email, Message, Omni, VirtualClock
from omnisdk.delivery import enqueue_delivery
from omnisdk.testing.imitations import (
    Faults,
    Imitation,
    MailgunImitation,
    SendGridImitation,
    TwilioImitation,
    VonageImitation,
)

CUSTOMERS = 44
OPTED_OUT = {f"c-{i}" for i in range(0, CUSTOMERS, 11)}  # 4 customers who said no
SID = "AC" + "b" * 32
DOMAIN = "mg.acme.example"


@attrs.frozen
class Channel:
    """One provider under test: its imitation, its configuration, and what the imitation received."""

    imitation: Callable[[Faults, VirtualClock], Imitation]
    channel: str
    config: Callable[[Any], dict[str, Any]]
    #: (recipient, provider message id) of every message the imitation accepted.
    received: Callable[[Any], list[tuple[str, str]]]

    def address(self, i: int) -> str:
        return f"+1415555{i:04d}" if self.channel == "sms" else f"c{i}@example.com"


def _sendgrid_received(api: SendGridImitation) -> list[tuple[str, str]]:
    return [(to["email"], mail["message_id"]) for mail in api.mails
            for p in mail["request"]["personalizations"] for to in p["to"]]


CHANNELS = {
    "twilio": Channel(
        lambda faults, clock: TwilioImitation(account_sid=SID, auth_token="token", faults=faults, clock=clock),
        "sms",
        lambda api: {"provider": "twilio", "account_sid": SID, "auth_token": "token", "from": "+14155559999",
                     "base_url": api.base_url},
        lambda api: [(m["to"], m["sid"]) for m in api.messages],
    ),
    "vonage": Channel(
        lambda faults, clock: VonageImitation(faults=faults, clock=clock),
        "sms",
        lambda api: {"provider": "vonage", "api_key": api.api_key, "api_secret": api.api_secret,
                     "from": "+14155559999", "base_url": api.base_url, "reports_url": api.base_url},
        lambda api: [("+" + m["to"], m["message-id"]) for m in api.messages],
    ),
    "mailgun": Channel(
        lambda faults, clock: MailgunImitation(faults=faults, clock=clock),
        "email",
        lambda api: {"provider": "mailgun", "api_key": api.api_key, "domain": DOMAIN, "from": "shop@acme.example",
                     "base_url": api.base_url, "unsubscribe_mailto": "unsubscribe@acme.example"},
        lambda api: [(to, m["id"].strip("<>")) for m in api.messages for to in m["form"]["to"]],
    ),
    "sendgrid": Channel(
        lambda faults, clock: SendGridImitation(faults=faults, clock=clock),
        "email",
        lambda api: {"provider": "sendgrid", "api_key": api.api_key, "from": "shop@acme.example",
                     "base_url": api.base_url, "email_activity": True,
                     "unsubscribe_mailto": "unsubscribe@acme.example"},
        _sendgrid_received,
    ),
}


@pytest.mark.parametrize("name", list(CHANNELS))
def test_every_allowed_message_reaches_the_provider_once_with_its_id(
    name: str, store_url: str, clock: VirtualClock
) -> None:
    spec = CHANNELS[name]
    faults = Faults(drop_before_send=9, drop_after_accept=11)
    with spec.imitation(faults, clock) as api:
        config = {"channels": {spec.channel: spec.config(api)}, "delivery": {"http_timeout": 5.0}}
        with Omni(store_url, config=config, clock=clock) as omni:
            omni.templates.add(Message(
                "shipped",
                sms=SMS(text="Hi {{ customer.first_name }}, order {{ customer.id }} has shipped"),
                email=Email(subject="Your order has shipped", text="Hi {{ customer.first_name }}, it is on its way."),
            ))
            for i in range(CUSTOMERS):
                cid = f"c-{i}"
                address = {"phone" if spec.channel == "sms" else "email": spec.address(i)}
                omni.identify(cid, traits={"first_name": f"N{i}"}, timezone="UTC", **address)
                omni.consent(cid, channel=spec.channel, granted=cid not in OPTED_OUT)
            with omni.store.transaction() as tx:
                for i in range(CUSTOMERS):
                    enqueue_delivery(tx, key=f"order-{i}:shipped", customer_id=f"c-{i}", template="shipped",
                                     channels=[spec.channel], now=clock.timestamp(), purpose="marketing")
            for _ in range(60):  # each round: due sends and lookups, then past the providers' index lags
                omni.run_until_idle()
                if not omni.deliveries(status=["queued", "deferred", "sending"], limit=1000):
                    break
                clock.advance(minutes=2)
            deliveries = omni.deliveries(limit=1000)
    api.assert_no_violations()

    sending_calls = [r for r in api.requests if r.method == "POST"]
    dropped = Counter(r.fault for r in sending_calls if r.fault)
    assert dropped["drop_before_send"] and dropped["drop_after_accept"]
    assert sum(dropped.values()) >= 0.10 * len(sending_calls)

    received = spec.received(api)
    allowed = {spec.address(i) for i in range(CUSTOMERS) if f"c-{i}" not in OPTED_OUT}
    assert Counter(to for to, _ in received) == Counter(allowed)  # every allowed one, each exactly once
    ids = dict(received)
    by_customer = {d.customer_id: d for d in deliveries}
    for i in range(CUSTOMERS):
        delivery = by_customer[f"c-{i}"]
        if f"c-{i}" in OPTED_OUT:
            assert delivery.status == "skipped"
            continue
        assert (delivery.status, delivery.provider_message_id) == ("sent", ids[spec.address(i)]), delivery
