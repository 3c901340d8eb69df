"""Touchpoints: one event on any channel, online or offline, and the standard vocabulary."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import attrs

from ._errors import UnknownChannelError, ValidationError

__all__ = [
    "CHANNELS",
    "MESSAGE_CHANNELS",
    "Events",
    "Touchpoint",
    "check_channel",
    "choose_channels",
    "new_id",
]

#: Where a touchpoint can happen. The first six are the ones omnisdk can also send on.
MESSAGE_CHANNELS: Final = ("email", "sms", "push", "social", "direct_mail", "pos")
CHANNELS: Final = (*MESSAGE_CHANNELS, "web", "app", "ads", "call_center", "server")


def check_channel(channel: str, *, field: str = "channel", allowed: tuple[str, ...] = CHANNELS) -> str:
    if channel not in allowed:
        raise UnknownChannelError(
            f"unknown channel {channel!r}; expected one of {', '.join(allowed)}", field=field, value=channel
        )
    return channel


def choose_channels(
    channel: str | None, channels: Sequence[str] | None, *, single_field: str = "channel"
) -> tuple[str, ...]:
    """A send's `channel=` or its `channels=` waterfall (not both), each a message channel; empty
    when neither is given (the customer's preferred channel). `single_field` names `channel` in errors."""
    if channel is not None and channels is not None:
        raise ValidationError("give channel or channels, not both", field="channels")
    if channel is not None:
        return (check_channel(channel, field=single_field, allowed=MESSAGE_CHANNELS),)
    if channels is None:
        return ()
    if isinstance(channels, str) or not isinstance(channels, Sequence):
        raise ValidationError("expected a list of channels", field="channels", value=type(channels).__name__)
    return tuple(check_channel(ch, field=f"channels[{i}]", allowed=MESSAGE_CHANNELS) for i, ch in enumerate(channels))


_random = random.Random()  # ids need uniqueness, not secrecy
os.register_at_fork(after_in_child=_random.seed)  # a forked worker must not repeat its parent's ids


def new_id() -> str:
    """A 32-hex-digit id that sorts by creation time (like UUIDv7): index inserts append, not scatter."""
    return f"{time.time_ns() // 1_000_000:012x}{_random.getrandbits(80):020x}"


class Events:
    """Standard event names: Segment's ecommerce spec v2, plus messaging and store events."""

    PRODUCTS_SEARCHED = "Products Searched"
    PRODUCT_LIST_VIEWED = "Product List Viewed"
    PRODUCT_VIEWED = "Product Viewed"
    PRODUCT_CLICKED = "Product Clicked"
    PRODUCT_ADDED = "Product Added"
    PRODUCT_REMOVED = "Product Removed"
    CART_VIEWED = "Cart Viewed"
    CHECKOUT_STARTED = "Checkout Started"
    CHECKOUT_STEP_COMPLETED = "Checkout Step Completed"
    PAYMENT_INFO_ENTERED = "Payment Info Entered"
    ORDER_UPDATED = "Order Updated"
    ORDER_COMPLETED = "Order Completed"
    ORDER_REFUNDED = "Order Refunded"
    ORDER_CANCELLED = "Order Cancelled"
    COUPON_ENTERED = "Coupon Entered"
    COUPON_APPLIED = "Coupon Applied"
    PRODUCT_ADDED_TO_WISHLIST = "Product Added to Wishlist"
    SIGNED_UP = "Signed Up"
    SIGNED_IN = "Signed In"
    SIGNED_OUT = "Signed Out"
    # store and fulfilment (offline)
    ORDER_READY_FOR_PICKUP = "Order Ready for Pickup"
    ORDER_PICKED_UP = "Order Picked Up"
    ORDER_SHIPPED = "Order Shipped"
    ORDER_DELIVERED = "Order Delivered"
    LOYALTY_ACCOUNT_UPDATED = "Loyalty Account Updated"
    # catalog triggers, recorded by the catalog watcher (omni.catalog.watch)
    BACK_IN_STOCK = "Back in Stock"
    PRICE_DROPPED = "Price Dropped"
    BROWSE_ABANDONED = "Browse Abandoned"
    LOW_STOCK_IN_CART = "Low Stock in Cart"
    REPLENISHMENT_DUE = "Replenishment Due"
    # messages, recorded by the core and by provider webhooks
    MESSAGE_SENT = "Message Sent"
    MESSAGE_DELIVERED = "Message Delivered"
    MESSAGE_OPENED = "Message Opened"
    LINK_CLICKED = "Link Clicked"
    MESSAGE_BOUNCED = "Message Bounced"
    MESSAGE_FAILED = "Message Failed"
    MESSAGE_COMPLAINED = "Message Complained"
    MESSAGE_REPLIED = "Message Replied"
    UNSUBSCRIBED = "Unsubscribed"
    SUBSCRIBED = "Subscribed"
    MAIL_MAILED = "Mail Mailed"
    MAIL_IN_TRANSIT = "Mail In Transit"
    MAIL_DELIVERED = "Mail Delivered"
    MAIL_RETURNED = "Mail Returned"


@attrs.frozen(kw_only=True)
class Touchpoint:
    """Something a customer did, or that happened to them, on one channel.

    `id` makes ingestion idempotent: recording the same id twice keeps one touchpoint.
    """

    id: str = attrs.field(factory=new_id)
    customer_id: str
    channel: str
    name: str
    properties: Mapping[str, Any] = attrs.field(factory=dict)
    occurred_at: datetime
    seq: int | None = None

    def __attrs_post_init__(self) -> None:
        check_channel(self.channel)
        if not self.name or not isinstance(self.name, str):
            raise ValidationError("event name must be a non-empty string", field="event", value=self.name)
