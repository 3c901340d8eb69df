"""The `httpx.Response` a provider call gets back from our pool: read whole, for less work per call.

httpx builds a response around a stream and then reads it through its decoders, and the response
points at the `httpx.Request` it answers. A provider answer is small and already whole when it
arrives, and its request is wanted only by error messages and logs. So, when the body is not
content-encoded (nothing to decode), `ReadResponse` starts out as httpx's own would end up after
`read()` (content, consumed, closed), and builds its request the first time something asks for it.
Those two shortcuts set httpx attributes that are not public (`_content`, `_request`,
`_num_bytes_downloaded`): at import, one response is built both ways and compared; if this httpx
keeps them differently, every response takes httpx's own path (`FAST`), and
`tests/test_delivery_responses.py` compares the two on every public attribute.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["FAST", "ReadResponse", "read_response", "unread_response"]

#: A response as parsed: status, reason phrase, raw headers, body.
Answer = tuple[int, bytes, list[tuple[bytes, bytes]], bytes]
RequestFactory = Callable[[], httpx.Request]


class ReadResponse(httpx.Response):
    """A response whose body was read as it arrived and whose request is built when first wanted."""

    def __init__(self, answer: Answer, request: RequestFactory) -> None:
        status, reason, headers, body = answer
        self._request_factory: RequestFactory | None = request
        super().__init__(status, headers=headers, stream=httpx.ByteStream(body), extensions=_extensions(reason))
        self._content = body
        self._num_bytes_downloaded = len(body)
        self.is_stream_consumed = True
        self.is_closed = True

    @property  # httpx's attribute, read by `request` and `raise_for_status`
    def _request(self) -> httpx.Request | None:
        built: httpx.Request | None = self.__dict__.get("_built_request")
        if built is None and self._request_factory is not None:
            built = self.__dict__["_built_request"] = self._request_factory()
            self._request_factory = None
        return built

    @_request.setter
    def _request(self, value: httpx.Request | None) -> None:
        if value is not None:  # httpx's __init__ stores None first: the factory stays until asked
            self._request_factory = None
        self.__dict__["_built_request"] = value


def _extensions(reason: bytes) -> dict[str, Any]:
    return {"http_version": b"HTTP/1.1", "reason_phrase": reason}


def unread_response(answer: Answer, request: httpx.Request) -> httpx.Response:
    """The response to `answer` as a transport hands it to httpx: its body still to be read (and decoded)."""
    status, reason, headers, body = answer
    return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body), request=request,
                          extensions=_extensions(reason))


def _httpx_read(answer: Answer, request: httpx.Request) -> httpx.Response:
    response = unread_response(answer, request)
    response.read()  # as httpx reads it: decodes gzip, br, ...
    return response


def read_response(answer: Answer, request: RequestFactory, *, decode: bool = False) -> httpx.Response:
    """The response to `answer`, read whole; `decode` when its body is content-encoded (httpx decodes it)."""
    if FAST and not decode:
        return ReadResponse(answer, request)
    return _httpx_read(answer, request())


def _public(response: httpx.Response) -> tuple[Any, ...]:
    return (response.status_code, response.reason_phrase, response.http_version, response.headers.raw,
            response.content, response.text, list(response.iter_bytes()), response.num_bytes_downloaded,
            response.is_closed, response.is_stream_consumed, response.request.url, response.request.content)


def _same_as_httpx() -> bool:
    """Whether `ReadResponse` reads like httpx's own response on this httpx."""
    request = httpx.Request("POST", "http://provider.invalid/probe", content=b"x=1")
    answer: Answer = (201, b"Created", [(b"Content-Type", b"application/json"), (b"Content-Length", b"9")],
                      b'{"a": 1}\n')
    try:
        return _public(ReadResponse(answer, lambda: request)) == _public(_httpx_read(answer, request))
    except Exception:  # an httpx that keeps these otherwise: its own path, always
        return False


#: Responses take the shortcut (see the module docstring).
FAST = _same_as_httpx()
