"""What the shop sells. A real shop reads this from its database."""

from __future__ import annotations

from typing import Final

import attrs

__all__ = ["PRODUCTS", "Product", "catalog_rows"]


@attrs.frozen
class Product:
    id: str
    name: str
    price: float
    category: str
    stock: int = 10
    currency: str = "USD"

    def properties(self, **extra: object) -> dict[str, object]:
        """The product as Segment ecommerce-spec event properties."""
        return {"product_id": self.id, "name": self.name, "price": self.price, "currency": self.currency, **extra}


PRODUCTS: Final = {
    p.id: p
    for p in (
        Product("sku-tent", "Two-person tent", 189.0, "camping"),
        Product("sku-boots", "Trail boots", 129.0, "footwear"),
        Product("sku-mug", "Enamel mug", 14.0, "camping", stock=40),
    )
}


def catalog_rows(base_url: str) -> list[dict[str, object]]:
    """The products as omnisdk's catalog keeps them (`omni.catalog.upsert_many`), so messages can show them
    with their price, picture, link and stock."""
    return [{"sku": p.id, "product_id": p.id, "title": p.name, "price": f"{p.price:.2f}", "currency": p.currency,
             "category": p.category, "url": f"{base_url}/products/{p.id}",
             "image_url": f"{base_url}/static/{p.id}.jpg", "inventory": {"online": p.stock}}
            for p in PRODUCTS.values()]
