"""What every page is rendered with: the client, the request's mount point, and what the operator may do."""

from __future__ import annotations

import attrs

from .._omni import Omni

__all__ = ["PageContext"]


@attrs.frozen(kw_only=True)
class PageContext:
    omni: Omni
    #: Where the app is mounted, for links and form actions.
    root: str
    #: The token the action forms carry (empty when actions are off).
    csrf: str
    allow_actions: bool
    #: Runs due longer ago than this (seconds) count as stuck.
    stuck_after: float = 300.0

    def url(self, path: str) -> str:
        return self.root + path
