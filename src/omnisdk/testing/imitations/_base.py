"""The server every imitation runs on: aiohttp in a thread of its own, so sync and async tests share it."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, ClassVar, NoReturn, Self, TypeVar
from urllib.parse import parse_qsl

import attrs
from aiohttp import web
from multidict import MultiDict

from ..._clock import Clock
from ._call import Call, Invalid, Problem, RecordedRequest
from ._contract import Check, Operation, Remembered, contract, decode_form
from ._faults import FaultKind, Faults

__all__ = ["Imitation", "RecordedRequest", "Violation", "route"]

Handler = Callable[[Any, Call], web.StreamResponse]
H = TypeVar("H", bound=Handler)


@attrs.frozen
class Violation:
    """A request the provider's contract forbids: a bug in the client that sent it."""

    method: str
    path: str
    problems: tuple[Problem, ...]
    #: The contract operation checked, e.g. "POST /v3/mail/send (sendgrid_mail_send.json)".
    operation: str | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}: " + "; ".join(map(str, self.problems))


@attrs.frozen
class _Route:
    method: str
    path: str
    #: "post /v3/mail/send" in the class's contract, or a check of its own.
    check: str | Check | None
    #: Contract problems are recorded as warnings and the request is served anyway.
    loose: bool
    #: Whether `authenticate` must accept the request.
    auth: bool
    #: The contract file a string `check` refers to, when not the class's (a second API of the provider).
    contract: str | None = None


def route(
    method: str,
    path: str,
    *,
    check: str | Check | None = None,
    loose: bool = False,
    auth: bool = True,
    contract: str | None = None,
) -> Callable[[H], H]:
    """Declare an imitation method as the handler of `method path` (aiohttp path syntax)."""

    def mark(handler: H) -> H:
        setattr(handler, "__imitation_route__", _Route(method, path, check, loose, auth, contract))  # noqa: B010
        return handler

    return mark


@attrs.define(kw_only=True, slots=False, eq=False)
class Imitation:
    """A local HTTP server answering like one provider, checking each request against its contract.

    ``with TwilioImitation() as twilio:`` starts it on a free port of 127.0.0.1 (``twilio.base_url``)
    and stops it after the block; ``start()``/``stop()`` do the same by hand. It serves from a
    thread with its own event loop, so a sync test and an async test use it alike.
    """

    #: The contract file the routes' string checks refer to.
    contract: ClassVar[str | None] = None
    #: The status a provider uses for a malformed request (Lob answers 422).
    invalid_status: ClassVar[int] = 400

    faults: Faults = attrs.field(factory=Faults)
    #: Check each request against the contract (off for raw throughput).
    validate: bool = True
    #: The port to listen on; 0 takes a free one (tests), a fixed one suits a demo's config.
    port: int = 0
    #: What stamps the provider's resources (a `VirtualClock` in tests); the wall clock when None.
    clock: Clock | None = None
    #: Seconds an accepted message takes to show in the provider's lookup endpoints (their index lags).
    index_lag: float = 0.0
    requests: list[RecordedRequest] = attrs.field(factory=list, init=False, repr=False)
    violations: list[Violation] = attrs.field(factory=list, init=False, repr=False)
    #: Contract mismatches of loosely checked operations (WhatsApp's contract is buggy).
    warnings: list[Violation] = attrs.field(factory=list, init=False, repr=False)
    _loop: asyncio.AbstractEventLoop | None = attrs.field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = attrs.field(default=None, init=False, repr=False)
    _runner: web.AppRunner | None = attrs.field(default=None, init=False, repr=False)
    _port: int = attrs.field(default=0, init=False, repr=False)

    # -- the provider's answers; subclasses shape them -------------------------------------------

    def error(self, status: int, problem: Problem | None = None) -> web.StreamResponse:
        """The provider's error response for `status`; `problem` says what was wrong, if known."""
        message = problem.message if problem else HTTPStatus(status).phrase
        return web.json_response({"error": message}, status=status)

    def authenticate(self, call: Call) -> bool:
        """Whether the credentials are the ones this imitation was configured with."""
        return True

    def prepare(self, call: Call) -> None:
        """Adjust a parsed request before it is checked (where a provider accepts two shapes)."""

    def rejected(self, call: Call, problems: tuple[Problem, ...]) -> web.StreamResponse:
        """The answer to a request that breaks the contract."""
        if any(p.where == "auth" for p in problems):
            return self.error(401, next(p for p in problems if p.where == "auth"))
        return self.error(self.invalid_status, problems[0])

    def throttled(self, retry_after: int) -> web.StreamResponse:
        """The answer to a request over the rate limit."""
        response = self.error(429)
        response.headers["Retry-After"] = str(retry_after)
        return response

    def now(self) -> datetime:
        """The provider's idea of now: its `clock`, or the wall clock."""
        return self.clock.now() if self.clock is not None else datetime.now(UTC)

    def indexed(self, accepted_at: datetime) -> bool:
        """Whether a message accepted at `accepted_at` is visible to lookups yet (`index_lag`)."""
        return (self.now() - accepted_at).total_seconds() >= self.index_lag

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT, what a provider's `base_url` setting takes."""
        if not self._port:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> Self:
        """Serve on a free port, from a background thread; returns once it accepts connections."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=type(self).__name__, daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(), loop).result(timeout=30)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            raise
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Close the server and its thread; recorded requests and state stay readable."""
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._loop = self._thread = self._runner = None
        self._port = 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def assert_no_violations(self) -> None:
        """Fail with every contract violation seen, one a line."""
        if self.violations:
            lines = "\n".join(f"  {v}" for v in self.violations)
            raise AssertionError(f"{type(self).__name__}: {len(self.violations)} contract violation(s):\n{lines}")

    def clear(self) -> None:
        """Forget recorded requests, violations and warnings (provider state is kept)."""
        self.requests.clear()
        self.violations.clear()
        self.warnings.clear()

    async def _open(self) -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        routes: dict[str, tuple[_Route, Handler]] = {}
        for klass in reversed(type(self).__mro__):
            for name, member in vars(klass).items():
                spec = getattr(member, "__imitation_route__", None)
                if isinstance(spec, _Route):
                    routes[name] = (spec, member)
        for spec, handler in routes.values():
            app.router.add_route(spec.method, spec.path, self._endpoint(spec, handler))
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.25)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        """A request for an operation the API does not have: the provider's 404, and a violation."""
        raw = await request.read()
        self.requests.append(RecordedRequest(request.method, request.path, request.query, request.headers, None, raw))
        message = f"{request.method} {request.path} is not an operation of this API"
        problem = Problem("path", message, reason="not_found")
        self.violations.append(Violation(request.method, request.path, (problem,)))
        return self.error(404, problem)

    def _endpoint(self, spec: _Route, handler: Handler) -> Callable[[web.Request], Any]:
        check: Check | None
        operation: Operation | None = None
        if isinstance(spec.check, str):
            source = spec.contract or self.contract
            if source is None:
                raise TypeError(f"{type(self).__name__} names contract operations but has no contract")
            check = operation = contract(source).operation(spec.check)
            if len(operation.path_names) != spec.path.count("{"):
                raise TypeError(f"route {spec.path} and {operation} take different path parameters")
        else:
            check = spec.check
        if check is not None:
            check = Remembered(check)

        async def endpoint(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, spec, handler, check, operation)

        return endpoint

    async def _serve(
        self, request: web.Request, spec: _Route, handler: Handler, check: Check | None, operation: Operation | None
    ) -> web.StreamResponse:
        fault, response = await self._answer(request, spec, handler, check, operation)
        if fault == "drop_after_accept":
            _drop(request)  # the provider acted on the request; its answer is lost
        return response

    async def _answer(
        self, request: web.Request, spec: _Route, handler: Handler, check: Check | None, operation: Operation | None
    ) -> tuple[FaultKind | None, web.StreamResponse]:
        raw = await request.read()
        call = Call(request, dict(request.match_info), raw)
        malformed = _parse(call, operation)
        fault: FaultKind | None = self.faults.draw()
        if fault is None and request.method == "POST":
            fault = self.faults.draw_send()
        call.record = RecordedRequest(
            request.method, request.path, request.query, request.headers, call.body, raw, fault
        )
        self.requests.append(call.record)
        if fault is not None and fault != "drop_after_accept":
            if fault in ("drop", "drop_before_send"):
                _drop(request)
            if fault == "slow":
                await asyncio.sleep(self.faults.delay)
            elif fault == "rate_limit":
                return fault, self.throttled(self.faults.retry_after)
            else:
                return fault, self.error(500 if fault == "server_error" else 503)
        try:
            if malformed is not None:
                raise Invalid(malformed)
            self.prepare(call)
            if self.validate and check is not None and (problems := check(call)):
                found = Violation(request.method, request.path, tuple(problems), str(operation or "") or None)
                if not spec.loose:
                    self.violations.append(found)
                    return fault, self.rejected(call, found.problems)
                self.warnings.append(found)
            if spec.auth and not self.authenticate(call):
                return fault, self.error(401)
            return fault, handler(self, call)
        except Invalid as invalid:
            self.violations.append(
                Violation(request.method, request.path, invalid.problems, str(operation or "") or None)
            )
            return fault, self.rejected(call, invalid.problems)


def _drop(request: web.Request) -> NoReturn:
    """Close the connection without an answer."""
    if request.transport is not None:
        request.transport.close()
    raise asyncio.CancelledError


def _parse(call: Call, operation: Operation | None) -> Problem | None:
    """Fill `call.body` (and `call.form`) from the raw bytes; a Problem when they do not parse.

    A form is typed as the operation's contract declares it, when there is one.
    """
    kind, raw = call.content_type, call.raw
    if kind == "application/x-www-form-urlencoded":
        call.form = MultiDict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    elif kind == "multipart/form-data":
        head = f"Content-Type: {call.headers.get('Content-Type', '')}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        if not message.is_multipart():
            return Problem("body", "malformed multipart body", reason="malformed")
        form: MultiDict[str | bytes] = MultiDict()
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                form.add(name, payload if part.get_filename() else payload.decode("utf-8", "replace"))
        call.form = form
    elif raw and (kind == "application/json" or kind.endswith("+json")):
        try:
            call.body = json.loads(raw)
        except ValueError as exc:
            return Problem("body", f"malformed JSON: {exc}", reason="malformed")
        return None
    if call.form is not None and not (operation is not None and operation.decode(call)):
        call.body = decode_form(call.form)
    return None
