"""SMTP against a real server (aiosmtpd): MIME that parses, DKIM that verifies, one-click unsubscribe."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import Mapping
from typing import Any

import dkim
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from omnisdk_email import SMTPEmail

import omnisdk
from omnisdk.testing import provider_config
from omnisdk.testing.conformance import ProviderSuite

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
DNS_RECORD = b"v=DKIM1; k=rsa; p=" + base64.b64encode(
    KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
)


def dns(name: bytes, timeout: int = 5) -> bytes:
    assert name == b"omni1._domainkey.acme.example.", name
    return DNS_RECORD


def provider(settings: Mapping[str, Any], **extra: Any) -> SMTPEmail:
    config = provider_config(SMTPEmail, {"from": "Acme <hello@acme.example>", **settings, **extra}, "channels.email")
    return SMTPEmail(config, http=httpx.AsyncClient(), clock=omnisdk.VirtualClock())


def message(to: str = "ada@example.com", purpose: str = "marketing", **metadata: Any) -> omnisdk.Outgoing:
    """A marketing email with the one-click link the core signs when `webhooks.public_url` is https."""
    content = omnisdk.Email(
        subject="Ada, voilà ton panier 🛒", text="Reviens vite", html="<p>Reviens <b>vite</b></p>",
        preheader="-10% cet été", headers={"X-Campaign": "cart", "From": "spoof@evil.example"},
    )
    metadata.setdefault("unsubscribe_url", "https://shop.example/u/tok-0")
    return ProviderSuite.make_outgoing(to=to, content=content, metadata=metadata, purpose=purpose)


async def send(smtp: SMTPEmail, *messages: omnisdk.Outgoing) -> list[omnisdk.providers.Outcome]:
    try:
        return list(await smtp.send(messages))
    finally:
        await smtp.aclose()


def test_message_parses_and_dkim_verifies(smtp_server: Any) -> None:
    smtp = provider(smtp_server.settings, dkim_domain="acme.example", dkim_selector="omni1",
                    dkim_private_key=PRIVATE_PEM)
    outcomes = asyncio.run(send(smtp, message(unsubscribe_url="https://shop.example/u/tok-1")))
    assert isinstance(outcomes[0], omnisdk.Accepted)
    [raw] = smtp_server.requests
    assert dkim.verify(raw, dnsfunc=dns)
    received = smtp_server.messages[0]
    assert received["Subject"] == "Ada, voilà ton panier 🛒"
    assert received["From"] == "Acme <hello@acme.example>"  # a template cannot override From
    assert received["X-Campaign"] == "cart"
    assert received["Message-ID"] == f"<{outcomes[0].provider_message_id}>"
    assert received["List-Unsubscribe"] == "<https://shop.example/u/tok-1>"
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received.get_content_type() == "multipart/alternative"
    text, html = received.iter_parts()
    assert text.get_content().strip() == "Reviens vite"
    assert "<b>vite</b>" in html.get_content() and "-10% cet été" in html.get_content()
    tags = dict(tag.strip().split("=", 1) for tag in str(received["DKIM-Signature"]).split(";") if "=" in tag)
    covered = {name.strip().lower() for name in tags["h"].split(":")}
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject", "message-id"} <= covered


def test_tampered_message_fails_dkim(smtp_server: Any) -> None:
    smtp = provider(smtp_server.settings, dkim_domain="acme.example", dkim_selector="omni1",
                    dkim_private_key=PRIVATE_PEM)
    asyncio.run(send(smtp, message(unsubscribe_url="https://shop.example/u/tok-1")))
    raw = smtp_server.requests[0].replace(b"/u/tok-1", b"/u/tok-2")
    assert not dkim.verify(raw, dnsfunc=dns)


def test_transactional_mail_without_a_link_goes_without_unsubscribe_headers(smtp_server: Any) -> None:
    [outcome] = asyncio.run(send(provider(smtp_server.settings), message(purpose="transactional",
                                                                         unsubscribe_url=None)))
    assert isinstance(outcome, omnisdk.Accepted)
    received = smtp_server.messages[0]
    assert "List-Unsubscribe" not in received and "List-Unsubscribe-Post" not in received


@pytest.mark.parametrize("url", [None, "http://localhost:8000/omnisdk/u/tok"], ids=["no link", "the http default"])
def test_marketing_without_a_one_click_link_or_mailto_is_refused(smtp_server: Any, url: str | None) -> None:
    [outcome] = asyncio.run(send(provider(smtp_server.settings), message(unsubscribe_url=url)))
    assert isinstance(outcome, omnisdk.PermanentError) and outcome.code == "no_unsubscribe"
    assert "webhooks.public_url" in outcome.reason and "unsubscribe_mailto" in outcome.reason
    assert smtp_server.requests == []


def test_marketing_with_only_a_mailto_unsubscribe(smtp_server: Any) -> None:
    smtp = provider(smtp_server.settings, unsubscribe_mailto="unsubscribe@acme.example")
    [outcome] = asyncio.run(send(smtp, message(unsubscribe_url="http://localhost:8000/omnisdk/u/tok")))
    assert isinstance(outcome, omnisdk.Accepted)
    received = smtp_server.messages[0]
    assert received["List-Unsubscribe"] == "<mailto:unsubscribe@acme.example?subject=unsubscribe>"
    assert "List-Unsubscribe-Post" not in received  # RFC 8058 one-click needs an https URI


def test_mailto_unsubscribe_alongside_one_click(smtp_server: Any) -> None:
    smtp = provider(smtp_server.settings, unsubscribe_mailto="unsubscribe@acme.example")
    asyncio.run(send(smtp, message(unsubscribe_url="https://shop.example/u/tok-9")))
    assert smtp_server.messages[0]["List-Unsubscribe"] == (
        "<https://shop.example/u/tok-9>, <mailto:unsubscribe@acme.example?subject=unsubscribe>"
    )


def test_starttls_and_auth_over_a_pool(smtp_tls_server: Any, tls_files: Any) -> None:
    smtp = provider(smtp_tls_server.settings, starttls=True, username="omni", password="omni-pass",
                    ca_file=str(tls_files.cert), pool_size=2)
    batch = [message(to=f"ada{i}@example.com") for i in range(6)]
    outcomes = asyncio.run(send(smtp, *batch))
    assert all(isinstance(o, omnisdk.Accepted) for o in outcomes), outcomes
    assert sorted(rcpt for _, [rcpt] in smtp_tls_server.envelopes) == sorted(m.to for m in batch)
    assert len({o.provider_message_id for o in outcomes if isinstance(o, omnisdk.Accepted)}) == 6


def test_wrong_password_is_permanent(smtp_tls_server: Any, tls_files: Any) -> None:
    smtp = provider(smtp_tls_server.settings, starttls=True, username="omni", password="nope",
                    ca_file=str(tls_files.cert))
    [outcome] = asyncio.run(send(smtp, message()))
    assert isinstance(outcome, omnisdk.PermanentError) and outcome.code == "535"
    assert "nope" not in repr(outcome)


def test_bad_mailbox_is_permanent_and_forgets_the_address(smtp_server: Any) -> None:
    smtp_server.answer_with("reject")
    [outcome] = asyncio.run(send(provider(smtp_server.settings), message()))
    assert isinstance(outcome, omnisdk.PermanentError) and outcome.forget_address


def test_invalid_recipient_is_refused_before_sending(smtp_server: Any) -> None:
    [outcome] = asyncio.run(send(provider(smtp_server.settings), message(to="not-an-address")))
    assert isinstance(outcome, omnisdk.PermanentError) and outcome.code == "invalid_address"
    assert smtp_server.requests == []


@pytest.mark.parametrize("settings", [
    {"dkim_domain": "acme.example"},
    {"dkim_domain": "acme.example", "dkim_selector": "s", "dkim_private_key": "not a key"},
    {"tls": True, "starttls": True},
])
def test_inconsistent_settings_are_config_errors(settings: Mapping[str, Any]) -> None:
    with pytest.raises(omnisdk.ConfigError):
        provider_config(SMTPEmail, {"host": "h", "from": "a@acme.example", **settings}, "channels.email")


def test_a_resend_after_an_unknown_outcome_carries_the_same_message_id(smtp_server: Any) -> None:
    # SMTP cannot be asked what a relay took, so it is at least once: the copy must be recognisable
    assert SMTPEmail.capabilities.crash_policy == "at_least_once"
    first, again, other = message(), message(), message(to="bob@example.com")
    before = len(smtp_server.messages)
    outcomes = asyncio.run(send(provider(smtp_server.settings), first, again, other))
    ids = Counter(m["Message-ID"] for m in smtp_server.messages[before:])
    assert ids == Counter({f"<{first.delivery_id}@acme.example>": 2, f"<{other.delivery_id}@acme.example>": 1})
    assert Counter(f"<{o.provider_message_id}>" for o in outcomes if isinstance(o, omnisdk.Accepted)) == ids
