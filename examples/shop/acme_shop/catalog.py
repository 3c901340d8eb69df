"""What the shop sells. A real shop reads this from its database."""

from __future__ import annotations

from typing import Final

import attrs

__all__ = ["PRODUCTS", "Product"]


@attrs.frozen
class Product:
    id: str
    name: str
    price: float
    currency: str = "USD"

    def properties(self, **extra: object) -> dict[str, object]:
        """The product as Segment ecommerce-spec event properties."""
        return {"product_id": self.id, "name": self.name, "price": self.price, "currency": self.currency, **extra}


PRODUCTS: Final = {
    p.id: p
    for p in (
        Product("sku-tent", "Two-person tent", 189.0),
        Product("sku-boots", "Trail boots", 129.0),
        Product("sku-mug", "Enamel mug", 14.0),
    )
}
