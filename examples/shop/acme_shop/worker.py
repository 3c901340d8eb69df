"""Run the shop's journeys and deliveries in their own process: `python -m acme_shop.worker`.

Use it instead of the in-app worker (SHOP_WORKER=off for the web app) when the web processes
should only serve requests, or when several web processes share one store. Run as many as you
like on PostgreSQL; on SQLite, one.
"""

from __future__ import annotations

import asyncio

from .marketing import create_omni


async def main() -> None:
    async with create_omni() as omni:
        await omni.run_worker(handle_signals=True)  # until SIGTERM or Ctrl-C


if __name__ == "__main__":
    asyncio.run(main())
