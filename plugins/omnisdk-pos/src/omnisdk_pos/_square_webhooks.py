"""Square webhooks as touchpoints: purchases, refunds, pickup (BOPIS) states, and loyalty accounts.

| Square event | touchpoint |
|---|---|
| `payment.created` / `payment.updated`, status COMPLETED | Order Completed |
| `refund.created` / `refund.updated`, status COMPLETED | Order Refunded |
| `order.fulfillment.updated`, PICKUP turning PREPARED / COMPLETED | Order Ready for Pickup / Order Picked Up |
| `loyalty.account.created` / `.updated` | Loyalty Account Updated (links phone, loyalty id, Square customer) |

Touchpoint ids derive from Square's object ids, so Square's retries and the created/updated
pairs record one touchpoint each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from omnisdk import Events, WebhookEvent, WebhookRequest

from ._webhook_util import as_id, as_list, as_mapping, check_hmac_sha256, json_body, minor_units, timestamp

__all__ = ["SIGNATURE_HEADER", "SquareEvents", "verify_square_signature"]

SIGNATURE_HEADER: Final = "x-square-hmacsha256-signature"
PICKUP_STATES: Final = {"PREPARED": Events.ORDER_READY_FOR_PICKUP, "COMPLETED": Events.ORDER_PICKED_UP}

OrderLookup = Callable[[str], Mapping[str, Any]]


def verify_square_signature(request: WebhookRequest, signature_key: str, notification_url: str) -> None:
    """base64(HMAC-SHA256(signature key as given, notification URL + raw body)); 401 otherwise."""
    message = (notification_url or request.url).encode() + request.body
    check_hmac_sha256(signature_key, message, request.header(SIGNATURE_HEADER), provider="Square",
                      header=SIGNATURE_HEADER)


def _who(**identifiers: Any) -> dict[str, str]:
    """The identifiers that are text (or integers): a field of another type identifies nobody."""
    return {kind: text for kind, value in identifiers.items() if (text := as_id(value)) is not None}


def _state(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class SquareEvents:
    """Maps one verified Square notification to touchpoints; `lookup_order` fetches an order by id."""

    def __init__(self, lookup_order: OrderLookup, stores: Mapping[str, str]) -> None:
        self._lookup_order = lookup_order
        self._stores = stores

    def parse(self, body: bytes) -> list[WebhookEvent]:
        payload = json_body(body, "Square")
        kind = str(payload.get("type") or "")
        data = as_mapping(as_mapping(payload.get("data")).get("object"))
        handler = {
            "payment.created": self._payment, "payment.updated": self._payment,
            "refund.created": self._refund, "refund.updated": self._refund,
            "order.fulfillment.updated": self._fulfillment,
            "loyalty.account.created": self._loyalty_account, "loyalty.account.updated": self._loyalty_account,
        }.get(kind)
        return handler(data, payload) if handler else []

    def _place(self, location_id: Any) -> dict[str, str]:
        location_id = as_id(location_id)
        if location_id is None:
            return {}
        place = {"location_id": location_id}
        if store := self._stores.get(location_id):
            place["store"] = store
        return place

    def _payment(self, data: Mapping[str, Any], payload: Mapping[str, Any]) -> list[WebhookEvent]:
        payment = as_mapping(data.get("payment"))
        who = _who(square_customer_id=payment.get("customer_id"), email=payment.get("buyer_email_address"))
        payment_id = as_id(payment.get("id"))
        if payment.get("status") != "COMPLETED" or payment_id is None or not who:
            return []
        revenue, currency = minor_units(payment.get("amount_money"))
        properties = {"order_id": as_id(payment.get("order_id")) or payment_id, "payment_id": payment_id,
                      "revenue": revenue, "currency": currency, "source": "square",
                      **self._place(payment.get("location_id"))}
        return [WebhookEvent(name=Events.ORDER_COMPLETED, channel="pos", id=f"square:payment:{payment_id}",
                             who=who, properties=properties,
                             occurred_at=timestamp(payment.get("updated_at") or payload.get("created_at")))]

    def _refund(self, data: Mapping[str, Any], payload: Mapping[str, Any]) -> list[WebhookEvent]:
        refund = as_mapping(data.get("refund"))
        refund_id, order_id = as_id(refund.get("id")), as_id(refund.get("order_id"))
        if refund.get("status") != "COMPLETED" or refund_id is None or order_id is None:
            return []
        order = as_mapping(self._lookup_order(order_id))
        who = _who(square_customer_id=order.get("customer_id"))
        if not who:
            return []
        revenue, currency = minor_units(refund.get("amount_money"))
        properties = {"order_id": order_id, "refund_id": refund_id, "revenue": revenue,
                      "currency": currency, "source": "square", **self._place(refund.get("location_id"))}
        return [WebhookEvent(name=Events.ORDER_REFUNDED, channel="pos", id=f"square:refund:{refund_id}",
                             who=who, properties=properties,
                             occurred_at=timestamp(refund.get("updated_at") or payload.get("created_at")))]

    def _fulfillment(self, data: Mapping[str, Any], payload: Mapping[str, Any]) -> list[WebhookEvent]:
        update = as_mapping(data.get("order_fulfillment_updated"))
        changes = [as_mapping(c) for c in as_list(update.get("fulfillment_update"))]
        changes = [c for c in changes if _state(c.get("new_state")) in PICKUP_STATES
                   and c["new_state"] != c.get("old_state")]
        order_id = as_id(update.get("order_id"))
        if not changes or order_id is None:
            return []
        order = as_mapping(self._lookup_order(order_id))
        fulfillments = {as_id(f.get("uid")): f for f in map(as_mapping, as_list(order.get("fulfillments")))}
        events = []
        for change in changes:
            fulfillment_uid = as_id(change.get("fulfillment_uid"))
            fulfillment = fulfillments.get(fulfillment_uid, {}) if fulfillment_uid else {}
            if fulfillment.get("type") != "PICKUP":
                continue
            recipient = as_mapping(as_mapping(fulfillment.get("pickup_details")).get("recipient"))
            who = _who(square_customer_id=order.get("customer_id") or recipient.get("customer_id"),
                       email=recipient.get("email_address"), phone=recipient.get("phone_number"))
            if not who:
                continue
            state = str(change["new_state"])
            events.append(WebhookEvent(
                name=PICKUP_STATES[state], channel="pos",
                id=f"square:fulfillment:{order_id}:{fulfillment_uid}:{state}",
                who=who, properties={"order_id": order_id, "fulfillment_state": state,
                                     "source": "square", **self._place(update.get("location_id"))},
                occurred_at=timestamp(update.get("updated_at") or payload.get("created_at")),
            ))
        return events

    def _loyalty_account(self, data: Mapping[str, Any], payload: Mapping[str, Any]) -> list[WebhookEvent]:
        account = as_mapping(data.get("loyalty_account"))
        mapping = as_mapping(account.get("mapping"))
        who = _who(loyalty_id=account.get("id"), square_customer_id=account.get("customer_id"),
                   phone=mapping.get("phone_number"))
        if len(who) < 2:  # one identifier links nothing
            return []
        balance = account.get("balance")
        if not isinstance(balance, int) or isinstance(balance, bool):
            balance = None
        return [WebhookEvent(name=Events.LOYALTY_ACCOUNT_UPDATED, channel="pos",
                             id=f"square:{as_id(payload.get('event_id')) or as_id(account.get('id'))}", who=who,
                             properties={"balance": balance, "source": "square"},
                             occurred_at=timestamp(account.get("updated_at") or payload.get("created_at")))]
