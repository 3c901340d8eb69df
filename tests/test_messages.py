"""Rendering messages: sandboxed Jinja2 with StrictUndefined, brand kit, locales, tracked links, templates folder."""

from __future__ import annotations

from pathlib import Path

import pytest

import omnisdk
from omnisdk import SMS, Email, Message, Omni, Push, TemplateError, WebhookError
from omnisdk.messages import RenderContext, Templates, render


@pytest.fixture
def shop(tmp_path: Path) -> Omni:
    config = {
        "brand": {"name": "Acme", "url": "https://acme.example",
                  "partials": {"signoff": "The {{ brand.name }} team", "footer.html": "<p>{{ brand.name }}</p>"}},
        "webhooks": {"public_url": "https://hooks.acme.example/omnisdk"},
    }
    omni = Omni(f"sqlite:///{tmp_path}/shop.db", config=config, load_entry_points=False)
    omni.identify("c-ada", email="ada@example.com", phone="+14155550100", traits={"first_name": "Ada"},
                  locale="fr-CA", timezone="America/New_York")
    yield omni
    omni.close()


def context(omni: Omni, **fields: object) -> RenderContext:
    return omni.templates.context(omni.customer("c-ada"), history=omni.timeline("c-ada"), **fields)


def test_every_channel_speaks_with_the_profile_trigger_history_data_and_brand(shop: Omni) -> None:
    trigger = shop.track("c-ada", "Product Added", {"product_id": "sku-1", "name": "Blue Mug", "price": 20.0},
                         channel="web")
    shop.track("c-ada", "Order Completed", {"order_id": "o-9", "store": "Main St"}, channel="pos")
    message = Message(
        "cart-reminder",
        email=Email(subject="{{ customer.first_name }}, your {{ event.name }} is waiting",
                    text="Hi {{ customer.first_name }}, {{ data.coupon }} off. Last store visit: "
                         "{{ latest['Order Completed'].properties.store }}.\n{% include 'signoff' %}"),
        sms=SMS(text="{{ brand.name }}: {{ trigger.properties.name }} for {{ '%.2f'|format(event.price) }}"),
        push=Push(title="{{ customer.first_name }}", body="{{ history|length }} things happened"),
    )
    shop.templates.add(message)
    ctx = context(shop, trigger=trigger, data={"coupon": "10%"})
    email = render(message, "email", ctx)
    assert email.subject == "Ada, your Blue Mug is waiting"
    assert email.text == "Hi Ada, 10% off. Last store visit: Main St.\nThe Acme team"
    assert render(message, "sms", ctx).text == "Acme: Blue Mug for 20.00"
    assert render(message, "push", ctx).body == "2 things happened"
    assert shop.templates.render("cart-reminder", "push", ctx).title == "Ada"


def test_an_undefined_variable_is_an_error_naming_template_channel_field_and_variable(shop: Omni) -> None:
    message = Message("welcome", sms=SMS(text="Hi {{ customer.nickname }}"),
                      email=Email(subject="{{ coupon_code }}"))
    shop.templates.add(message)
    with pytest.raises(TemplateError) as sms_error:
        render(message, "sms", context(shop))
    assert str(sms_error.value).startswith("template 'welcome', sms.text: undefined variable:")
    assert "nickname" in str(sms_error.value)
    with pytest.raises(TemplateError, match=r"template 'welcome', email.subject: undefined variable: 'coupon_code'"):
        render(message, "email", context(shop))
    with pytest.raises(TemplateError, match=r"template 'welcome' has no push rendition \(it has: email, sms\)"):
        render(message, "push", context(shop))


def test_syntax_errors_show_when_the_template_is_added(shop: Omni) -> None:
    broken = Message("broken", email=Email(subject="ok", html="<p>\n{% if customer.first_name %}</p>"))
    with pytest.raises(TemplateError, match=r"template 'broken', email.html: syntax error on line 2"):
        shop.templates.add(broken)
    assert "broken" not in shop.templates
    with pytest.raises(omnisdk.NotFoundError, match="unknown template 'broken'"):
        shop.templates.get("broken")


@pytest.mark.parametrize("source", [
    "{{ customer.__class__.__mro__ }}",
    "{{ ''.__class__.__subclasses__() }}",
    "{{ data.tags.append('x') }}",
    "{{ customer.traits.clear() }}",
    "{{ customer.identifiers.__func__ }}",
    "{{ customer._private }}",
    "{{ customer.__dict__ }}",
])
def test_templates_run_in_an_immutable_sandbox(shop: Omni, source: str) -> None:
    message = shop.templates.add(Message("sneaky", sms=SMS(text=source)))
    with pytest.raises(TemplateError, match=r"template 'sneaky', sms\.text"):
        render(message, "sms", context(shop, data={"tags": []}))
    assert shop.customer("c-ada").traits == {"first_name": "Ada"}


def test_jinjas_globals_are_there_and_range_keeps_the_budgets_limit(shop: Omni) -> None:
    message = shop.templates.add(Message("globals", sms=SMS(
        text="{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}"
             "{{ ns.n }} {{ dict(a=1)['a'] }} {% set c = cycler('x', 'y') %}{{ c.next() }}{{ c.next() }}")))
    assert render(message, "sms", context(shop)).text == "3 1 xy"
    huge = shop.templates.add(Message("huge", sms=SMS(text="{{ range(10 ** 9) | length }}")))
    with pytest.raises(TemplateError, match=r"templates\.budget\.max_range"):
        render(huge, "sms", context(shop))


def test_a_template_reads_the_profiles_fields_properties_methods_and_traits(shop: Omni) -> None:
    message = shop.templates.add(Message("profile", sms=SMS(
        text="{{ customer.id }} {{ customer.first_name }} {{ customer.email }} {{ customer.traits.first_name }} "
             "{{ customer.identifier('phone') }} {{ customer.locale }}")))
    assert render(message, "sms", context(shop)).text == "c-ada Ada ada@example.com Ada +14155550100 fr-CA"


def test_html_is_escaped_and_text_is_not(shop: Omni) -> None:
    shop.identify("c-ada", traits={"first_name": "<b>Ada</b> & co"})
    message = shop.templates.add(Message(
        "hello", email=Email(subject="Hi {{ customer.first_name }}", html="<h1>Hi {{ customer.first_name }}</h1>"
                             "{% include 'footer.html' %}")))
    email = render(message, "email", context(shop))
    assert email.subject == "Hi <b>Ada</b> & co"
    assert email.html == "<h1>Hi &lt;b&gt;Ada&lt;/b&gt; &amp; co</h1><p>Acme</p>"


def test_locale_falls_back_from_region_to_language_to_default(shop: Omni) -> None:
    message = shop.templates.add(Message(
        "promo",
        email=Email(subject="Hello {{ customer.first_name }}"), sms=SMS(text="Sale!"),
        locales={"fr": Message("promo", email=Email(subject="Bonjour {{ customer.first_name }}")),
                 "fr-FR": Message("promo", sms=SMS(text="Soldes en France"))},
    ))
    ctx = context(shop)  # the customer is fr-CA
    assert render(message, "email", ctx).subject == "Bonjour Ada"
    assert render(message, "sms", ctx).text == "Sale!"  # no fr sms: the default rendition
    assert render(message, "sms", context(shop, locale="fr-FR")).text == "Soldes en France"
    assert render(message, "email", context(shop, locale="de-DE")).subject == "Hello Ada"


def test_a_tracked_link_records_the_click_with_channel_and_journey(shop: Omni) -> None:
    text = "Back to your cart: {{ link('https://acme.example/cart?id=k1') }}"
    message = shop.templates.add(Message("nudge", sms=SMS(text=text)))
    sms = render(message, "sms", context(shop, delivery_id="dlv_1", journey="cart-abandonment", step="nudge"))
    link = sms.text.rsplit(" ", 1)[-1]
    assert link.startswith("https://hooks.acme.example/omnisdk/c/")
    token = link.rsplit("/", 1)[-1]
    url, fields = shop.templates.resolve_click(token)
    assert url == ("https://acme.example/cart?id=k1&utm_source=omnisdk&utm_medium=sms"
                   "&utm_campaign=cart-abandonment&utm_content=nudge")
    assert fields == {
        "customer_id": "c-ada", "event": "Link Clicked", "channel": "sms",
        "properties": {"template": "nudge", "delivery_id": "dlv_1", "journey": "cart-abandonment", "step": "nudge",
                       "url": url},
    }
    assert shop.templates.record_click(token) == url
    clicked = [tp for tp in shop.timeline("c-ada") if tp.name == "Link Clicked"]
    assert [(tp.channel, tp.properties["journey"], tp.properties["delivery_id"]) for tp in clicked] == [
        ("sms", "cart-abandonment", "dlv_1")]


def test_forged_or_tampered_tokens_are_rejected_and_nothing_is_recorded(shop: Omni) -> None:
    message = shop.templates.add(Message("nudge", sms=SMS(text="{{ link('https://acme.example/') }}")))
    token = render(message, "sms", context(shop)).text.rsplit("/", 1)[-1]
    body, signature = token.split(".")

    def flip(char: str) -> str:  # a different character whose 6 bits all differ in base64url
        return "_" if char == "A" else "A"

    # The last base64 character carries padding bits, so the one before it is changed: the token is
    # random, and "AA" in place of its end would sometimes decode to the same signature.
    tampered = [f"{body}.{signature[:-2]}{flip(signature[-2])}{signature[-1]}",
                f"{body[:-2]}{flip(body[-2])}{body[-1]}.{signature}"]
    for bad in ("", "garbage", *tampered):
        with pytest.raises(WebhookError) as error:
            shop.templates.record_click(bad)
        assert error.value.status == 400
    other = Templates.from_config(omnisdk._config.load_config({"webhooks": {"signing_key": "another-key-0123456789"}}))
    with pytest.raises(WebhookError, match="signature"):
        other.resolve_click(token)
    with pytest.raises(WebhookError, match="not a unsubscribe token"):
        shop.templates.resolve_unsubscribe(token)
    assert not [tp for tp in shop.timeline("c-ada") if tp.name == "Link Clicked"]


def test_workers_on_one_store_share_the_generated_signing_key(store_url: str) -> None:
    with Omni(store_url, load_entry_points=False) as first, Omni(store_url, load_entry_points=False) as second:
        first.identify("c1", email="c1@example.com")
        url = first.templates.unsubscribe_url("c1", "email", delivery_id="dlv_9")
        unsubscribe = second.templates.resolve_unsubscribe(url.rsplit("/", 1)[-1])
        assert (unsubscribe.customer_id, unsubscribe.channel, unsubscribe.purpose) == ("c1", "email", "marketing")
        assert unsubscribe.properties == {"delivery_id": "dlv_9"}


def test_email_hrefs_and_push_urls_are_tracked_automatically(shop: Omni) -> None:
    message = shop.templates.add(Message(
        "news",
        email=Email(subject="News", html='<a href="https://acme.example/a?x=1&amp;y=2">A</a> '
                    '<a href="mailto:help@acme.example">help</a> <a href="{{ unsubscribe_url }}">unsubscribe</a>'),
        push=Push(title="News", body="Read", url="https://acme.example/news"),
    ))
    html = render(message, "email", context(shop, delivery_id="dlv_2")).html
    assert html.count("https://hooks.acme.example/omnisdk/c/") == 1
    assert 'href="mailto:help@acme.example"' in html
    assert html.count("https://hooks.acme.example/omnisdk/u/") == 1
    token = html.split("/c/", 1)[1].split('"', 1)[0]
    url, _ = shop.templates.resolve_click(token)
    assert url.startswith("https://acme.example/a?x=1&y=2&utm_source=omnisdk&utm_medium=email")
    push = render(message, "push", context(shop))
    assert push.url is not None and push.url.startswith("https://hooks.acme.example/omnisdk/c/")


def test_a_templates_folder_in_yaml_and_toml(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "cart-reminder.yaml").write_text(
        "email:\n  subject: '{{ customer.first_name }}, your cart'\n  html_file: cart.html\n  from: shop@acme.example\n"
        "sms:\n  text: 'Cart: {{ link(\"https://acme.example/cart\") }}'\n"
        "locales:\n  fr:\n    email:\n      subject: '{{ customer.first_name }}, votre panier'\n"
        "data:\n  coupon: SAVE10\n"
    )
    (folder / "cart.html").write_text("<p>{{ data.coupon }}</p>")
    (folder / "postcard.toml").write_text(
        'id = "winback-card"\n[direct_mail]\nfront_html = "<h1>{{ brand.name }}</h1>"\nback_html = "Come back"\n'
    )
    (folder / "notes.txt").write_text("not a template")
    with Omni("sqlite://:memory:", config={"templates": {"folder": str(folder)}, "brand": {"name": "Acme"}},
              load_entry_points=False) as omni:
        assert omni.templates.ids() == ["cart-reminder", "winback-card"]
        omni.identify("c1", traits={"first_name": "Ada"}, locale="fr")
        ctx = omni.templates.context(omni.customer("c1"))
        email = omni.templates.render("cart-reminder", "email", ctx)
        assert (email.subject, email.html, email.from_) == ("Ada, votre panier", "<p>SAVE10</p>", "shop@acme.example")
        card = omni.templates.render("winback-card", "direct_mail", ctx)
        assert type(card).__name__ == "Postcard" and card.front_html == "<h1>Acme</h1>"


@pytest.mark.parametrize(("content", "message"), [
    ("email:\n  subjct: hi\n", r"bad.yaml: email: unknown field 'subjct'"),
    ("emial:\n  subject: hi\n", r"bad.yaml: unknown key 'emial'"),
    ("sms:\n  text: '{{ oops'\n", r"template 'bad', sms.text: syntax error on line 1"),
    ("email: [1, 2]\n", r"bad.yaml: email: expected a table of fields"),
    ("email:\n  subject: x\n  html_file: missing.html\n", r"bad.yaml: email: html_file: cannot read"),
])
def test_a_bad_template_file_names_the_file_and_the_key(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "bad.yaml").write_text(content)
    with pytest.raises(TemplateError, match=message):
        Omni("sqlite://:memory:", config={"templates": {"folder": str(tmp_path)}}, load_entry_points=False)


class MoneyFilters:
    @omnisdk.hookimpl
    def register_template_filters(self, register: object) -> None:
        register("money", lambda value, currency="USD": f"{currency} {value:,.2f}")  # type: ignore[operator]
        register("not a name", print)  # type: ignore[operator]


def test_plugin_filters_are_available_and_a_bad_registration_is_reported() -> None:
    with Omni("sqlite://:memory:", plugins=[MoneyFilters()], load_entry_points=False) as omni:
        omni.identify("c1", traits={"first_name": "Ada"})
        message = omni.templates.add(Message("receipt", sms=SMS(text="Total {{ data.total|money('EUR') }}")))
        ctx = omni.templates.context(omni.customer("c1"), data={"total": 1234.5})
        assert render(message, "sms", ctx).text == "Total EUR 1,234.50"
        assert any("register_template_filters" in str(e) for e in omni.plugin_errors)


def test_a_failing_filter_fails_the_delivery_not_the_process() -> None:
    class Exploding:
        @omnisdk.hookimpl
        def register_template_filters(self, register: object) -> None:
            register("explode", lambda value: 1 / 0)  # type: ignore[operator]

    with Omni("sqlite://:memory:", plugins=[Exploding()], load_entry_points=False) as omni:
        omni.identify("c1")
        message = omni.templates.add(Message("m", sms=SMS(text="{{ 1|explode }}")))
        with pytest.raises(TemplateError, match=r"template 'm', sms.text: ZeroDivisionError"):
            render(message, "sms", omni.templates.context(omni.customer("c1")))


@pytest.mark.parametrize(("config", "field"), [
    ({"webhooks": {"signing_key": "short"}}, "webhooks.signing_key"),
    ({"templates": {"links": {"base_url": "ftp://x"}}}, "templates.links.base_url"),
    ({"templates": {"links": {"utm": {"utm_campaign": "{campaing}"}}}}, "templates.links.utm.utm_campaign"),
    ({"templates": {"folder": "/no/such/folder"}}, "templates.folder"),
    ({"brand": {"partials": {"footer": 3}}}, "brand.partials"),
])
def test_bad_message_config_names_the_key(config: dict[str, object], field: str) -> None:
    with pytest.raises(omnisdk.ConfigError) as error:
        Omni("sqlite://:memory:", config=config, load_entry_points=False)
    assert error.value.field == field


def test_links_without_tracking_get_utm_only_and_keep_their_own_parameters() -> None:
    config = {"templates": {"links": {"track": False, "utm": {"utm_source": "acme", "utm_medium": "{channel}"}}}}
    with Omni("sqlite://:memory:", config=config, load_entry_points=False) as omni:
        omni.identify("c1")
        message = omni.templates.add(Message("m", sms=SMS(
            text="{{ link('https://acme.example/p?utm_source=partner', utm_content='hero') }} {{ unsubscribe_url }}")))
        text = render(message, "sms", omni.templates.context(omni.customer("c1"))).text
    link, unsubscribe = text.split(" ")
    assert link == "https://acme.example/p?utm_source=partner&utm_medium=sms&utm_content=hero"
    assert unsubscribe.startswith("http://localhost:8000/omnisdk/u/")


def test_a_render_gives_a_template_what_it_reads_and_a_partial_everything(shop: Omni) -> None:
    """Only the variables a template names are built for it; a partial may read any, so it gets them all."""
    from omnisdk.messages._render import source_reads

    assert source_reads("Hi {{ customer.first_name }} {% for t in history %}{{ t.name }}{% endfor %}") == {
        "customer", "history"}
    assert source_reads("{% include 'signoff' %}") is None
    assert source_reads("{{ customer.first_name | shout }}") is None  # a plugin's filter may be handed the context
    assert source_reads("{{ customer.first_name | upper }} {{ data.code }}") == {"customer", "data"}
    message = shop.templates.add(Message("reads", sms=SMS(
        text="{{ delivery.template }} {{ data.code }} {{ brand.name }} {{ channel }} {% include 'signoff' %}"),
        email=Email(subject="{{ brand.name }}: {{ data.code }}", text="{{ event | length }} {{ latest | length }}")))
    ctx = context(shop, data={"code": "SAVE5"})
    assert render(message, "sms", ctx).text == "reads SAVE5 Acme sms The Acme team"
    assert render(message, "email", ctx).subject == "Acme: SAVE5"
    assert render(message, "email", ctx).text == "0 0"
