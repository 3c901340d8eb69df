"""What the email providers share: the rendition to send, recipient checks, unsubscribe headers."""

from __future__ import annotations

import re
from typing import Any

import attrs
from email_validator import EmailNotValidError, validate_email

from omnisdk import Email, Outgoing, PermanentError

__all__ = ["HTTP_URL", "check_outgoing", "mailbox", "unsubscribe_headers"]

#: attrs validator for URL settings.
HTTP_URL = attrs.validators.matches_re(r"https?://[^\s/]+", func=re.match)
#: Header name under which providers carry our delivery id (custom args, user variables).
DELIVERY_ARG = "omnisdk_delivery_id"


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


def check_outgoing(message: Outgoing) -> Email | PermanentError:
    """The email rendition to send, or why this message can never be sent."""
    if not isinstance(message.content, Email):
        return PermanentError(reason=f"expected Email content, got {type(message.content).__name__}", code="content")
    if not (message.content.text or message.content.html):
        return PermanentError(reason="the email has neither a text nor an html body", code="content")
    try:
        validate_email(message.to, check_deliverability=False)
    except EmailNotValidError:
        return PermanentError(reason="recipient is not a valid email address", code="invalid_address",
                              forget_address=True)
    return message.content


def unsubscribe_headers(message: Outgoing, mailto: str | None) -> dict[str, str]:
    """RFC 2369 `List-Unsubscribe`, plus RFC 8058 one-click `List-Unsubscribe-Post` for an https URL."""
    url = message.metadata.get("unsubscribe_url")
    targets = []
    if isinstance(url, str) and url:
        targets.append(f"<{url}>")
    if mailto:
        targets.append(f"<mailto:{mailto}?subject=unsubscribe>")
    if not targets:
        return {}
    headers = {"List-Unsubscribe": ", ".join(targets)}
    if isinstance(url, str) and url.startswith("https://"):
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers

