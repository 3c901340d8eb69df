"""Rendering a message for one channel: Jinja2's immutable sandbox, `StrictUndefined`, brand partials.

A template can read the profile, the trigger, recent history on every channel, `data` and the
brand kit, and can call `link(url)`; it cannot reach Python internals, change the objects it is
given, or silently print an empty string for a variable that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from html import escape, unescape
from typing import Any, cast

import attrs
import jinja2
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.tests import TESTS

from .._content import Content, Message
from .._customers import Customer
from .._errors import TemplateBudgetExceeded, TemplateError
from .._touchpoints import Touchpoint
from ._brand import BrandKit
from ._budget import METER, Meter, TemplateBudget, checked_range, precheck_call, static_check
from ._links import Links, LinkSettings
from ._products import Shop, product_functions

__all__ = ["RenderContext", "Renderer", "render", "source_reads"]

current = METER.get

_HREF = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"'<>\s]+)\2""", re.IGNORECASE)
_CACHE_LIMIT = 4096
_PARSER = jinja2.Environment()


def source_reads(source: str) -> frozenset[str] | None:
    """The variables a template's source reads; None when it may read any (a partial it includes
    or imports, a filter or test that is not Jinja's own and may be handed the whole context) or
    does not parse."""
    try:
        tree = _PARSER.parse(source)
    except jinja2.TemplateSyntaxError:
        return None
    if any(tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends))) or any(
        node.name not in (FILTERS if isinstance(node, nodes.Filter) else TESTS)
        for node in tree.find_all((nodes.Filter, nodes.Test))
    ):
        return None
    return frozenset(meta.find_undeclared_variables(tree))


@attrs.frozen(kw_only=True)
class RenderContext:
    """Everything a template may read for one delivery.

    `delivery_id`, `journey`, `step` and `run_id` go into tracked and unsubscribe links for
    attribution. `renderer` is the client's (`omni.templates.renderer`: brand kit, plugin
    filters, link signing); None renders with a plain one (no brand, links get UTM only).
    """

    customer: Customer
    trigger: Touchpoint | None = None
    #: The customer's recent touchpoints on every channel, oldest first.
    history: Sequence[Touchpoint] = ()
    data: Mapping[str, Any] = attrs.field(factory=dict)
    delivery_id: str | None = None
    journey: str | None = None
    step: str | None = None
    run_id: str | None = None
    #: The send's topic: it rides in unsubscribe and preference links (one-click leaves that topic).
    topic: str | None = None
    #: Overrides the customer's locale (previews).
    locale: str | None = None
    renderer: Renderer | None = None
    #: The catalog and recommendations `products()` and `recommendations()` read (None: they fail).
    shop: Shop | None = None

    @property
    def brand(self) -> BrandKit:
        return (self.renderer or _plain()).brand


class Renderer:
    """Compiled templates (cached by source), the brand kit, plugin filters and tracked links."""

    def __init__(
        self,
        *,
        brand: BrandKit | None = None,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        links: Links | None = None,
        budget: TemplateBudget | None = None,
    ) -> None:
        self.brand = brand or BrandKit()
        self.links = links
        self.budget = budget or TemplateBudget()
        self._utm_only = links or Links(LinkSettings(track=False), b"")
        loader = jinja2.DictLoader(dict(self.brand.partials))
        self._envs = {html: _environment(loader, html, filters or {}, self.budget) for html in (False, True)}
        self._cache: dict[tuple[bool, str], tuple[jinja2.Template, frozenset[str] | None]] = {}

    def compile(self, source: str, *, html: bool) -> jinja2.Template:
        """The compiled template for `source` (raises Jinja's errors; `check` turns them into ours)."""
        return self._compiled(source, html)[0]

    def _compiled(self, source: str, html: bool) -> tuple[jinja2.Template, frozenset[str] | None]:
        """The compiled template and the variables it reads (None: any, see `source_reads`)."""
        key = (html, source)
        compiled = self._cache.get(key)
        if compiled is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            template = self._envs[html].from_string(source)
            # Jinja gives a template a ChainMap over the environment's globals, and every render copies
            # it into the context: a plain dict copies in a fraction of the time (half of a short
            # render). Nothing changes the environment's globals once the renderer is built.
            template.globals = dict(template.globals)
            compiled = self._cache[key] = (template, source_reads(source))
        return compiled

    def check(self, message: Message) -> None:
        """Compile every field of every rendition and locale, so a syntax error shows when the
        template is added rather than when the first customer should have received it."""
        for locale, variant in (("", message), *message.locales.items()):
            for channel, content in variant.renditions.items():
                for field in content.template_fields:
                    source = getattr(content, field)
                    if source is None:
                        continue
                    try:
                        self.compile(source, html=_is_html(field))
                    except Exception as exc:
                        raise _template_error(exc, message.id, channel, field, locale) from None

    def render(self, message: Message, channel: str, context: RenderContext) -> Content:
        variant = message.for_locale(context.locale or context.customer.locale)
        content = _localised(variant.renditions.get(channel), message.renditions.get(channel))
        if content is None:
            raise TemplateError(f"template {message.id!r} has no {channel} rendition "
                                f"(it has: {', '.join(message.channels) or 'none'})")
        locale = "" if variant is message else _locale_key(message, variant)
        attribution = {
            "customer_id": context.customer.id, "channel": channel, "template": message.id,
            "delivery_id": context.delivery_id, "journey": context.journey, "step": context.step,
            "run_id": context.run_id, "topic": context.topic or _data_topic(context.data),
        }
        fields = []
        reads: set[str] | None = set()
        for field in content.template_fields:
            source = getattr(content, field)
            if source is None:
                continue
            html = _is_html(field)
            try:
                template, names = self._compiled(source, html)
            except Exception as exc:
                raise _template_error(exc, message.id, channel, field, locale) from None
            reads = None if reads is None or names is None else reads | names
            fields.append((field, html, template))
        variables = self._variables(message, variant, channel, context, attribution, reads)
        rendered: dict[str, Any] = {}
        meter = Meter(self.budget)  # one budget for all the fields of this rendition
        token = METER.set(meter)
        try:
            for field, html, template in fields:
                try:
                    text = template.render(variables)
                    meter.emit(len(text))
                except Exception as exc:  # a template never takes the runner down: it fails its delivery
                    raise _template_error(exc, message.id, channel, field, locale) from None
                rendered[field] = self._track(text, html, field, channel, attribution)
        finally:
            METER.reset(token)
        return attrs.evolve(content, **rendered)

    def _variables(
        self, message: Message, variant: Message, channel: str, context: RenderContext,
        attribution: Mapping[str, str | None], reads: set[str] | None = None,
    ) -> dict[str, Any]:
        """What the templates may read; with `reads`, only the names they do (the rest cost a render
        time for nothing: link signers, product functions, the history's index)."""
        links = self._utm_only

        def link(url: str, **utm: Any) -> str:
            return links.tracked(url, attribution, **utm)

        def wanted(name: str) -> bool:
            return reads is None or name in reads

        variables: dict[str, Any] = {"customer": context.customer, "channel": channel, "link": link}
        if wanted("trigger"):
            variables["trigger"] = context.trigger
        if wanted("event"):
            variables["event"] = context.trigger.properties if context.trigger is not None else {}
        if wanted("history"):
            variables["history"] = list(context.history)
        if wanted("latest"):
            variables["latest"] = {tp.name: tp for tp in context.history}
        if wanted("data"):
            variables["data"] = {**message.data, **variant.data, **context.data}
        if wanted("brand"):
            variables["brand"] = self.brand.variables
        if wanted("delivery"):
            variables["delivery"] = {"id": context.delivery_id, "journey": context.journey, "step": context.step,
                                     "run_id": context.run_id, "template": message.id}
        if wanted("products") or wanted("recommendations"):
            variables.update(product_functions(context.shop, context.customer, channel, link,
                                               printed=channel == "direct_mail"))
        if self.links is not None:
            if wanted("unsubscribe_url"):
                variables["unsubscribe_url"] = _Unsubscribe(self.links, attribution)
            if wanted("preferences_url"):
                variables["preferences_url"] = _Unsubscribe(self.links, attribution, preferences=True)
        return variables

    def _track(self, text: str, html: bool, field: str, channel: str, attribution: Mapping[str, str | None]) -> str:
        links = self.links
        if links is None or not links.settings.track:
            return text
        if html:
            def rewrite(match: re.Match[str]) -> str:
                url = unescape(match[3])
                if links.is_tracked(url):
                    return match[0]
                return f"{match[1]}{match[2]}{escape(links.tracked(url, attribution))}{match[2]}"

            return _HREF.sub(rewrite, text)
        if channel == "push" and field == "url" and text.startswith(("http://", "https://")) \
                and not links.is_tracked(text):
            return links.tracked(text, attribution)
        return text


def _data_topic(data: Mapping[str, Any]) -> str | None:
    topic = data.get("topic")
    return topic if isinstance(topic, str) else None


class _Unsubscribe:
    """The unsubscribe (or preference-centre) link, signed only if a template prints it: most never do."""

    __slots__ = ("_attribution", "_links", "_preferences", "_text")

    def __init__(self, links: Links, attribution: Mapping[str, str | None], *, preferences: bool = False) -> None:
        self._links = links
        self._attribution = attribution
        self._preferences = preferences
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            self._text = (self._links.preferences_url(self._attribution) if self._preferences
                          else self._links.unsubscribe_url(self._attribution))
        return self._text

    def __html__(self) -> str:
        return str(escape(str(self)))


def render(message: Message, channel: str, context: RenderContext) -> Content:
    """`message`'s rendition for `channel` in the customer's locale, every template field rendered.

    Raises `TemplateError` naming the template, channel, field (and locale) and the undefined
    variable or syntax error. Uses `context.renderer` (the client's brand, filters and links).
    """
    return (context.renderer or _plain()).render(message, channel, context)


_PLAIN: list[Renderer] = []


def _plain() -> Renderer:
    if not _PLAIN:
        _PLAIN.append(Renderer())
    return _PLAIN[0]


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, metered (`_budget`): every loop iteration and call is counted, a
    `*`, `**` or `%` too large for the budget is refused before it is computed, and everything a
    template outputs is counted.

    Its verdict on an attribute depends on the object's type (functions, frames, mutable
    containers) and the name: for a profile's public attributes (fields, properties, traits) it is
    always "safe", so that verdict is given without the checks, which cost more than the rest of
    reading `customer.first_name`. Names with an underscore still go through them."""

    intercepted_binops = frozenset({"*", "**", "%"})
    budget = TemplateBudget()

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if type(obj) is Customer and not attr.startswith("_"):
            return True
        return super().is_safe_attribute(obj, attr, value)

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        meter = current()
        if meter is None:
            return super().call(context, obj, *args, **kwargs)
        meter.step()
        precheck_call(meter, obj, args, kwargs)
        return meter.built(super().call(context, obj, *args, **kwargs))

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        meter = current()
        if meter is not None:
            meter.step()
            meter.binop(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        return meter.built(result) if meter is not None else result

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Check what can be known before rendering, then route every loop's items through the
        meter, and the output of every part that can run many times (loop and macro bodies, captured
        blocks). The rest runs once: its size is the rendered text's, checked after the render."""
        tree = super()._parse(source, name, filename)
        static_check(tree, self.budget)
        for loop in tree.find_all(nodes.For):
            loop.iter = _metering(cast(nodes.Expr, loop.iter), "omnisdk_iterate")
        _meter_repeated_output(tree, repeated=False)
        tree.set_environment(self)
        return tree


_REPEATABLE = (nodes.For, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.AssignBlock)


def _meter_repeated_output(node: nodes.Node, *, repeated: bool) -> None:
    for child in node.iter_child_nodes():
        if repeated and isinstance(child, nodes.Output):
            # one call per expression; the literal text's length rides on the first one
            static = sum(len(part.data) for part in child.nodes if isinstance(part, nodes.TemplateData))
            exprs = [i for i, part in enumerate(child.nodes) if not isinstance(part, nodes.TemplateData)]
            if not exprs:
                child.nodes.append(_metering(nodes.Const(""), "omnisdk_output", static))
            for n, i in enumerate(exprs):
                child.nodes[i] = _metering(child.nodes[i], "omnisdk_output", *((static,) if n == 0 else ()))
        _meter_repeated_output(child, repeated=repeated or isinstance(child, _REPEATABLE))


def _metering(node: nodes.Expr, name: str, *args: int) -> nodes.Expr:
    return nodes.Filter(node, name, [nodes.Const(a) for a in args], [], None, None, lineno=node.lineno)


@jinja2.pass_context  # never folded into a constant when the template is compiled
def _iterate(context: jinja2.runtime.Context, iterable: Any) -> Any:
    meter = current()
    return iterable if meter is None else meter.iterate(iterable)


@jinja2.pass_context
def _output(context: jinja2.runtime.Context, value: Any, static: int = 0) -> Any:
    """`value`, once its length and that of the literal text around it are counted."""
    meter = current()
    if meter is not None:
        meter.produce(static + (len(value) if isinstance(value, str) else len(str(value))))
    return value


class _Namespace(jinja2.utils.Namespace):
    """`namespace()`, whose values are size-checked: the one way a loop can grow a value."""

    def __setitem__(self, name: str, value: Any) -> None:
        meter = current()
        if meter is not None:
            meter.built(value)
        super().__setitem__(name, value)


def _capped_range(budget: TemplateBudget) -> Callable[..., range]:
    def range_(*args: int) -> range:
        items = range(*args)
        checked_range(items, budget)
        return items

    return range_


def _sized_filter(name: str, filter_: Callable[..., Any]) -> Callable[..., Any]:
    """A built-in filter whose result can grow with an argument (`center(10**9)`), checked first."""

    passes = 1 if hasattr(filter_, "jinja_pass_arg") else 0  # its context or environment comes first

    def checked(*given: Any, **kwargs: Any) -> Any:
        meter = current()
        if meter is None or len(given) <= passes:
            return filter_(*given, **kwargs)
        meter.step()
        value, args = given[passes], given[passes + 1:]
        text = value if isinstance(value, str) else ""
        if name == "format":
            meter.widths(text, args, kwargs)
        elif name in ("center", "indent"):
            width = args[0] if args else kwargs.get("width", 0)
            lines = text.count("\n") + 1 if name == "indent" else 1
            meter.size(len(text) + (width if isinstance(width, int) else len(str(width))) * lines)
        elif name == "replace" and len(args) >= 2:
            meter.size(len(str(value)) + str(value).count(str(args[0])) * len(str(args[1])))
        return meter.built(filter_(*given, **kwargs))

    checked.__name__ = filter_.__name__
    if passes:
        checked.jinja_pass_arg = filter_.jinja_pass_arg  # type: ignore[attr-defined]
    return checked


def _environment(
    loader: jinja2.BaseLoader, html: bool, filters: Mapping[str, Callable[..., Any]], budget: TemplateBudget
) -> jinja2.Environment:
    env = _Sandbox(
        loader=loader, undefined=jinja2.StrictUndefined, autoescape=html, keep_trailing_newline=True,
        auto_reload=False,
    )
    env.budget = budget
    env.globals.update(range=_capped_range(budget), namespace=_Namespace)
    for name in ("center", "indent", "format", "replace", "join", "wordwrap"):
        env.filters[name] = _sized_filter(name, env.filters[name])
    env.filters.update(filters)
    env.filters.update(omnisdk_iterate=_iterate, omnisdk_output=_output)
    return env


def _is_html(field: str) -> bool:
    return field == "html" or field.endswith("_html")


def _localised(local: Content | None, default: Content | None) -> Content | None:
    """The locale's rendition, with fields it leaves out (an HTML body, say) taken from the default one."""
    if local is None or default is None or local is default or type(local) is not type(default):
        return local or default
    given = {a.name: getattr(local, a.name) for a in attrs.fields(type(local))}
    return attrs.evolve(default, **{k: v for k, v in given.items() if v is not None and v != () and v != {}})


def _locale_key(message: Message, variant: Message) -> str:
    return next((key for key, value in message.locales.items() if value is variant), "")


def _template_error(exc: Exception, template: str, channel: str, field: str, locale: str) -> TemplateError:
    where = f"template {template!r}, {channel}.{field}" + (f" ({locale})" if locale else "")
    if isinstance(exc, TemplateBudgetExceeded):
        return TemplateBudgetExceeded(f"{where}: {exc}", limit=exc.limit)
    if isinstance(exc, TemplateError):
        return TemplateError(f"{where}: {exc}")
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateError(f"{where}: undefined variable: {exc.message}")
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateError(f"{where}: syntax error on line {exc.lineno}: {exc.message}")
    if isinstance(exc, jinja2.TemplateNotFound):
        return TemplateError(f"{where}: no brand partial named {exc.name!r}")
    if isinstance(exc, SecurityError):
        return TemplateError(f"{where}: not allowed in a template: {exc}")
    return TemplateError(f"{where}: {type(exc).__name__}: {exc}")
