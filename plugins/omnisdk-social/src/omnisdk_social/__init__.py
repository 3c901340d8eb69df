"""omnisdk social channel: Messenger and WhatsApp Cloud, plus Meta Custom Audiences for retargeting."""

from __future__ import annotations

from typing import Any

import omnisdk

from .messenger import Messenger
from .whatsapp import WhatsAppCloud

__all__ = ["Messenger", "WhatsAppCloud", "register_identity_kinds", "register_providers"]


@omnisdk.hookimpl
def register_identity_kinds(register: Any) -> None:
    """Meta's per-page Messenger user id and the WhatsApp id: the social channel's addresses, ranked
    like a device token when profiles merge."""
    register("messenger_psid", device=True, addresses="social")
    register("whatsapp_id", device=True, addresses="social")


@omnisdk.hookimpl
def register_providers(register: Any) -> None:
    register(Messenger)
    register(WhatsAppCloud)
