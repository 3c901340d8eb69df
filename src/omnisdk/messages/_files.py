"""Messages written as files: one YAML or TOML file per message in the templates folder.

    # templates/cart-reminder.yaml        (the id defaults to the file name)
    email:
      subject: "{{ customer.first_name }}, your cart is waiting"
      html_file: cart-reminder.html       # any field can come from a file next to this one
    sms:
      text: "Your cart at {{ brand.name }}: {{ link('https://shop.example/cart') }}"
    locales:
      fr:
        sms: { text: "Votre panier vous attend : {{ link('https://shop.example/cart') }}" }
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import yaml

from .._content import SMS, Content, Email, Letter, Message, PosOffer, Postcard, Push, Social
from .._errors import TemplateError, ValidationError

__all__ = ["TEMPLATE_SUFFIXES", "load_message_file", "message_from_dict"]

TEMPLATE_SUFFIXES: Final = (".yaml", ".yml", ".toml")
_RENDITIONS: Final[Mapping[str, type[Content]]] = {
    "email": Email, "sms": SMS, "push": Push, "social": Social, "pos": PosOffer,
}
_TOP_KEYS: Final = ("id", "data", "locales", *_RENDITIONS, "direct_mail")
#: Keys spelled differently in files than in Python (`from` is a keyword there).
_ALIASES: Final = {"from": "from_"}


def load_message_file(path: Path) -> Message:
    """Parse one template file; errors name the file and the key."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise TemplateError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, Mapping):
        raise TemplateError(f"{path}: expected a table of channels (email, sms, push…) at the top")
    return message_from_dict(data, source=str(path), base_dir=path.parent, default_id=path.stem)


def message_from_dict(
    data: Mapping[str, Any], *, source: str, base_dir: Path | None = None, default_id: str | None = None
) -> Message:
    for key in data:
        if key not in _TOP_KEYS:
            raise TemplateError(f"{source}: unknown key {key!r}; expected one of {', '.join(_TOP_KEYS)}")
    message_id = data.get("id", default_id)
    locales = data.get("locales") or {}
    if not isinstance(locales, Mapping):
        raise TemplateError(f"{source}: locales: expected a table of locale = {{ channel = ... }}")
    values = data.get("data") or {}
    if not isinstance(values, Mapping):
        raise TemplateError(f"{source}: data: expected a table")
    renditions = {
        channel: _rendition(channel, data[channel], f"{source}: {channel}", base_dir)
        for channel in (*_RENDITIONS, "direct_mail") if data.get(channel) is not None
    }
    variants = {}
    for locale, section in locales.items():
        if not isinstance(section, Mapping):
            raise TemplateError(f"{source}: locales.{locale}: expected a table of channels")
        variants[str(locale)] = message_from_dict(
            section, source=f"{source}: locales.{locale}", base_dir=base_dir, default_id=message_id
        )
    try:
        return Message(str(message_id or ""), locales=variants, data=values, **renditions)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise TemplateError(f"{source}: {exc}") from None


def _rendition(channel: str, section: Any, where: str, base_dir: Path | None) -> Content:
    if not isinstance(section, Mapping):
        raise TemplateError(f"{where}: expected a table of fields")
    fields: dict[str, Any] = {_ALIASES.get(str(k), str(k)): v for k, v in section.items()}
    cls: type[Content]
    if channel == "direct_mail":
        kind = fields.pop("kind", "postcard" if "front_html" in fields or "front_html_file" in fields else "letter")
        if kind not in ("postcard", "letter"):
            raise TemplateError(f"{where}: kind: expected 'postcard' or 'letter', got {kind!r}")
        cls = Postcard if kind == "postcard" else Letter
    else:
        cls = _RENDITIONS[channel]
    for key in [k for k in fields if k.endswith("_file")]:
        target = key.removesuffix("_file")
        path = Path(fields.pop(key))
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            fields[target] = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"{where}: {key}: cannot read {str(path)!r}: {exc.strerror}") from None
    known = {a.name for a in attrs.fields(cls)}
    for key in fields:
        if key not in known:
            raise TemplateError(f"{where}: unknown field {key!r}; expected one of {', '.join(sorted(known))}")
    try:
        return cls(**fields)
    except TypeError as exc:
        raise TemplateError(f"{where}: {exc}") from None
