"""`omni.templates`: the client's messages by id, from code or a templates folder, and their renderer."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from .._config import Config
from .._content import Content, Message
from .._customers import Customer
from .._errors import ConfigError, NotFoundError, PluginError, ValidationError
from .._logging import get_logger
from .._plugins import PluginHost
from .._validation import Validator
from ..store import SQLStore
from ._brand import BrandKit
from ._budget import TemplateBudget
from ._files import TEMPLATE_SUFFIXES, load_message_file
from ._links import Links, LinkSettings, Unsubscribe, stored_signing_key
from ._render import RenderContext, Renderer

__all__ = ["Templates"]

log = get_logger("omnisdk.messages")

#: Records a touchpoint: (customer_id, event, properties, channel).
RecordTouchpoint = Callable[[str, str, Mapping[str, Any], str], Any]


class Templates:
    """Messages by id. `add` checks every template field compiles, so mistakes show up at startup."""

    def __init__(
        self, renderer: Renderer | None = None, *, record: RecordTouchpoint | None = None,
        validator: Validator | None = None,
    ) -> None:
        self.renderer = renderer or Renderer()
        self._messages: dict[str, Message] = {}
        self._record = record
        self._validate = validator or Validator()

    @classmethod
    def from_config(
        cls, config: Config, *, plugins: PluginHost | None = None, store: SQLStore | None = None,
        record: RecordTouchpoint | None = None, validator: Validator | None = None,
        clock: Callable[[], float] | None = None, preference_ttl: float | None = None,
    ) -> Templates:
        """The client's registry: `[brand]`, `[templates]` (folder, links, budget), plugin filters, and the
        link-signing key (`webhooks.signing_key`, else one generated once and kept in the store)."""
        configured_key = config.webhooks.get("signing_key")
        if configured_key is not None and (not isinstance(configured_key, str) or len(configured_key) < 16):
            raise ConfigError("expected a secret of at least 16 characters", field="webhooks.signing_key")
        key: bytes
        if configured_key:
            key = configured_key.encode()
        elif store is not None:
            key = stored_signing_key(store)  # now, not inside a later transaction: the store does not nest them
        else:
            raise ConfigError("set a signing key for tracked links, or give a store", field="webhooks.signing_key")
        settings = LinkSettings.from_config(config.templates, config.webhooks)
        if preference_ttl is not None:
            settings = attrs.evolve(settings, preference_ttl=preference_ttl)
        links = Links(settings, key, clock=clock)
        filters = _plugin_filters(plugins) if plugins is not None else {}
        renderer = Renderer(brand=BrandKit.from_config(config.brand), filters=filters, links=links,
                            budget=TemplateBudget.from_config(config.templates))
        templates = cls(renderer, record=record, validator=validator)
        folder = config.templates.get("folder")
        if folder is not None:
            if not isinstance(folder, str | Path):
                raise ConfigError("expected a path", field="templates.folder")
            templates.load_folder(folder)
        return templates

    # -- the registry
    def add(self, message: Message) -> Message:
        """Register (or replace) a message; raises `TemplateError` when a field does not compile."""
        if not isinstance(message, Message):
            raise ValidationError(f"expected a Message, got {type(message).__name__}", field="message")
        self._validate.message(message)
        self.renderer.check(message)
        self._messages[message.id] = message
        return message

    def get(self, template_id: str) -> Message:
        try:
            return self._messages[template_id]
        except (KeyError, TypeError):
            known = ", ".join(sorted(self._messages)[:20]) or "none yet"
            raise NotFoundError(f"unknown template {template_id!r} (registered: {known})") from None

    def load_folder(self, folder: str | Path) -> list[Message]:
        """Add every `*.yaml`, `*.yml` and `*.toml` file in `folder` (not recursive), one message each."""
        path = Path(folder)
        if not path.is_dir():
            raise ConfigError(f"{str(path)!r} is not a folder", field="templates.folder")
        loaded = [
            self.add(load_message_file(file))
            for file in sorted(path.iterdir())
            if file.suffix in TEMPLATE_SUFFIXES and file.is_file()
        ]
        log.info("templates_loaded", folder=str(path), count=len(loaded))
        return loaded

    def ids(self) -> list[str]:
        return sorted(self._messages)

    def __contains__(self, template_id: object) -> bool:
        return template_id in self._messages

    def __iter__(self) -> Iterator[Message]:
        return iter(list(self._messages.values()))

    def __len__(self) -> int:
        return len(self._messages)

    # -- rendering
    def context(self, customer: Customer, **fields: Any) -> RenderContext:
        """A `RenderContext` that renders with this client's brand kit, filters and links."""
        return RenderContext(customer=customer, renderer=self.renderer, **fields)

    def render(self, template: str | Message, channel: str, context: RenderContext) -> Content:
        """Render a registered template (or a `Message`) with this client's renderer."""
        message = template if isinstance(template, Message) else self.get(template)
        return self.renderer.render(message, channel, context)

    # -- links coming back
    @property
    def links(self) -> Links:
        assert self.renderer.links is not None, "Templates.from_config always sets links"
        return self.renderer.links

    def resolve_click(self, token: str) -> tuple[str, dict[str, Any]]:
        """Verify a click token: (the URL to redirect to, the "Link Clicked" touchpoint's fields:
        `customer_id`, `event`, `channel`, `properties` with url/delivery_id/journey/step/template).
        Raises `WebhookError` (status 400) for a forged or malformed token; nothing is recorded."""
        click = self.links.resolve_click(token)
        return click.url, {"customer_id": click.customer_id, "event": click.event, "channel": click.channel,
                           "properties": dict(click.properties)}

    def record_click(self, token: str) -> str:
        """Verify a click token, record its "Link Clicked" touchpoint, and return the URL to redirect to."""
        url, fields = self.resolve_click(token)
        if self._record is None:
            raise ConfigError("this Templates has no store to record clicks in")
        self._record(fields["customer_id"], fields["event"], fields["properties"], fields["channel"])
        return url

    def unsubscribe_url(self, customer_id: str, channel: str, *, purpose: str = "marketing", **attribution: Any) -> str:
        """A signed one-click unsubscribe link (`{base_url}/u/{token}`), e.g. for `List-Unsubscribe`."""
        return self.links.unsubscribe_url({"customer_id": customer_id, "channel": channel, **attribution}, purpose)

    def resolve_unsubscribe(self, token: str) -> Unsubscribe:
        """Verify an unsubscribe token (raises `WebhookError` 400 when forged): who, which channel and purpose."""
        return self.links.resolve_unsubscribe(token)


def _plugin_filters(plugins: PluginHost) -> dict[str, Callable[..., Any]]:
    filters: dict[str, Callable[..., Any]] = {}
    for args in plugins.collect("register_template_filters"):
        if len(args) == 2 and isinstance(args[0], str) and args[0].isidentifier() and callable(args[1]):
            filters[args[0]] = args[1]
        else:
            error = PluginError(f"register_template_filters: expected register(name, function), got {args!r}")
            plugins.errors.append(error)
            log.error("plugin_failed", error=str(error))
    return filters
