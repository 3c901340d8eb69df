"""The shop's own records: accounts, carts and orders. In memory here; your database in real life.

omnisdk keeps the marketing side (profiles, consent, touchpoints, journeys); the shop keeps what
it needs to sell. The two meet at the customer id, which the shop chooses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

import attrs

from .catalog import Product

__all__ = ["Account", "Cart", "Order", "Records"]


@attrs.define
class Account:
    customer_id: str
    email: str
    password_hash: bytes
    salt: bytes


@attrs.define
class Cart:
    id: str
    items: dict[str, int] = attrs.field(factory=dict)  # product id -> quantity


@attrs.define
class Order:
    id: str
    customer_id: str
    lines: list[tuple[Product, int]]
    fulfillment: str  # "ship" or "pickup"
    store: str | None = None

    @property
    def revenue(self) -> float:
        return round(sum(product.price * quantity for product, quantity in self.lines), 2)


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)


class Records:
    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}  # by lower-cased email
        self.carts: dict[str, Cart] = {}  # by visitor id: a cart follows the browser, signed in or not
        self.orders: dict[str, Order] = {}

    def account(self, email: str) -> Account | None:
        return self.accounts.get(email.strip().lower())

    def new_customer_id(self) -> str:
        """Our customer ids: omnisdk profiles are keyed by them."""
        return f"c-{uuid.uuid4().hex[:12]}"

    def add_account(self, customer_id: str, email: str, password: str) -> bool:
        """Keep the account; False when the email was taken meanwhile."""
        key = email.strip().lower()
        if key in self.accounts:
            return False
        salt = secrets.token_bytes(16)
        self.accounts[key] = Account(customer_id, key, _hash(password, salt), salt)
        return True

    def authenticate(self, email: str, password: str) -> Account | None:
        account = self.account(email)
        if account is None or not hmac.compare_digest(account.password_hash, _hash(password, account.salt)):
            return None
        return account

    def cart(self, visitor_id: str) -> Cart:
        if visitor_id not in self.carts:
            self.carts[visitor_id] = Cart(f"k-{uuid.uuid4().hex[:12]}")
        return self.carts[visitor_id]

    def place_order(self, customer_id: str, lines: list[tuple[Product, int]], fulfillment: str,
                    store: str | None) -> Order:
        order = Order(f"o-{uuid.uuid4().hex[:10]}", customer_id, lines, fulfillment, store)
        self.orders[order.id] = order
        return order
