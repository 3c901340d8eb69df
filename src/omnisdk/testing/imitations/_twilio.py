"""Twilio Programmable Messaging: the Message resource, and status callbacks signed like Twilio's."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import attrs
import httpx
from aiohttp import web
from multidict import MultiMapping

from ._base import Imitation, route
from ._call import Call, Invalid, Problem
from ._util import hex_id, sms_segments

__all__ = ["TwilioImitation", "twilio_signature"]

MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
MESSAGE = "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"
_ADDRESS = re.compile(r"^(\+[1-9]\d{1,14}|[a-z]+:.+)$")
# Twilio's error codes for the request fields the docs single out.
_CODES = {"To": (21604, 21211), "From": (21603, 21603), "Body": (21602, 21617)}
_MESSAGES = {
    21604: "A 'To' phone number is required.",
    21603: "A 'From' phone number is required.",
    21602: "Message body is required.",
    20003: "Authenticate",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
}


def _date_bound(value: str) -> datetime:
    """A DateSent bound: an ISO 8601 date or date-time, in UTC when it names no zone."""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(Problem("query", f"invalid DateSent bound {value!r}", "DateSent", "format")) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def twilio_signature(url: str, params: Mapping[str, str | Sequence[str]], auth_token: str) -> str:
    """X-Twilio-Signature of a form POST to `url` (webhook_vectors.md section 1)."""
    payload = url
    for name in sorted(params):
        values = params[name]
        for value in sorted({values} if isinstance(values, str) else set(values)):
            payload += name + value
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@attrs.define(kw_only=True, slots=False, eq=False)
class TwilioImitation(Imitation):
    """api.twilio.com for Messages: HTTP Basic AccountSid:AuthToken, form bodies, 201 + resource.

    Accepted messages are in `messages` (Twilio's JSON resource). `deliver_status_callbacks()`
    posts each message's status to its StatusCallback URL, signed with `auth_token`.
    """

    contract = "twilio_messages.json"

    account_sid: str = "AC" + "a" * 32
    auth_token: str = attrs.field(default="authtoken", repr=False)
    #: Accepted messages, oldest first, as Twilio's Message resource.
    messages: list[dict[str, Any]] = attrs.field(factory=list, init=False, repr=False)
    _callbacks: dict[str, str] = attrs.field(factory=dict, init=False, repr=False)
    _accepted_at: dict[str, datetime] = attrs.field(factory=dict, init=False, repr=False)

    def authenticate(self, call: Call) -> bool:
        credentials = (self.account_sid, self.auth_token)
        return call.basic_auth() == credentials and call.params["AccountSid"] == self.account_sid

    def error(self, status: int, problem: Problem | None = None) -> web.StreamResponse:
        code = 20003 if status == 401 else 20000 + status
        if problem is not None and problem.where not in ("auth", "path"):
            missing, invalid = _CODES.get(problem.field or "", (21201, 21201))
            code = missing if problem.reason in ("required", "missing") else invalid
        message = _MESSAGES.get(code) or (problem.message if problem else f"HTTP {status}")
        body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}"}
        return web.json_response({**body, "status": status}, status=status)

    @route("POST", MESSAGES, check=f"post {MESSAGES}")
    def create_message(self, call: Call) -> web.StreamResponse:
        form = call.json
        to, sender, service = form.get("To", ""), form.get("From"), form.get("MessagingServiceSid")
        if not to:
            raise Invalid(Problem("body", _MESSAGES[21604], "To", "missing"))
        if not _ADDRESS.match(to):
            raise Invalid(Problem("body", f"Invalid 'To' Phone Number: {to}", "To", "format"))
        if not (sender or service):
            raise Invalid(Problem("body", _MESSAGES[21603], "From", "missing"))
        text, media = form.get("Body", ""), form.get("MediaUrl") or []
        if not (text or media or form.get("ContentSid")):
            raise Invalid(Problem("body", _MESSAGES[21602], "Body", "missing"))
        if len(text) > 1600:
            message = "The concatenated message body exceeds the 1600 character limit."
            raise Invalid(Problem("body", message, "Body", "maxLength"))
        sid = hex_id("MM" if media else "SM")
        accepted_at = self.now()
        stamp = format_datetime(accepted_at)
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": text,
            "date_created": stamp,
            "date_sent": None,
            "date_updated": stamp,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": str(len(media)),
            "num_segments": str(sms_segments(text)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service and not sender else "queued",
            "subresource_uris": {"media": f"{base}/Media.json"},
            "to": to,
            "uri": f"{base}.json",
        }
        self.messages.append(resource)
        self._accepted_at[sid] = accepted_at
        if callback := form.get("StatusCallback"):
            self._callbacks[sid] = callback
        return web.json_response(resource, status=201)

    @route("GET", "/2010-04-01/Accounts/{AccountSid}.json")
    def fetch_account(self, call: Call) -> web.StreamResponse:
        """The Account resource (what `omnisdk doctor` fetches to check the credentials)."""
        return web.json_response({"sid": self.account_sid, "status": "active", "type": "Full"})

    @route("GET", MESSAGES, check=f"get {MESSAGES}")
    def list_messages(self, call: Call) -> web.StreamResponse:
        """Newest first, filtered by To, From and the DateSent bounds, in pages (`next_page_uri`)."""
        query = call.query
        size = int(query.get("PageSize", "50"))
        page = int(query.get("Page", "0"))
        token = query.get("PageToken", "")
        start = int(token[2:]) if token.startswith("PA") and token[2:].isdigit() else page * size
        found = [m for m in reversed(self.messages) if self._listed(m, query)]
        shown = found[start : start + size]
        base = call.path
        filters = [(k, v) for k, v in query.items() if k not in ("PageSize", "Page", "PageToken")]
        uri = base + (f"?{call.request.query_string}" if call.request.query_string else "")
        first = f"{base}?{urlencode([*filters, ('PageSize', size), ('Page', 0)])}"
        following = None
        if start + size < len(found):
            pairs = [*filters, ("PageSize", size), ("Page", page + 1), ("PageToken", f"PA{start + size}")]
            following = f"{base}?{urlencode(pairs)}"
        body = {"messages": shown, "end": start + max(len(shown) - 1, 0), "first_page_uri": first}
        body |= {"next_page_uri": following, "page": page, "page_size": size, "previous_page_uri": None}
        return web.json_response({**body, "start": start, "uri": uri})

    def _listed(self, message: dict[str, Any], query: MultiMapping[str]) -> bool:
        if not self.indexed(self._accepted_at.get(message["sid"], self.now())):
            return False
        if query.get("To", message["to"]) != message["to"] or query.get("From", message["from"]) != message["from"]:
            return False
        bounds = [(k, query[k]) for k in ("DateSent", "DateSent>", "DateSent<") if k in query]
        if not bounds:
            return True
        sent = parsedate_to_datetime(message["date_sent"]) if message["date_sent"] else None
        if sent is None:
            return False  # Twilio sets date_sent when the message leaves its queue
        for name, value in bounds:
            bound = _date_bound(value)
            if name == "DateSent" and sent.date() != bound.date():
                return False
            if (name == "DateSent>" and sent < bound) or (name == "DateSent<" and sent > bound):
                return False
        return True

    @route("GET", MESSAGE, check=f"get {MESSAGE}")
    def fetch_message(self, call: Call) -> web.StreamResponse:
        found = next((m for m in self.messages if m["sid"] == call.params["Sid"]), None)
        if found is None:
            return self.error(404, Problem("path", f"The requested resource {call.path} was not found", "Sid"))
        return web.json_response(found)

    def status_callbacks(self, status: str = "delivered", *, error_code: int | None = None) -> list[httpx.Request]:
        """The signed callbacks Twilio would send now, one per message with a StatusCallback URL."""
        requests = []
        for message in self.messages:
            url = self._callbacks.get(message["sid"])
            if url is None or message["status"] == status:
                continue
            message["status"] = status
            params = {
                "AccountSid": self.account_sid,
                "ApiVersion": "2010-04-01",
                "From": message["from"] or "",
                "MessageSid": message["sid"],
                "MessageStatus": status,
                "SmsSid": message["sid"],
                "SmsStatus": status,
                "To": message["to"],
            }
            if error_code is not None:
                params["ErrorCode"] = str(error_code)
            if message["messaging_service_sid"]:
                params["MessagingServiceSid"] = message["messaging_service_sid"]
            headers = {"X-Twilio-Signature": twilio_signature(url, params, self.auth_token)}
            requests.append(httpx.Request("POST", url, data=params, headers=headers))
        return requests

    def deliver_status_callbacks(
        self, status: str = "delivered", *, error_code: int | None = None
    ) -> list[httpx.Response]:
        """Post `status` to every StatusCallback URL given (once per status), as Twilio does."""
        with httpx.Client() as client:
            return [client.send(request) for request in self.status_callbacks(status, error_code=error_code)]

    async def adeliver_status_callbacks(
        self, status: str = "delivered", *, error_code: int | None = None
    ) -> list[httpx.Response]:
        """`deliver_status_callbacks` for async tests whose webhook receiver runs in the same loop."""
        async with httpx.AsyncClient() as client:
            return [await client.send(request) for request in self.status_callbacks(status, error_code=error_code)]
