"""The dashboard over HTTP (in process), on both stores: what each page shows, escaping, actions, the token."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dashboard_scenario import HOSTILE, Scenario, build
from omnisdk.errors import ConfigError
from omnisdk.ui import SESSION_COOKIE, check_exposure, create_dashboard


@pytest.fixture
def scenario(store_url: str) -> Iterator[Scenario]:
    built = build(store_url)
    yield built
    built.omni.close()


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def text(response: httpx.Response) -> str:
    """The page as a reader sees it: tags dropped, entities kept as the browser would show them."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", " ", response.text))


def csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, "no action form on the page"
    return match[1]


def test_search_normalises_like_identify_and_opens_the_profile(scenario: Scenario) -> None:
    app = create_dashboard(scenario.omni)
    for term in ("ada", "ADA@example.COM", " ada@example.com ", "+1 (415) 555-0100"):
        response = call(app, "GET", "/customers", params={"q": term})
        assert (response.status_code, response.headers["location"]) == (303, "/customers/ada"), term
    missing = call(app, "GET", "/customers", params={"q": "nobody@example.com"})
    assert missing.status_code == 200 and "No customer matches" in missing.text
    profile = text(call(app, "GET", "/customers/ada"))
    assert "ada@example.com" in profile and "+14155550100" in profile  # identities as stored
    assert "granted" in profile and "checkout-form" in profile  # consent history
    assert "Product Viewed" in profile and "Signed Up" in profile and "Message Sent" in profile  # the timeline
    assert "hello" in profile and "sent" in profile  # deliveries


def test_a_deliverys_decision_log_says_why_it_was_not_sent(scenario: Scenario) -> None:
    app = create_dashboard(scenario.omni)
    page = call(app, "GET", f"/customers/bob/deliveries/{scenario.skipped_delivery}")
    assert page.status_code == 200
    shown = text(page)
    assert "Why was this not sent?" in shown
    assert "skip" in shown and "no marketing consent on sms" in shown
    sent = text(call(app, "GET", f"/customers/ada/deliveries/{scenario.sent_delivery}"))
    assert "Why was this sent?" in sent and "memory" in sent
    # a delivery is only shown under its own customer
    assert call(app, "GET", f"/customers/ada/deliveries/{scenario.skipped_delivery}").status_code == 404


def test_journeys_outbox_and_quarantine_pages_show_what_needs_attention(scenario: Scenario) -> None:
    app = create_dashboard(scenario.omni)
    journeys = text(call(app, "GET", "/journeys"))
    stuck = journeys.split("Stuck runs", 1)[1].split("Failed runs", 1)
    assert "reminder" in stuck[0] and "2.0 h" in stuck[0]  # due at 10:00+1h, now 3 h later
    assert "restock" in stuck[1] and "RuntimeError: inventory service down" in stuck[1]
    assert "Retry" not in journeys  # read-only by default
    outbox = text(call(app, "GET", "/outbox", params={"hours": "72"}))
    assert re.search(r"queued\s+1\b", outbox) and "3.0 h" in outbox
    assert "sms/memory" in outbox and "0.0%" in outbox
    quarantine = text(call(app, "GET", "/quarantine"))
    assert "touchpoints" in quarantine and "TypeError" in quarantine
    overview = text(call(app, "GET", "/"))
    assert re.search(r"Failed runs\s+1\b", overview) and re.search(r"Quarantined rows\s+1\b", overview)


def test_experiments_and_kpis_pages_chart_what_the_store_holds(scenario: Scenario) -> None:
    app = create_dashboard(scenario.omni)
    kpis = call(app, "GET", "/kpis", params={"by": "channel"})
    assert kpis.status_code == 200 and "<svg" in kpis.text and "sms" in text(kpis)
    assert "No experiment has exposed anyone yet." in text(call(app, "GET", "/experiments"))
    assert call(app, "GET", "/experiments/nothing").status_code == 404


def test_hostile_traits_and_properties_are_shown_as_text(scenario: Scenario) -> None:
    app = create_dashboard(scenario.omni, allow_actions=True)
    for path in ("/customers/ada", "/journeys", "/outbox", f"/customers/ada/deliveries/{scenario.sent_delivery}"):
        page = call(app, "GET", path)
        assert page.status_code == 200
        assert "<script>window.pwned" not in page.text and "<img src=x" not in page.text, path
        assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script at all
    profile = call(app, "GET", "/customers/ada")
    assert profile.text.count("&lt;script&gt;window.pwned=1&lt;/script&gt;") >= 3  # trait, property name, value
    assert HOSTILE in text(profile)
    # a hostile search term and path are echoed as text too
    echoed = call(app, "GET", "/customers", params={"q": HOSTILE})
    assert "<script>window.pwned" not in echoed.text and HOSTILE in text(echoed)
    assert "<script>" not in call(app, "GET", "/customers/%3Cscript%3Ex").text


def test_retry_needs_allow_actions_and_a_csrf_token(scenario: Scenario) -> None:
    path = f"/runs/{scenario.failed_run}/retry"
    read_only = create_dashboard(scenario.omni)
    refused = call(read_only, "POST", path, data={"csrf": "anything"})
    assert refused.status_code == 403 and "--allow-actions" in refused.text
    assert scenario.omni.runs(journey="restock")[0].status == "failed"
    app = create_dashboard(scenario.omni, allow_actions=True)
    page = call(app, "GET", "/journeys")
    assert "Retry" in page.text
    assert call(app, "POST", path, data={"csrf": "forged"}).status_code == 403
    token = csrf(page)
    assert call(app, "POST", path, data={"csrf": token}, headers={"origin": "https://evil.example"}).status_code == 403
    assert scenario.omni.runs(journey="restock")[0].status == "failed"
    done = call(app, "POST", path, data={"csrf": token}, headers={"origin": "http://127.0.0.1:8765"})
    assert done.status_code == 200 and "is running again" in done.text
    assert scenario.omni.runs(journey="restock")[0].status == "running"
    again = call(app, "POST", path, data={"csrf": token})  # not failed any more: said plainly, nothing changes
    assert again.status_code == 400 and "only failed runs can be retried" in again.text


def test_cancel_a_stuck_run_and_repair_or_drop_a_quarantined_row(scenario: Scenario) -> None:
    app = create_dashboard(scenario.omni, allow_actions=True)
    token = csrf(call(app, "GET", "/journeys"))
    assert call(app, "POST", f"/runs/{scenario.stuck_run}/cancel", data={"csrf": token}).status_code == 200
    assert scenario.omni.runs(journey="reminder")[0].status == "cancelled"
    kept = call(app, "POST", f"/quarantine/{scenario.quarantined}/repair", data={"csrf": token})
    assert kept.status_code == 200 and "was kept" in kept.text  # '[1]' is no object: no known fix applies
    dropped = call(app, "POST", f"/quarantine/{scenario.quarantined}/drop", data={"csrf": token})
    assert "was dropped" in dropped.text and scenario.omni.quarantine() == []


def test_a_token_is_asked_for_by_header_or_by_the_login_form(scenario: Scenario) -> None:
    app = create_dashboard(scenario.omni, token="s3cret-token")
    assert call(app, "GET", "/journeys").status_code == 401
    assert call(app, "GET", "/journeys", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert call(app, "GET", "/journeys", headers={"authorization": "Bearer s3cret-token"}).status_code == 200
    assert call(app, "GET", "/journeys", headers={"x-omnisdk-token": "s3cret-token"}).status_code == 200
    assert call(app, "POST", "/login", data={"token": "nope"}).status_code == 401
    login = call(app, "POST", "/login", data={"token": "s3cret-token"})
    assert login.status_code == 303
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "s3cret-token" not in cookie
    session = cookie.split(";", 1)[0].split("=", 1)[1]
    assert call(app, "GET", "/journeys", headers={"cookie": f"{SESSION_COOKIE}={session}"}).status_code == 200
    forged = session[:-1] + ("1" if session[-1] != "1" else "2")
    assert call(app, "GET", "/journeys", headers={"cookie": f"{SESSION_COOKIE}={forged}"}).status_code == 401


def test_the_dashboard_refuses_to_be_exposed_without_a_token() -> None:
    check_exposure("127.0.0.1", None)
    check_exposure("::1", None)
    check_exposure("localhost", None)
    check_exposure("0.0.0.0", "t")
    with pytest.raises(ConfigError, match="give it a token"):
        check_exposure("0.0.0.0", None)
    with pytest.raises(ConfigError, match="give it a token"):
        check_exposure("192.168.1.10", "")


def test_the_ui_command_refuses_to_start_exposed_without_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    from omnisdk.cli import main

    assert main(["--store", "sqlite://:memory:", "ui", "--host", "0.0.0.0"]) == 1
    assert "give it a token" in capsys.readouterr().err
