"""Fake provider endpoints the conformance kit scripts: an HTTP server and an SMTP server (aiosmtpd).

Each answers every request with the fault it was last told ("ok", "reject", "rate_limit",
"server_error", "unavailable", "drop", "timeout") and records what it received, so the suite can check how a
provider maps every kind of failure without a real account.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import warnings
from collections.abc import Mapping
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Literal, Protocol

import attrs

__all__ = ["FAULTS", "Endpoint", "Fault", "Reply", "SMTPEndpoint", "ScriptedHTTPEndpoint", "free_port"]

Fault = Literal["ok", "reject", "rate_limit", "server_error", "unavailable", "drop", "timeout"]
FAULTS: tuple[Fault, ...] = ("ok", "reject", "rate_limit", "server_error", "unavailable", "drop", "timeout")
#: How long a "timeout" answer is held back: far longer than any client timeout the kit sets.
HOLD_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Endpoint(Protocol):
    """What a suite needs from a fake provider endpoint."""

    #: Config keys pointing the provider at this endpoint (`base_url`, or `host` and `port`).
    settings: Mapping[str, Any]
    #: Every request received, raw (HTTP: head and body; SMTP: the message data).
    requests: list[bytes]

    def answer_with(self, fault: Fault) -> None:
        """Answer every request from now on with `fault` ("ok" at first)."""


@attrs.frozen
class Reply:
    """An HTTP answer: a mapping body is sent as JSON."""

    status: int = 200
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes | str | Mapping[str, Any] = b""

    def encode(self) -> bytes:
        if isinstance(self.body, Mapping):
            payload = json.dumps(self.body).encode()
            headers = {"Content-Type": "application/json", **self.headers}
        else:
            payload = self.body.encode() if isinstance(self.body, str) else self.body
            headers = dict(self.headers)
        head = [f"HTTP/1.1 {self.status} Scripted", f"Content-Length: {len(payload)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


class ScriptedHTTPEndpoint:
    """An HTTP/1.1 server on 127.0.0.1, in the test's event loop, answering from `replies` by fault."""

    def __init__(self, replies: Mapping[str, Reply]) -> None:
        self.replies = dict(replies)
        self.requests: list[bytes] = []
        self.fault: Fault = "ok"
        self._server: asyncio.Server | None = None
        self._closing = asyncio.Event()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the endpoint is not started"
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    @property
    def settings(self) -> Mapping[str, Any]:
        return {"base_url": self.base_url}

    def answer_with(self, fault: Fault) -> None:
        self.fault = fault

    async def __aenter__(self) -> ScriptedHTTPEndpoint:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await _read_request(reader):
                self.requests.append(request)
                fault = self.fault
                if fault == "drop":
                    break
                if fault == "timeout":
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), HOLD_SECONDS)
                    break
                writer.write(self.replies[fault].encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + (await reader.readexactly(length) if length else b"")


class SMTPEndpoint:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives and can be scripted.

    `tls` serves STARTTLS with the given server context; `auth` = (user, password) requires
    AUTH (over TLS when `tls` is set). `messages` are the received messages, parsed.
    """

    def __init__(
        self, *, tls: ssl.SSLContext | None = None, auth: tuple[str, str] | None = None, implicit_tls: bool = False
    ) -> None:
        self.tls, self.auth, self.implicit_tls = tls, auth, implicit_tls
        self.requests: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.fault: Fault = "ok"
        self._controller: Any = None
        self.port = 0

    @property
    def settings(self) -> Mapping[str, Any]:
        return {"host": "127.0.0.1", "port": self.port}

    @property
    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(raw, policy=policy.default) for raw in self.requests]

    def answer_with(self, fault: Fault) -> None:
        self.fault = fault

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        fault = self.fault
        if fault == "drop":
            server.transport.close()
            return "421 4.3.0 closing"
        if fault == "timeout":
            await asyncio.sleep(HOLD_SECONDS)
        answers = {
            "reject": "550 5.1.1 mailbox unavailable",
            "rate_limit": "451 4.7.1 too many messages, slow down",
            "server_error": "451 4.3.0 local error in processing",
            "unavailable": "421 4.3.2 service not available",
        }
        if fault in answers:
            return answers[fault]
        self.requests.append(bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 OK queued"

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(data, LoginPassword) and self.auth == (data.login.decode(), data.password.decode())
        return AuthResult(success=ok, handled=False)

    def start(self) -> SMTPEndpoint:
        from aiosmtpd.controller import Controller

        class QuietController(Controller):
            def factory(self) -> Any:
                # Plain-text AUTH is what the tests want; aiosmtpd warns about it on every connection.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    return super().factory()  # type: ignore[no-untyped-call]

        kwargs: dict[str, Any] = {}
        if self.tls is not None and not self.implicit_tls:
            kwargs.update(tls_context=self.tls, require_starttls=True)
        if self.auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=self.tls is not None)
        self.port = free_port()
        self._controller = QuietController(
            self, hostname="127.0.0.1", port=self.port, ssl_context=self.tls if self.implicit_tls else None, **kwargs
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def __aenter__(self) -> SMTPEndpoint:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> SMTPEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

