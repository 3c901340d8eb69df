"""SendGrid Mail Send v3: one JSON request carries up to 1000 personalizations."""

from __future__ import annotations

import re
import string
import time
from datetime import datetime
from typing import Any

import attrs
from aiohttp import web

from ._base import Imitation, route
from ._call import Call, Invalid, Problem
from ._util import random_id

__all__ = ["SendGridImitation"]

_ISO = "%Y-%m-%dT%H:%M:%SZ"
#: One clause of an Email Activity query: to_email="a@b.c", or unique_args['name']="value".
_CLAUSE = re.compile(r"(?:unique_args\['(?P<arg>[^']+)'\]|(?P<field>to_email|msg_id))\s*=\s*\"(?P<value>[^\"]*)\"")

_MESSAGES = {
    401: "The provided authorization grant is invalid, expired, or revoked",
    429: "too many requests",
    500: "internal server error",
    503: "service unavailable",
}


@attrs.define(kw_only=True, slots=False, eq=False)
class SendGridImitation(Imitation):
    """api.sendgrid.com's /v3/mail/send: Bearer API key, 202 with X-Message-Id, `{"errors": [...]}`; and
    Email Activity's GET /v3/messages, where each recipient shows after `index_lag` seconds.

    Accepted requests are in `mails`, each `{"message_id": ..., "request": <the JSON sent>}`.
    """

    contract = "sendgrid_mail_send.json"

    api_key: str = attrs.field(default="SG.test-key", repr=False)
    #: What X-RateLimit-Limit says.
    rate_limit: int = 600
    mails: list[dict[str, Any]] = attrs.field(factory=list, init=False, repr=False)
    #: The account has the Email Activity add-on (GET /v3/messages answers); without it, 403.
    email_activity: bool = True
    #: Email Activity's messages, one per recipient, with when each was accepted.
    _activity: list[tuple[datetime, dict[str, Any]]] = attrs.field(factory=list, init=False, repr=False)

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

    @route("GET", "/v3/scopes")
    def scopes(self, call: Call) -> web.StreamResponse:
        """The API key's scopes (what `omnisdk doctor` asks to check the key)."""
        return web.json_response({"scopes": ["mail.send", "user.webhooks.event.settings.read"]})

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
        accepted, sender = self.now(), (mail.get("from") or {}).get("email", "")
        for index, personalization in enumerate(personalizations):
            args = {**(mail.get("custom_args") or {}), **(personalization.get("custom_args") or {})}
            subject = personalization.get("subject") or mail.get("subject") or ""
            for to in personalization.get("to") or ():
                msg_id = f"{message_id}.filterdrecv-{random_id(8)}.{index}.0"
                entry: dict[str, Any] = {"from_email": sender, "msg_id": msg_id,
                           "subject": subject, "to_email": to.get("email", ""), "status": "processed",
                           "opens_count": 0, "clicks_count": 0, "last_event_time": accepted.strftime(_ISO)}
                self._activity.append((accepted, {**entry, "unique_args": args}))
        return web.Response(status=202, headers={"X-Message-Id": message_id})

    @route("GET", "/v3/messages", check="get /v3/messages", contract="sendgrid_email_activity.json")
    def messages(self, call: Call) -> web.StreamResponse:
        """Email Activity: messages matching a query of `field="value"` clauses joined by AND, where a
        field is `to_email`, `msg_id` or `unique_args['name']` (the custom args)."""
        if not self.email_activity:
            return self.error(403, Problem("auth", "access forbidden", reason="security"))
        clauses = []
        for clause in call.query["query"].split(" AND "):
            match = _CLAUSE.fullmatch(clause.strip())
            if match is None:
                raise Invalid(Problem("query", f"invalid syntax: {clause.strip()!r}", "query"))
            clauses.append((match["arg"], match["field"], match["value"]))
        found = [m for at, m in self._activity if self.indexed(at) and all(
            (m["unique_args"].get(arg) if arg else m.get(field)) == value for arg, field, value in clauses)]
        limit = int(float(call.query.get("limit", "10")))
        shown = [{k: v for k, v in m.items() if k != "unique_args"} for m in found[-limit:]]
        return web.json_response({"messages": shown})
