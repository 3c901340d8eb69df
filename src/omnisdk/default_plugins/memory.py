"""`provider = "memory"` on any channel: keeps what it sends, like Django's locmem e-mail backend."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ..hookspecs import hookimpl
from ..providers import Accepted, Capabilities, Outcome, Outgoing, Provider

__all__ = ["MEMORY_PROVIDERS", "MemoryProvider"]


class MemoryProvider(Provider):
    """Accepts everything and keeps it in `sent`, for development, tests and the demo."""

    name = "memory"
    channel = "email"
    capabilities = Capabilities(max_batch_size=1000, idempotency_keys=True, crash_policy="at_least_once")

    @attrs.define
    class Config:
        fail_addresses: list[str] = attrs.field(factory=list)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sent: list[Outgoing] = []
        self._by_key: dict[str, str] = {}

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[Outcome]:
        outcomes: list[Outcome] = []
        for message in batch:
            if message.idempotency_key in self._by_key:
                outcomes.append(Accepted(provider_message_id=self._by_key[message.idempotency_key]))
                continue
            provider_id = f"mem-{self.channel}-{len(self.sent) + 1}"
            self._by_key[message.idempotency_key] = provider_id
            self.sent.append(message)
            outcomes.append(Accepted(provider_message_id=provider_id))
        return outcomes


def _for_channel(channel: str) -> type[MemoryProvider]:
    return type(f"Memory{channel.title().replace('_', '')}", (MemoryProvider,), {"channel": channel})


MEMORY_PROVIDERS = tuple(_for_channel(c) for c in ("email", "sms", "push", "social", "direct_mail", "pos"))


@hookimpl
def register_providers(register: object) -> None:
    for cls in MEMORY_PROVIDERS:
        register(cls)  # type: ignore[operator]
