"""omnisdk social channel: Messenger and WhatsApp Cloud, plus Meta Custom Audiences for retargeting."""

from __future__ import annotations

from typing import Any

import omnisdk

from .messenger import Messenger
from .whatsapp import WhatsAppCloud

__all__ = ["Messenger", "WhatsAppCloud", "register_providers"]


@omnisdk.hookimpl
def register_providers(register: Any) -> None:
    register(Messenger)
    register(WhatsAppCloud)
