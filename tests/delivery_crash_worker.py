"""A dispatcher process for the SIGKILL test: sends everything due to a local HTTP receiver, forever.

Run as `python delivery_crash_worker.py STORE_URL RECEIVER_URL`; the test kills it at random moments.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import attrs
import httpx

import omnisdk
from omnisdk.providers import http_error_outcome, transport_error_outcome


class HttpSMS(omnisdk.Provider):
    """No idempotency key: a crash mid-call is settled at most once (marked failed, never resent)."""

    name = "http"
    channel = "sms"
    capabilities = omnisdk.Capabilities(max_batch_size=1, max_concurrency=8)

    @attrs.define
    class Config:
        base_url: str

    async def send(self, batch: Sequence[omnisdk.Outgoing]) -> Sequence[omnisdk.providers.Outcome]:
        outcomes = []
        for message in batch:
            body = {"delivery_id": message.delivery_id, "key": message.idempotency_key, "to": message.to}
            headers = {"Idempotency-Key": message.idempotency_key} if self.capabilities.idempotency_keys else {}
            try:
                response = await self.http.post(f"{self.config.base_url}/{self.channel}", json=body, headers=headers)
            except httpx.HTTPError as exc:
                outcomes.append(transport_error_outcome(exc))
                continue
            if response.status_code >= 300:
                outcomes.append(http_error_outcome(response))
            else:
                outcomes.append(omnisdk.Accepted(provider_message_id=response.json()["id"]))
        return outcomes


class HttpKeyedEmail(HttpSMS):
    """Passes the idempotency key, which the receiver deduplicates on (as Lob and Square do)."""

    channel = "email"
    capabilities = omnisdk.Capabilities(max_batch_size=1, max_concurrency=8, idempotency_keys=True)


class CrashProviders:
    @omnisdk.hookimpl
    def register_providers(self, register: Any) -> None:
        register(HttpSMS)
        register(HttpKeyedEmail)


def open_omni(store_url: str, receiver: str) -> omnisdk.Omni:
    config = {
        "channels": {"sms": {"provider": "http", "base_url": receiver},
                     "email": {"provider": "http", "base_url": receiver}},
        "delivery": {"lease_seconds": 1, "batch_size": 50},
    }
    omni = omnisdk.Omni(store_url, config=config, plugins=[CrashProviders()], load_entry_points=False)
    omni.templates.add(omnisdk.Message("notice", sms=omnisdk.SMS(text="Your order is ready"),
                                       email=omnisdk.Email(subject="Ready", text="Your order is ready")))
    return omni


def main(store_url: str, receiver: str) -> None:
    with open_omni(store_url, receiver) as omni:
        while True:
            if not omni.run_until_idle():
                time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
