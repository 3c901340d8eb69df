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
  ...
```

Node ids are the step names, so a new version may add nodes without disturbing runs in flight.
Branch and split decisions are memoised steps: a replay takes the branch the run took before.
The graph must be acyclic (a node is a step, and a step runs once per run).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from .._errors import ValidationError
from ._context import JourneyContext
from ._decorator import Journey, make_journey

__all__ = ["from_dict", "from_yaml", "to_mermaid"]

ACTIONS: Final = ("send", "sleep", "wait_for", "branch", "split", "exit")
OPERATORS: Final = ("equals", "not_equals", "in", "exists", "gt", "gte", "lt", "lte")
_NODE_KEYS: Final = {
    "send": {"send", "channel", "channels", "data", "purpose", "next"},
    "sleep": {"sleep", "next"},
    "wait_for": {"wait_for", "where", "timeout", "next", "on_timeout"},
    "branch": {"branch", "else"},
    "split": {"split"},
    "exit": {"exit"},
}


def _duration(value: Any, field: str) -> timedelta:
    if not isinstance(value, Mapping) or not value:
        raise ValidationError("expected a duration like {days: 3} or {hours: 1}", field=field, value=value)
    try:
        return timedelta(**{str(k): float(v) for k, v in value.items()})
    except (TypeError, ValueError):
        raise ValidationError("expected timedelta keywords (weeks, days, hours, minutes, seconds)",
                              field=field, value=value) from None


def _action(node_id: str, spec: Any, field: str) -> str:
    if not isinstance(spec, Mapping):
        raise ValidationError("a node is a dict with one action: " + ", ".join(ACTIONS), field=field)
    actions = [a for a in ACTIONS if a in spec]
    if len(actions) != 1:
        raise ValidationError(f"node {node_id!r} needs exactly one action of {', '.join(ACTIONS)}", field=field)
    unknown = set(spec) - _NODE_KEYS[actions[0]]
    if unknown:
        raise ValidationError(f"unknown keys for a {actions[0]} node: {', '.join(sorted(map(str, unknown)))}",
                              field=field)
    return actions[0]


def _edges(spec: Mapping[str, Any], action: str) -> list[tuple[str, str]]:
    """(label, target) of every way out of a node."""
    if action == "wait_for":
        return [(label, spec[key]) for key, label in (("next", "received"), ("on_timeout", "timeout")) if spec.get(key)]
    if action == "branch":
        edges = [(_describe(rule.get("if", {})), rule.get("next")) for rule in spec["branch"]]
        return edges + ([("else", spec["else"])] if spec.get("else") else [])
    if action == "split":
        return [(f"{weight}%", target) for target, weight in spec["split"].items()]
    return [("", spec["next"])] if spec.get("next") else []


def _describe(condition: Mapping[str, Any]) -> str:
    if "event" in condition:
        return f"did {condition['event']}"
    op = next((o for o in OPERATORS if o in condition), "exists")
    return f"{condition.get('field')} {op} {json.dumps(condition.get(op))}" if op != "exists" else \
        f"{condition.get('field')} exists"


def _check_condition(condition: Any, field: str) -> None:
    if not isinstance(condition, Mapping):
        raise ValidationError("expected {field: ..., equals: ...} or {event: ...}", field=field, value=condition)
    if "event" in condition:
        return
    if not isinstance(condition.get("field"), str) or not condition["field"].startswith(("customer.", "trigger.")):
        raise ValidationError("field must start with customer. or trigger.", field=f"{field}.field",
                              value=condition.get("field"))
    if sum(op in condition for op in OPERATORS) != 1:
        raise ValidationError(f"expected one operator of {', '.join(OPERATORS)}", field=field)


def _validate(definition: Mapping[str, Any]) -> tuple[str, dict[str, Mapping[str, Any]]]:
    name = str(definition.get("id", "journey"))
    nodes = definition.get("nodes")
    if not isinstance(nodes, Mapping) or not nodes:
        raise ValidationError("a declarative journey needs a non-empty `nodes` mapping", field=f"{name}.nodes")
    start = definition.get("start", next(iter(nodes)))
    if start not in nodes:
        raise ValidationError(f"no node {start!r}", field=f"{name}.start", value=start)
    for node_id, spec in nodes.items():
        field = f"{name}.nodes.{node_id}"
        action = _action(node_id, spec, field)
        if action == "send" and not isinstance(spec["send"], str):
            raise ValidationError("expected a template name", field=f"{field}.send", value=spec["send"])
        if action == "sleep":
            _duration(spec["sleep"], f"{field}.sleep")
        if action == "wait_for":
            if not isinstance(spec["wait_for"], str):
                raise ValidationError("expected an event name", field=f"{field}.wait_for", value=spec["wait_for"])
            if spec.get("timeout") is not None:
                _duration(spec["timeout"], f"{field}.timeout")
        if action == "branch":
            if not isinstance(spec["branch"], Sequence) or not spec["branch"]:
                raise ValidationError("expected a list of {if: condition, next: node}", field=f"{field}.branch")
            for i, rule in enumerate(spec["branch"]):
                _check_condition(rule.get("if") if isinstance(rule, Mapping) else None, f"{field}.branch[{i}].if")
        if action == "split":
            weights = spec["split"]
            if not isinstance(weights, Mapping) or not weights or not all(
                isinstance(w, int | float) and w > 0 for w in weights.values()
            ):
                raise ValidationError("expected {node: weight} with positive weights", field=f"{field}.split")
        for label, target in _edges(spec, action):
            if target not in nodes:
                raise ValidationError(f"{label or 'next'} leads to unknown node {target!r}", field=field, value=target)
    _check_acyclic(name, start, nodes)
    return start, dict(nodes)


def _check_acyclic(name: str, start: str, nodes: Mapping[str, Mapping[str, Any]]) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node_id: str, path: list[str]) -> None:
        if state.get(node_id) == 1:
            raise ValidationError("the graph has a cycle: " + " -> ".join([*path, node_id]), field=f"{name}.nodes")
        if state.get(node_id) == 2:
            return
        state[node_id] = 1
        spec = nodes[node_id]
        for _, target in _edges(spec, _action(node_id, spec, name)):
            visit(target, [*path, node_id])
        state[node_id] = 2

    visit(start, [])


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
            action = _action(node_id, spec, node_id)
            following: Any = spec.get("next")
            if action == "send":
                await ctx.send(node_id, spec["send"], channel=spec.get("channel"), channels=spec.get("channels"),
                               data=spec.get("data"), purpose=spec.get("purpose", "marketing"))
            elif action == "sleep":
                await ctx.sleep(node_id, _duration(spec["sleep"], node_id))
            elif action == "wait_for":
                timeout = _duration(spec["timeout"], node_id) if spec.get("timeout") is not None else None
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
            else:
                return
            node_id = following

    return run


def from_dict(definition: Mapping[str, Any]) -> Journey:
    """Compile a declarative journey (see the module docstring for the format)."""
    if not isinstance(definition, Mapping):
        raise ValidationError("expected a dict", field="journey", value=definition)
    start, nodes = _validate(definition)
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


def _mermaid_id(node_id: str) -> str:
    return "n_" + "".join(c if c.isalnum() or c == "_" else "_" for c in node_id)


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def to_mermaid(definition: Mapping[str, Any]) -> str:
    """A Mermaid flowchart of a declarative journey (paste it into any Markdown that renders Mermaid)."""
    start, nodes = _validate(definition)
    triggers = definition.get("trigger")
    trigger_text = triggers if isinstance(triggers, str) else " / ".join(triggers or ())
    lines = ["flowchart TD", "    trigger((" + _label(trigger_text) + ")) --> " + _mermaid_id(start)]
    for node_id, spec in nodes.items():
        action = _action(node_id, spec, node_id)
        mid = _mermaid_id(node_id)
        if action == "send":
            channels = spec.get("channels") or ([spec["channel"]] if spec.get("channel") else ["preferred"])
            shape = "[" + _label(f"{node_id}: send {spec['send']} via " + " > ".join(channels)) + "]"
        elif action == "sleep":
            amount = ", ".join(f"{v} {k}" for k, v in spec["sleep"].items())
            shape = "([" + _label(f"{node_id}: sleep {amount}") + "])"
        elif action == "wait_for":
            shape = "{" + _label(f"{node_id}: wait for {spec['wait_for']}") + "}"
        elif action == "branch":
            shape = "{" + _label(f"{node_id}: branch") + "}"
        elif action == "split":
            shape = "{{" + _label(f"{node_id}: random split") + "}}"
        else:
            shape = "(((" + _label(f"{node_id}: exit") + ")))"
        lines.append(f"    {mid}{shape}")
        for label, target in _edges(spec, action):
            arrow = f" -->|{_label(label)}| " if label else " --> "
            lines.append(f"    {mid}{arrow}{_mermaid_id(target)}")
    return "\n".join(lines) + "\n"
