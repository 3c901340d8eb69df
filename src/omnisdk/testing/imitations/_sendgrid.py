"""SendGrid Mail Send v3: one JSON request carries up to 1000 personalizations."""

from __future__ import annotations

import string
import time
from typing import Any

import attrs
from aiohttp import web

from ._base import Imitation, route
from ._call import Call, Invalid, Problem
from ._util import random_id

__all__ = ["SendGridImitation"]

_MESSAGES = {
    401: "The provided authorization grant is invalid, expired, or revoked",
    429: "too many requests",
    500: "internal server error",
    503: "service unavailable",
}


@attrs.define(kw_only=True, slots=False, eq=False)
class SendGridImitation(Imitation):
    """api.sendgrid.com's /v3/mail/send: Bearer API key, 202 with X-Message-Id, `{"errors": [...]}`.

    Accepted requests are in `mails`, each `{"message_id": ..., "request": <the JSON sent>}`.
    """

    contract = "sendgrid_mail_send.json"

    api_key: str = attrs.field(default="SG.test-key", repr=False)
    #: What X-RateLimit-Limit says.
    rate_limit: int = 600
    mails: list[dict[str, Any]] = attrs.field(factory=list, init=False, repr=False)

    def authenticate(self, call: Call) -> bool:
        return call.bearer() == self.api_key

    def error(self, status: int, problem: Problem | None = None) -> web.StreamResponse:
        message = problem.message if problem and problem.where != "auth" else _MESSAGES.get(status, "bad request")
        field = problem.field if problem and problem.where != "auth" else None
        return web.json_response({"errors": [{"message": message, "field": field}]}, status=status)

    def throttled(self, retry_after: int) -> web.StreamResponse:
        response = super().throttled(retry_after)
        response.headers["X-RateLimit-Limit"] = str(self.rate_limit)
        response.headers["X-RateLimit-Remaining"] = "0"
        response.headers["X-RateLimit-Reset"] = str(int(time.time()) + retry_after)
        return response

    @route("POST", "/v3/mail/send", check="post /v3/mail/send")
    def send(self, call: Call) -> web.StreamResponse:
        mail = call.json
        templated = bool(mail.get("template_id"))
        personalizations = mail.get("personalizations") or []
        if not templated and not mail.get("content"):
            message = (
                "Unless a valid template_id is provided, the content parameter is required. "
                "There must be at least one defined content block."
            )
            raise Invalid.body(message, "content", "missing")
        if not (templated or mail.get("subject") or all(p.get("subject") for p in personalizations)):
            message = (
                "The subject is required. You can get around this requirement if you use a template "
                "with a subject defined or if every personalization has a subject defined."
            )
            raise Invalid.body(message, "subject", "missing")
        recipients = sum(len(p.get(k) or ()) for p in personalizations for k in ("to", "cc", "bcc"))
        if recipients > 1000:
            raise Invalid.body("The total number of recipients must be no more than 1000.", "personalizations")
        message_id = random_id(22, string.ascii_letters + string.digits + "-_")
        self.mails.append({"message_id": message_id, "request": mail})
        return web.Response(status=202, headers={"X-Message-Id": message_id})
