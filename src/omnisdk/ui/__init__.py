"""The operator's dashboard (`omnisdk ui`): customers, journeys, the outbox, providers, quarantine,
experiments and KPIs, server-rendered over the same store.

    app = omnisdk.ui.create_dashboard(omni, allow_actions=False, token=None)   # any ASGI server

Pages are plain HTML with inline CSS and SVG (no script, nothing fetched); every value is escaped.
"""

from __future__ import annotations

import ipaddress

from .._errors import ConfigError
from ._app import SESSION_COOKIE, create_dashboard

__all__ = ["SESSION_COOKIE", "check_exposure", "create_dashboard", "is_loopback"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve the dashboard beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise ConfigError(f"the dashboard would be reachable from other machines on {host}; give it a token "
                          "(--token or OMNISDK_UI_TOKEN), or bind it to 127.0.0.1", field="host")
