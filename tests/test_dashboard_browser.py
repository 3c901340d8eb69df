"""The dashboard in a real headless Chromium over HTTP: on the demo's database, and on the seeded scenario
(a failed run to retry, hostile strings). Every page is checked by axe-core (no serious or critical issue)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from browser import axe_violations
from dashboard_scenario import Scenario, build
from omnisdk import Omni
from omnisdk.ui import SESSION_COOKIE, create_dashboard


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo, run as a user runs it (`omnisdk demo`), into a store file the dashboard then reads."""
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
    subprocess.run([sys.executable, "-m", "omnisdk", "--store", url, "demo", "--customers", "150", "--report", ""],
                   check=True, capture_output=True, timeout=300)
    return url


@pytest.fixture
def demo(demo_store: str) -> Iterator[Omni]:
    with Omni(demo_store) as omni:
        yield omni


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    # Playwright's sync API holds this thread's event loop: the client's loop runs in another thread.
    with ThreadPoolExecutor(1) as pool:
        built = pool.submit(build, f"sqlite:///{tmp_path / 'scenario.db'}").result()
    yield built
    with ThreadPoolExecutor(1) as pool:
        pool.submit(built.omni.close).result()


def _no_axe_issues(page: Any) -> None:
    assert axe_violations(page) == [], page.url


def _find_and_open_a_decision_log(page: Any, base: str, omni: Omni, *, axe: bool = True) -> None:
    skipped = next(d for d in omni.deliveries(status="skipped") if d.decisions)
    email = omni.customer(skipped.customer_id).email
    assert email
    check = _no_axe_issues if axe else (lambda _page: None)  # axe-core is a script: not in a page without JS
    page.goto(base + "/")
    check(page)
    page.get_by_label("Find a customer (id, email or phone)").fill(email.upper())  # normalised like identify
    page.get_by_role("button", name="Find").click()
    page.wait_for_url(re.compile(r"/customers/" + re.escape(skipped.customer_id) + "$"))
    assert page.get_by_role("heading", name=f"Customer {skipped.customer_id}").is_visible()
    assert page.get_by_role("heading", name="Consent history").is_visible()
    check(page)
    page.locator(f'a[href$="/deliveries/{skipped.id}"]').click()
    page.wait_for_url(re.compile(r"/deliveries/"))
    assert page.get_by_role("heading", name="Why was this not sent?").is_visible()
    log = page.locator("table", has=page.locator("caption", has_text="Decision log")).inner_text()
    assert skipped.decisions[-1].reason in log
    check(page)


def test_on_the_demo_database_find_a_customer_and_open_a_decision_log(page: Any, serve_asgi: Any,
                                                                     demo: Omni) -> None:
    _find_and_open_a_decision_log(page, serve_asgi(create_dashboard(demo)), demo)


def test_the_same_without_javascript(page_without_js: Any, serve_asgi: Any, demo: Omni) -> None:
    _find_and_open_a_decision_log(page_without_js, serve_asgi(create_dashboard(demo)), demo, axe=False)


def test_every_section_of_the_demo_renders_accessibly(page: Any, serve_asgi: Any, demo: Omni) -> None:
    base = serve_asgi(create_dashboard(demo, allow_actions=True))
    for path, heading in (("/journeys", "Journeys"), ("/outbox", "Outbox and providers"),
                          ("/quarantine", "Quarantine"), ("/experiments", "Experiments"), ("/kpis", "KPIs")):
        page.goto(base + path)
        assert page.get_by_role("heading", name=heading, exact=True).is_visible()
        _no_axe_issues(page)
    page.goto(base + "/kpis")
    assert page.locator("svg[role=img]").count() >= 1


def test_retry_a_failed_run_from_the_journeys_page(page: Any, serve_asgi: Any, scenario: Scenario) -> None:
    base = serve_asgi(create_dashboard(scenario.omni, allow_actions=True))
    page.goto(base + "/journeys")
    _no_axe_issues(page)
    page.get_by_role("button", name=f"Retry {scenario.failed_run}").click()
    assert page.get_by_role("status").inner_text().endswith("is running again.")
    assert scenario.omni.runs(journey="restock")[0].status == "running"
    page.get_by_role("link", name="Back").click()
    failed = page.locator("h2#failed + *").inner_text()
    assert "No failed runs." in failed


def test_read_only_shows_no_action_and_refuses_a_posted_one(page: Any, serve_asgi: Any, scenario: Scenario) -> None:
    base = serve_asgi(create_dashboard(scenario.omni))
    page.goto(base + "/journeys")
    assert page.get_by_role("button", name=re.compile("Retry")).count() == 0
    assert "RuntimeError: inventory service down" in page.content()
    response = page.request.post(base + f"/runs/{scenario.failed_run}/retry", form={"csrf": "x"})
    assert response.status == 403 and "--allow-actions" in response.text()
    assert scenario.omni.runs(journey="restock")[0].status == "failed"


def test_an_exposed_dashboard_asks_for_its_token(page: Any, serve_asgi: Any, scenario: Scenario) -> None:
    base = serve_asgi(create_dashboard(scenario.omni, token="operator-token"))
    answer = page.goto(base + "/journeys")
    assert answer.status == 401
    _no_axe_issues(page)
    page.get_by_label("Token").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    assert "not this dashboard's" in page.get_by_role("alert").inner_text()
    page.get_by_label("Token").fill("operator-token")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert SESSION_COOKIE not in page.evaluate("document.cookie")  # scripts cannot read it
    assert page.goto(base + "/journeys").status == 200


def test_hostile_profile_data_runs_no_script(page: Any, serve_asgi: Any, scenario: Scenario) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    base = serve_asgi(create_dashboard(scenario.omni))
    page.goto(base + "/customers/ada")
    assert page.evaluate("window.pwned") is None and dialogs == []
    assert page.get_by_text("<script>window.pwned=1</script>", exact=False).count() >= 1
    _no_axe_issues(page)
