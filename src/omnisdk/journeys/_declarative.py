"""Declarative journeys: a dict/YAML graph compiled onto the same replay runtime, and its diagram.

```yaml
id: welcome
version: "1"
trigger: Signed Up
exit_on: [Order Completed]
start: hello                      # default: the first node
nodes:
  hello:   {send: welcome-1, channel: email, next: pause}
  pause:   {sleep: {days: 3}, next: bought}
  bought:  {wait_for: Order Completed, timeout: {days: 4}, next: thanks, on_timeout: vip}
  vip:     {branch: [{if: {field: customer.traits.vip, equals: true}, next: call}], else: ab}
  ab:      {split: {coupon: 50, reminder: 50}}
  coupon:  {send: coupon, channels: [sms, email]}
  subject: {experiment: subject-test, variants: {a: 0.45, b: 0.45, none: 0.1}, holdouts: [none],
            branches: {a: subject-a, b: subject-b}}   # `none` has no branch: the run ends, no message
  ...
```

Node ids are the step names, so a new version may add nodes without disturbing runs in flight.
Branch, split and experiment decisions are memoised steps: a replay takes the branch the run took
before. An experiment node assigns the customer's variant (`ctx.experiment`, an exposure recorded
once) and follows `branches[variant]`; a variant without a branch, such as a holdout, ends the run.
The graph must be acyclic (a node is a step, and a step runs once per run).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._errors import ValidationError
from ._context import JourneyContext
from ._decorator import Journey, make_journey
from ._graph import OPERATORS, duration, node_action, to_mermaid, validate

__all__ = ["from_dict", "from_yaml", "to_mermaid"]


def _lookup(ctx: JourneyContext, path: str) -> Any:
    root, *parts = path.split(".")
    value: Any = ctx.customer if root == "customer" else {
        "properties": ctx.trigger.properties, "channel": ctx.trigger.channel, "name": ctx.trigger.name,
    }
    for part in parts:
        value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
        if value is None:
            return None
    return value


def _holds(ctx: JourneyContext, condition: Mapping[str, Any]) -> bool:
    if "event" in condition:
        return any(tp.seq is not None and tp.seq > (ctx.trigger.seq or 0) for tp in ctx.history(condition["event"]))
    value = _lookup(ctx, condition["field"])
    tests: dict[str, Callable[[Any], bool]] = {
        "equals": lambda v: value == v,
        "not_equals": lambda v: value != v,
        "in": lambda v: value in v,
        "exists": lambda v: (value is not None) == bool(v),
        "gt": lambda v: value is not None and value > v,
        "gte": lambda v: value is not None and value >= v,
        "lt": lambda v: value is not None and value < v,
        "lte": lambda v: value is not None and value <= v,
    }
    op = next(o for o in OPERATORS if o in condition)
    return tests[op](condition[op])


def _compile(start: str, nodes: Mapping[str, Mapping[str, Any]]) -> Callable[[JourneyContext], Any]:
    async def run(ctx: JourneyContext) -> None:
        node_id: str | None = start
        while node_id is not None:
            spec = nodes[node_id]
            action = node_action(node_id, spec, node_id)
            following: Any = spec.get("next")
            if action == "send":
                await ctx.send(node_id, spec["send"], channel=spec.get("channel"), channels=spec.get("channels"),
                               data=spec.get("data"), purpose=spec.get("purpose", "marketing"),
                               topic=spec.get("topic"))
            elif action == "sleep":
                await ctx.sleep(node_id, duration(spec["sleep"], node_id))
            elif action == "wait_for":
                timeout = duration(spec["timeout"], node_id) if spec.get("timeout") is not None else None
                got = await ctx.wait_for(node_id, spec["wait_for"], where=spec.get("where"), timeout=timeout)
                following = spec.get("next") if got is not None else spec.get("on_timeout")
            elif action == "branch":
                def choose(spec: Mapping[str, Any] = spec) -> Any:
                    return next((r["next"] for r in spec["branch"] if _holds(ctx, r["if"])), spec.get("else"))

                following = await ctx.run(node_id, choose)
            elif action == "split":
                def pick(spec: Mapping[str, Any] = spec, node_id: str = node_id) -> Any:
                    targets = list(spec["split"])
                    weights = [float(spec["split"][t]) for t in targets]
                    return random.Random(f"{ctx.run_id}:{node_id}").choices(targets, weights)[0]

                following = await ctx.run(node_id, pick)
            elif action == "experiment":
                variant = await ctx.experiment(spec["experiment"], spec["variants"], step=node_id,
                                               holdouts=spec.get("holdouts", ()),
                                               purpose=spec.get("purpose", "marketing"))
                following = (spec.get("branches") or {}).get(variant)  # no branch (a holdout): the run ends
            else:
                return
            node_id = following

    return run


def from_dict(definition: Mapping[str, Any]) -> Journey:
    """Compile a declarative journey (see the module docstring for the format)."""
    if not isinstance(definition, Mapping):
        raise ValidationError("expected a dict", field="journey", value=definition)
    start, nodes = validate(definition)
    if "trigger" not in definition:
        raise ValidationError("a journey needs a trigger event", field=f"{definition.get('id')}.trigger")
    return make_journey(
        definition.get("id", ""), str(definition.get("version", "1")), definition["trigger"],
        definition.get("exit_on", ()), definition.get("reentry", "after_exit"), _compile(start, nodes),
        graph={**definition, "start": start}, trigger_where=definition.get("trigger_where"),
    )


def from_yaml(source: str | Path) -> Journey:
    """Compile a declarative journey from YAML text or a .yaml/.yml/.json file."""
    import yaml

    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source
                                    and source.endswith((".yaml", ".yml", ".json"))):
        path = Path(source)
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"cannot read {path}: {exc.strerror}", field="journey", value=str(path)) from None
    try:
        definition = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise ValidationError(f"invalid YAML: {exc}", field="journey") from None
    return from_dict(definition)


