"""The email itself: multipart/alternative, RFC 2047 subjects, a stable Message-ID, and DKIM.

The Message-ID is derived from the delivery id, so a retried delivery carries the same id and
receivers that deduplicate on it show one message. DKIM signs the unsubscribe headers too: the
large mailbox providers only trust one-click unsubscribe when the signature covers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from html import escape

import dkim  # type: ignore[import-untyped]

from omnisdk import Email

__all__ = ["DKIM_HEADERS", "build_message", "dkim_sign", "message_id"]

#: Headers the DKIM signature covers (RFC 6376 §5.4.1's list, plus the unsubscribe pair of RFC 8058).
DKIM_HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "Reply-To", "MIME-Version", "Content-Type",
    "List-Unsubscribe", "List-Unsubscribe-Post",
)
#: Headers a template may not set: omnisdk sets them.
RESERVED = frozenset(h.lower() for h in (*DKIM_HEADERS, "Cc", "Bcc", "Sender", "DKIM-Signature"))


def message_id(delivery_id: str, sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2] or "omnisdk.invalid"
    return f"<{delivery_id}@{domain}>"


def build_message(
    content: Email,
    *,
    sender: str,
    to: str,
    delivery_id: str,
    date: datetime,
    extra_headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = content.from_ or sender
    message["To"] = to
    message["Subject"] = content.subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id(delivery_id, content.from_ or sender)
    if content.reply_to:
        message["Reply-To"] = content.reply_to
    for name, value in content.headers.items():
        if name.lower() not in RESERVED:
            message[name] = value
    for name, value in (extra_headers or {}).items():
        message[name] = value
    html = content.html
    if html and content.preheader:
        html = f'<div style="display:none;max-height:0;overflow:hidden">{escape(content.preheader)}</div>{html}'
    if content.text is not None:
        message.set_content(content.text, cte="quoted-printable")
        if html:
            message.add_alternative(html, subtype="html", cte="quoted-printable")
    elif html:
        message.set_content(html, subtype="html", cte="quoted-printable")
    return message


def dkim_sign(raw: bytes, *, selector: str, domain: str, private_key: str) -> bytes:
    """`raw` with a DKIM-Signature header in front (relaxed/relaxed, rsa-sha256)."""
    present = {line.split(b":", 1)[0].strip().lower() for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")}
    headers = [h.encode() for h in DKIM_HEADERS if h.lower().encode() in present]
    signature = dkim.sign(
        raw, selector.encode(), domain.encode(), private_key.encode(),
        canonicalize=(b"relaxed", b"relaxed"), include_headers=headers,
    )
    return bytes(signature) + raw
