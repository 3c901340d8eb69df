"""omnisdk email plugin: SMTP (pooled, DKIM, one-click unsubscribe), SendGrid and Mailgun providers."""

from __future__ import annotations

from typing import Any

import omnisdk

from .mailgun import MailgunEmail
from .sendgrid import SendGridEmail
from .smtp import SMTPEmail

__all__ = ["MailgunEmail", "SMTPEmail", "SendGridEmail", "register_providers"]


@omnisdk.hookimpl
def register_providers(register: Any) -> None:
    register(SMTPEmail)
    register(SendGridEmail)
    register(MailgunEmail)
