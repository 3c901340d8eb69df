"""Mailgun Messages API: form or multipart bodies, HTTP Basic api:KEY."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Any

import attrs
from aiohttp import web

from ._base import Imitation, route
from ._call import Call, Invalid, Problem

__all__ = ["MailgunImitation"]

MESSAGES = "/v3/{domain_name}/messages"
EVENTS = "/v3/{domain_name}/events"
_MESSAGES = {
    429: "Domain is not allowed to send: account-requests-per-sec limit exceeded, try again later",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@attrs.define(kw_only=True, slots=False, eq=False)
class MailgunImitation(Imitation):
    """api.mailgun.net's POST /v3/{domain}/messages: 200 `{"id": "<...>", "message": "Queued. Thank you."}`;
    and GET /v3/{domain}/events, where each accepted recipient shows after `index_lag` seconds.

    Accepted messages are in `messages`, each `{"id": ..., "domain": ..., "form": <fields sent>}`.
    With `domains` given, other sending domains get Mailgun's 404.
    """

    contract = "mailgun_messages.json"

    api_key: str = attrs.field(default="key-test", repr=False)
    domains: set[str] | None = None
    #: Honour the `user-variables` filter; off, it is ignored (Mailgun documents no such filter field),
    #: so a client must match the variables itself, page after page.
    filter_user_variables: bool = True
    messages: list[dict[str, Any]] = attrs.field(factory=list, init=False, repr=False)
    #: The Events API's log: one `accepted` event per recipient of each accepted message.
    events: list[dict[str, Any]] = attrs.field(factory=list, init=False, repr=False)

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
        accepted = self.now()
        message_id = f"<{accepted:%Y%m%d%H%M%S}.{secrets.token_hex(8)}@{domain}>"
        self.messages.append({"id": message_id, "domain": domain, "form": form})
        variables = {k[2:]: v for k, v in form.items() if k.startswith("v:")}
        headers = {"message-id": message_id.strip("<>"), "from": form.get("from", ""),
                   "subject": form.get("subject", "")}
        recipients = form.get("to") or []
        for recipient in [recipients] if isinstance(recipients, str) else recipients:
            event = {"event": "accepted", "id": secrets.token_urlsafe(16), "timestamp": accepted.timestamp(),
                     "recipient": recipient, "user-variables": variables,
                     "message": {"headers": {**headers, "to": recipient}}, "domain": domain}
            self.events.append(event)
        return web.json_response({"id": message_id, "message": "Queued. Thank you."})

    @route("GET", EVENTS, check=f"get {EVENTS}", contract="mailgun_events.json")
    def list_events(self, call: Call) -> web.StreamResponse:
        """A page of the domain's events, oldest first with `ascending=yes`; `paging.next` always points on
        (past the last event it is an empty page, which is how a client knows it is done)."""
        query = {k: v for k, v in call.query.items()}
        return self._page(call.params["domain_name"], query, 0)

    @route("GET", EVENTS + "/{page}", check=f"get {EVENTS}/{{page}}", contract="mailgun_events.json")
    def next_events(self, call: Call) -> web.StreamResponse:
        try:
            state = json.loads(base64.urlsafe_b64decode(call.params["page"].encode()))
            query, offset = dict(state["q"]), int(state["o"])
        except (ValueError, KeyError, TypeError):
            raise Invalid(Problem("path", "invalid page token", "page")) from None
        return self._page(call.params["domain_name"], query, offset)

    def _page(self, domain: str, query: dict[str, str], offset: int) -> web.StreamResponse:
        try:
            filtered = "user-variables" in query and self.filter_user_variables
            wanted = json.loads(query["user-variables"]) if filtered else {}
        except ValueError:
            raise Invalid(Problem("query", "user-variables is not a JSON object", "user-variables")) from None
        if not isinstance(wanted, dict):
            raise Invalid(Problem("query", "user-variables is not a JSON object", "user-variables"))
        begin, end = float(query.get("begin", "0")), float(query.get("end", "inf"))
        fields = {k: query[k] for k in ("event", "recipient") if k in query}
        found = [
            e for e in self.events
            if e["domain"] == domain and begin <= e["timestamp"] <= end
            and self.indexed(datetime.fromtimestamp(e["timestamp"], UTC))
            and all(e.get(k) == v for k, v in fields.items())
            and query.get("message-id") in (None, e["message"]["headers"]["message-id"])
            and all(e["user-variables"].get(k) == v for k, v in wanted.items())
        ]
        if query.get("ascending") != "yes":
            found.reverse()
        limit = int(query.get("limit", "100"))
        shown = found[offset : offset + limit]

        def link(at: int) -> str:
            token = base64.urlsafe_b64encode(json.dumps({"q": query, "o": at}).encode()).decode()
            return self.url(f"/v3/{domain}/events/{token}")
        paging = {"first": link(0), "last": link(max(len(found) - limit, 0)), "next": link(offset + len(shown)),
                  "previous": link(max(offset - limit, 0))}
        items = [{k: v for k, v in e.items() if k != "domain"} for e in shown]
        return web.json_response({"items": items, "paging": paging})
