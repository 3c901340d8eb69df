"""Product blocks in messages, on SQLite and PostgreSQL: `products(...)` and `recommendations(...)` read the
catalog (`omni.catalog`) and the stored touchpoints, and print per channel within its limits."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from omnisdk import SMS, Email, Letter, Message, Omni, PosOffer, Push, Social, VirtualClock
from omnisdk.messages import format_price

CATALOG = [
    {"sku": "tee-m", "product_id": "tee", "title": "Organic cotton tee", "price": "25.00", "currency": "USD",
     "url": "https://acme.example/p/tee", "image_url": "https://cdn.acme.example/tee.jpg", "category": "tops",
     "inventory": {"online": 10, "soho": 2}},
    {"sku": "cap-1", "product_id": "cap", "title": "Canvas cap", "price": "18.50", "currency": "USD",
     "url": "https://acme.example/p/cap", "image_url": "https://cdn.acme.example/cap.jpg", "category": "hats",
     "inventory": {"online": 4, "soho": 0}},
    {"sku": "sock-3", "product_id": "socks", "title": "Merino socks, three pairs in a gift box", "price": "1234.5",
     "currency": "EUR", "url": "https://acme.example/p/socks", "category": "basics", "inventory": {"midtown": 1}},
    {"sku": "gone-1", "product_id": "gone", "title": "Sold-out scarf", "price": "40", "currency": "USD",
     "url": "https://acme.example/p/scarf", "category": "hats", "inventory": {"online": 0, "soho": 0}},
]


@pytest.fixture
def shop(store_url: str, clock: VirtualClock) -> Iterator[Omni]:
    config = {"channels": {"email": {"provider": "memory"}, "sms": {"provider": "memory"}}}
    with Omni(store_url, clock=clock, config=config, load_entry_points=False) as omni:
        omni.catalog.upsert_many(CATALOG)
        omni.identify("ada", email="ada@example.com", phone="+14155550100", locale="en-US",
                      traits={"first_name": "Ada", "store_location": "soho"})
        omni.identify("zoe", email="zoe@example.com", locale="fr-FR", traits={"first_name": "Zoé"})
        omni.track("zoe", "Order Completed", {"products": [{"sku": "cap-1"}], "location_id": "midtown"}, channel="pos")
        for cid in ("ada", "zoe"):
            for channel in ("email", "sms"):
                omni.consent(cid, channel=channel, granted=True)
        # what others bought together: the tee with the cap, the tee with the scarf
        omni.track("bo", "Order Completed", {"products": [{"sku": "tee-m"}, {"sku": "cap-1"}]}, channel="web")
        omni.track("cy", "Order Completed", {"products": [{"sku": "tee-m"}, {"sku": "gone-1"}]}, channel="pos")
        omni.track("cy", "Order Completed", {"products": [{"sku": "tee-m"}, {"sku": "sock-3"}]}, channel="web")
        yield omni


def test_prices_follow_the_customers_locale_and_availability_their_nearest_store(shop: Omni) -> None:
    block = Message("b", social=Social(text="{{ products(['tee-m', 'cap-1', 'sock-3', 'nope']) }}"))
    ada = shop.preview(block, "ada", "social").text  # her store_location trait: soho
    assert ada.splitlines() == [
        "- Organic cotton tee: $25.00 (In stock at soho)", f"  {tracked_to(shop, ada, 'tee')}",
        "- Canvas cap: $18.50 (Not at soho; in stock online)", f"  {tracked_to(shop, ada, 'cap')}",
        "- Merino socks, three pairs in a gift box: €1,234.50 (Not at soho; in stock online)",
        f"  {tracked_to(shop, ada, 'socks')}",
    ]  # "nope" is not in the catalog: left out
    zoe = shop.preview(block, "zoe", "social").text  # no trait: where she last bought at the POS, midtown
    assert "1 234,50 €" in zoe.replace("\u202f", " ").replace("\u00a0", " ")
    assert "25,00 $US (Not at midtown; in stock online)" in zoe.replace("\u00a0", " ")
    assert "(In stock at midtown)" in zoe
    assert format_price(12, "JPY", "ja-JP") == "￥12" and format_price(3, "USD", "xx-nonsense") == "$3.00"


def tracked_to(shop: Omni, text: str, product: str) -> str:
    """The tracked link in `text` that redirects to the product's page (and check it does)."""
    for token in text.split():
        if token.startswith(shop.templates.links.settings.base_url + "/c/"):
            url, fields = shop.templates.resolve_click(token.rsplit("/", 1)[1])
            if urlsplit(url).path == f"/p/{product}":
                assert fields["properties"]["journey"] == "preview"
                return token
    raise AssertionError(f"no tracked link to {product} in {text!r}")


def test_every_channel_gets_its_own_block_within_its_limits(shop: Omni) -> None:
    message = Message(
        "all",
        email=Email(subject="For you", html="<h1>Hi</h1>{{ products(['tee-m', 'cap-1']) }}",
                    text="{{ products(['tee-m']) }}"),
        sms=SMS(text="Back: {{ products(['tee-m', 'sock-3'], limit=2, max_chars=60) }}"),
        push=Push(title="{{ products(['cap-1'], limit=1) }}", body="{{ products(['tee-m', 'cap-1']) }}",
                  url="{{ products(['cap-1']).first.url }}"),
        pos=PosOffer(title="Offer", description="{{ products(['tee-m'], limit=1) }}"),
        direct_mail=Letter(html="<p>Dear {{ customer.first_name }}</p>{{ products(['tee-m', 'sock-3']) }}"),
    )
    email = shop.preview(message, "ada", "email")
    assert email.html.count('class="omni-product"') == 2 and 'src="https://cdn.acme.example/tee.jpg"' in email.html
    hrefs = [part.split('"', 1)[0] for part in email.html.split('href="')[1:]]
    assert len(hrefs) == 4 and all(h.startswith(shop.templates.links.settings.base_url + "/c/") for h in hrefs)
    assert "$25.00" in email.html and "In stock at soho" in email.html
    assert email.text.startswith("- Organic cotton tee: $25.00 (In stock at soho)\n  http")
    sms = shop.preview(message, "ada", "sms").text
    assert sms == "Back: Organic cotton tee $25.00 | Merino socks, thr... €1,234.50"  # titles cut to fit
    assert len(sms.removeprefix("Back: ")) <= 60
    assert all(ord(ch) < 128 or ch == "€" for ch in sms)  # GSM-7 friendly
    push = shop.preview(message, "ada", "push")
    assert push.title == "Canvas cap $18.50"
    assert push.body == "Organic cotton tee $25.00 · Canvas cap $18.50"
    assert push.url and push.url.startswith(shop.templates.links.settings.base_url + "/c/")
    assert shop.preview(message, "ada", "pos").description == "Organic cotton tee $25.00"
    letter = shop.preview(message, "ada", "direct_mail").html
    assert "<a " not in letter and "https://acme.example/p/tee" in letter and "€1,234.50" in letter


def test_a_block_over_the_channel_limit_fails_that_delivery_only(shop: Omni) -> None:
    shop.templates.add(Message("long", sms=SMS(text="{{ products(['tee-m', 'cap-1'], links=True) }}")))
    shop.templates.add(Message("short", sms=SMS(text="{{ products(['cap-1'], limit=1) }}")))
    long_one = shop.send("ada", "long", channel="sms")
    short_one = shop.send("ada", "short", channel="sms")
    shop.run_until_idle()
    [failed] = shop.deliveries(customer_id="ada", status="failed")
    assert failed.id == long_one.id and "more than the sms limit of 160" in (failed.error or "")
    [sent] = shop.deliveries(customer_id="ada", status=["sent", "delivered"])
    assert sent.id == short_one.id


def test_a_recommendations_email_leaves_out_what_was_bought_and_what_is_out_of_stock(shop: Omni) -> None:
    shop.templates.add(Message("picks", email=Email(
        subject="Picked for you, {{ customer.first_name }}",
        html="{% set picks = recommendations(3) %}{{ products(picks) }}",
        text="{% for p in products(recommendations(3)) %}{{ p.sku }};{% endfor %}")))
    shop.send("zoe", "picks", channel="email")  # she bought the cap: the tee goes with it
    shop.run_until_idle()
    [mail] = shop.provider("email").sent  # type: ignore[attr-defined]
    skus = mail.content.text.strip(";").split(";")
    assert skus[0] == "tee-m" and "cap-1" not in skus and "gone-1" not in skus  # bought; sold out
    assert set(skus) == {r.item for r in shop.recommend("zoe", k=3)}
    assert mail.content.html.count('class="omni-product"') == len(skus)


def test_links_carry_utm_only_when_tracking_is_off(store_url: str, clock: VirtualClock) -> None:
    config = {"templates": {"links": {"track": False}}}
    with Omni(store_url, clock=clock, config=config, load_entry_points=False) as omni:
        omni.catalog.upsert_many(CATALOG[:1])
        omni.identify("ada", email="ada@example.com")
        text = omni.preview(Message("m", sms=SMS(text="{{ products(['tee-m'], links=True) }}")), "ada", "sms").text
        url = text.split()[-1]
        assert url.startswith("https://acme.example/p/tee?")
        assert parse_qs(urlsplit(url).query)["utm_medium"] == ["sms"]


def test_without_a_shop_the_template_error_says_so(shop: Omni) -> None:
    from omnisdk import TemplateError

    message = Message("m", sms=SMS(text="{{ products(['tee-m']) }}"))
    with pytest.raises(TemplateError, match="need the catalog"):
        shop.templates.render(message, "sms", shop.templates.context(shop.customer("ada")))
    with pytest.raises(TemplateError, match="limit must be 0 to 12"):
        shop.preview(Message("m", sms=SMS(text="{{ products(['tee-m'], limit=99) }}")), "ada", "sms")
