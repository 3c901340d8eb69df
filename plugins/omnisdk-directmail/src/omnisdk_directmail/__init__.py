"""omnisdk direct mail: Lob postcards and letters, address verification, tracking webhooks."""

from __future__ import annotations

from typing import Any

import omnisdk

from ._lob import LobDirectMail

__all__ = ["LobDirectMail", "register_providers"]


@omnisdk.hookimpl
def register_providers(register: Any) -> None:
    register(LobDirectMail)
