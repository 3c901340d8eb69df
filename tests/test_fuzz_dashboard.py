"""Fuzzing the dashboard's door: any path, query, form or cookie gets a page or a 4xx, never a 500, and
nothing it echoes becomes markup."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnisdk import Omni, VirtualClock
from omnisdk.ui import create_dashboard

BUDGET = settings(max_examples=150, derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
MARK = "<b>x</b>"
SEGMENTS = st.one_of(st.sampled_from(["customers", "deliveries", "journeys", "outbox", "quarantine", "experiments",
                                      "kpis", "runs", "retry", "cancel", "repair", "drop", "login", "ada", "1",
                                      "readyz", "healthz", MARK]), st.text(max_size=12))


@pytest.fixture(scope="module")
def app() -> Iterator[Any]:
    with Omni("sqlite://:memory:", clock=VirtualClock()) as omni:
        omni.identify("ada", email="ada@example.com", traits={"first_name": MARK})
        yield create_dashboard(omni, allow_actions=True, token="t")


async def _call(app: Any, method: str, raw_path: bytes, query: bytes, body: bytes,
                headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    scope = {"type": "http", "method": method, "path": raw_path.decode("latin-1"), "raw_path": raw_path,
             "root_path": "", "query_string": query, "headers": headers}
    sent: dict[str, Any] = {}
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
        else:
            sent["body"] = message["body"]

    await app(scope, receive, send)
    return sent["status"], sent["body"]


@BUDGET
@given(method=st.sampled_from(["GET", "POST", "PUT", "HEAD"]), segments=st.lists(SEGMENTS, max_size=5),
       query=st.dictionaries(st.sampled_from(["q", "by", "days", "hours", "control", "goal"]), st.text(max_size=20)),
       form=st.dictionaries(st.sampled_from(["csrf", "token"]), st.text(max_size=20)),
       cookie=st.text(max_size=40), authed=st.booleans())
def test_any_request_gets_a_page_or_a_4xx(app: Any, method: str, segments: list[str], query: dict[str, str],
                                          form: dict[str, str], cookie: str, authed: bool) -> None:
    raw_path = ("/" + "/".join(quote(s, safe="") for s in segments)).encode()
    headers = [(b"cookie", cookie.encode("utf-8"))]
    if authed:
        headers.append((b"x-omnisdk-token", b"t"))
    status, body = asyncio.run(_call(app, method, raw_path, urlencode(query).encode(), urlencode(form).encode(),
                                     headers))
    assert status < 500, (segments, query, body[:300])
    assert MARK.encode() not in body
