"""From a due outbox row to an `Outgoing`: policies decide, the message renders, the address is filled in.

Everything here reads the store in batches (one transaction per claimed batch) so the dispatcher
stays fast; the rules themselves live in `omnisdk.policies` and `omnisdk.messages`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

from .._content import Message
from .._customers import Customer
from .._touchpoints import Events, Touchpoint
from ..messages import Links, RenderContext, Shop, Templates, render, source_reads
from ..policies import PolicyRules
from ..providers import Outgoing
from ..store import Transaction
from ..store._runs import run_triggers
from ..store._touchpoints import latest_touchpoints

__all__ = ["HISTORY_NAMES", "TRIGGER_NAMES", "SendContext", "template_reads"]

_HISTORY = 20
_CHUNK = 500
#: Template variables that need the customer's recent touchpoints, or the run's trigger, loaded.
HISTORY_NAMES: Final = frozenset({"history", "latest"})
TRIGGER_NAMES: Final = frozenset({"trigger", "event"})
_UNKNOWN: Final = HISTORY_NAMES | TRIGGER_NAMES


def _sources(message: Message, channel: str) -> Iterator[str]:
    for variant in (message, *message.locales.values()):
        content = variant.renditions.get(channel)
        for field in content.template_fields if content is not None else ():
            source = getattr(content, field)
            if isinstance(source, str):
                yield source


def template_reads(message: Message, channel: str) -> frozenset[str]:
    """The variables `message`'s `channel` templates (every locale) read. A template that may read
    any (`source_reads`) counts as reading all that cost a query to load."""
    names: set[str] = set()
    for source in _sources(message, channel):
        reads = source_reads(source)
        if reads is None:
            return _UNKNOWN  # a partial, a plugin's filter, or a template added without being compiled
        names |= reads
    return frozenset(names)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class _Metadata(Mapping[str, Any]):
    """`Outgoing.metadata`, whose `unsubscribe_url` is signed when a plugin first reads it: email
    plugins do, most others never, and signing costs more than the rest of the mapping."""

    __slots__ = ("_channel", "_customer_id", "_fields", "_links")

    def __init__(self, fields: dict[str, Any], links: Links | None, customer_id: str, channel: str) -> None:
        self._fields = fields
        self._links = links
        self._customer_id = customer_id
        self._channel = channel

    def __getitem__(self, key: str) -> Any:
        if key == "unsubscribe_url" and self._links is not None:
            attribution = {"customer_id": self._customer_id, "channel": self._channel, **self._fields}
            self._fields[key], self._links = self._links.unsubscribe_url(attribution), None
        return self._fields[key]

    def __contains__(self, key: object) -> bool:
        return key in self._fields or (key == "unsubscribe_url" and self._links is not None)

    def __iter__(self) -> Iterator[str]:
        return iter([*self._fields, "unsubscribe_url"] if self._links is not None else self._fields)

    def __len__(self) -> int:
        return len(self._fields) + (self._links is not None)

    def __repr__(self) -> str:
        return repr(dict(self))


class SendContext:
    """What the dispatcher needs from the rest of the core to build messages."""

    def __init__(self, templates: Templates, rules: PolicyRules,
                 shop: Callable[[Transaction], Shop | None] | None = None) -> None:
        self.templates = templates
        #: The catalog and recommendations for one claim's templates, bound to its transaction.
        self.shop = shop
        #: The client's policy rules (built by the core from `[policies]` and plugin policies).
        self.rules = rules
        self._reads: dict[tuple[str, str], tuple[Message, frozenset[str]]] = {}

    def template(self, template_id: str) -> Any:
        """The `Message` registered under `template_id` (`NotFoundError` if none)."""
        return self.templates.get(template_id)

    def reads(self, message: Message, channel: str) -> frozenset[str]:
        """`template_reads`, cached per registered message (a replaced message is read again). The
        social channel always reads history: its messaging windows open with the customer's last reply."""
        cached = self._reads.get((message.id, channel))
        if cached is None or cached[0] is not message:
            names = template_reads(message, channel)
            if channel == "social":
                names |= HISTORY_NAMES
            cached = self._reads[(message.id, channel)] = (message, names)
        return cached[1]

    def history(self, tx: Transaction, customer_ids: Sequence[str]) -> dict[str, list[Touchpoint]]:
        """The latest touchpoints of each customer, oldest first, for templates that mention recent
        behaviour: one query per 500 customers."""
        history: dict[str, list[Touchpoint]] = {cid: [] for cid in customer_ids}
        for chunk in _chunks(list(history)):
            for touchpoint in latest_touchpoints(tx, chunk, _HISTORY):
                history[touchpoint.customer_id].append(touchpoint)
        return history

    def triggers(self, tx: Transaction, run_ids: Iterable[str | None]) -> dict[str, Touchpoint]:
        """The touchpoint that started each journey run, so templates can read `trigger` and `event`."""
        wanted = [r for r in dict.fromkeys(run_ids) if r]
        found: dict[str, Touchpoint] = {}
        for chunk in _chunks(wanted):
            found.update(run_triggers(tx, chunk))
        return found

    def last_inbound(self, history: Sequence[Any], channel: str) -> Any:
        """When the customer last wrote to us on `channel` (opens WhatsApp's and Messenger's windows)."""
        times = [t.occurred_at for t in history if t.channel == channel and t.name == Events.MESSAGE_REPLIED]
        return max(times) if times else None

    @property
    def renderer(self) -> Any:
        """The client's renderer (brand kit, plugin filters, signed links)."""
        return self.templates.renderer

    def prepare(self) -> None:
        """Load what rendering reads lazily from the store (the link signing key) before a claim
        transaction is open, since the store does not nest transactions."""
        links = self.links
        if links is not None:
            links.key  # noqa: B018 - the property loads and caches the key

    @property
    def links(self) -> Links | None:
        """What signs the one-click unsubscribe links (RFC 8058) the ASGI app answers at `/u/{token}`;
        None when this client signs no links."""
        return getattr(self.renderer, "links", None)

    def render(
        self, message: Any, channel: str, customer: Customer, *, history: Sequence[Any], data: Mapping[str, Any],
        delivery_id: str, journey: str | None, step: str | None, run_id: str | None, trigger: Any = None,
        shop: Shop | None = None,
    ) -> Any:
        """The rendition for `channel` in the customer's locale (`TemplateError` fails only this delivery)."""
        context = RenderContext(
            customer=customer, trigger=trigger, history=tuple(history), data=dict(data), delivery_id=delivery_id,
            journey=journey, step=step, run_id=run_id, renderer=self.renderer, shop=shop,
        )
        return render(message, channel, context)

    def outgoing(
        self, *, delivery_id: str, key: str, customer: Customer, channel: str, content: Any, purpose: str,
        history: Sequence[Any], template: str, journey: str | None, step: str | None, run_id: str | None,
        topic: Any = None,
    ) -> Outgoing | None:
        """The provider's view of one message; None when the customer has no address on `channel`."""
        to = self.rules.addresses.address_for(customer, channel)
        if to is None:
            return None
        fields: dict[str, Any] = {"delivery_id": delivery_id, "template": template, "journey": journey,
                                  "step": step, "run_id": run_id}
        if isinstance(topic, str):
            fields["topic"] = topic  # the one-click unsubscribe then leaves this topic
        metadata = _Metadata(fields, self.links, customer.id, channel)
        last_inbound = self.last_inbound(history, channel) if channel == "social" else None
        return Outgoing(
            delivery_id=delivery_id, idempotency_key=f"{key}:{channel}", customer_id=customer.id, to=to,
            content=content, purpose=purpose, customer=customer,
            address=customer.address if channel == "direct_mail" else None, last_inbound_at=last_inbound,
            metadata=metadata, from_profile=True,
        )

