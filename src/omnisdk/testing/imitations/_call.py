"""One request as the checks and the handlers of an imitation see it: parsed once, read many times."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import attrs
from aiohttp import web
from multidict import CIMultiDictProxy, MultiDict, MultiMapping

from ._faults import FaultKind

__all__ = ["Call", "Invalid", "Problem", "RecordedRequest"]


@attrs.frozen
class RecordedRequest:
    """A request as the imitation received it."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    #: The JSON value, the form as a dict (lists for repeated keys), or None.
    body: Any
    raw: bytes
    #: The fault injected instead of (or, for "slow", before) the normal answer.
    fault: FaultKind | None = None


@attrs.frozen
class Problem:
    """One thing wrong with a request, placed precisely enough to render the provider's own error."""

    #: Where it is: "path", "query", "header", "body" or "auth".
    where: str
    message: str
    #: The parameter, header or dotted body path ("personalizations.0.to"), when there is one.
    field: str | None = None
    #: The JSON Schema keyword that failed ("required", "type", ...), or "missing", "malformed",
    #: "security", "content-type", "invalid" for the checks made outside a schema.
    reason: str = "invalid"

    def __str__(self) -> str:
        place = f"{self.where} {self.field}" if self.field else self.where
        return f"{place}: {self.message}"


class Invalid(Exception):
    """Raised by a handler for a request the real provider rejects as malformed (a violation)."""

    def __init__(self, *problems: Problem) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems

    @classmethod
    def body(cls, message: str, field: str | None = None, reason: str = "invalid") -> Invalid:
        """The common case: one problem in the body."""
        return cls(Problem("body", message, field, reason))


@attrs.define(slots=True, eq=False)
class Call:
    """A parsed request; `body` is the JSON value, the decoded form as a dict, or None."""

    request: web.Request
    #: Path parameters by the route's names.
    params: dict[str, str]
    raw: bytes
    body: Any = None
    #: The form fields as sent (repeated keys kept), for form-encoded and multipart bodies.
    form: MultiDict[str | bytes] | None = None
    #: What `Imitation.requests` keeps of this request.
    record: RecordedRequest = attrs.field(init=False)

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def path(self) -> str:
        return self.request.path

    @property
    def query(self) -> MultiMapping[str]:
        return self.request.query

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.request.headers

    @property
    def content_type(self) -> str:
        return self.request.content_type

    @property
    def json(self) -> dict[str, Any]:
        """The body when it is an object (an empty dict otherwise), for handlers."""
        return self.body if isinstance(self.body, dict) else {}

    def basic_auth(self) -> tuple[str, str] | None:
        """(user, password) from an HTTP Basic Authorization header."""
        scheme, _, value = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if sep else None

    def bearer(self) -> str | None:
        """The token of a Bearer Authorization header."""
        scheme, _, value = self.request.headers.get("Authorization", "").partition(" ")
        return value.strip() or None if scheme.lower() == "bearer" else None
