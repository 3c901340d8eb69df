"""A local APNs: an HTTP/2 server (cleartext, prior knowledge) that checks requests as Apple documents them.

Apple publishes no machine-readable contract, so the checks follow "Sending notification requests to
APNs": HTTP/2 only, POST /3/device/<hex token>, a bearer ES256 provider token with the team as `iss`
and an `iat` under an hour old, `apns-topic`, a known `apns-push-type`, and a JSON body of at most
4096 bytes with an `aps` dictionary. Answers use Apple's `{"reason": ...}` bodies.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import h2.config
import h2.connection
import h2.events
import h2.exceptions
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

#: The conformance kit's scripted faults, as APNs answers them (drop and timeout are handled apart).
SCRIPTED = {
    "reject": (400, "BadExpirationDate", {}),
    "rate_limit": (429, "TooManyRequests", {"retry-after": "7"}),
    "server_error": (500, "InternalServerError", {}),
    "unavailable": (503, "ServiceUnavailable", {}),
}


@attrs.frozen
class APNsRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    #: The claims of the provider token that authorised it.
    claims: dict[str, Any]


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class APNsImitation:
    def __init__(self, public_key: ec.EllipticCurvePublicKey, *, team_id: str, key_id: str, topic: str,
                 now: Callable[[], float]) -> None:
        self.public_key, self.team_id, self.key_id, self.topic = public_key, team_id, key_id, topic
        self.now = now
        self.requests: list[APNsRequest] = []
        self.violations: list[str] = []
        #: Device tokens that answer 410 Unregistered.
        self.unregistered: set[str] = set()
        #: Answers to give before the normal one: (status, reason, extra headers).
        self.queued: list[tuple[int, str, dict[str, str]]] = []
        #: Every distinct provider token seen, in order.
        self.provider_tokens: list[str] = []
        self.fault = "ok"
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def __enter__(self) -> APNsImitation:
        self._thread.start()
        start = asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        server = self._server
        assert server is not None

        async def close() -> None:
            server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # -- the conformance kit's Endpoint protocol
    @property
    def settings(self) -> Mapping[str, str]:
        return {"base_url": self.base_url}

    def answer_with(self, fault: str) -> None:
        """Answer every request from now on with `fault` ("ok", "reject", "rate_limit", ..., "drop", "timeout")."""
        self.fault = fault

    async def __aenter__(self) -> APNsImitation:
        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.__exit__)

    def assert_no_violations(self) -> None:
        assert not self.violations, "\n".join(self.violations)

    # -- HTTP/2 plumbing
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        while data := await reader.read(65536):
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError as exc:  # e.g. an HTTP/1.1 client: APNs is HTTP/2 only
                self.violations.append(f"not HTTP/2: {exc}")
                break
            for event in events:
                if isinstance(event, h2.events.RequestReceived):
                    streams[event.stream_id] = (dict(event.headers), bytearray())  # type: ignore[arg-type]
                elif isinstance(event, h2.events.DataReceived):
                    streams[event.stream_id][1].extend(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    headers, body = streams.pop(event.stream_id)
                    fault = self.fault
                    if fault == "drop":
                        writer.close()
                        return
                    if fault == "timeout":
                        continue  # never answered: the client times out
                    status, answer, extra = self._answer(headers, bytes(body))
                    if fault in SCRIPTED:
                        status, reason, extra = SCRIPTED[fault]
                        answer = json.dumps({"reason": reason}).encode()
                    response = [(":status", str(status)), ("apns-id", headers.get("apns-id") or str(uuid.uuid4())),
                                *extra.items()]
                    conn.send_headers(event.stream_id, response, end_stream=not answer)
                    if answer:
                        conn.send_data(event.stream_id, answer, end_stream=True)
            writer.write(conn.data_to_send())
            await writer.drain()
        writer.close()

    # -- APNs behaviour
    def _answer(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes, dict[str, str]]:
        path = headers.get(":path", "")
        problem, claims = self._check(headers, body)
        self.requests.append(APNsRequest(path=path, headers=headers, body=body, claims=claims))
        if problem is not None:
            status, reason = problem
            if status == 400:
                self.violations.append(f"{path}: {reason}")
            return status, json.dumps({"reason": reason}).encode(), {}
        if self.queued:
            status, reason, extra = self.queued.pop(0)
            return status, json.dumps({"reason": reason}).encode(), extra
        if path.rsplit("/", 1)[-1] in self.unregistered:
            return 410, json.dumps({"reason": "Unregistered", "timestamp": int(self.now() * 1000)}).encode(), {}
        return 200, b"", {}

    def _check(self, headers: dict[str, str], body: bytes) -> tuple[tuple[int, str] | None, dict[str, Any]]:
        if headers.get(":method") != "POST":
            return (405, "MethodNotAllowed"), {}
        token = headers.get(":path", "").removeprefix("/3/device/")
        if not token or any(c not in "0123456789abcdefABCDEF" for c in token):
            return (400, "BadPath"), {}
        claims = self._provider_token(headers.get("authorization", ""))
        if isinstance(claims, str):
            return (403, claims), {}
        if headers.get("apns-topic") != self.topic:
            return (400, "BadTopic" if "apns-topic" in headers else "MissingTopic"), claims
        if headers.get("apns-push-type") not in ("alert", "background", "voip", "complication", "fileprovider", "mdm",
                                                 "liveactivity", "pushtotalk", "location"):
            return (400, "InvalidPushType"), claims
        if "apns-id" in headers:
            try:
                uuid.UUID(headers["apns-id"])
            except ValueError:
                return (400, "BadMessageId"), claims
        if len(body) > 4096:
            return (413, "PayloadTooLarge"), claims
        try:
            payload = json.loads(body)
        except ValueError:
            return (400, "PayloadEmpty" if not body else "BadPayload"), claims
        if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
            return (400, "BadPayload"), claims
        return None, claims

    def _provider_token(self, authorization: str) -> dict[str, Any] | str:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token.count(".") != 2:
            return "MissingProviderToken"
        head, claims_part, signature = token.split(".")
        try:
            header, claims, raw = json.loads(_b64(head)), json.loads(_b64(claims_part)), _b64(signature)
        except ValueError:
            return "InvalidProviderToken"
        if header.get("alg") != "ES256" or header.get("kid") != self.key_id or claims.get("iss") != self.team_id:
            return "InvalidProviderToken"
        if len(raw) != 64:
            return "InvalidProviderToken"
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        try:
            self.public_key.verify(der, f"{head}.{claims_part}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return "InvalidProviderToken"
        if self.now() - float(claims.get("iat", 0)) >= 3600:
            return "ExpiredProviderToken"
        if not self.provider_tokens or self.provider_tokens[-1] != token:
            self.provider_tokens.append(token)
        return dict(claims)
