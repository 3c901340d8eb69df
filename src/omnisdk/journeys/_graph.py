"""A declarative journey's graph: its checks (one action per node, known targets, no cycle) and
its Mermaid diagram. Shared by the compiler (`_declarative.py`) and `Journey.mermaid()`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

from .._errors import ValidationError
from ..experiments._assign import Split

__all__ = ["ACTIONS", "OPERATORS", "node_action", "duration", "to_mermaid", "validate"]

ACTIONS: Final = ("send", "sleep", "wait_for", "branch", "split", "experiment", "exit")
OPERATORS: Final = ("equals", "not_equals", "in", "exists", "gt", "gte", "lt", "lte")
_NODE_KEYS: Final = {
    "send": {"send", "channel", "channels", "data", "purpose", "topic", "next"},
    "sleep": {"sleep", "next"},
    "wait_for": {"wait_for", "where", "timeout", "next", "on_timeout"},
    "branch": {"branch", "else"},
    "split": {"split"},
    "experiment": {"experiment", "variants", "branches", "holdouts", "purpose"},
    "exit": {"exit"},
}


def duration(value: Any, field: str) -> timedelta:
    if not isinstance(value, Mapping) or not value:
        raise ValidationError("expected a duration like {days: 3} or {hours: 1}", field=field, value=value)
    try:
        return timedelta(**{str(k): float(v) for k, v in value.items()})
    except (TypeError, ValueError):
        raise ValidationError("expected timedelta keywords (weeks, days, hours, minutes, seconds)",
                              field=field, value=value) from None


def node_action(node_id: str, spec: Any, field: str) -> str:
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
    if action == "experiment":
        shares = spec.get("variants") or {}
        return [(f"{variant} {_percent(shares.get(variant))}", target)
                for variant, target in (spec.get("branches") or {}).items()]
    return [("", spec["next"])] if spec.get("next") else []


def _percent(share: Any) -> str:
    return f"{share * 100:g}%" if isinstance(share, int | float) else "?"


def _check_experiment(spec: Mapping[str, Any], field: str) -> None:
    """A named experiment, shares that add up to 1, and branches only for its variants."""
    if not isinstance(spec["experiment"], str) or not spec["experiment"]:
        raise ValidationError("expected the experiment's name", field=f"{field}.experiment", value=spec["experiment"])
    variants = spec.get("variants")
    holdouts = spec.get("holdouts", ())
    try:
        Split(variants if isinstance(variants, Mapping) else {}, holdouts=holdouts)
    except ValidationError as exc:
        raise ValidationError(str(exc).removeprefix(f"{exc.field}: "), field=f"{field}.{exc.field}",
                              value=variants) from None
    branches = spec.get("branches", {})
    if not isinstance(branches, Mapping):
        raise ValidationError("expected {variant: node}", field=f"{field}.branches", value=branches)
    unknown = sorted(set(branches) - set(variants or {}))
    if unknown:
        raise ValidationError(f"not among the variants: {', '.join(map(repr, unknown))}", field=f"{field}.branches",
                              value=unknown)


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


def validate(definition: Mapping[str, Any]) -> tuple[str, dict[str, Mapping[str, Any]]]:
    name = str(definition.get("id", "journey"))
    nodes = definition.get("nodes")
    if not isinstance(nodes, Mapping) or not nodes:
        raise ValidationError("a declarative journey needs a non-empty `nodes` mapping", field=f"{name}.nodes")
    start = definition.get("start", next(iter(nodes)))
    if start not in nodes:
        raise ValidationError(f"no node {start!r}", field=f"{name}.start", value=start)
    for node_id, spec in nodes.items():
        field = f"{name}.nodes.{node_id}"
        action = node_action(node_id, spec, field)
        if action == "send" and not isinstance(spec["send"], str):
            raise ValidationError("expected a template name", field=f"{field}.send", value=spec["send"])
        if action == "sleep":
            duration(spec["sleep"], f"{field}.sleep")
        if action == "wait_for":
            if not isinstance(spec["wait_for"], str):
                raise ValidationError("expected an event name", field=f"{field}.wait_for", value=spec["wait_for"])
            if spec.get("timeout") is not None:
                duration(spec["timeout"], f"{field}.timeout")
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
        if action == "experiment":
            _check_experiment(spec, field)
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
        for _, target in _edges(spec, node_action(node_id, spec, name)):
            visit(target, [*path, node_id])
        state[node_id] = 2

    visit(start, [])


def _mermaid_id(node_id: str) -> str:
    return "n_" + "".join(c if c.isalnum() or c == "_" else "_" for c in node_id)


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def to_mermaid(definition: Mapping[str, Any]) -> str:
    """A Mermaid flowchart of a declarative journey (paste it into any Markdown that renders Mermaid)."""
    start, nodes = validate(definition)
    triggers = definition.get("trigger")
    trigger_text = triggers if isinstance(triggers, str) else " / ".join(triggers or ())
    lines = ["flowchart TD", "    trigger((" + _label(trigger_text) + ")) --> " + _mermaid_id(start)]
    for node_id, spec in nodes.items():
        action = node_action(node_id, spec, node_id)
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
        elif action == "experiment":
            shape = "{{" + _label(f"{node_id}: experiment {spec['experiment']}") + "}}"
        else:
            shape = "(((" + _label(f"{node_id}: exit") + ")))"
        lines.append(f"    {mid}{shape}")
        for label, target in _edges(spec, action):
            arrow = f" -->|{_label(label)}| " if label else " --> "
            lines.append(f"    {mid}{arrow}{_mermaid_id(target)}")
    return "\n".join(lines) + "\n"
