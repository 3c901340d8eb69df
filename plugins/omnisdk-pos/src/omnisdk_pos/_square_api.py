"""The few Square reads that webhooks and templates need, made synchronously.

Square's order and refund webhooks name the order but not the customer, and a Jinja filter
cannot await, so both look things up with a blocking client (short timeout, pooled connections).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from omnisdk import ProviderError

__all__ = ["SquareAPI", "square_error"]


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
        data: dict[str, Any] = response.json()
        return data

    def retrieve_order(self, order_id: str) -> dict[str, Any]:
        order: dict[str, Any] = self._call("GET", f"/v2/orders/{order_id}").get("order") or {}
        return order

    def in_stock(self, catalog_object_id: str, location_ids: Sequence[str]) -> dict[str, float]:
        """IN_STOCK quantity per location (BatchRetrieveInventoryCounts)."""
        body: dict[str, Any] = {"catalog_object_ids": [catalog_object_id], "states": ["IN_STOCK"]}
        if location_ids:
            body["location_ids"] = list(location_ids)
        counts = self._call("POST", "/v2/inventory/counts/batch-retrieve", body).get("counts") or []
        return {str(c["location_id"]): float(c.get("quantity") or 0) for c in counts if c.get("location_id")}

    def close(self) -> None:
        self._client.close()
