"""Mailgun Messages API: form or multipart bodies, HTTP Basic api:KEY."""

from __future__ import annotations

import secrets
from typing import Any

import attrs
from aiohttp import web

from ._base import Imitation, route
from ._call import Call, Invalid, Problem
from ._util import now

__all__ = ["MailgunImitation"]

MESSAGES = "/v3/{domain_name}/messages"
_MESSAGES = {
    429: "Domain is not allowed to send: account-requests-per-sec limit exceeded, try again later",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@attrs.define(kw_only=True, slots=False, eq=False)
class MailgunImitation(Imitation):
    """api.mailgun.net's POST /v3/{domain}/messages: 200 `{"id": "<...>", "message": "Queued. Thank you."}`.

    Accepted messages are in `messages`, each `{"id": ..., "domain": ..., "form": <fields sent>}`.
    With `domains` given, other sending domains get Mailgun's 404.
    """

    contract = "mailgun_messages.json"

    api_key: str = attrs.field(default="key-test", repr=False)
    domains: set[str] | None = None
    messages: list[dict[str, Any]] = attrs.field(factory=list, init=False, repr=False)

    def authenticate(self, call: Call) -> bool:
        return call.basic_auth() == ("api", self.api_key)

    def error(self, status: int, problem: Problem | None = None) -> web.StreamResponse:
        if status == 401:
            return web.Response(status=401, text="Forbidden")
        message = _MESSAGES.get(status, "Bad Request")
        if problem is not None:
            missing = problem.reason in ("required", "missing") and problem.field
            message = f"{problem.field} parameter is missing" if missing else problem.message
        return web.json_response({"message": message}, status=status)

    @route("POST", MESSAGES, check=f"post {MESSAGES}")
    def send(self, call: Call) -> web.StreamResponse:
        domain = call.params["domain_name"]
        if self.domains is not None and domain not in self.domains:
            return self.error(404, Problem("path", f"Domain not found: {domain}", "domain_name"))
        form = call.json
        if not any(form.get(k) for k in ("text", "html", "amp-html", "template")):
            raise Invalid.body("Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified")
        message_id = f"<{now():%Y%m%d%H%M%S}.{secrets.token_hex(8)}@{domain}>"
        self.messages.append({"id": message_id, "domain": domain, "form": form})
        return web.json_response({"id": message_id, "message": "Queued. Thank you."})
