"""The hooks plugins implement. Hooks take keyword arguments, so they can grow without breaking plugins."""

from __future__ import annotations

from typing import Any

import pluggy

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("omnisdk")
hookimpl = pluggy.HookimplMarker("omnisdk")


@hookspec
def register_providers(register: Any) -> None:
    """Register provider classes: `register(ProviderClass)`."""


@hookspec
def register_identity_kinds(register: Any) -> None:
    """Declare identifier kinds the plugin's vendor brings (a POS's customer id, a messaging app's user
    id): `register(kind, normalize=None, *, unique=False, device=False, addresses=None)`. `normalize(value)`
    returns the canonical value or raises ValueError; `unique` allows one per profile; `device` ranks the
    kind with push tokens rather than with person identifiers when profiles merge; `addresses` names the
    channel whose address it is (`"social"`, `"pos"`), so that channel's providers are sent to it."""


@hookspec
def register_template_filters(register: Any, omni: Any) -> None:
    """Register Jinja filters available to every template: `register(name, function)`; `omni` is the client."""


@hookspec
def register_policies(register: Any) -> None:
    """Register send-time policies: `register(policy)`, checked after consent and quiet hours."""


@hookspec
def register_recommenders(register: Any) -> None:
    """Register product recommenders: `register(name, build)`, `build(TrainingData) -> Recommender`
    (`omnisdk.commerce`); `[recommendations] chain` names the ones to use, in order."""


@hookspec
def touchpoint_recorded(touchpoint: Any, omni: Any) -> None:
    """Called after a touchpoint is stored (on the thread that stored it)."""


@hookspec
def delivery_updated(delivery: Any, omni: Any) -> None:
    """Called after a delivery changes status."""


@hookspec
def forget_requested(request: Any, omni: Any) -> None:
    """Called once a customer's data is erased (`omni.forget`), to forward the request to providers that
    hold copies (`request` is an `omnisdk.privacy.ForgetNotice`); a raise is recorded and retried."""
