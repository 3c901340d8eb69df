"""Product blocks: `{{ products(skus, limit=3) }}` in any template prints the products for the channel it
renders on, within that channel's limits; `recommendations(k)` gives the customer's recommended skus.

    {{ products(recommendations(3)) }}                        an email's HTML: a card per product
    {{ products([event.sku], limit=1) }}                      an SMS: one short line, within `max_chars`
    {{ products(skus, links=True, max_chars=459) }}           ... with each link (three segments)
    {% for p in products(data.skus) %}{{ p.title }} {{ p.price }}{% endfor %}

Each product has its title, image, price in the customer's locale and currency (CLDR, via Babel), a link
(tracked when links are tracked, like every `link()`), and whether it is in stock at the customer's
nearest store: their `store_location` trait, else the store of their last purchase at the POS. What the
products are comes from a `Shop` (the catalog and the recommenders, bound to the delivery's transaction),
so this module needs neither; unknown skus are left out, so a block never shows a product without a price.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from html import escape
from typing import Any, Final, Protocol

import attrs
from babel import Locale, UnknownLocaleError
from babel.numbers import UnknownCurrencyError, format_currency

from .._customers import Customer
from .._errors import TemplateError

__all__ = ["CHANNEL_LIMITS", "ProductBlock", "ProductView", "Shop", "Stocked", "format_price", "product_functions"]

#: Characters a block may take per channel: an SMS segment (GSM-7), a push body, a POS description, a
#: Messenger/WhatsApp text; e-mail and direct mail have room for cards.
CHANNEL_LIMITS: Final[Mapping[str, int]] = {"sms": 160, "push": 178, "pos": 200, "social": 1000}
MAX_PRODUCTS: Final = 12
_SPACES = re.compile(r"[\u00a0\u202f\u2007\u2009]")  # CLDR's no-break spaces would make an SMS UCS-2


class ProductLike(Protocol):
    """What a block reads of a catalog variant (`omnisdk.commerce.Variant`)."""

    @property
    def sku(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def price(self) -> Decimal: ...

    @property
    def currency(self) -> str: ...

    @property
    def url(self) -> str | None: ...

    @property
    def image_url(self) -> str | None: ...


@attrs.frozen
class Stocked:
    """A product as the shop knows it for one customer: the variant, its units per location, and the
    customer's nearest store (None when unknown)."""

    variant: ProductLike
    levels: Mapping[str, int]
    store: str | None


class Shop(Protocol):
    """The catalog and recommendations, as one delivery's templates see them."""

    def products(self, skus: Sequence[str], customer: Customer) -> list[Stocked]:
        """The known skus among `skus`, in that order, with stock and the customer's nearest store."""
        ...

    def recommendations(self, customer: Customer, k: int, location: str | None) -> list[str]:
        """Up to `k` skus for the customer (in stock; at `location` when given)."""
        ...


def format_price(amount: Decimal | float, currency: str, locale: str | None) -> str:
    """`amount` as the customer's locale writes `currency` (`$12.00`, `12,00 €`), en-US without a locale."""
    try:
        where = Locale.parse((locale or "en_US").replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        where = Locale.parse("en_US")
    try:
        return str(format_currency(amount, currency, locale=where))
    except (UnknownCurrencyError, ValueError):
        return f"{amount} {currency}"


@attrs.frozen
class ProductView:
    """One product of a block, ready to print: `price` is formatted, `url` is the (tracked) link."""

    sku: str
    title: str
    price: str
    amount: Decimal
    currency: str
    url: str | None
    image_url: str | None
    #: In stock online or anywhere.
    available: bool
    #: The customer's nearest store and whether it has the product (None: no store known).
    store: str | None
    in_store: bool | None

    @property
    def availability(self) -> str:
        if self.store is not None and self.in_store:
            return f"In stock at {self.store}"
        if self.available:
            return "In stock online" if self.store is None else f"Not at {self.store}; in stock online"
        return "Out of stock"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 3, 1)].rstrip() + "..."


class ProductBlock:
    """The products of one `products(...)` call: prints as the channel's block, iterates as `ProductView`s."""

    def __init__(self, views: Sequence[ProductView], channel: str, *, max_chars: int | None = None,
                 links: bool | None = None) -> None:
        self.views = tuple(views)
        self.channel = channel
        self.max_chars = max_chars if max_chars is not None else CHANNEL_LIMITS.get(channel)
        #: Print each product's link: by default everywhere but in short lines (SMS, push, POS), where a
        #: tracked link alone is longer than an SMS segment.
        self.links = links if links is not None else channel not in ("sms", "push", "pos")

    def __iter__(self) -> Iterator[ProductView]:
        return iter(self.views)

    def __len__(self) -> int:
        return len(self.views)

    def __bool__(self) -> bool:
        return bool(self.views)

    @property
    def first(self) -> ProductView | None:
        return self.views[0] if self.views else None

    def __str__(self) -> str:
        if self.channel in ("sms", "push", "pos"):
            return self._line(" | " if self.channel == "sms" else " · ", with_url=self.links)
        lines = [f"- {v.title}: {v.price} ({v.availability})" + (f"\n  {v.url}" if v.url and self.links else "")
                 for v in self.views]
        return self._fit("\n".join(lines))

    def _line(self, separator: str, *, with_url: bool) -> str:
        """One short line: each product's title (shortened to fit) and price, and in an SMS its link."""
        if not self.views:
            return ""
        budget = self.max_chars or 1000
        fixed = sum(len(v.price) + 1 + (len(v.url) + 1 if with_url and v.url else 0) for v in self.views)
        fixed += len(separator) * (len(self.views) - 1)
        width = max((budget - fixed) // len(self.views), 8)
        parts = [f"{_cut(v.title, width)} {v.price}" + (f" {v.url}" if with_url and v.url else "") for v in self.views]
        return self._fit(separator.join(parts))

    def _fit(self, text: str) -> str:
        text = _SPACES.sub(" ", text) if self.channel in CHANNEL_LIMITS else text
        if self.max_chars is not None and len(text) > self.max_chars:
            raise TemplateError(f"products(): the block takes {len(text)} characters, more than the {self.channel} "
                                f"limit of {self.max_chars}; show fewer products (limit=) or shorter links")
        return text

    def __html__(self) -> str:
        if self.channel == "direct_mail":  # printed: nothing to click, the address written out
            cells = [
                f'<td class="omni-product">{_image(v)}<div><strong>{escape(v.title)}</strong></div>'
                f"<div>{escape(v.price)}</div><div>{escape(v.availability)}</div>"
                + (f"<div><small>{escape(v.url)}</small></div>" if v.url else "") + "</td>"
                for v in self.views
            ]
        else:
            cells = [
                '<td class="omni-product" style="padding:8px;vertical-align:top">'
                + (f'<a href="{escape(v.url)}">{_image(v)}</a>' if v.url else _image(v))
                + "<div>" + (f'<a href="{escape(v.url)}">{escape(v.title)}</a>' if v.url else escape(v.title))
                + f"</div><div><strong>{escape(v.price)}</strong></div><div><small>{escape(v.availability)}</small>"
                "</div></td>"
                for v in self.views
            ]
        if not cells:
            return ""
        return f'<table role="presentation" class="omni-products"><tr>{"".join(cells)}</tr></table>'


def _image(view: ProductView) -> str:
    if not view.image_url:
        return ""
    return f'<img src="{escape(view.image_url)}" alt="{escape(view.title)}" width="160" style="display:block">'


def product_functions(
    shop: Shop | None, customer: Customer, channel: str, link: Callable[[str], str], *, printed: bool = False,
) -> dict[str, Callable[..., Any]]:
    """The template globals `products` and `recommendations` for one rendition."""

    def need_shop() -> Shop:
        if shop is None:
            raise TemplateError("products() and recommendations() need the catalog: render through a delivery "
                                "or omni.preview")
        return shop

    def recommendations(k: int = 4, at: str | None = None) -> list[str]:
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= MAX_PRODUCTS:
            raise TemplateError(f"recommendations(): k must be 0 to {MAX_PRODUCTS}, got {k!r}")
        return need_shop().recommendations(customer, k, at)

    def products(
        skus: Iterable[Any] | str, limit: int = 3, max_chars: int | None = None, links: bool | None = None,
    ) -> ProductBlock:
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_PRODUCTS:
            raise TemplateError(f"products(): limit must be 0 to {MAX_PRODUCTS}, got {limit!r}")
        wanted = [skus] if isinstance(skus, str) else [str(s) for s in list(skus)[: MAX_PRODUCTS * 4] if s]
        found = need_shop().products(list(dict.fromkeys(wanted)), customer)[:limit] if limit else []
        views = [_view(item, customer, link, printed) for item in found]
        return ProductBlock(views, channel, max_chars=max_chars, links=links)

    return {"products": products, "recommendations": recommendations}


def _view(item: Stocked, customer: Customer, link: Callable[[str], str], printed: bool) -> ProductView:
    v = item.variant
    url = v.url if printed or not v.url else link(v.url)
    in_store = None if item.store is None else item.levels.get(item.store, 0) > 0
    return ProductView(
        sku=v.sku, title=v.title, price=format_price(v.price, v.currency, customer.locale),
        amount=Decimal(str(v.price)),
        currency=v.currency, url=url, image_url=v.image_url, available=any(n > 0 for n in item.levels.values()),
        store=item.store, in_store=in_store,
    )


