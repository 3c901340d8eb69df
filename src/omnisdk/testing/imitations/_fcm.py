"""Firebase Cloud Messaging HTTP v1, with the OAuth2 token endpoint its service accounts use."""

from __future__ import annotations

import secrets
from typing import Any

import attrs
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ._base import Imitation, route
from ._call import Call, Invalid, Problem
from ._contract import SchemaCheck, discovery_schema, load_contract
from ._jose import BadToken, verify_jwt

__all__ = ["FCMImitation"]

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPES = frozenset(
    {"https://www.googleapis.com/auth/firebase.messaging", "https://www.googleapis.com/auth/cloud-platform"}
)
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_TARGETS = ("token", "topic", "condition", "fid")
_STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
_STATUSES |= {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_FCM_CODES = {400: "INVALID_ARGUMENT", 404: "UNREGISTERED", 429: "QUOTA_EXCEEDED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_MESSAGES = {
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    404: "Requested entity was not found.",
    429: "Quota exceeded for quota metric 'Send requests' of service 'fcm.googleapis.com'.",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
}


@attrs.define(kw_only=True, slots=False, eq=False)
class FCMImitation(Imitation):
    """fcm.googleapis.com's projects.messages.send plus oauth2.googleapis.com/token, on one server.

    By default it makes a service account of its own: `service_account_info` is the JSON a
    Google service-account key file holds, with `token_uri` pointing here. Or pass the
    `public_key` of your own. The token endpoint checks the JWT-bearer assertion's RS256
    signature, issuer, audience, scope and lifetime (not the wall clock, so virtual clocks work).
    Sent messages are in `messages`; `unregister(token)` makes a device token answer 404
    UNREGISTERED; `revoke_access_tokens()` makes issued tokens answer 401.
    """

    project_id: str = "demo-project"
    client_email: str = "omnisdk@demo-project.iam.gserviceaccount.com"
    #: The service account's public key; by default the imitation makes a key pair of its own.
    public_key: rsa.RSAPublicKey | None = None
    messages: list[dict[str, Any]] = attrs.field(factory=list, init=False, repr=False)
    unregistered: set[str] = attrs.field(factory=set, init=False, repr=False)
    access_tokens: set[str] = attrs.field(factory=set, init=False, repr=False)
    _private_key: rsa.RSAPrivateKey | None = attrs.field(default=None, init=False, repr=False)
    _verifier: rsa.RSAPublicKey = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.public_key is not None:
            self._verifier = self.public_key
        else:
            self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self._verifier = self._private_key.public_key()

    @property
    def service_account_info(self) -> dict[str, str]:
        """A service-account key (as Google's JSON key file) for the key this imitation made."""
        if self._private_key is None:
            raise RuntimeError("FCMImitation was given a public key: the service account is yours")
        pem = self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": "imitation",
            "private_key": pem.decode(),
            "client_email": self.client_email,
            "client_id": "100000000000000000000",
            "token_uri": self.url("/token"),
        }

    def unregister(self, token: str) -> None:
        """Make `token` a dead registration: sends to it answer 404 UNREGISTERED."""
        self.unregistered.add(token)

    def revoke_access_tokens(self) -> None:
        """Expire every access token issued, so the client must fetch a new one."""
        self.access_tokens.clear()

    def authenticate(self, call: Call) -> bool:
        return call.bearer() in self.access_tokens

    def error(self, status: int, problem: Problem | None = None) -> web.StreamResponse:
        message = _MESSAGES.get(status, "Request contains an invalid argument.")
        details: list[dict[str, Any]] = []
        if problem is not None and problem.where != "auth":
            message = problem.message
            if problem.reason == "additionalProperties" and problem.field:
                parent, _, name = problem.field.rpartition(".")
                message = f"Invalid JSON payload received. Unknown name \"{name}\" at '{parent}': Cannot find field."
            if status == 400:
                violation = {"field": problem.field or "message", "description": problem.message}
                details.append({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]})
        if status in _FCM_CODES and not (status == 404 and problem):
            details.insert(0, {"@type": FCM_ERROR, "errorCode": _FCM_CODES[status]})
        error = {"code": status, "message": message, "status": _STATUSES.get(status, "UNKNOWN"), "details": details}
        return web.json_response({"error": error}, status=status)

    def _grant_error(self, error: str, description: str) -> web.StreamResponse:
        return web.json_response({"error": error, "error_description": description}, status=400)

    @route("POST", "/token", auth=False)
    def token(self, call: Call) -> web.StreamResponse:
        form = call.json
        if form.get("grant_type") != JWT_BEARER:
            return self._grant_error("unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
        try:
            _, claims = verify_jwt(str(form.get("assertion", "")), self._verifier)
        except BadToken as exc:
            return self._grant_error("invalid_grant", f"Invalid JWT Signature. ({exc})")
        if claims.get("iss") != self.client_email:
            return self._grant_error("invalid_grant", "Invalid JWT: the issuer is not this service account.")
        if claims.get("aud") not in (self.url("/token"), GOOGLE_TOKEN_URI):
            return self._grant_error("invalid_grant", "Invalid JWT: Failed audience check.")
        if not SCOPES & set(str(claims.get("scope", "")).split()):
            return self._grant_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not (isinstance(exp, int) and isinstance(iat, int) and 0 < exp - iat <= 3600):
            message = (
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                "Check your iat and exp values in the JWT claim."
            )
            return self._grant_error("invalid_grant", message)
        token = "ya29.imitation-" + secrets.token_urlsafe(48)
        self.access_tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    @route(
        "POST",
        "/v1/projects/{project}/messages:send",
        check=SchemaCheck(discovery_schema(load_contract("fcm_v1_discovery.json"), "SendMessageRequest")),
    )
    def send(self, call: Call) -> web.StreamResponse:
        project = call.params["project"]
        if project != self.project_id:
            resource = f"//cloudresourcemanager.googleapis.com/projects/{project}"
            denied = (
                f"Permission 'cloudmessaging.messages.create' denied on resource '{resource}' (or it may not exist)."
            )
            return self.error(403, Problem("path", denied, "parent"))
        message: dict[str, Any] = call.json.get("message") or {}
        targets = [t for t in _TARGETS if t in message]
        if len(targets) != 1:
            text = (
                "Recipient of the message is not set."
                if not targets
                else (f"Invalid JSON payload received. Oneof field 'target' is already set. Cannot set '{targets[1]}'")
            )
            raise Invalid.body(text, "message", "target")
        if message.get("token") in self.unregistered:
            return self.error(404)
        name = f"projects/{project}/messages/0:{secrets.randbits(52)}%{secrets.token_hex(8)}"
        if not call.json.get("validateOnly", call.json.get("validate_only")):
            self.messages.append({**message, "name": name})
        return web.json_response({"name": name})
