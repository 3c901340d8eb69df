"""Reconciling an email whose send outcome is unknown: Mailgun's Events API, SendGrid's Email Activity,
and SMTP's Message-ID derived from the delivery id.

Each lookup runs against the imitation, which checks the request against the provider's contract,
drops connections before or after acting on a send, and stamps with the same virtual clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import httpx
import pytest
from omnisdk_email import MailgunEmail, SendGridEmail

import omnisdk
from omnisdk.providers import InDoubt, NotSent, Reconciliation, RetryableError, StillUnknown
from omnisdk.testing import provider_config
from omnisdk.testing.conformance import ProviderSuite
from omnisdk.testing.imitations import Faults, MailgunImitation, SendGridImitation

T = TypeVar("T")
DOMAIN = "mg.acme.example"


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def closing() -> T:
        return await main()

    return asyncio.run(closing())


def email(to: str = "ada@example.com", delivery_id: str | None = None) -> omnisdk.Outgoing:
    content = omnisdk.Email(subject="Your order has shipped", text="It is on its way.", html="<p>On its way.</p>")
    message = ProviderSuite.make_outgoing(to=to, content=content, purpose="transactional")
    return attrs.evolve(message, delivery_id=delivery_id) if delivery_id else message


def mailgun(api: MailgunImitation, clock: omnisdk.VirtualClock, **settings: Any) -> MailgunEmail:
    config = provider_config(MailgunEmail, {"api_key": api.api_key, "domain": DOMAIN, "from": "hello@acme.example",
                                            "base_url": api.base_url, **settings}, "channels.email")
    return MailgunEmail(config, http=httpx.AsyncClient(), clock=clock)


def sendgrid(api: SendGridImitation, clock: omnisdk.VirtualClock, **settings: Any) -> SendGridEmail:
    config = provider_config(SendGridEmail, {"api_key": api.api_key, "from": "Acme <hello@acme.example>",
                                             "base_url": api.base_url, "email_activity": True, **settings},
                             "channels.email")
    return SendGridEmail(config, http=httpx.AsyncClient(), clock=clock)


async def lost(provider: omnisdk.Provider, clock: omnisdk.VirtualClock, *messages: omnisdk.Outgoing) -> list[InDoubt]:
    """Send through a dropped connection: every outcome is unknown, as the core would see it."""
    attempted_at = clock.now()
    outcomes = await provider.send(messages)
    assert all(isinstance(o, RetryableError) and o.ambiguous for o in outcomes), outcomes
    return [InDoubt(outgoing=m, attempted_at=attempted_at) for m in messages]


@pytest.fixture
def clock() -> omnisdk.VirtualClock:
    return omnisdk.VirtualClock()


# -- Mailgun --------------------------------------------------------------------------------------

def test_mailgun_finds_the_accepted_event_carrying_the_delivery_id(clock: omnisdk.VirtualClock) -> None:
    with MailgunImitation(clock=clock, faults=Faults(drop_after_accept=1)) as api:
        provider = mailgun(api, clock)

        async def main() -> list[Reconciliation]:
            [item] = await lost(provider, clock, email())
            clock.advance(seconds=10)
            return list(await provider.reconcile([item]))

        [answer] = run(main)
    api.assert_no_violations()
    assert answer == omnisdk.Accepted(provider_message_id=api.messages[0]["id"].strip("<>"))
    lookup = next(r for r in api.requests if r.method == "GET")
    assert lookup.query["event"] == "accepted" and lookup.query["recipient"] == "ada@example.com"


def test_mailgun_says_not_sent_only_once_the_lag_has_passed(clock: omnisdk.VirtualClock) -> None:
    with MailgunImitation(clock=clock, faults=Faults(drop_before_send=1)) as api:
        provider = mailgun(api, clock, reconcile_lag=1800)

        async def main() -> list[Reconciliation]:
            [item] = await lost(provider, clock, email())
            clock.advance(minutes=10)
            early = await provider.reconcile([item])
            clock.advance(minutes=20)
            return [*early, *await provider.reconcile([item])]

        early, late = run(main)
    api.assert_no_violations()
    assert isinstance(early, StillUnknown) and early.retry_after == pytest.approx(1200)
    assert isinstance(late, NotSent)


def test_mailgun_keeps_a_failed_or_lagging_lookup_unknown(clock: omnisdk.VirtualClock) -> None:
    with MailgunImitation(clock=clock, index_lag=120, faults=Faults(drop_after_accept=1)) as api:
        provider = mailgun(api, clock)

        async def main() -> list[Reconciliation]:
            [item] = await lost(provider, clock, email())
            lagging = await provider.reconcile([item])
            clock.advance(seconds=120)
            api.faults.fail_next(1, "unavailable")
            failed = await provider.reconcile([item])
            return [*lagging, *failed, *await provider.reconcile([item])]

        lagging, failed, found = run(main)
    api.assert_no_violations()
    assert isinstance(lagging, StillUnknown) and isinstance(failed, StillUnknown) and "503" in failed.reason
    assert found == omnisdk.Accepted(provider_message_id=api.messages[0]["id"].strip("<>"))


def test_mailgun_pages_when_the_variable_filter_is_not_honoured(clock: omnisdk.VirtualClock) -> None:
    with MailgunImitation(clock=clock, filter_user_variables=False) as api:
        provider = mailgun(api, clock)

        async def main() -> list[Reconciliation]:
            attempted_at = clock.now()
            for n in range(650):
                await provider.send([email(delivery_id=f"dlv_other_{n}")])
            api.faults.fail_next(1, "drop_after_accept")
            ours = email(delivery_id="dlv_ours")
            await provider.send([ours])
            never = InDoubt(outgoing=email(delivery_id="dlv_never"), attempted_at=attempted_at)
            clock.advance(hours=1)
            return list(await provider.reconcile([InDoubt(outgoing=ours, attempted_at=attempted_at), never]))

        found, never = run(main)
    api.assert_no_violations()
    assert found == omnisdk.Accepted(provider_message_id=api.messages[-1]["id"].strip("<>"))
    assert isinstance(never, NotSent)
    # 651 events at 300 a page: 3 pages for ours; 3 and the empty page that ends the search for the other
    assert len([r for r in api.requests if r.method == "GET"]) == 3 + 4


# -- SendGrid -------------------------------------------------------------------------------------

def test_sendgrid_finds_each_recipient_of_a_lost_batch(clock: omnisdk.VirtualClock) -> None:
    with SendGridImitation(clock=clock, faults=Faults(drop_after_accept=1)) as api:
        provider = sendgrid(api, clock)

        async def main() -> list[Reconciliation]:
            items = await lost(provider, clock, *(email(f"c{i}@example.com") for i in range(3)))
            clock.advance(seconds=30)
            return list(await provider.reconcile(items))

        answers = run(main)
    api.assert_no_violations()
    [mail] = api.mails
    assert answers == [omnisdk.Accepted(provider_message_id=mail["message_id"])] * 3


def test_sendgrid_says_not_sent_only_once_the_lag_has_passed(clock: omnisdk.VirtualClock) -> None:
    with SendGridImitation(clock=clock, faults=Faults(drop_before_send=1)) as api:
        provider = sendgrid(api, clock, reconcile_lag=600)

        async def main() -> list[Reconciliation]:
            [item] = await lost(provider, clock, email())
            clock.advance(minutes=4)
            early = await provider.reconcile([item])
            clock.advance(minutes=6)
            return [*early, *await provider.reconcile([item])]

        early, late = run(main)
    api.assert_no_violations()
    assert api.mails == []
    assert isinstance(early, StillUnknown) and early.retry_after == pytest.approx(360)
    assert isinstance(late, NotSent)


def test_sendgrid_without_email_activity_cannot_settle_anything(clock: omnisdk.VirtualClock) -> None:
    with SendGridImitation(clock=clock, email_activity=False, faults=Faults(drop_after_accept=1)) as api:
        without_addon = sendgrid(api, clock, email_activity=False)
        misconfigured = sendgrid(api, clock)  # says it has the add-on; the account does not

        async def main() -> list[Reconciliation]:
            [item] = await lost(without_addon, clock, email())
            clock.advance(hours=1)
            return [*await without_addon.reconcile([item]), *await misconfigured.reconcile([item])]

        unknown, forbidden = run(main)
    api.assert_no_violations()
    assert isinstance(unknown, StillUnknown) and "Email Activity" in unknown.reason
    assert isinstance(forbidden, StillUnknown) and "403" in forbidden.reason
    assert len([r for r in api.requests if r.method == "GET"]) == 1  # only the misconfigured one asked
