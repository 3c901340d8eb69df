"""The preference centre in headless Chromium: from the link in a real rendered email to the next sends.

The email goes through the SendGrid plugin to the SendGrid imitation; the link is taken from the
HTML it received, opened in Chromium (with and without JavaScript) against the ASGI app served
by uvicorn, topics changed, everything unsubscribed; the next sends say why they were skipped.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from browser import axe_violations
from omnisdk import Email, Message, Omni, VirtualClock
from omnisdk.asgi import create_app
from omnisdk.testing.imitations import SendGridImitation

PUBLIC = "https://shop.example/omnisdk"
TOPICS = {
    "newsletter": {"label": {"en": "Newsletter", "fr": "Lettre d'information"}, "channels": ["email", "sms"]},
    "offers": {"label": {"en": "Offers", "fr": "Offres"}, "default": "opt-in", "channels": ["email"]},
    "order-updates": {"label": {"en": "Order updates", "fr": "Suivi de commande"}, "transactional": True,
                      "channels": ["email"]},
}
WEEKLY = Message("weekly", email=Email(
    subject="Cette semaine", text="Nouveautés. Préférences : {{ preferences_url }}",
    html='<p>Nouveautés</p><p><a href="{{ preferences_url }}">Gérer mes préférences</a></p>'))
OFFER = Message("offer", email=Email(subject="Offre", text="Offre. {{ preferences_url }}"), marketing=True)
SHIPPED = Message("shipped", email=Email(subject="Expédiée", text="Votre commande {{ data.order_id }} est partie."))


@pytest.fixture
def shop(store_url: str) -> Iterator[tuple[Omni, SendGridImitation]]:
    with SendGridImitation(api_key="SG.prefs") as api:
        config = {"channels": {"email": {"provider": "sendgrid", "api_key": "SG.prefs", "from": "hello@acme.example",
                                         "base_url": api.base_url}},
                  "templates": {"links": {"base_url": PUBLIC}}, "topics": TOPICS,
                  "preferences": {"link_expiry": "30d"}}
        omni = Omni(store_url, config=config, clock=VirtualClock())
        for message in (WEEKLY, OFFER, SHIPPED):
            omni.templates.add(message)
        omni.identify("c-1", email="ada@example.com", locale="fr-FR")
        omni.consent("c-1", channel="email", granted=True)
        yield omni, api
        off_loop(omni.close)


def off_loop(call: Callable[[], Any]) -> Any:
    """`call` on another thread: Playwright's sync API keeps an event loop running on this one, and
    the sync client runs its own loop for the worker."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def work(omni: Omni) -> None:
    off_loop(omni.run_until_idle)


def send(omni: Omni, template: str, topic: str, purpose: str = "marketing") -> Any:
    omni.clock.advance(days=8)  # type: ignore[attr-defined]  # past the dedupe window and weekly caps
    delivery = omni.send("c-1", template, channel="email", topic=topic, purpose=purpose,
                         data={"order_id": "o-1"} if purpose == "transactional" else None)
    work(omni)
    return next(d for d in omni.deliveries(customer_id="c-1") if d.id == delivery.id)


def mail_html(api: SendGridImitation, index: int = -1) -> str:
    content = api.mails[index]["request"]["content"]
    return next(c["value"] for c in content if c["type"] == "text/html")


def mail_headers(api: SendGridImitation, index: int = -1) -> dict[str, str]:
    return dict(api.mails[index]["request"]["personalizations"][0].get("headers") or {})


def served(link: str, base: str) -> str:
    """The public link as the test server answers it (the app is mounted at PUBLIC in production)."""
    assert link.startswith(PUBLIC + "/"), link
    return base + link.removeprefix(PUBLIC)


def preferences_link(api: SendGridImitation) -> str:
    found = re.search(r'href="([^"]+/preferences/[^"]+)"', mail_html(api))
    assert found, mail_html(api)
    return found[1].replace("&amp;", "&")


def skip_reason(delivery: Any) -> str:
    return " | ".join(f"{d.policy}: {d.reason}" for d in delivery.decisions)


@pytest.mark.parametrize("tab", ["page", "page_without_js"])
def test_a_customer_changes_topics_then_unsubscribes_from_all_from_the_emailed_link(
    shop: tuple[Omni, SendGridImitation], serve_asgi: Any, request: pytest.FixtureRequest, tab: str
) -> None:
    omni, api = shop
    page = request.getfixturevalue(tab)
    base = serve_asgi(create_app(omni))
    assert send(omni, "weekly", "newsletter").status == "sent"
    link = served(preferences_link(api), base)

    opened = page.goto(link)
    policy = opened.headers["content-security-policy"]  # no script may run in the page, nor post elsewhere
    assert "default-src 'none'" in policy and "form-action 'self'" in policy
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.title() == "Vos préférences de communication"
    if tab == "page":  # axe-core runs in the page's JavaScript
        assert axe_violations(page) == []
    newsletter = page.get_by_role("group", name="Lettre d'information")
    offers = page.get_by_role("group", name="Offres")
    assert newsletter.get_by_label("E-mail").is_checked()  # opt-out topic: sent until the customer says no
    assert not offers.get_by_label("E-mail").is_checked()  # opt-in topic: not sent until they say yes
    assert page.get_by_role("group", name="Suivi de commande").count() == 0  # transactional: not a choice
    newsletter.get_by_label("E-mail").uncheck()
    offers.get_by_label("E-mail").check()
    page.get_by_role("button", name="Enregistrer mes préférences").click()
    page.wait_for_url(re.compile(r"done=saved"))
    assert "Vos préférences sont enregistrées." in page.get_by_role("status").inner_text()
    assert not page.get_by_role("group", name="Lettre d'information").get_by_label("E-mail").is_checked()

    choices = omni.preferences("c-1")
    assert choices.choices["newsletter"] == {"email": False, "sms": True}
    assert choices.choices["offers"] == {"email": True}
    assert choices.history[-1].source == "preference-centre"
    assert "user-agent" in str(choices.history[-1].evidence)
    skipped = send(omni, "weekly", "newsletter")
    assert skipped.status == "skipped"
    assert "topic_opt_out: newsletter on email" in skip_reason(skipped)
    assert send(omni, "offer", "offers").status == "sent"

    page.goto(link)
    page.get_by_role("button", name="Me désabonner de tout le marketing").click()
    page.wait_for_url(re.compile(r"done=all"))
    assert "désabonné de tous les messages marketing" in page.get_by_role("status").inner_text()
    assert not page.get_by_role("group", name="Offres").get_by_label("E-mail").is_checked()
    if tab == "page":
        assert axe_violations(page) == []
    after = send(omni, "offer", "offers")
    assert after.status == "skipped"
    assert "topic_opt_out: offers on email" in skip_reason(after)
    assert send(omni, "shipped", "order-updates", purpose="transactional").status == "sent"  # still reaches them


def test_tampered_and_expired_links_are_refused_without_showing_data(
    shop: tuple[Omni, SendGridImitation], serve_asgi: Any, page: Any, page_without_js: Any
) -> None:
    omni, api = shop
    base = serve_asgi(create_app(omni))
    send(omni, "weekly", "newsletter")
    link = served(preferences_link(api), base)
    body, _, signature = link.rpartition("/")[2].partition(".")
    forged_body = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
    for tab in (page, page_without_js):
        for bad in (f"{base}/preferences/{forged_body}.{signature}", f"{base}/preferences/{body}.{signature[:-1]}x"):
            response = tab.goto(bad)
            assert response.status == 403
            assert "n'est pas valide" in tab.content() or "not valid" in tab.content()
            assert tab.locator("input[type=checkbox]").count() == 0
            assert "ada@example.com" not in tab.content()
    assert axe_violations(page) == []

    omni.clock.advance(days=31)  # type: ignore[attr-defined]  # past preferences.link_expiry
    response = page.goto(link)
    assert response.status == 403
    assert "This link has expired" in page.content()  # the browser asks for English; the customer is not shown
    assert page.locator("input[type=checkbox]").count() == 0
    assert axe_violations(page) == []
    posted = httpx.post(link, data={"newsletter:email": "on"})
    assert posted.status_code == 403
    assert [p.source for p in omni.preferences("c-1").history] == []


def test_rfc8058_one_click_post_leaves_the_messages_topic(
    shop: tuple[Omni, SendGridImitation], serve_asgi: Any
) -> None:
    omni, api = shop
    base = serve_asgi(create_app(omni))
    assert send(omni, "weekly", "newsletter").status == "sent"
    headers = mail_headers(api)
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    target = headers["List-Unsubscribe"].strip("<>")

    answer = httpx.post(served(target, base), content=b"List-Unsubscribe=One-Click",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert answer.status_code == 200
    assert omni.preferences("c-1").choices["newsletter"]["email"] is False
    assert omni.preferences("c-1").history[-1].source == "one-click unsubscribe"
    assert omni.customer("c-1").has_consent("email")  # only that topic: the customer still gets offers they chose
    assert "topic_opt_out" in skip_reason(send(omni, "weekly", "newsletter"))


def test_the_double_opt_in_confirmation_page_grants_consent_on_post_only(
    store_url: str, serve_asgi: Any, page: Any, page_without_js: Any
) -> None:
    with SendGridImitation(api_key="SG.doi") as api:
        config = {"channels": {"email": {"provider": "sendgrid", "api_key": "SG.doi", "from": "hello@acme.example",
                                         "base_url": api.base_url}},
                  "templates": {"links": {"base_url": PUBLIC}},
                  "consent": {"double_opt_in": {"email": True}}}
        omni = Omni(store_url, config=config, clock=VirtualClock())
        try:
            omni.templates.add(Message("confirm-subscription", email=Email(
                subject="Confirm", html='<a href="{{ data.confirm_url }}">Confirm</a>')))
            omni.identify("c-2", email="bo@example.com", locale="de-DE")
            pending = omni.consent("c-2", channel="email", granted=True, source="signup-form")
            assert pending.granted is False
            assert omni.customer("c-2").has_consent("email") is False
            work(omni)
            found = re.search(r'href="([^"]+/confirm/[^"]+)"', mail_html(api))
            assert found
            link = served(found[1], serve_asgi(create_app(omni)))

            page.goto(link)  # a GET (a mail scanner) confirms nothing
            assert axe_violations(page) == []
            page_without_js.goto(link)
            assert page_without_js.locator("html").get_attribute("lang") == "de"
            assert omni.customer("c-2").has_consent("email") is False
            page_without_js.get_by_role("button", name="Ja, abonnieren").click()
            assert "bestätigt" in page_without_js.get_by_role("status").inner_text()
            consent = omni.customer("c-2").consent_for("email")
            assert consent is not None and consent.granted
            assert consent.source == "double-opt-in:signup-form"
            assert "127.0.0.1" in str(consent.evidence) and "user-agent" in str(consent.evidence)
        finally:
            off_loop(omni.close)


def test_a_one_click_post_through_the_app_in_process_needs_no_server(shop: tuple[Omni, SendGridImitation]) -> None:
    """The same one-click target answered by the app object itself (how frameworks mount it)."""
    omni, api = shop
    send(omni, "weekly", "newsletter")
    target = mail_headers(api)["List-Unsubscribe"].strip("<>")

    async def one_click() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(omni), root_path="/omnisdk")
        async with httpx.AsyncClient(transport=transport, base_url="https://shop.example") as client:
            return await client.post(target, content=b"List-Unsubscribe=One-Click")

    assert off_loop(lambda: asyncio.run(one_click())).status_code == 200
    assert omni.preferences("c-1").choices["newsletter"]["email"] is False
