"""What the email providers share: the rendition to send, recipient checks, unsubscribe headers."""

from __future__ import annotations

import re
from typing import Any

import attrs
from email_validator import EmailNotValidError, validate_email

from omnisdk import Email, Outgoing, PermanentError

__all__ = ["HTTP_URL", "NO_UNSUBSCRIBE", "check_outgoing", "mailbox", "unsubscribe_headers"]

#: attrs validator for URL settings.
HTTP_URL = attrs.validators.matches_re(r"https?://[^\s/]+", func=re.match)
#: Header name under which providers carry our delivery id (custom args, user variables).
DELIVERY_ARG = "omnisdk_delivery_id"

#: Why a marketing email was refused, and how to fix it.
NO_UNSUBSCRIBE = (
    "marketing email needs a List-Unsubscribe: configure an https webhooks.public_url (or "
    "templates.links.base_url) where the ASGI app is mounted, for RFC 8058 one-click links, "
    "or channels.email.unsubscribe_mailto"
)


def mailbox(_instance: object, attribute: Any, value: Any) -> None:
    """attrs validator: an address, or `Name <address>`."""
    from email.utils import parseaddr

    if value is None:
        return
    address = parseaddr(str(value))[1]
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        raise ValueError(f"{attribute.name.rstrip('_')}: {value!r} is not an email address") from None


def check_outgoing(message: Outgoing, *, unsubscribe_mailto: str | None) -> Email | PermanentError:
    """The email rendition to send, or why this message can never be sent.

    Marketing email must carry `List-Unsubscribe` (RFC 2369; Gmail and Yahoo require it of bulk
    senders, one-click per RFC 8058): without an https unsubscribe link (the ASGI app's, when
    `webhooks.public_url` or `templates.links.base_url` is https) and without `unsubscribe_mailto`,
    it is refused here, saying what to configure, rather than sent without one."""
    if not isinstance(message.content, Email):
        return PermanentError(reason=f"expected Email content, got {type(message.content).__name__}", code="content")
    if not (message.content.text or message.content.html):
        return PermanentError(reason="the email has neither a text nor an html body", code="content")
    try:
        validate_email(message.to, check_deliverability=False)
    except EmailNotValidError:
        return PermanentError(reason="recipient is not a valid email address", code="invalid_address",
                              forget_address=True)
    if message.purpose == "marketing" and not (_one_click_url(message) or unsubscribe_mailto):
        return PermanentError(code="no_unsubscribe", reason=NO_UNSUBSCRIBE)
    return message.content


def _one_click_url(message: Outgoing) -> str | None:
    """The signed unsubscribe link when it can be a one-click target: RFC 8058 requires https, and an
    http link is the unconfigured default (localhost) or not one Gmail and Yahoo accept."""
    url = message.metadata.get("unsubscribe_url")
    return url if isinstance(url, str) and url.startswith("https://") else None


def unsubscribe_headers(message: Outgoing, mailto: str | None) -> dict[str, str]:
    """RFC 2369 `List-Unsubscribe`, plus RFC 8058 one-click `List-Unsubscribe-Post` for an https URL."""
    url = _one_click_url(message)
    targets = [f"<{url}>"] if url else []
    if mailto:
        targets.append(f"<mailto:{mailto}?subject=unsubscribe>")
    if not targets:
        return {}
    headers = {"List-Unsubscribe": ", ".join(targets)}
    if url:
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers
