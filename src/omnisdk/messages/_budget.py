"""Template budgets: how much work one render may do, counted inside the sandbox as it works.

A Python thread cannot be stopped from outside, so a watchdog could only give up waiting on a
runaway render, never end it. The limits are enforced where the work is done instead: the
sandbox counts every loop iteration and call, caps `range`, refuses a string or list operation
whose result would be too large *before* building it, counts what the template outputs, and looks
at the clock as it counts. A render over budget raises `TemplateBudgetExceeded` naming the limit,
which fails its own delivery; the runner goes on with the others.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import attrs
from jinja2 import nodes

from .._errors import ConfigError, TemplateBudgetExceeded

__all__ = ["METER", "Meter", "TemplateBudget", "checked_range", "precheck_call", "static_check"]

#: Digits of an integer a template may compute (`10 ** 10 ** 10` would never finish).
MAX_INT_DIGITS = 4300
_NUMBER = re.compile(r"\d+")


@attrs.frozen(kw_only=True)
class TemplateBudget:
    """`[templates.budget]`: the most one render of a message (all its fields together) may do."""

    #: Loop iterations and calls (functions, macros, methods), all loops together.
    max_loop_iterations: int = 100_000
    #: Items in one `range(...)`.
    max_range: int = 10_000
    #: Characters output, and the size of any one string or list built on the way.
    max_output_chars: int = 1_000_000
    #: Wall-clock seconds.
    max_render_seconds: float = 1.0

    @classmethod
    def from_config(cls, templates: Mapping[str, Any]) -> TemplateBudget:
        section = templates.get("budget", {})
        if not isinstance(section, Mapping):
            raise ConfigError("must be a table", field="templates.budget")
        fields = {a.name: a.type for a in attrs.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in section.items():
            field = f"templates.budget.{key}"
            if key not in fields:
                raise ConfigError(f"unknown key; expected one of {', '.join(fields)}", field=field)
            whole = key != "max_render_seconds"
            number = isinstance(value, int) if whole else isinstance(value, int | float)
            if not number or isinstance(value, bool) or not value > 0 or not math.isfinite(value):
                raise ConfigError(f"expected a positive {'integer' if whole else 'number'}", field=field)
            kwargs[key] = value
        return cls(**kwargs)


class Meter:
    """One render's spending against its budget."""

    __slots__ = ("budget", "deadline", "output", "produced", "steps")

    def __init__(self, budget: TemplateBudget) -> None:
        self.budget = budget
        self.deadline = time.monotonic() + budget.max_render_seconds
        self.steps = 0
        self.output = 0
        self.produced = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.budget.max_loop_iterations:
            raise _over("max_loop_iterations", self.budget.max_loop_iterations, "loop iterations and calls")
        if time.monotonic() > self.deadline:
            raise _over("max_render_seconds", self.budget.max_render_seconds, "seconds of rendering")

    def emit(self, size: int) -> None:
        """A field rendered: the output of all fields together is bounded."""
        self.output += size
        if self.output > self.budget.max_output_chars:
            raise _over("max_output_chars", self.budget.max_output_chars, "characters of output")

    def produce(self, size: int) -> None:
        """Output of a part that can run many times, counted as it comes (a loop stops when over)."""
        self.produced += size
        if self.produced > self.budget.max_output_chars:
            raise _over("max_output_chars", self.budget.max_output_chars, "characters of output")

    def size(self, size: int) -> None:
        """A string or list about to be built: refused when larger than the whole output may be."""
        if size > self.budget.max_output_chars:
            raise _over("max_output_chars", self.budget.max_output_chars, "characters in one value")

    def built(self, value: Any) -> Any:
        if isinstance(value, str | list | tuple):
            self.size(len(value))
        return value

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.step()
            yield item

    def binop(self, operator: str, left: Any, right: Any) -> None:
        """Refuse `*`, `**` and `%` whose result would be too large, before Python computes it."""
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int):
                    self.size(len(seq) * max(n, 0))
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
            if right * math.log10(abs(left)) > MAX_INT_DIGITS:
                raise _over("max_output_chars", MAX_INT_DIGITS, "digits in one number")
        elif operator == "%" and isinstance(left, str):
            self.widths(left, right if isinstance(right, tuple) else (right,), {})

    def widths(self, spec: str, args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
        """A format string's widths (`%999999999d`, `{:>999999999}`, `*` from the arguments)."""
        numbers = [int(n) for n in _NUMBER.findall(spec)]
        numbers += [a for a in (*args, *kwargs.values()) if isinstance(a, int) and not isinstance(a, bool)]
        for n in numbers:
            self.size(n)


#: The meter of the render running in this context (None outside a render: compiling, checking).
METER: ContextVar[Meter | None] = ContextVar("omnisdk_template_meter", default=None)


def _over(limit: str, value: float, what: str) -> TemplateBudgetExceeded:
    return TemplateBudgetExceeded(f"over the budget of {value:g} {what} (templates.budget.{limit})",
                                  limit=f"templates.budget.{limit}")


#: Methods of str whose result grows with an argument, and how big it would be.
_GROWING: dict[str, Callable[[str, tuple[Any, ...]], int]] = {
    "center": lambda s, a: max(len(s), a[0] if a and isinstance(a[0], int) else 0),
    "ljust": lambda s, a: max(len(s), a[0] if a and isinstance(a[0], int) else 0),
    "rjust": lambda s, a: max(len(s), a[0] if a and isinstance(a[0], int) else 0),
    "zfill": lambda s, a: max(len(s), a[0] if a and isinstance(a[0], int) else 0),
    "expandtabs": lambda s, a: len(s) * (a[0] if a and isinstance(a[0], int) else 8),
    "replace": lambda s, a: len(s) + (s.count(a[0]) * len(a[1]) if len(a) > 1 and isinstance(a[0], str)
                                      and isinstance(a[1], str) else 0),
}


def precheck_call(meter: Meter, obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse a call on a string whose result would be too large, before it is made."""
    obj = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format at attribute access
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(obj, "__name__", "")
    if name in ("format", "format_map"):
        meter.widths(owner, args, kwargs)
    elif name in _GROWING:
        meter.size(_GROWING[name](owner, args))


def static_check(tree: nodes.Template, budget: TemplateBudget) -> None:
    """What can be known before rendering: a constant `range` too large, or constant loops nested
    so deep that they would exceed the iteration budget whatever the data."""

    def walk(node: nodes.Node, outer: int) -> None:
        for child in node.iter_child_nodes():
            if isinstance(child, nodes.For):
                size = _constant_range(child.iter, budget)
                if size is not None and outer * size > budget.max_loop_iterations:
                    raise _over("max_loop_iterations", budget.max_loop_iterations,
                                f"loop iterations and calls ({outer * size:,} by constant ranges)")
                walk(child, outer * (size or 1))
            else:
                walk(child, outer)

    walk(tree, 1)


def _constant_range(node: nodes.Node, budget: TemplateBudget) -> int | None:
    """The length of `range(<constants>)` (raising when over `max_range`), else None."""
    if not (isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "range"):
        return None
    if node.kwargs or node.dyn_args or node.dyn_kwargs:
        return None
    try:
        args = [_constant_int(a) for a in node.args]
    except nodes.Impossible:
        return None
    if not 1 <= len(args) <= 3 or (len(args) == 3 and args[2] == 0):
        return None
    return checked_range(range(*args), budget)


def checked_range(items: range, budget: TemplateBudget) -> int:
    """The length of `items`; `TemplateBudgetExceeded` when over `max_range`."""
    try:
        size = len(items)
    except OverflowError:  # more than sys.maxsize items
        size = budget.max_range + 1
    if size > budget.max_range:
        raise _over("max_range", budget.max_range, "items in one range")
    return size


def _constant_int(node: nodes.Node) -> int:
    """An integer literal, or a product or power of them that stays small (no folding of `10 ** 10 ** 10`)."""
    if isinstance(node, nodes.Const) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, nodes.Neg):
        return -_constant_int(node.node)
    if isinstance(node, nodes.Mul | nodes.Add | nodes.Sub):
        left, right = _constant_int(node.left), _constant_int(node.right)
        return left * right if isinstance(node, nodes.Mul) else left + right if isinstance(node, nodes.Add) \
            else left - right
    if isinstance(node, nodes.Pow):
        base, exponent = _constant_int(node.left), _constant_int(node.right)
        if exponent < 0 or (abs(base) > 1 and exponent * math.log10(abs(base)) > 30):
            return 10 ** 31  # a range of that is over any budget; no need to compute it
        return int(base**exponent)
    raise nodes.Impossible()
