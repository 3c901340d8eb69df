"""Square Orders, Payments and Inventory: Bearer token, Square-Version, idempotency keys in the body."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
from aiohttp import web

from ._base import Imitation, route
from ._call import Call, Invalid, Problem
from ._contract import SchemaCheck
from ._util import now, random_id

__all__ = ["SquareImitation"]

_ERRORS = {
    401: ("AUTHENTICATION_ERROR", "UNAUTHORIZED", "This request could not be authorized."),
    404: ("INVALID_REQUEST_ERROR", "NOT_FOUND", "Resource not found."),
    429: ("RATE_LIMIT_ERROR", "RATE_LIMITED", "Rate limit exceeded."),
    500: ("API_ERROR", "INTERNAL_SERVER_ERROR", "An internal error has occurred."),
    503: ("API_ERROR", "SERVICE_UNAVAILABLE", "Service unavailable."),
}
_STATES = ["IN_STOCK", "SOLD", "RETURNED_BY_CUSTOMER", "WASTE", "NONE"]
# BatchRetrieveInventoryCounts has no contract file here; this follows Square's API reference.
_BATCH_RETRIEVE_COUNTS = SchemaCheck(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "catalog_object_ids": {"type": "array", "items": {"type": "string"}, "maxItems": 1000},
            "location_ids": {"type": "array", "items": {"type": "string"}},
            "updated_after": {"type": "string"},
            "cursor": {"type": "string"},
            "states": {"type": "array", "items": {"enum": _STATES}},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
    }
)
# The Catalog API has no contract file here either; these follow Square's API reference.
_BATCH_RETRIEVE_CATALOG = SchemaCheck(
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["object_ids"],
        "properties": {
            "object_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1000},
            "include_related_objects": {"type": "boolean"},
            "catalog_version": {"type": "integer"},
            "include_deleted_objects": {"type": "boolean"},
        },
    }
)
_SEARCH_CATALOG = SchemaCheck(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "cursor": {"type": "string"},
            "object_types": {"type": "array", "items": {"enum": ["ITEM", "ITEM_VARIATION", "CATEGORY", "IMAGE"]}},
            "include_deleted_objects": {"type": "boolean"},
            "include_related_objects": {"type": "boolean"},
            "begin_time": {"type": "string", "format": "date-time"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
    }
)
_DECLINED = "cnon:card-nonce-declined"


def _stamp() -> str:
    return now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


@attrs.define(kw_only=True, slots=False, eq=False)
class SquareImitation(Imitation):
    """connect.squareup.com's v2 Orders, Payments and inventory counts.

    Orders and payments created are in `orders` and `payments` by id. A repeated `idempotency_key`
    returns the first result, or IDEMPOTENCY_KEY_REUSED when the request differs. Source
    "cnon:card-nonce-declined" is declined, as in Square's sandbox. `set_stock` seeds inventory.
    """

    contract = "square_orders_payments.json"

    access_token: str = attrs.field(default="EAAAl-test", repr=False)
    location_id: str = "LMAIN0000001"
    orders: dict[str, dict[str, Any]] = attrs.field(factory=dict, init=False, repr=False)
    payments: dict[str, dict[str, Any]] = attrs.field(factory=dict, init=False, repr=False)
    #: On-hand quantity per (catalog object id, location id).
    stock: dict[tuple[str, str], Decimal] = attrs.field(factory=dict, init=False, repr=False)
    #: Catalog objects (ITEM and ITEM_VARIATION) by id, as the Catalog API returns them.
    catalog: dict[str, dict[str, Any]] = attrs.field(factory=dict, init=False, repr=False)
    _idempotent: dict[tuple[str, str], tuple[str, web.Response]] = attrs.field(factory=dict, init=False, repr=False)

    def set_stock(self, catalog_object_id: str, quantity: int | str | Decimal, location_id: str | None = None) -> None:
        """Seed the IN_STOCK count of an item variation at a location (the default one if omitted)."""
        self.stock[(catalog_object_id, location_id or self.location_id)] = Decimal(str(quantity))

    def set_variation(
        self, variation_id: str, *, item_id: str, item_name: str, name: str = "Regular", sku: str | None = None,
        price: int | None = None, currency: str = "USD", updated_at: str | None = None,
    ) -> dict[str, Any]:
        """Seed (or change) an item variation and its item; `price` is in the currency's smallest unit."""
        stamp = updated_at or _stamp()
        self.catalog[item_id] = {"type": "ITEM", "id": item_id, "updated_at": stamp, "version": len(self.catalog) + 1,
                                 "is_deleted": False, "present_at_all_locations": True,
                                 "item_data": {"name": item_name}}
        data: dict[str, Any] = {"item_id": item_id, "name": name, "pricing_type": "FIXED_PRICING"}
        if sku is not None:
            data["sku"] = sku
        if price is None:
            data["pricing_type"] = "VARIABLE_PRICING"
        else:
            data["price_money"] = _money(price, currency)
        variation = {"type": "ITEM_VARIATION", "id": variation_id, "updated_at": stamp, "is_deleted": False,
                     "version": len(self.catalog) + 1, "present_at_all_locations": True, "item_variation_data": data}
        self.catalog[variation_id] = variation
        return variation

    def authenticate(self, call: Call) -> bool:
        return call.bearer() == self.access_token

    def prepare(self, call: Call) -> None:
        version = call.headers.get("Square-Version")
        if version is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", version):
            problem = Problem("header", f"Invalid Square-Version format: {version}", "Square-Version", "format")
            raise Invalid(problem)

    def error(self, status: int, problem: Problem | None = None) -> web.StreamResponse:
        category, code, detail = _ERRORS.get(status, ("INVALID_REQUEST_ERROR", "BAD_REQUEST", "Bad request."))
        error = {"category": category, "code": code, "detail": detail}
        if problem is not None and problem.where != "auth":
            error["detail"] = problem.message
            if status == 400:
                error["code"] = {
                    "required": "MISSING_REQUIRED_PARAMETER",
                    "missing": "MISSING_REQUIRED_PARAMETER",
                    "malformed": "EXPECTED_JSON_BODY",
                    "format": "INVALID_SQUARE_VERSION_FORMAT",
                    "reused": "IDEMPOTENCY_KEY_REUSED",
                }.get(problem.reason, "INVALID_VALUE")
            if problem.field:
                error["field"] = problem.field
        return web.json_response({"errors": [error]}, status=status)

    def _once(self, call: Call, operation: str, create: Callable[[dict[str, Any]], web.Response]) -> web.Response:
        """Run `create` once per idempotency key, replaying its response for the same request."""
        body = call.json
        key = (operation, str(body.get("idempotency_key", "")))
        fingerprint = json.dumps(body, sort_keys=True)
        if key[1] and key in self._idempotent:
            first, response = self._idempotent[key]
            if first != fingerprint:
                message = "The idempotency key can only be retried with the same request data."
                raise Invalid(Problem("body", message, "idempotency_key", "reused"))
            assert response.body is not None
            return web.Response(body=response.body, status=response.status, content_type="application/json")
        response = create(body)
        if key[1]:
            self._idempotent[key] = (fingerprint, response)
        return response

    @route("POST", "/v2/orders", check="post /v2/orders")
    def create_order(self, call: Call) -> web.StreamResponse:
        return self._once(call, "order", self._new_order)

    def _new_order(self, body: dict[str, Any]) -> web.Response:
        given = body.get("order", {})
        stamp = _stamp()
        items, total, currency = [], 0, "USD"
        for item in given.get("line_items", []):
            price = item.get("base_price_money", {"amount": 0, "currency": currency})
            currency = price.get("currency", currency)
            amount = int(Decimal(item["quantity"]) * price.get("amount", 0))
            total += amount
            zero = _money(0, currency)
            items.append(
                {
                    "uid": random_id(22),
                    **item,
                    "base_price_money": price,
                    "variation_total_price_money": _money(amount, currency),
                    "gross_sales_money": _money(amount, currency),
                    "total_tax_money": zero,
                    "total_discount_money": zero,
                    "total_money": _money(amount, currency),
                }
            )
        order = {
            **given,
            "id": random_id(27),
            "line_items": items,
            "created_at": stamp,
            "updated_at": stamp,
            "state": given.get("state", "OPEN"),
            "version": 1,
            "total_money": _money(total, currency),
            "total_tax_money": _money(0, currency),
            "total_discount_money": _money(0, currency),
            "total_tip_money": _money(0, currency),
            "total_service_charge_money": _money(0, currency),
            "net_amount_due_money": _money(total, currency),
        }
        self.orders[order["id"]] = order
        return web.json_response({"order": order})

    @route("GET", "/v2/orders/{order_id}", check="get /v2/orders/{order_id}")
    def retrieve_order(self, call: Call) -> web.StreamResponse:
        return self._found("order", self.orders, call.params["order_id"])

    @route("POST", "/v2/payments", check="post /v2/payments")
    def create_payment(self, call: Call) -> web.StreamResponse:
        return self._once(call, "payment", self._new_payment)

    def _new_payment(self, body: dict[str, Any]) -> web.Response:
        source = body["source_id"]
        amount = body.get("amount_money", _money(0, "USD"))
        tip = body.get("tip_money", _money(0, amount["currency"]))
        stamp, ident = _stamp(), random_id(29)
        declined = source == _DECLINED
        status = "FAILED" if declined else ("COMPLETED" if body.get("autocomplete", True) else "APPROVED")
        kind = source if source in ("CASH", "EXTERNAL") else "CARD"
        payment: dict[str, Any] = {
            "id": ident,
            "created_at": stamp,
            "updated_at": stamp,
            "amount_money": amount,
            "tip_money": tip,
            "total_money": _money(amount["amount"] + tip["amount"], amount["currency"]),
            "approved_money": amount,
            "status": status,
            "source_type": kind,
            "location_id": body.get("location_id", self.location_id),
            "order_id": body.get("order_id") or random_id(27),
            "receipt_number": ident[:4],
            "receipt_url": f"https://squareup.com/receipt/preview/{ident}",
            "version_token": random_id(43),
        }
        for name in ("reference_id", "customer_id", "note", "buyer_email_address"):
            if name in body:
                payment[name] = body[name]
        if kind == "CARD":
            card = {"card_brand": "VISA", "last_4": "1111", "exp_month": 11, "exp_year": 2030, "card_type": "CREDIT"}
            card_status = "FAILED" if declined else ("CAPTURED" if status == "COMPLETED" else "AUTHORIZED")
            payment["card_details"] = {"status": card_status, "card": card, "entry_method": "KEYED"}
        if declined:
            error = {"category": "PAYMENT_METHOD_ERROR", "code": "GENERIC_DECLINE", "detail": "Authorization error."}
            return web.json_response({"errors": [error], "payment": payment}, status=400)
        self.payments[ident] = payment
        if status == "COMPLETED" and (order := self.orders.get(payment["order_id"])):
            self._settle(order, payment)
        return web.json_response({"payment": payment})

    def _settle(self, order: dict[str, Any], payment: dict[str, Any]) -> None:
        """A completed payment completes its order and takes the items sold out of stock."""
        tender = {"id": random_id(29), "location_id": order["location_id"], "created_at": payment["created_at"]}
        tender |= {"amount_money": payment["amount_money"], "type": payment["source_type"], "payment_id": payment["id"]}
        order.update(state="COMPLETED", tenders=[*order.get("tenders", []), tender], version=order["version"] + 1)
        order["updated_at"] = order["closed_at"] = payment["created_at"]
        for item in order["line_items"]:
            key = (item.get("catalog_object_id", ""), order["location_id"])
            if key in self.stock:
                self.stock[key] -= Decimal(item["quantity"])

    @route("GET", "/v2/payments/{payment_id}", check="get /v2/payments/{payment_id}")
    def get_payment(self, call: Call) -> web.StreamResponse:
        return self._found("payment", self.payments, call.params["payment_id"])

    def _found(self, kind: str, store: dict[str, dict[str, Any]], ident: str) -> web.StreamResponse:
        if ident not in store:
            return self.error(404, Problem("path", f"Could not find {kind} with id `{ident}`.", kind + "_id"))
        return web.json_response({kind: store[ident]})

    def _related(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items = {o["item_variation_data"]["item_id"] for o in objects if o["type"] == "ITEM_VARIATION"}
        return [self.catalog[i] for i in sorted(items) if i in self.catalog and i not in {o["id"] for o in objects}]

    @route("POST", "/v2/catalog/batch-retrieve", check=_BATCH_RETRIEVE_CATALOG)
    def batch_retrieve_catalog_objects(self, call: Call) -> web.StreamResponse:
        body = call.json
        objects = [self.catalog[i] for i in body["object_ids"] if i in self.catalog]
        answer: dict[str, Any] = {"objects": objects}
        if body.get("include_related_objects"):
            answer["related_objects"] = self._related(objects)
        return web.json_response(answer)

    @route("POST", "/v2/catalog/search", check=_SEARCH_CATALOG)
    def search_catalog_objects(self, call: Call) -> web.StreamResponse:
        """Objects of `object_types` changed at or after `begin_time`, 2 a page (so clients must follow cursors)."""
        body = call.json
        types = body.get("object_types")
        begin = body.get("begin_time", "")
        found = [o for _, o in sorted(self.catalog.items())
                 if (types is None or o["type"] in types) and o["updated_at"] >= begin]
        start = int(body.get("cursor") or 0)
        page = found[start:start + 2]
        answer: dict[str, Any] = {"objects": page}
        if start + 2 < len(found):
            answer["cursor"] = str(start + 2)
        if body.get("include_related_objects"):
            answer["related_objects"] = self._related(page)
        return web.json_response(answer)

    @route("POST", "/v2/inventory/counts/batch-retrieve", check=_BATCH_RETRIEVE_COUNTS)
    def batch_retrieve_inventory_counts(self, call: Call) -> web.StreamResponse:
        body: dict[str, list[str]] = call.json
        return self._counts(body.get("catalog_object_ids"), body.get("location_ids"), body.get("states"))

    @route("GET", "/v2/inventory/{catalog_object_id}")
    def retrieve_inventory_count(self, call: Call) -> web.StreamResponse:
        locations: str | None = call.query.get("location_ids")
        return self._counts([call.params["catalog_object_id"]], locations.split(",") if locations else None, None)

    def _counts(
        self, objects: list[str] | None, locations: list[str] | None, states: list[str] | None
    ) -> web.StreamResponse:
        stamp = _stamp()
        counts = [
            {
                "catalog_object_id": item,
                "catalog_object_type": "ITEM_VARIATION",
                "state": "IN_STOCK",
                "location_id": location,
                "quantity": str(quantity),
                "calculated_at": stamp,
            }
            for (item, location), quantity in sorted(self.stock.items())
            if (objects is None or item in objects)
            and (locations is None or location in locations)
            and (states is None or "IN_STOCK" in states)
        ]
        return web.json_response({"counts": counts})
