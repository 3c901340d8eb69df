"""SMTP through a pool of persistent aiosmtplib connections (STARTTLS or implicit TLS, AUTH, DKIM).

Opening a TLS session and authenticating costs several round trips, so connections are kept and
reused; a connection that failed in any way is thrown away rather than trusted again.
SMTP answers map as RFC 5321 says: 4xx is transient (retry), 5xx permanent; a 5.1.x status means
the mailbox itself is bad, so the address is forgotten.

SMTP has no way to ask a relay what it took. A connection lost after the message's final dot and
before the relay's 250 (RFC 1047's duplicate window) leaves the outcome unknown, so SMTP is
at least once: the message is sent again with the same Message-ID, derived from the delivery id,
which mailbox providers use to collapse the copy and which tells the two apart in any log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from email.utils import parseaddr
from typing import Any

import aiosmtplib
import attrs

import omnisdk
from omnisdk.providers import Outcome, transport_error_outcome

from ._common import check_outgoing, mailbox, unsubscribe_headers
from .mime import build_message, dkim_sign, message_id

__all__ = ["SMTPEmail"]


def _pem(_instance: object, _attribute: Any, value: Any) -> None:
    if value is not None and "PRIVATE KEY" not in str(value):
        raise ValueError("dkim_private_key: expected a PEM private key (-----BEGIN PRIVATE KEY-----)")


class SMTPEmail(omnisdk.Provider):
    """`[channels.email] provider = "smtp"`."""

    name = "smtp"
    channel = "email"
    capabilities = omnisdk.Capabilities(max_batch_size=50, max_concurrency=8, crash_policy="at_least_once")

    @attrs.define(kw_only=True)
    class Config:
        host: str
        from_: str = attrs.field(validator=mailbox)
        port: int = attrs.field(default=587, validator=[attrs.validators.ge(1), attrs.validators.le(65535)])
        username: str | None = None
        password: str | None = omnisdk.secret(None)
        #: None: upgrade when the server offers STARTTLS; True: require it; False: never.
        starttls: bool | None = None
        #: Implicit TLS from the first byte (port 465).
        tls: bool = False
        validate_certs: bool = True
        #: CA bundle to trust (a private relay's own CA).
        ca_file: str | None = None
        timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
        pool_size: int = attrs.field(default=4, validator=attrs.validators.ge(1))
        dkim_domain: str | None = None
        dkim_selector: str | None = None
        dkim_private_key: str | None = omnisdk.secret(None)
        #: Also offer `mailto:` unsubscribe (RFC 2369) next to the one-click URL.
        unsubscribe_mailto: str | None = attrs.field(default=None, validator=mailbox)

        def __attrs_post_init__(self) -> None:
            dkim = (self.dkim_domain, self.dkim_selector, self.dkim_private_key)
            if any(dkim) and not all(dkim):
                raise ValueError("dkim_private_key: set dkim_domain, dkim_selector and dkim_private_key together")
            _pem(self, None, self.dkim_private_key)
            if self.tls and self.starttls:
                raise ValueError("starttls: implicit TLS (tls = true) and STARTTLS exclude each other")

    config: Config

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(self.config.pool_size)

    async def _connect(self) -> aiosmtplib.SMTP:
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.host, port=config.port, username=config.username, password=config.password,
            use_tls=config.tls, start_tls=False if config.tls else config.starttls,
            validate_certs=config.validate_certs, cert_bundle=config.ca_file, timeout=config.timeout,
        )
        await client.connect()
        return client

    async def send(self, batch: Sequence[omnisdk.Outgoing]) -> Sequence[Outcome]:
        return await asyncio.gather(*(self._send_one(message) for message in batch))

    def render(self, message: omnisdk.Outgoing, content: omnisdk.Email) -> bytes:
        """The exact bytes sent for `message`: MIME, unsubscribe headers and the DKIM signature."""
        email = build_message(
            content, sender=self.config.from_, to=message.to, delivery_id=message.delivery_id,
            date=self.clock.now(), extra_headers=unsubscribe_headers(message, self.config.unsubscribe_mailto),
        )
        raw = email.as_bytes()
        config = self.config
        if config.dkim_domain and config.dkim_selector and config.dkim_private_key:
            raw = dkim_sign(raw, selector=config.dkim_selector, domain=config.dkim_domain,
                            private_key=config.dkim_private_key)
        return raw

    async def _send_one(self, message: omnisdk.Outgoing) -> Outcome:
        content = check_outgoing(message, unsubscribe_mailto=self.config.unsubscribe_mailto)
        if isinstance(content, omnisdk.PermanentError):
            return content
        raw = self.render(message, content)
        envelope_from = parseaddr(content.from_ or self.config.from_)[1]
        async with self._slots:
            client = self._idle.pop() if self._idle else None
            connecting = True
            try:
                if client is None or not client.is_connected:
                    client = await self._connect()
                connecting = False
                await client.sendmail(envelope_from, [message.to], raw)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                await _discard(client)
                return _smtp_outcome(exc.recipients[0].code, exc.recipients[0].message)
            except aiosmtplib.SMTPResponseException as exc:
                await _discard(client)
                return _smtp_outcome(exc.code, exc.message)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                await _discard(client)
                # Nothing was sent while connecting (greeting, EHLO, STARTTLS, login): a plain retry.
                return transport_error_outcome(exc, request_sent=False if connecting else None)
            self._idle.append(client)
        sender = content.from_ or self.config.from_
        return omnisdk.Accepted(provider_message_id=message_id(message.delivery_id, sender).strip("<>"))

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            await _discard(client)


def _smtp_outcome(code: int, text: str) -> Outcome:
    reason = f"smtp {code}: {text}"
    if code >= 500:
        return omnisdk.PermanentError(reason=reason, code=str(code), forget_address=" 5.1." in f" {text}")
    return omnisdk.RetryableError(reason=reason, status=code)


async def _discard(client: aiosmtplib.SMTP | None) -> None:
    if client is None:
        return
    try:
        if client.is_connected:
            await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()
