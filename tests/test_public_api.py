"""The public surface: what `omnisdk` exports, where the rest lives, and DESIGN.md §4 run as written.

§4 is the contract examples, benchmarks and acceptance checks are written against, so the scenario
below uses its names and calls exactly as it shows them.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import omnisdk
from omnisdk import errors, providers, testing

#: The top level: what an application needs (docs/architecture.md, "The public surface", says why).
TOP_LEVEL = [
    "AsyncOmni", "BatchValidationError", "Clock", "ConfigError", "Consent", "Customer", "Delivery", "Email", "Events",
    "Identity", "Journey", "JourneyContext", "Letter", "Message", "NotFoundError", "Omni", "OmniError", "PosOffer",
    "Postcard", "Push", "SMS", "Social", "SystemClock", "Touchpoint", "ValidationError", "VirtualClock",
    "__version__", "configure_logging", "hookimpl", "journey", "redact_processor", "secret",
]
#: Everything `omnisdk` exported before the surface shrank: each still imports from `omnisdk`.
FORMERLY_EXPORTED = [
    "Accepted", "AsyncOmni", "BatchItemError", "BatchValidationError", "Broadcast", "BroadcastStatus", "Capabilities",
    "Clock", "ConfigError", "Consent", "Customer", "Delivery", "Email", "Events", "Identity", "InvalidIdentifierError",
    "Journey", "JourneyContext", "JourneyError", "JourneyRun", "Letter", "Limits", "Message", "NonDeterminismError",
    "NotFoundError", "Omni", "OmniError", "Outgoing", "PermanentError", "PluginError", "PosOffer", "Postcard",
    "Provider", "ProviderError", "Push", "QuarantineRepair", "QuarantinedRow", "RetryableError", "SMS", "Social",
    "StoreError", "SystemClock", "TemplateBudgetExceeded", "TemplateError", "Touchpoint", "UnknownChannelError",
    "ValidationError", "VirtualClock", "WebhookError", "WebhookEvent", "WebhookRequest", "WebhookResponse",
    "WebhookResult", "__version__", "configure_logging", "get_logger", "hookimpl", "journey", "redact_processor",
    "secret",
]
#: The names DESIGN.md §4 writes as importable from `omnisdk` (or as `omnisdk.<name>`).
DESIGN_NAMES = [
    "Omni", "AsyncOmni", "journey", "Message", "VirtualClock", "SystemClock", "Email", "SMS", "Push", "Social",
    "Postcard", "Letter", "PosOffer", "WebhookResponse", "Delivery", "hookimpl",
]
#: What a plugin author implements and uses: all of it in `omnisdk.providers`.
PLUGIN_INTERFACE = [
    "Provider", "Capabilities", "Outgoing", "Accepted", "RetryableError", "PermanentError", "WebhookRequest",
    "WebhookResponse", "WebhookResult", "WebhookEvent", "WebhookError", "ProviderError", "secret", "get_logger",
]


def test_the_top_level_is_what_an_application_needs() -> None:
    assert omnisdk.__all__ == TOP_LEVEL
    for name in TOP_LEVEL:
        assert getattr(omnisdk, name) is not None


@pytest.mark.parametrize("name", FORMERLY_EXPORTED)
def test_every_formerly_exported_name_still_imports_from_omnisdk(name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"from omnisdk import {name}", namespace)  # the import statement apps wrote, not only the attribute
    assert namespace[name] is getattr(omnisdk, name)


@pytest.mark.parametrize("name", sorted(omnisdk._ELSEWHERE))
def test_a_moved_name_is_its_namespaces_object_and_public_there(name: str) -> None:
    home = omnisdk._ELSEWHERE[name]
    module = importlib.import_module(f"omnisdk.{home}")
    assert getattr(omnisdk, name) is getattr(module, name)
    if not home.startswith("_"):
        assert name in module.__all__
    assert name not in omnisdk.__all__ and name not in vars(omnisdk)  # served on demand, never cached


def test_unknown_names_are_still_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nonexistent'"):
        omnisdk.Nonexistent  # noqa: B018
    with pytest.raises(ImportError):
        exec("from omnisdk import Nonexistent", {})


def test_type_checkers_see_the_moved_names_too() -> None:
    """The `TYPE_CHECKING` imports in `omnisdk/__init__.py` name exactly what `__getattr__` serves."""
    tree = ast.parse(Path(omnisdk.__file__).read_text(encoding="utf-8"))
    [block] = [node for node in tree.body if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)]
    seen = {alias.asname for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert seen == set(omnisdk._ELSEWHERE)


def test_omnisdk_errors_holds_every_typed_error() -> None:
    def subclasses(cls: type) -> set[type]:
        return {cls} | {s for sub in cls.__subclasses__() for s in subclasses(sub)}

    raised = {cls for cls in subclasses(omnisdk.OmniError) if cls.__module__ == "omnisdk._errors"}
    assert raised <= {getattr(errors, name) for name in errors.__all__}
    assert errors.__all__ == sorted(errors.__all__)
    assert {"OmniError", "ValidationError", "NotFoundError", "ConfigError", "BatchValidationError"} <= set(TOP_LEVEL)


def test_the_plugin_interface_is_complete_in_omnisdk_providers() -> None:
    assert set(PLUGIN_INTERFACE) <= set(providers.__all__)
    assert testing.provider_config.__module__ == "omnisdk.testing._providers"
    assert {"JourneyTester", "provider_config"} <= set(testing.__all__)


def test_provider_config_builds_and_checks_as_the_core_does() -> None:
    from omnisdk.default_plugins.memory import MEMORY_PROVIDERS

    sms = next(cls for cls in MEMORY_PROVIDERS if cls.channel == "sms")
    assert testing.provider_config(sms, {"fail_addresses": ["+14155550100"]}).fail_addresses == ["+14155550100"]
    with pytest.raises(omnisdk.ConfigError) as caught:
        testing.provider_config(sms, {"nope": 1})
    assert caught.value.field == "channels.sms.nope"


@pytest.mark.parametrize("name", DESIGN_NAMES)
def test_every_design_name_imports_from_omnisdk(name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"from omnisdk import {name}", namespace)
    assert namespace[name] is getattr(omnisdk, name)


def test_the_design_contract_runs_as_written(store_url: str) -> None:
    """DESIGN.md §4, top to bottom, on both stores."""
    from omnisdk import AsyncOmni, Message, Omni, VirtualClock, journey

    @journey("s4-cart-abandonment", version="1", trigger="Product Added", exit_on=["Order Completed"],
             reentry="after_exit")
    async def cart_abandonment(ctx: omnisdk.JourneyContext) -> None:
        if await ctx.wait_for("bought-1h", "Order Completed", timeout=timedelta(hours=1)):
            return
        await ctx.send("nudge", "cart-reminder", channels=["push", "email"])  # first reachable + consented
        if await ctx.wait_for("bought-1d", "Order Completed", timeout=timedelta(days=1)):
            return
        await ctx.send("coupon", "cart-coupon", channel="sms")

    config = {
        "channels": {kind: {"provider": "memory"} for kind in ("sms", "email", "push")},
        "policies": {"quiet_hours": {"start": "21:00", "end": "08:00"}, "frequency_cap": {"marketing": "3/7d"}},
    }
    with Omni(store=store_url, config=config, clock=VirtualClock(start=datetime(2026, 3, 2, 15, tzinfo=UTC))) as omni:
        omni.track({"anonymous_id": "web-7f3a"}, "Product Viewed", {"product_id": "sku-1"}, channel="web")
        omni.identify("c-42", anonymous_id="web-7f3a", email="ada@example.com", phone="+14155550100",
                      traits={"first_name": "Ada"}, timezone="America/New_York", locale="en-US")
        omni.consent("c-42", channel="sms", granted=True, purpose="marketing", source="checkout-form")
        omni.consent("c-42", channel="email", granted=True, purpose="marketing", source="checkout-form")
        omni.register(cart_abandonment)
        omni.templates.add(Message(
            "cart-reminder",
            email=omnisdk.Email(subject="{{ customer.first_name }}, your cart is waiting", html="<p>Back?</p>",
                                text="Back?"),
            sms=omnisdk.SMS(text="Your cart is waiting"), push=omnisdk.Push(title="Cart", body="Waiting", url="/c"),
            social=omnisdk.Social(text="Your cart"),
            direct_mail=omnisdk.Postcard(front_html="<p>Hi</p>", back_html="<p>Cart</p>"),
        ))
        omni.templates.add(Message("cart-coupon", sms=omnisdk.SMS(text="10% off: CART10")))
        omni.templates.add(Message("order-confirmation", email=omnisdk.Email(subject="Order {{ data.order_id }}",
                                                                             text="Thanks")))
        omni.track("c-42", "Product Added", {"product_id": "sku-1", "price": 20.0, "cart_id": "k1"}, channel="web")
        assert omni.track_many([("c-42", "Product Viewed", {"product_id": "sku-2"}),
                                {"who": "c-42", "event": "Product Viewed", "properties": {"product_id": "sku-3"},
                                 "channel": "web", "timestamp": omni.clock.now()}]) == 2

        omni.run_until_idle()
        omni.clock.advance(hours=1)
        omni.run_until_idle()
        [nudge] = omni.deliveries(customer_id="c-42")
        assert (nudge.channel, nudge.status, nudge.provider, nudge.attempts) == ("email", "sent", "memory", 1)
        assert nudge.provider_message_id and [d.action for d in nudge.decisions][-1] == "sent"

        omni.clock.advance(timedelta(days=1))
        omni.run_until_idle()
        assert [(d.template, d.channel, d.status) for d in omni.deliveries(customer_id="c-42")] == [
            ("cart-reminder", "email", "sent"), ("cart-coupon", "sms", "sent")]

        matched = omni.track({"phone": "+1 415-555-0100", "square_customer_id": "SQ9"}, "Order Completed",
                             {"order_id": "o-1", "revenue": 20.0}, channel="pos")
        assert matched.customer_id == "c-42"
        confirmation = omni.send("c-42", "order-confirmation", channel="email", data={"order_id": "o-1"},
                                 purpose="transactional")
        assert isinstance(confirmation, omnisdk.Delivery)
        omni.run_until_idle()
        assert omni.deliveries(customer_id="c-42")[-1].status == "sent"

        customer = omni.customer("c-42")
        assert isinstance(customer, omnisdk.Customer) and customer.has_consent("sms")
        assert {t.channel for t in omni.timeline("c-42")} >= {"web", "email", "sms", "pos"}
        answer = omni.handle_webhook("twilio", "POST", "https://shop.example/webhooks/twilio", {}, b"")
        assert isinstance(answer, omnisdk.WebhookResponse)
        assert (answer.status, isinstance(answer.headers, dict), isinstance(answer.body, bytes)) == (404, True, True)
        stop = threading.Event()
        stop.set()
        assert omni.run_worker(stop) >= 0
        assert omni.export("c-42")["customer_id"] == "c-42"  # "omni.forget("c-42"); omni.export("c-42")"
        assert omni.forget("c-42").status == "done"
        assert omni.forget_requests()[0].requested_by == "app"

    for method in ("track", "identify", "consent", "track_many", "send", "run_until_idle", "customer", "timeline",
                   "deliveries", "handle_webhook"):
        assert inspect.iscoroutinefunction(getattr(AsyncOmni, method)), method
    with Omni("sqlite://:memory:") as in_memory:
        assert in_memory.store.dialect.name == "sqlite"


def test_the_documented_delivery_statuses_and_hooks() -> None:
    from omnisdk import hookspecs
    from omnisdk.delivery import DELIVERY_STATUSES

    assert DELIVERY_STATUSES == ("queued", "deferred", "sending", "sent", "delivered", "failed", "skipped",
                                 "cancelled")
    assert {"register_providers", "register_template_filters", "register_policies", "touchpoint_recorded",
            "delivery_updated"} <= set(vars(hookspecs))
