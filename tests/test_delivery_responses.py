"""The responses our pool hands plugins read exactly like httpx's own, built the long way."""

from __future__ import annotations

import asyncio
import gzip
import json

import httpx
import pytest

from omnisdk.delivery import _responses
from omnisdk.delivery._responses import ReadResponse, read_response

REQUEST = httpx.Request("POST", "https://api.provider.test/v1/messages", content=b"To=%2B14155550100")

ANSWERS = [
    (201, b"Created", [(b"Content-Type", b"application/json"), (b"Content-Length", b"15")], b'{"sid": "SM1"}\n'),
    (429, b"Too Many Requests", [(b"Retry-After", b"3"), (b"Content-Type", b"application/json; charset=utf-8")],
     json.dumps({"code": 20429, "message": "Too many requests, caf\u00e9"}).encode()),
    (204, b"No Content", [], b""),
    (500, b"", [(b"Content-Type", b"text/html; charset=latin-1")], "<p>Panne g\u00e9n\u00e9rale</p>".encode("latin-1")),
    (302, b"Found", [(b"Location", b"https://elsewhere.test/")], b""),
]


def public(response: httpx.Response) -> tuple[object, ...]:
    try:
        raised = None
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        raised = (str(exc), exc.request.url, exc.response is response)
    return (
        response.status_code, response.reason_phrase, response.http_version, response.headers.multi_items(),
        response.content, response.text, response.encoding, list(response.iter_bytes()),
        list(response.iter_text()), response.num_bytes_downloaded, response.is_closed, response.is_stream_consumed,
        response.is_success, response.is_redirect, response.has_redirect_location, response.request.url,
        response.request.content, repr(response), raised,
    )


def httpx_own(answer: _responses.Answer) -> httpx.Response:
    status, reason, headers, body = answer
    response = httpx.Response(status, headers=headers, stream=httpx.ByteStream(body), request=REQUEST,
                              extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason})
    response.read()
    return response


def test_this_httpx_takes_the_shortcut() -> None:
    assert _responses.FAST, "httpx changed how it keeps a read response: every answer now takes httpx's path"


@pytest.mark.parametrize("answer", ANSWERS, ids=lambda a: str(a[0]))
def test_a_read_response_reads_like_httpxs_own(answer: _responses.Answer) -> None:
    assert public(read_response(answer, lambda: REQUEST)) == public(httpx_own(answer))


def test_async_reads_and_close_are_the_same_too() -> None:
    async def both() -> None:
        ours, theirs = read_response(ANSWERS[0], lambda: REQUEST), httpx_own(ANSWERS[0])
        assert await ours.aread() == await theirs.aread()
        assert [c async for c in ours.aiter_bytes()] == [c async for c in theirs.aiter_bytes()]
        await ours.aclose()
        assert ours.is_closed and ours.json() == {"sid": "SM1"}

    asyncio.run(both())


def test_the_request_is_built_once_and_only_when_asked_for() -> None:
    built: list[httpx.Request] = []

    def factory() -> httpx.Request:
        built.append(REQUEST)
        return REQUEST

    response = read_response(ANSWERS[0], factory)
    assert response.json() == {"sid": "SM1"} and built == []
    assert response.request is REQUEST and response.request is REQUEST
    assert len(built) == 1


def test_a_request_set_later_replaces_the_factory() -> None:
    other = httpx.Request("GET", "https://api.provider.test/other")
    response = ReadResponse(ANSWERS[0], lambda: pytest.fail("the factory is not called once replaced"))
    response.request = other
    assert response.request is other


def test_an_encoded_body_is_decoded_by_httpx() -> None:
    body = gzip.compress(b'{"sid": "SM2"}')
    answer: _responses.Answer = (201, b"Created", [(b"Content-Encoding", b"gzip")], body)
    response = read_response(answer, lambda: REQUEST, decode=True)
    assert not isinstance(response, ReadResponse)
    assert response.json() == {"sid": "SM2"} and response.num_bytes_downloaded == len(body)
