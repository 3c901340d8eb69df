"""Acme Outfitters' web app (Starlette) with omnisdk embedded.

    uvicorn acme_shop.app:create_app --factory

What the shop tells omnisdk, and when:
  * browsing (product pages, cart, checkout) is tracked for whoever is there: the signed-in
    customer's id, or else the browser's anonymous visitor id;
  * signing up or in `identify`s the customer with that visitor id, which stitches the anonymous
    history (and a cart-abandonment journey already running for it) into their profile;
  * the signup form's checkboxes are the consent ledger's entries; /account/consent changes them;
  * orders are "Order Completed" on `web`; the stores' tills post theirs to /pos/sales, on `pos`;
  * omnisdk's own ASGI app under /omnisdk answers provider webhooks, tracked-link clicks and
    one-click unsubscribes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

import omnisdk
import omnisdk.asgi
from omnisdk import Events

from .catalog import PRODUCTS, Product, catalog_rows
from .cookies import CookieSigner
from .marketing import create_omni
from .records import Cart, Order, Records

__all__ = ["create_app", "lifespan"]

VISITOR_COOKIE = "acme_visitor"
SESSION_COOKIE = "acme_session"
YEAR = 365 * 24 * 3600


@attrs.define
class Shop:
    """Everything the endpoints share, kept on `app.state.shop`."""

    omni: omnisdk.AsyncOmni
    records: Records
    cookies: CookieSigner
    staff_token: str | None
    run_worker: bool
    worker: asyncio.Task[int] | None = None


def create_app(
    *,
    config: dict[str, Any] | None = None,
    store: str | None = None,
    clock: omnisdk.SystemClock | omnisdk.VirtualClock | None = None,
    worker: bool | None = None,
    secret_key: bytes | None = None,
    staff_token: str | None = None,
) -> Starlette:
    """The shop. Every argument defaults from the environment (see the README); tests pass a
    VirtualClock, a temporary store and `worker=False` to drive time themselves."""
    omni = create_omni(config=config, store=store, clock=clock)
    key = secret_key or os.environ.get("SHOP_SECRET_KEY", "").encode() or secrets.token_bytes(32)
    shop = Shop(
        omni=omni,
        records=Records(),
        cookies=CookieSigner(key),
        staff_token=staff_token or os.environ.get("SHOP_STAFF_TOKEN"),
        run_worker=worker if worker is not None else os.environ.get("SHOP_WORKER", "on") != "off",
    )
    app = Starlette(
        routes=[
            Route("/products", list_products),
            Route("/products/{product_id}", view_product),
            Route("/cart", view_cart),
            Route("/cart/items", add_to_cart, methods=["POST"]),
            Route("/checkout", checkout, methods=["POST"]),
            Route("/orders", place_order, methods=["POST"]),
            Route("/orders/{order_id}/ready", order_ready, methods=["POST"]),
            Route("/signup", signup, methods=["POST"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/account", account),
            Route("/account/consent", update_consent, methods=["POST"]),
            Route("/pos/sales", pos_sale, methods=["POST"]),
            Mount("/omnisdk", app=omnisdk.asgi.create_app(omni)),
        ],
        exception_handlers={HTTPException: _http_error, omnisdk.ValidationError: _invalid},  # type: ignore[dict-item]
        lifespan=lifespan,
    )
    app.state.shop = shop
    return app


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Run omnisdk's worker beside the app (unless SHOP_WORKER=off); on shutdown stop it, then close omnisdk.

    The worker sends what journeys queue and resumes journeys when their wait is over. In the app's
    process it shares the event loop with the requests, which suits one web process on SQLite; with
    several web processes, run `python -m acme_shop.worker` instead (see the README)."""
    shop: Shop = app.state.shop
    stop = asyncio.Event()
    # what we sell, for the product blocks in our messages (a real shop imports its database, or lets its
    # Shopify/Square webhooks keep it current)
    await shop.omni.catalog.upsert_many(catalog_rows(str(shop.omni.config.brand.get("url", ""))))
    if shop.run_worker:
        shop.worker = asyncio.create_task(shop.omni.run_worker(stop))
    try:
        yield
    finally:
        stop.set()
        if shop.worker is not None:
            await shop.worker
        await shop.omni.aclose()


# -- who is there


def _shop(request: Request) -> Shop:
    shop: Shop = request.app.state.shop
    return shop


def _visitor_id(request: Request) -> str:
    """The browser's anonymous id, from its cookie or new (the reply sets the cookie)."""
    new: str | None = getattr(request.state, "new_visitor", None)
    known = new or _shop(request).cookies.unsign(request.cookies.get(VISITOR_COOKIE))
    if known is None:
        known = request.state.new_visitor = f"web-{uuid.uuid4().hex[:16]}"
    return known


def _customer_id(request: Request) -> str | None:
    return _shop(request).cookies.unsign(request.cookies.get(SESSION_COOKIE))


def _who(request: Request) -> str | dict[str, str]:
    """Whom to track: the signed-in customer, else the anonymous visitor."""
    return _customer_id(request) or {"anonymous_id": _visitor_id(request)}


def _reply(request: Request, body: Any, status: int = 200, *, session: str | None = None) -> JSONResponse:
    response = JSONResponse(body, status)
    shop = _shop(request)
    new_visitor = getattr(request.state, "new_visitor", None)
    if new_visitor:
        response.set_cookie(VISITOR_COOKIE, shop.cookies.sign(new_visitor), max_age=YEAR, httponly=True,
                            samesite="lax")
    if session:
        response.set_cookie(SESSION_COOKIE, shop.cookies.sign(session), httponly=True, samesite="lax")
    return response


def _signed_in(request: Request) -> str:
    customer_id = _customer_id(request)
    if customer_id is None:
        raise HTTPException(401, "sign in first")
    return customer_id


def _staff(request: Request) -> None:
    """Tills and store staff authenticate with `Authorization: Bearer $SHOP_STAFF_TOKEN`."""
    token = _shop(request).staff_token
    if not token:
        raise HTTPException(403, "staff endpoints are off: set SHOP_STAFF_TOKEN")
    given = request.headers.get("authorization", "").removeprefix("Bearer ")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "wrong staff token")


# -- request bodies


async def _body(request: Request) -> Mapping[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "expected a JSON body") from None
    if not isinstance(body, Mapping):
        raise HTTPException(400, "expected a JSON object")
    return body


def _optional(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise HTTPException(422, f"{key}: expected a string")
    return value.strip()


def _required(body: Mapping[str, Any], key: str) -> str:
    value = _optional(body, key)
    if value is None:
        raise HTTPException(422, f"{key}: required")
    return value


def _product(product_id: Any) -> Product:
    product = PRODUCTS.get(product_id) if isinstance(product_id, str) else None
    if product is None:
        raise HTTPException(404, f"no product {product_id!r}")
    return product


def _cart_json(cart: Cart) -> dict[str, Any]:
    lines = _lines(cart)
    return {"cart_id": cart.id, "products": [product.properties(quantity=qty) for product, qty in lines],
            "value": round(sum(product.price * qty for product, qty in lines), 2), "currency": "USD"}


def _lines(cart: Cart) -> list[tuple[Product, int]]:
    return [(PRODUCTS[pid], qty) for pid, qty in cart.items.items()]


def _order_json(order: Order) -> dict[str, Any]:
    """The order as "Order Completed" properties (Segment's ecommerce spec), also the API's answer."""
    return {"order_id": order.id, "revenue": order.revenue, "currency": "USD",
            "products": [product.properties(quantity=qty) for product, qty in order.lines],
            "fulfillment": order.fulfillment, "store": order.store}


# -- browsing


async def list_products(request: Request) -> Response:
    return _reply(request, [attrs.asdict(p) for p in PRODUCTS.values()])


async def view_product(request: Request) -> Response:
    product = _product(request.path_params["product_id"])
    await _shop(request).omni.track(_who(request), Events.PRODUCT_VIEWED, product.properties(), channel="web")
    return _reply(request, attrs.asdict(product))


async def view_cart(request: Request) -> Response:
    cart = _shop(request).records.cart(_visitor_id(request))
    return _reply(request, _cart_json(cart))


async def add_to_cart(request: Request) -> Response:
    body = await _body(request)
    product = _product(body.get("product_id"))
    quantity = body.get("quantity", 1)
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= 99:
        raise HTTPException(422, "quantity: expected a whole number from 1 to 99")
    shop = _shop(request)
    cart = shop.records.cart(_visitor_id(request))
    cart.items[product.id] = cart.items.get(product.id, 0) + quantity
    await shop.omni.track(_who(request), Events.PRODUCT_ADDED, product.properties(cart_id=cart.id, quantity=quantity),
                          channel="web")
    return _reply(request, _cart_json(cart), 201)


async def checkout(request: Request) -> Response:
    shop = _shop(request)
    cart = shop.records.cart(_visitor_id(request))
    if not cart.items:
        raise HTTPException(409, "the cart is empty")
    await shop.omni.track(_who(request), Events.CHECKOUT_STARTED, _cart_json(cart), channel="web")
    return _reply(request, _cart_json(cart))


async def place_order(request: Request) -> Response:
    customer_id = _signed_in(request)
    body = await _body(request)
    fulfillment = _optional(body, "fulfillment") or "ship"
    if fulfillment not in ("ship", "pickup"):
        raise HTTPException(422, "fulfillment: expected 'ship' or 'pickup'")
    store = _required(body, "store") if fulfillment == "pickup" else None
    shop = _shop(request)
    visitor = _visitor_id(request)
    cart = shop.records.cart(visitor)
    if not cart.items:
        raise HTTPException(409, "the cart is empty")
    order = shop.records.place_order(customer_id, _lines(cart), fulfillment, store)
    del shop.records.carts[visitor]
    properties = {**_order_json(order), "cart_id": cart.id}
    # `id` makes the touchpoint idempotent: a retried request records the order once.
    await shop.omni.track(customer_id, Events.ORDER_COMPLETED, properties, channel="web", id=f"order:{order.id}")
    return _reply(request, _order_json(order), 201)


# -- accounts: where anonymous visitors become customers


async def signup(request: Request) -> Response:
    body = await _body(request)
    email, password, first_name = _required(body, "email"), _required(body, "password"), _required(body, "first_name")
    phone, timezone = _optional(body, "phone"), _optional(body, "timezone")
    shop = _shop(request)
    if shop.records.account(email) is not None:
        raise HTTPException(409, "an account with this email exists: sign in instead")
    customer_id = shop.records.new_customer_id()
    # Validates the email and phone (a ValidationError answers 422) and stitches this browser's history.
    await shop.omni.identify(customer_id, anonymous_id=_visitor_id(request), email=email, phone=phone,
                             traits={"first_name": first_name}, timezone=timezone)
    if not shop.records.add_account(customer_id, email, password):
        raise HTTPException(409, "an account with this email exists: sign in instead")
    # The form's unticked boxes are recorded too: "asked, and said no" is worth knowing.
    await shop.omni.consent(customer_id, channel="email", granted=body.get("email_marketing") is True,
                            source="signup-form")
    if phone:
        await shop.omni.consent(customer_id, channel="sms", granted=body.get("sms_marketing") is True,
                                source="signup-form")
    await shop.omni.track(customer_id, Events.SIGNED_UP, {"method": "email"}, channel="web")
    return _reply(request, {"customer_id": customer_id}, 201, session=customer_id)


async def login(request: Request) -> Response:
    body = await _body(request)
    shop = _shop(request)
    account = shop.records.authenticate(_required(body, "email"), _required(body, "password"))
    if account is None:
        raise HTTPException(401, "wrong email or password")
    await shop.omni.identify(account.customer_id, anonymous_id=_visitor_id(request))
    await shop.omni.track(account.customer_id, "Signed In", channel="web")
    return _reply(request, {"customer_id": account.customer_id}, session=account.customer_id)


async def logout(request: Request) -> Response:
    """Forget the customer, and start a new visitor id: what this browser does next is no longer theirs."""
    request.state.new_visitor = f"web-{uuid.uuid4().hex[:16]}"
    response = _reply(request, {"signed_out": True})
    response.delete_cookie(SESSION_COOKIE)
    return response


async def account(request: Request) -> Response:
    customer = await _shop(request).omni.customer(_signed_in(request))
    consents = {channel: customer.has_consent(channel) for channel in ("email", "sms")}
    return _reply(request, {"customer_id": customer.id, "email": customer.email, "phone": customer.phone,
                            "first_name": customer.first_name, "marketing": consents})


async def update_consent(request: Request) -> Response:
    """The preference centre: `{"channel": "sms", "granted": false}` (channel "all" for everything)."""
    customer_id = _signed_in(request)
    body = await _body(request)
    granted = body.get("granted")
    if not isinstance(granted, bool):
        raise HTTPException(422, "granted: expected true or false")
    channel = _required(body, "channel")
    await _shop(request).omni.consent(customer_id, channel=channel, granted=granted, source="preference-center")
    return _reply(request, {"channel": channel, "granted": granted})


# -- the stores


async def pos_sale(request: Request) -> Response:
    """A till's sale: the customer is whoever has that phone, email or loyalty card. Ends their
    online cart-abandonment journey like a web order would."""
    _staff(request)
    body = await _body(request)
    who = {kind: value for kind in ("phone", "email", "loyalty_id") if (value := _optional(body, kind))}
    if not who:
        raise HTTPException(422, "phone, email or loyalty_id: give at least one")
    order_id, store = _required(body, "order_id"), _required(body, "store")
    revenue = body.get("revenue")
    if not isinstance(revenue, int | float) or isinstance(revenue, bool):
        raise HTTPException(422, "revenue: expected a number")
    touchpoint = await _shop(request).omni.track(
        who, Events.ORDER_COMPLETED, {"order_id": order_id, "revenue": revenue, "currency": "USD", "store": store},
        channel="pos", id=f"pos:{order_id}",
    )
    return _reply(request, {"customer_id": touchpoint.customer_id}, 201)


async def order_ready(request: Request) -> Response:
    """Staff mark a pickup order ready; the order-updates journey tells the customer."""
    _staff(request)
    shop = _shop(request)
    order = shop.records.orders.get(request.path_params["order_id"])
    if order is None or order.fulfillment != "pickup":
        raise HTTPException(404, "no pickup order with that id")
    await shop.omni.track(order.customer_id, Events.ORDER_READY_FOR_PICKUP,
                          {"order_id": order.id, "store": order.store}, channel="pos", id=f"ready:{order.id}")
    return _reply(request, {"order_id": order.id, "ready": True})


# -- errors as JSON


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return JSONResponse({"error": exc.detail}, exc.status_code)


async def _invalid(request: Request, exc: omnisdk.ValidationError) -> Response:
    """omnisdk names the field it refused (an email or phone that is not one, say)."""
    return JSONResponse({"error": str(exc), "field": exc.field}, 422)
