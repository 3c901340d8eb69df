"""SendGrid and Mailgun against the imitations that check each request against the providers' contracts."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from omnisdk_email import MailgunEmail, SendGridEmail

import omnisdk
from omnisdk.testing import provider_config
from omnisdk.testing.conformance import ProviderSuite
from omnisdk.testing.imitations import Faults, MailgunImitation, SendGridImitation


def outgoing(i: int, html: str = "<p>Hi</p>", purpose: str = "marketing", **metadata: Any) -> omnisdk.Outgoing:
    """A marketing email with the one-click link the core signs when `webhooks.public_url` is https."""
    content = omnisdk.Email(subject=f"Hi #{i}", html=html, text="Hi", categories=("cart",))
    metadata.setdefault("unsubscribe_url", f"https://shop.example/u/{i}")
    return ProviderSuite.make_outgoing(to=f"c{i}@example.com", content=content, metadata=metadata, purpose=purpose)


def provider(cls: type[omnisdk.Provider], base_url: str, **settings: Any) -> Any:
    return cls(provider_config(cls, {"base_url": base_url, **settings}, "channels.email"), http=httpx.AsyncClient())


async def send(p: Any, batch: list[omnisdk.Outgoing]) -> list[omnisdk.providers.Outcome]:
    async with p.http:
        return list(await p.send(batch))


def sendgrid(base_url: str) -> SendGridEmail:
    return provider(SendGridEmail, base_url, api_key="SG.test-key", from_="Acme <hello@acme.example>")


def test_a_broadcast_of_1000_is_one_request_with_a_personalization_each() -> None:
    batch = [outgoing(i, unsubscribe_url=f"https://shop.example/u/{i}") for i in range(1000)]
    with SendGridImitation() as api:
        outcomes = asyncio.run(send(sendgrid(api.base_url), batch))
    api.assert_no_violations()
    [mail] = api.mails
    personalizations = mail["request"]["personalizations"]
    assert len(personalizations) == 1000
    assert personalizations[7]["subject"] == "Hi #7"
    assert personalizations[7]["custom_args"] == {"omnisdk_delivery_id": batch[7].delivery_id}
    assert personalizations[7]["headers"]["List-Unsubscribe"] == "<https://shop.example/u/7>"
    assert mail["request"]["categories"] == ["cart"]
    assert {o.provider_message_id for o in outcomes if isinstance(o, omnisdk.Accepted)} == {mail["message_id"]}


def test_different_bodies_go_in_separate_requests_and_keep_their_order() -> None:
    batch = [outgoing(0, "<p>A</p>"), outgoing(1, "<p>B</p>"), outgoing(2, "<p>A</p>")]
    with SendGridImitation() as api:
        outcomes = asyncio.run(send(sendgrid(api.base_url), batch))
    api.assert_no_violations()
    assert sorted(len(m["request"]["personalizations"]) for m in api.mails) == [1, 2]
    by_body = {m["request"]["content"][1]["value"]: m["message_id"] for m in api.mails}
    assert [o.provider_message_id for o in outcomes] == [by_body["<p>A</p>"], by_body["<p>B</p>"],  # type: ignore
                                                         by_body["<p>A</p>"]]


def test_sendgrid_throttling_is_retryable_after_the_reset() -> None:
    faults = Faults(retry_after=4)
    faults.fail_next(1, "rate_limit")
    with SendGridImitation(faults=faults) as api:
        [outcome] = asyncio.run(send(sendgrid(api.base_url), [outgoing(0)]))
    assert isinstance(outcome, omnisdk.RetryableError) and outcome.retry_after == pytest.approx(4, abs=1)


def test_sendgrid_wrong_key_is_permanent() -> None:
    with SendGridImitation(api_key="SG.other") as api:
        [outcome] = asyncio.run(send(sendgrid(api.base_url), [outgoing(0)]))
    assert isinstance(outcome, omnisdk.PermanentError) and outcome.status == 401


def test_mailgun_form_passes_the_contract_and_carries_the_delivery_id() -> None:
    with MailgunImitation(api_key="key-test") as api:
        mailgun = provider(MailgunEmail, api.base_url, api_key="key-test", domain="mg.acme.example",
                           from_="hello@mg.acme.example")
        [outcome] = asyncio.run(send(mailgun, [outgoing(0, unsubscribe_url="https://shop.example/u/0")]))
    api.assert_no_violations()
    form = api.messages[0]["form"]
    assert form["v:omnisdk_delivery_id"] == outgoing(0).delivery_id
    assert form["h:List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert form["o:tag"] == ["cart"]
    assert isinstance(outcome, omnisdk.Accepted)
    assert f"<{outcome.provider_message_id}>" == api.messages[0]["id"]


def test_mailgun_names_its_token_as_the_nonce_the_core_remembers() -> None:
    """The store-backed refusal of a token reused on another body is in tests/test_webhook_security.py."""
    from test_email_conformance import MAILGUN_KEY, mailgun_webhook

    mailgun = provider(MailgunEmail, "https://api.mailgun.net", api_key="k", domain="mg.acme.example",
                       from_="a@mg.acme.example", webhook_signing_key=MAILGUN_KEY, webhook_tolerance=10**10)
    genuine = mailgun_webhook()
    mailgun.verify_webhook(genuine)
    forged = omnisdk.WebhookRequest(method="POST", url=genuine.url, headers=genuine.headers,
                                    body=genuine.body.replace(b'"delivered"', b'"complained"'))
    mailgun.verify_webhook(forged)  # the signature does not cover the event data: only the nonce can tell
    assert mailgun.webhook_nonce(genuine) == mailgun.webhook_nonce(forged) is not None


def mailgun(base_url: str, **settings: Any) -> MailgunEmail:
    return provider(MailgunEmail, base_url, api_key="key-test", domain="mg.acme.example",
                    from_="hello@mg.acme.example", **settings)


@pytest.mark.parametrize("url", [None, "http://localhost:8000/omnisdk/u/tok"], ids=["no link", "the http default"])
def test_marketing_without_a_one_click_link_or_mailto_is_refused_not_sent_bare(url: str | None) -> None:
    with SendGridImitation() as sg_api, MailgunImitation(api_key="key-test") as mg_api:
        refused = [asyncio.run(send(p, [outgoing(0, unsubscribe_url=url)]))[0]
                   for p in (sendgrid(sg_api.base_url), mailgun(mg_api.base_url))]
        sent = [asyncio.run(send(p, [outgoing(0, purpose="transactional", unsubscribe_url=url)]))[0]
                for p in (sendgrid(sg_api.base_url), mailgun(mg_api.base_url))]
    for outcome in refused:
        assert isinstance(outcome, omnisdk.PermanentError) and outcome.code == "no_unsubscribe"
        assert "webhooks.public_url" in outcome.reason and "unsubscribe_mailto" in outcome.reason
    assert all(isinstance(o, omnisdk.Accepted) for o in sent)  # transactional mail needs no unsubscribe
    assert "headers" not in sg_api.mails[0]["request"]["personalizations"][0]
    assert not [k for k in mg_api.messages[0]["form"] if k.startswith("h:List-Unsubscribe")]


def test_a_mailto_unsubscribe_is_used_when_there_is_no_one_click_link() -> None:
    mailto = "unsubscribe@acme.example"
    with SendGridImitation() as sg_api, MailgunImitation(api_key="key-test") as mg_api:
        outcomes = [asyncio.run(send(p, [outgoing(0, unsubscribe_url=None)]))[0] for p in (
            provider(SendGridEmail, sg_api.base_url, api_key="SG.test-key", from_="hello@acme.example",
                     unsubscribe_mailto=mailto),
            mailgun(mg_api.base_url, unsubscribe_mailto=mailto))]
        sg_api.assert_no_violations()
        mg_api.assert_no_violations()
    assert all(isinstance(o, omnisdk.Accepted) for o in outcomes)
    target = "<mailto:unsubscribe@acme.example?subject=unsubscribe>"
    assert sg_api.mails[0]["request"]["personalizations"][0]["headers"] == {"List-Unsubscribe": target}
    form = mg_api.messages[0]["form"]
    assert form["h:List-Unsubscribe"] == target and "h:List-Unsubscribe-Post" not in form  # one-click needs https
