"""Meta's Graph API: WhatsApp Cloud messages, the Messenger Send API and Custom Audience users."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import attrs
from aiohttp import web

from ._base import Imitation, route
from ._call import Call, Invalid, Problem
from ._contract import SchemaCheck
from ._util import b64url

__all__ = ["MetaGraphImitation"]

WHATSAPP = "/{Version}/{Phone-Number-ID}/messages"
_ERRORS = {
    401: (190, "Invalid OAuth access token - Cannot parse access token"),
    429: (4, "(#4) Application request limit reached"),
    500: (2, "An unexpected error has occurred. Please retry your request later."),
    503: (2, "Service temporarily unavailable"),
}
_STRING = {"type": "string"}
# The Send API has no machine-readable contract; this is the shape Meta's reference documents.
_MESSENGER = SchemaCheck(
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["recipient"],
        "properties": {
            "recipient": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "maxProperties": 1,
                "properties": dict.fromkeys(("id", "user_ref", "comment_id", "post_id", "phone_number"), _STRING),
            },
            "messaging_type": {"enum": ["RESPONSE", "UPDATE", "MESSAGE_TAG"]},
            "tag": {"enum": ["CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT"]},
            "message": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {
                    "text": {"type": "string", "minLength": 1, "maxLength": 2000},
                    "attachment": {
                        "type": "object",
                        "required": ["type", "payload"],
                        "properties": {
                            "type": {"enum": ["image", "audio", "video", "file", "template"]},
                            "payload": {"type": "object"},
                        },
                    },
                    "quick_replies": {"type": "array", "maxItems": 13, "items": {"type": "object"}},
                    "metadata": {"type": "string", "maxLength": 1000},
                },
            },
            "sender_action": {"enum": ["typing_on", "typing_off", "mark_seen"]},
            "notification_type": {"enum": ["REGULAR", "SILENT_PUSH", "NO_PUSH"]},
            "persona_id": _STRING,
        },
    }
)
_AUDIENCE_KEYS = ["EMAIL", "EMAIL_SHA256", "PHONE", "PHONE_SHA256", "EXTERN_ID", "MADID", "FN", "LN", "FI", "CT"]
_AUDIENCE_KEYS += ["ST", "ZIP", "COUNTRY", "DOBY", "DOBM", "DOBD", "GEN", "PAGEUID", "LOOKALIKE_VALUE"]
_UNHASHED = frozenset({"EXTERN_ID", "MADID", "PAGEUID", "LOOKALIKE_VALUE"})
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_AUDIENCE_USERS = SchemaCheck(
    {
        "type": "object",
        "required": ["payload"],
        "properties": {
            "payload": {
                "type": "object",
                "required": ["schema", "data"],
                "properties": {
                    "schema": {
                        "anyOf": [
                            {"enum": _AUDIENCE_KEYS},
                            {"type": "array", "minItems": 1, "items": {"enum": _AUDIENCE_KEYS}},
                        ]
                    },
                    "data": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 10000,
                        "items": {"anyOf": [_STRING, {"type": "array", "items": _STRING}]},
                    },
                    "is_raw": {"type": "boolean"},
                },
            },
            "session": {
                "type": "object",
                "properties": {
                    "session_id": {"type": "integer"},
                    "batch_seq": {"type": "integer"},
                    "last_batch_flag": {"type": "boolean"},
                    "estimated_num_total": {"type": "integer"},
                },
            },
            "access_token": _STRING,
        },
    }
)


def _graph_error(status: int, code: int, message: str, **extra: Any) -> web.StreamResponse:
    error = {"message": message, "type": "OAuthException", "code": code, **extra}
    error["fbtrace_id"] = b64url(secrets.token_bytes(9))
    if status in (429, 500, 503):
        error["is_transient"] = True
    return web.json_response({"error": error}, status=status)


@attrs.define(kw_only=True, slots=False, eq=False)
class MetaGraphImitation(Imitation):
    """graph.facebook.com for WhatsApp Cloud, Messenger and Custom Audiences; Bearer or ?access_token=.

    WhatsApp requests are checked loosely against the (patched) contract: mismatches land in
    `warnings`, and only what the Cloud API itself refuses is a violation. Sent messages are in
    `whatsapp_messages` and `messenger_messages`; audience members (SHA-256 hex, or tuples of
    them for multi-key schemas) in `audiences[audience_id]`. PSIDs in `unreachable` get error 551.
    """

    contract = "whatsapp_cloud_messages.patched.json"

    access_token: str = attrs.field(default="EAAG-test", repr=False)
    whatsapp_messages: list[dict[str, Any]] = attrs.field(factory=list, init=False, repr=False)
    messenger_messages: list[dict[str, Any]] = attrs.field(factory=list, init=False, repr=False)
    audiences: dict[str, set[str | tuple[str, ...]]] = attrs.field(factory=dict, init=False, repr=False)
    unreachable: set[str] = attrs.field(factory=set, init=False, repr=False)

    def authenticate(self, call: Call) -> bool:
        return self.access_token in (call.bearer(), call.query.get("access_token"), call.json.get("access_token"))

    def error(self, status: int, problem: Problem | None = None) -> web.StreamResponse:
        code, message = _ERRORS.get(status, (100, "(#100) Invalid parameter"))
        if problem is not None and problem.where != "auth" and status < 500:
            code, message = 100, f"(#100) {problem.message}"
        return _graph_error(status, code, message)

    def prepare(self, call: Call) -> None:
        if not re.fullmatch(r"v\d+\.\d+", call.params.get("version", "")):
            raise Invalid(Problem("path", f"Unknown path components: /{call.params.get('version')}", "Version"))
        payload = call.json.get("payload")
        if isinstance(payload, str):  # a form post carries the payload as a JSON string
            try:
                call.body = {**call.json, "payload": json.loads(payload)}
            except ValueError as exc:
                raise Invalid.body(f"Param payload must be a JSON object: {exc}", "payload") from exc

    @route("POST", "/{version}/me/messages", check=_MESSENGER)
    def send_messenger(self, call: Call) -> web.StreamResponse:
        body = call.json
        if ("message" in body) == ("sender_action" in body):
            raise Invalid.body("Exactly one of message and sender_action must be set", "message")
        if "message" in body and "messaging_type" not in body:
            raise Invalid.body("param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}", "messaging_type")
        if body.get("messaging_type") == "MESSAGE_TAG" and "tag" not in body:
            raise Invalid.body("param tag must be set when messaging_type is MESSAGE_TAG", "tag")
        recipient = next(iter(body["recipient"].values()))
        if recipient in self.unreachable:
            return _graph_error(400, 551, "(#551) This person isn't available right now.", error_subcode=1545041)
        reply: dict[str, Any] = {"recipient_id": recipient}
        if "message" in body:
            reply["message_id"] = "m_" + b64url(secrets.token_bytes(60))
            self.messenger_messages.append({**body, "message_id": reply["message_id"]})
        return web.json_response(reply)

    @route("POST", "/{version}/{phone_number_id}/messages", check=f"post {WHATSAPP}", loose=True)
    def send_whatsapp(self, call: Call) -> web.StreamResponse:
        body = call.json
        for name in ("messaging_product", "to"):
            if not body.get(name):
                raise Invalid.body(f"The parameter {name} is required.", name, "missing")
        if body["messaging_product"] != "whatsapp":
            raise Invalid.body("Param messaging_product must be 'whatsapp'", "messaging_product")
        kind = body.get("type", "text")
        if not isinstance(body.get(kind), dict):
            raise Invalid.body(f"The parameter {kind} is required.", kind, "missing")
        if kind == "text" and not body["text"].get("body"):
            raise Invalid.body("The parameter text['body'] is required.", "text.body", "missing")
        wamid = "wamid." + b64url(secrets.token_bytes(30))
        self.whatsapp_messages.append({**body, "id": wamid, "phone_number_id": call.params["phone_number_id"]})
        message: dict[str, Any] = {"id": wamid}
        if kind == "template":
            message["message_status"] = "accepted"
        contact = {"input": body["to"], "wa_id": re.sub(r"\D", "", body["to"])}
        return web.json_response({"messaging_product": "whatsapp", "contacts": [contact], "messages": [message]})

    @route("POST", "/{version}/{audience_id}/users", check=_AUDIENCE_USERS)
    def add_users(self, call: Call) -> web.StreamResponse:
        return self._audience(call, add=True)

    @route("DELETE", "/{version}/{audience_id}/users", check=_AUDIENCE_USERS)
    def remove_users(self, call: Call) -> web.StreamResponse:
        return self._audience(call, add=False)

    def _audience(self, call: Call, *, add: bool) -> web.StreamResponse:
        audience_id = call.params["audience_id"]
        payload, session = call.json["payload"], call.json.get("session", {})
        keys = [payload["schema"]] if isinstance(payload["schema"], str) else list(payload["schema"])
        members = self.audiences.setdefault(audience_id, set())
        received, invalid = 0, 0
        for row in payload["data"]:
            values = [row] if isinstance(row, str) else list(row)
            received += 1
            ok = len(values) == len(keys) and all(
                k in _UNHASHED or payload.get("is_raw") or _SHA256.match(v) for k, v in zip(keys, values, strict=True)
            )
            if not ok:
                invalid += 1
                continue
            member: str | tuple[str, ...] = values[0] if len(values) == 1 else tuple(values)
            if add:
                members.add(member)
            else:
                members.discard(member)
        reply: dict[str, Any] = {"audience_id": audience_id}
        reply["session_id"] = session.get("session_id", secrets.randbits(62))
        reply |= {"num_received": received, "num_invalid_entries": invalid, "invalid_entry_samples": {}}
        return web.json_response(reply)
