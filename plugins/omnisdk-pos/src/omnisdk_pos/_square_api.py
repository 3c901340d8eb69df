"""The few Square reads that webhooks and templates need, made synchronously.

Square's order and refund webhooks name the order but not the customer, and a Jinja filter
cannot await, so both look things up with a blocking client (short timeout, pooled connections).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from omnisdk import ProviderError, get_logger

from ._webhook_util import as_id, as_list, as_mapping, decimal_amount

__all__ = ["SquareAPI", "square_error"]

log = get_logger("omnisdk.pos.square")


def square_error(response: httpx.Response) -> str:
    """Square's `{"errors": [{"code", "detail"}]}` in one line."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        errors = []
    details = [f"{e.get('code')}: {e.get('detail')}" for e in errors if isinstance(e, Mapping)]
    return "; ".join(details) or f"HTTP {response.status_code} {response.reason_phrase}"


class SquareAPI:
    """Blocking reads against Square's v2 API (orders, inventory counts)."""

    def __init__(self, base_url: str, access_token: str, version: str, timeout: float) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout,
            headers={"Authorization": f"Bearer {access_token}", "Square-Version": version},
        )

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise ProviderError(f"Square unreachable ({type(exc).__name__}) on {method} {path}") from None
        if response.is_error:
            raise ProviderError(f"Square answered {response.status_code} on {method} {path}: {square_error(response)}")
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ProviderError(f"Square answered {method} {path} with a body that is not a JSON object")
        return data

    def retrieve_order(self, order_id: str) -> dict[str, Any]:
        return dict(as_mapping(self._call("GET", f"/v2/orders/{order_id}").get("order")))

    def in_stock(self, catalog_object_id: str, location_ids: Sequence[str]) -> dict[str, float]:
        """IN_STOCK quantity per location (BatchRetrieveInventoryCounts); a count without a location or
        with a quantity that is not a decimal number is skipped, and the reason logged."""
        body: dict[str, Any] = {"catalog_object_ids": [catalog_object_id], "states": ["IN_STOCK"]}
        if location_ids:
            body["location_ids"] = list(location_ids)
        found: dict[str, float] = {}
        for count in as_list(self._call("POST", "/v2/inventory/counts/batch-retrieve", body).get("counts")):
            count = as_mapping(count)
            location, quantity = as_id(count.get("location_id")), decimal_amount(count.get("quantity") or 0)
            if location is None or quantity is None:
                field = "location_id" if location is None else "quantity"
                log.warning("square_inventory_count_skipped", catalog_object_id=catalog_object_id,
                            location_id=location, reason=f"{field} is not usable ({type(count.get(field)).__name__})")
                continue
            found[location] = quantity
        return found

    def catalog_objects(self, object_ids: Sequence[str]) -> tuple[list[Any], list[Any]]:
        """BatchRetrieveCatalogObjects with their items: (objects, related objects)."""
        found = self._call("POST", "/v2/catalog/batch-retrieve",
                           {"object_ids": list(object_ids), "include_related_objects": True})
        return as_list(found.get("objects")), as_list(found.get("related_objects"))

    def variations_changed_since(self, begin_time: str) -> tuple[list[Any], list[Any]]:
        """SearchCatalogObjects: item variations changed at or after `begin_time`, every page, with their items."""
        objects: list[Any] = []
        related: list[Any] = []
        body: dict[str, Any] = {"object_types": ["ITEM_VARIATION"], "begin_time": begin_time,
                                "include_related_objects": True}
        for _ in range(1000):  # a cursor that never ends is Square's bug, not a reason to loop forever
            found = self._call("POST", "/v2/catalog/search", body)
            objects += as_list(found.get("objects"))
            related += as_list(found.get("related_objects"))
            cursor = found.get("cursor")
            if not isinstance(cursor, str) or not cursor:
                break
            body["cursor"] = cursor
        return objects, related

    def close(self) -> None:
        self._client.close()
