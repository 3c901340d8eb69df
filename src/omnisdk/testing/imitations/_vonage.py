"""Vonage (Nexmo) SMS API: errors arrive inside HTTP 200, as a non-zero `messages[].status`."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from aiohttp import web

from ._base import Imitation, route
from ._call import Call, Problem
from ._util import sms_segments

__all__ = ["VonageImitation"]

REPORTS = "/v2/reports/records"


@attrs.define(kw_only=True, slots=False, eq=False)
class VonageImitation(Imitation):
    """rest.nexmo.com's POST /sms/json: credentials in the form or HTTP Basic; and api.nexmo.com's
    GET /v2/reports/records, where each accepted part shows as a record after `index_lag` seconds.

    Long texts are split into parts like Vonage does, one `messages[]` entry each; accepted parts
    are in `messages`. Status "1" is throttling, "2" a missing parameter, "3" an invalid one,
    "4" bad credentials.
    """

    contract = "vonage_sms.json"

    api_key: str = "abcd1234"
    api_secret: str = attrs.field(default="abcdef0123456789", repr=False)
    balance: float = 10.0
    price: float = 0.0333
    #: Answer at most this many records, as `TRUNCATED` past it (None: every record).
    truncate_after: int | None = None
    messages: list[dict[str, Any]] = attrs.field(factory=list, init=False, repr=False)
    #: The Reports API's outbound SMS records (one per part), with when each was received.
    _records: list[tuple[datetime, dict[str, Any]]] = attrs.field(factory=list, init=False, repr=False)

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

    def rejected(self, call: Call, problems: tuple[Problem, ...]) -> web.StreamResponse:
        if not call.path.startswith(REPORTS):
            return super().rejected(call, problems)
        if any(p.where == "auth" for p in problems):
            return _problem(401, "Unauthorized", "You did not provide correct credentials.")
        invalid = [{"reason": p.message, "name": p.field or p.where} for p in problems]
        return _problem(422, "Unprocessable entity", problems[0].message, invalid)

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
        received = self.now()
        for _ in range(parts):
            self.balance -= self.price
            part = {"to": form["to"], "message-id": secrets.token_hex(8).upper(), "status": "0"}
            part |= {"remaining-balance": f"{self.balance:.8f}", "message-price": f"{self.price:.8f}"}
            part["network"] = "23410"
            if "client-ref" in form:
                part["client-ref"] = form["client-ref"]
            sent.append(part)
        self.messages.extend({**part, "from": form["from"], "text": form.get("text", "")} for part in sent)
        for part in sent:
            record = {"account_id": self.api_key, "message_id": part["message-id"], "direction": "outbound",
                      "from": form["from"], "to": form["to"], "network": part["network"],
                      "date_received": _iso(received), "status": "accepted", "currency": "EUR",
                      "total_price": self.price, "message_body": form.get("text", "")}
            if "client-ref" in form:
                record["client_ref"] = form["client-ref"]
            self._records.append((received, record))
        return web.json_response({"message-count": str(parts), "messages": sent})

    @route("GET", REPORTS, check=f"get {REPORTS}", contract="vonage_reports.json")
    def records(self, call: Call) -> web.StreamResponse:
        """api.nexmo.com's synchronous Reports API: the records of one product, direction and window."""
        query = call.query
        if query["product"] != "SMS" or query.get("direction") != "outbound":
            return _problem(422, "Unprocessable entity", "this imitation keeps outbound SMS records only")
        ids = [i for i in query.get("id", "").split(",") if i]
        if ids and ("date_start" in query or "date_end" in query):
            detail = "When using id, the following parameters are not supported: [date_start, date_end]"
            return _problem(422, "Invalid filter", detail)
        visible = [(at, r) for at, r in self._records if self.indexed(at) and r["account_id"] == query["account_id"]]
        if ids:
            found = [r for _, r in visible if r["message_id"] in ids]
        else:
            if "date_start" not in query or "date_end" not in query:
                missing = "date_end" if "date_start" in query else "date_start"
                return _problem(422, "Unprocessable entity", "Missing required parameter",
                                [{"reason": "Missing required parameter", "name": missing}])
            start, end = _when(query["date_start"]), _when(query["date_end"])
            if end - start > timedelta(hours=24):
                return _problem(422, "Invalid filter", "date_end must be no more than 24 hours after date_start")
            found = [r for at, r in visible if start <= at < end]
        status = "SUCCESS"
        if self.truncate_after is not None and len(found) > self.truncate_after:
            found, status = found[: self.truncate_after], "TRUNCATED"
        if query.get("include_message") != "true":
            found = [{k: v for k, v in r.items() if k != "message_body"} for r in found]
        body = {"_links": {"self": {"href": self.url(call.request.path_qs)}}, "request_id": str(uuid.uuid4()),
                "request_status": status, "received_at": _iso(self.now()), "account_id": query["account_id"],
                "product": "SMS", "direction": "outbound", "include_message": query.get("include_message") == "true",
                "items_count": len(found), "records": found}
        return web.json_response(body)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "+0000"


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _problem(status: int, title: str, detail: str, invalid: list[dict[str, str]] | None = None) -> web.StreamResponse:
    body: dict[str, Any] = {"type": "https://developer.nexmo.com/api-errors/reports", "title": title,
                            "detail": detail, "instance": secrets.token_hex(16)}
    if invalid:
        body["invalid_parameters"] = invalid
    return web.json_response(body, status=status)
