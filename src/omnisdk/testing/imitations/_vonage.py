"""Vonage (Nexmo) SMS API: errors arrive inside HTTP 200, as a non-zero `messages[].status`."""

from __future__ import annotations

import secrets
from typing import Any

import attrs
from aiohttp import web

from ._base import Imitation, route
from ._call import Call, Problem
from ._util import sms_segments

__all__ = ["VonageImitation"]


@attrs.define(kw_only=True, slots=False, eq=False)
class VonageImitation(Imitation):
    """rest.nexmo.com's POST /sms/json: credentials in the form or HTTP Basic.

    Long texts are split into parts like Vonage does, one `messages[]` entry each; accepted parts
    are in `messages`. Status "1" is throttling, "2" a missing parameter, "3" an invalid one,
    "4" bad credentials.
    """

    contract = "vonage_sms.json"

    api_key: str = "abcd1234"
    api_secret: str = attrs.field(default="abcdef0123456789", repr=False)
    balance: float = 10.0
    price: float = 0.0333
    messages: list[dict[str, Any]] = attrs.field(factory=list, init=False, repr=False)

    def authenticate(self, call: Call) -> bool:
        form = call.json
        return (form.get("api_key"), form.get("api_secret")) == (self.api_key, self.api_secret)

    @staticmethod
    def _failed(status: str, text: str, http_status: int = 200) -> web.StreamResponse:
        body = {"message-count": "1", "messages": [{"status": status, "error-text": text}]}
        return web.json_response(body, status=http_status)

    def error(self, status: int, problem: Problem | None = None) -> web.StreamResponse:
        # Vonage answers 200 with a status inside, except when the request never reached the SMS API.
        if status >= 500:
            return self._failed("5", "Internal Error", status)
        if status == 404:
            return self._failed("3", "Not Found", status)
        if status == 401 or (problem and problem.field in ("api_key", "api_secret")):
            return self._failed("4", "Bad Credentials")
        if status == 429:
            return self.throttled(1)
        if problem is not None and problem.reason in ("required", "missing"):
            return self._failed("2", f"Missing {problem.field} param")
        return self._failed("3", f"Invalid {problem.field if problem else 'message'} param")

    def throttled(self, retry_after: int) -> web.StreamResponse:
        return self._failed("1", f"Throughput Rate Exceeded - please wait [ {retry_after * 1000} ] and retry")

    def prepare(self, call: Call) -> None:
        # The current SDKs send the key and secret as Basic auth, the 2021 contract in the form.
        if (credentials := call.basic_auth()) is not None:
            call.body = {**call.json, "api_key": credentials[0], "api_secret": credentials[1]}

    @route("POST", "/sms/{format}", check="post /{format}")
    def send(self, call: Call) -> web.StreamResponse:
        form = call.json
        parts = sms_segments(form.get("text", ""))
        if self.balance < parts * self.price:
            return self._failed("9", "Partner quota violation")
        sent = []
        for _ in range(parts):
            self.balance -= self.price
            part = {"to": form["to"], "message-id": secrets.token_hex(8).upper(), "status": "0"}
            part |= {"remaining-balance": f"{self.balance:.8f}", "message-price": f"{self.price:.8f}"}
            part["network"] = "23410"
            if "client-ref" in form:
                part["client-ref"] = form["client-ref"]
            sent.append(part)
        self.messages.extend({**part, "from": form["from"], "text": form.get("text", "")} for part in sent)
        return web.json_response({"message-count": str(parts), "messages": sent})
