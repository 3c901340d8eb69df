"""What a shop sells: variants (the sellable SKUs) of products, their prices, and stock per location.

Values and input checks only; `omnisdk.store._catalog` keeps them and `omnisdk.commerce` serves them.
A catalog row from outside (an import file, a webhook) becomes a `Variant` through `variant_from`,
which names the field at fault, so a bad row is refused with a reason and the others are kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import attrs

from ._errors import BatchItemError, ValidationError

__all__ = ["MAX_QUANTITY", "ONLINE", "CatalogUpsert", "InventoryLevel", "Product", "Variant", "check_location",
           "check_quantity", "check_sku", "inventory_from", "variant_from"]

#: The location of the online store's stock; every other location is a store's own id (a POS location id).
ONLINE: Final = "online"
#: Larger counts are refused as a mistake (a price or a barcode in the quantity column).
MAX_QUANTITY: Final = 10**12
_MAX_TEXT: Final = 2048
_MAX_ATTRIBUTES: Final = 64 * 1024
_encode_json = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode
_VARIANT_FIELDS: Final = frozenset({"sku", "product_id", "title", "price", "currency", "url", "image_url", "category",
                                    "brand", "attributes", "inventory"})


@attrs.frozen(kw_only=True)
class Variant:
    """One sellable SKU: what a message shows of it (title, image, price, link) and how it is grouped."""

    sku: str
    product_id: str
    title: str
    price: Decimal
    currency: str = "USD"
    url: str | None = None
    image_url: str | None = None
    category: str | None = None
    brand: str | None = None
    attributes: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Product:
    """A product and its variants; the product's url, image, category and brand fill what a variant leaves out."""

    product_id: str
    title: str
    variants: tuple[Variant, ...] = ()
    url: str | None = None
    image_url: str | None = None
    category: str | None = None
    brand: str | None = None

    def expanded(self) -> list[Variant]:
        """The variants as stored: each with the product's id, and its fields where the variant has none."""
        return [attrs.evolve(v, product_id=self.product_id, url=v.url or self.url,
                             image_url=v.image_url or self.image_url, category=v.category or self.category,
                             brand=v.brand or self.brand) for v in self.variants]


@attrs.frozen(kw_only=True)
class InventoryLevel:
    """Units of a SKU available at one location ("online", or a store's location id)."""

    sku: str
    location: str
    quantity: int


@attrs.frozen(kw_only=True)
class CatalogUpsert:
    """What `catalog.upsert_many` did: variants new, changed and already as given, inventory levels
    set, and the rows it refused (their index in the input, the field, why)."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    inventory: int = 0
    errors: tuple[BatchItemError, ...] = ()
    #: Rows refused in all (`errors` keeps the first thousand with their reasons).
    refused: int = 0

    def __add__(self, other: CatalogUpsert) -> CatalogUpsert:
        return CatalogUpsert(inserted=self.inserted + other.inserted, updated=self.updated + other.updated,
                             unchanged=self.unchanged + other.unchanged, inventory=self.inventory + other.inventory,
                             errors=self.errors + other.errors, refused=self.refused + other.refused)


def _text(value: Any, field: str, *, required: bool = True) -> str | None:
    if type(value) is str and 0 < len(value) <= _MAX_TEXT and value.isascii() and value.isprintable() \
            and not value[0].isspace() and not value[-1].isspace():
        return value  # the common case, decided without stripping or encoding
    if value is None or value == "":
        if required:
            raise ValidationError("is required", field=field)
        return None
    if not isinstance(value, str):
        raise ValidationError(f"expected text, got {type(value).__name__}", field=field, value=value)
    value = value.strip()
    if required and not value:
        raise ValidationError("is required", field=field)
    if len(value) > _MAX_TEXT or "\x00" in value or not _encodable(value):
        raise ValidationError(f"expected at most {_MAX_TEXT} characters of UTF-8 text without NUL", field=field)
    return value or None


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no database can store it
        return False
    return True


def check_sku(value: Any, field: str = "sku") -> str:
    sku = _text(value, field)
    assert sku is not None
    if len(sku) > 256:
        raise ValidationError("a SKU has at most 256 characters", field=field)
    return sku


def check_location(value: Any, field: str = "location") -> str:
    location = _text(value, field)
    assert location is not None
    if len(location) > 256:
        raise ValidationError("a location id has at most 256 characters", field=field)
    return location


def check_quantity(value: Any, field: str = "quantity") -> int:
    """A count of units: a whole number (text from a file, or a number without a fraction), at least 0."""
    if isinstance(value, bool):
        raise ValidationError("expected a whole number of units", field=field, value=value)
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationError("expected a whole number of units", field=field, value=value) from None
    if isinstance(value, float | Decimal):
        if not math.isfinite(value) or value != int(value):
            raise ValidationError("expected a whole number of units", field=field, value=str(value))
        value = int(value)
    if not isinstance(value, int):
        raise ValidationError(f"expected a whole number of units, got {type(value).__name__}", field=field)
    if not 0 <= value <= MAX_QUANTITY:
        raise ValidationError(f"expected 0 to {MAX_QUANTITY} units", field=field, value=value)
    return value


def _price(value: Any, field: str = "price") -> Decimal:
    if isinstance(value, bool) or value is None or value == "":
        raise ValidationError("expected a price (a decimal number)", field=field, value=value)
    try:
        price = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError("expected a price (a decimal number)", field=field, value=value) from None
    if not price.is_finite() or price < 0 or price >= Decimal(10) ** 15:
        raise ValidationError("expected a price from 0 to 10^15", field=field, value=str(price))
    return price


def _currency(value: Any, field: str = "currency") -> str:
    if value is None or value == "":
        return "USD"
    if not isinstance(value, str) or len(value.strip()) != 3 or not value.strip().isalpha():
        raise ValidationError("expected an ISO 4217 currency code such as USD", field=field, value=value)
    return value.strip().upper()


def _attributes(value: Any, field: str = "attributes") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValidationError("expected a mapping of names to values", field=field, value=type(value).__name__)
    if not value:
        return {}
    try:
        encoded = _encode_json(dict(value))
    except (TypeError, ValueError, RecursionError):
        raise ValidationError("expected JSON values (text, numbers, true/false, null, lists, objects)",
                              field=field) from None
    if "\x00" in encoded or "\\u0000" in encoded or len(encoded) > _MAX_ATTRIBUTES or not _encodable(encoded):
        raise ValidationError(f"expected at most {_MAX_ATTRIBUTES} characters of JSON in UTF-8 without NUL",
                              field=field)
    return dict(value)


def variant_from(item: Any) -> Variant:
    """A `Variant` from a `Variant` or a mapping of its fields (an import row); `ValidationError`
    names the field at fault. Unknown keys are refused, so a misspelt column does not vanish."""
    if isinstance(item, Variant):
        item = attrs.asdict(item, recurse=False)
    if not isinstance(item, Mapping):
        raise ValidationError(f"expected a Variant, a Product or a mapping, got {type(item).__name__}", field="")
    if not item.keys() <= _VARIANT_FIELDS:
        unknown = sorted(str(k) for k in item if k not in _VARIANT_FIELDS)
        raise ValidationError(f"unknown field(s) {', '.join(unknown)}; put extra data under attributes",
                              field=unknown[0])
    sku = check_sku(item.get("sku"))
    product_id = _text(item.get("product_id"), "product_id", required=False) or sku
    title = _text(item.get("title"), "title")
    assert title is not None
    return Variant(sku=sku, product_id=product_id, title=title, price=_price(item.get("price")),
                   currency=_currency(item.get("currency")),
                   url=_text(item.get("url"), "url", required=False),
                   image_url=_text(item.get("image_url"), "image_url", required=False),
                   category=_text(item.get("category"), "category", required=False),
                   brand=_text(item.get("brand"), "brand", required=False),
                   attributes=_attributes(item.get("attributes")))


def inventory_from(item: Any, sku: str) -> list[InventoryLevel]:
    """An import row's `inventory`: a count (online stock) or a mapping of location to count."""
    if isinstance(item, Mapping):
        return [InventoryLevel(sku=sku, location=check_location(loc, f"inventory.{loc}"),
                               quantity=check_quantity(qty, f"inventory.{loc}")) for loc, qty in item.items()]
    return [InventoryLevel(sku=sku, location=ONLINE, quantity=check_quantity(item, "inventory"))]
