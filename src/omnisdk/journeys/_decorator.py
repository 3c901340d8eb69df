"""`@journey`: a customer journey as an async function, with its id, version, trigger and rules."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from .._errors import JourneyError, ValidationError
from ._graph import to_mermaid

if TYPE_CHECKING:
    from ._context import JourneyContext

__all__ = ["REENTRY_RULES", "Journey", "JourneyFn", "catalogue", "journey"]

#: "never": a customer enters at most once; "after_exit": again once the previous run ended;
#: "always": every trigger starts a run, even while others are active.
REENTRY_RULES: Final = ("never", "after_exit", "always")

JourneyFn = Callable[["JourneyContext"], Awaitable[Any]]

#: Every journey defined in this process, by id then version: what `omnisdk journeys` and
#: `omnisdk worker --import module` find after importing the application's modules.
catalogue: dict[str, dict[str, Journey]] = {}


def _names(value: str | Sequence[str], field: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value)
    for i, name in enumerate(items):
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("event names must be non-empty strings", field=f"{field}[{i}]", value=name)
    return tuple(items)


@attrs.frozen(kw_only=True)
class Journey:
    """A registered journey: one version of it. Several versions of an id may be registered at once."""

    id: str
    version: str
    trigger: tuple[str, ...]
    exit_on: tuple[str, ...] = ()
    reentry: str = "after_exit"
    #: Property values the trigger event must have (e.g. `{"template": "receipt"}` on "Message Sent").
    trigger_where: Mapping[str, Any] = attrs.field(factory=dict)
    fn: JourneyFn = attrs.field(repr=False)
    #: The declarative definition this journey was compiled from, if any (for diagrams).
    graph: Mapping[str, Any] | None = attrs.field(default=None, repr=False)

    def mermaid(self) -> str:
        """A Mermaid flowchart of a declarative journey."""
        if self.graph is None:
            raise JourneyError(f"journey {self.id!r}: only declarative journeys can be drawn")
        return to_mermaid(self.graph)

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"


def make_journey(
    id: str,
    version: str,
    trigger: str | Sequence[str],
    exit_on: str | Sequence[str],
    reentry: str,
    fn: JourneyFn,
    graph: Mapping[str, Any] | None = None,
    trigger_where: Mapping[str, Any] | None = None,
) -> Journey:
    """Validate a definition and add it to the process catalogue."""
    if not isinstance(id, str) or not id.strip():
        raise ValidationError("journey id must be a non-empty string", field="id", value=id)
    if not isinstance(version, str) or not version.strip():
        raise ValidationError("versions are explicit strings, e.g. version=\"2\"", field=f"{id}.version", value=version)
    if reentry not in REENTRY_RULES:
        raise ValidationError(f"expected one of {', '.join(REENTRY_RULES)}", field=f"{id}.reentry", value=reentry)
    if not inspect.iscoroutinefunction(fn):
        raise JourneyError(f"journey {id!r}: the function must be `async def` (its steps are awaited)")
    triggers = _names(trigger, f"{id}.trigger")
    if not triggers:
        raise ValidationError("a journey needs at least one trigger event", field=f"{id}.trigger")
    if trigger_where is not None and not isinstance(trigger_where, Mapping):
        raise ValidationError("expected a dict of property values", field=f"{id}.trigger_where", value=trigger_where)
    result = Journey(
        id=id, version=version, trigger=triggers, exit_on=_names(exit_on, f"{id}.exit_on"), reentry=reentry,
        trigger_where=dict(trigger_where or {}), fn=fn, graph=graph,
    )
    catalogue.setdefault(id, {})[version] = result
    return result


def journey(
    id: str,
    *,
    version: str = "1",
    trigger: str | Sequence[str],
    exit_on: str | Sequence[str] = (),
    reentry: str = "after_exit",
    trigger_where: Mapping[str, Any] | None = None,
) -> Callable[[JourneyFn], Journey]:
    """Declare a journey: `trigger` events start runs, `exit_on` goals (any channel) end them.

    `trigger_where` narrows the trigger to events with these property values.
    """

    def decorate(fn: JourneyFn) -> Journey:
        return make_journey(id, version, trigger, exit_on, reentry, fn, trigger_where=trigger_where)

    return decorate
