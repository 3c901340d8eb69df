"""Per-channel message content (renditions). A `Message` holds one of each channel it can go out on."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from ._errors import ValidationError
from ._touchpoints import MESSAGE_CHANNELS

#: Template blocks that make a message promotional: product recommendations and offers.
_BLOCK = re.compile(r"\{[{%](.*?)[%}]\}", re.DOTALL)
_PROMOTIONAL = re.compile(r"\b(recommend\w*|offers?|coupons?)\b")

__all__ = [
    "Content",
    "Email",
    "Letter",
    "Message",
    "PosOffer",
    "Postcard",
    "Push",
    "SMS",
    "Social",
]


@attrs.frozen(kw_only=True)
class Content:
    """Base of the renditions; `channel` says where it can go."""

    channel: ClassVar[str] = ""
    #: Fields rendered as templates; the rest are copied as they are.
    template_fields: ClassVar[tuple[str, ...]] = ()


@attrs.frozen(kw_only=True)
class Email(Content):
    channel: ClassVar[str] = "email"
    template_fields: ClassVar[tuple[str, ...]] = ("subject", "html", "text", "preheader")
    subject: str
    html: str | None = None
    text: str | None = None
    preheader: str | None = None
    from_: str | None = None
    reply_to: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    categories: Sequence[str] = ()


@attrs.frozen(kw_only=True)
class SMS(Content):
    channel: ClassVar[str] = "sms"
    template_fields: ClassVar[tuple[str, ...]] = ("text",)
    text: str
    media_urls: Sequence[str] = ()


@attrs.frozen(kw_only=True)
class Push(Content):
    channel: ClassVar[str] = "push"
    template_fields: ClassVar[tuple[str, ...]] = ("title", "body", "url")
    title: str
    body: str
    url: str | None = None
    image: str | None = None
    data: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Social(Content):
    """Messenger / WhatsApp. `template` names an approved template for sends outside the 24 h window."""

    channel: ClassVar[str] = "social"
    template_fields: ClassVar[tuple[str, ...]] = ("text",)
    text: str
    quick_replies: Sequence[str] = ()
    template: str | None = None
    template_language: str = "en_US"
    template_params: Sequence[str] = ()
    tag: str | None = None


@attrs.frozen(kw_only=True)
class Postcard(Content):
    channel: ClassVar[str] = "direct_mail"
    template_fields: ClassVar[tuple[str, ...]] = ("front_html", "back_html")
    front_html: str
    back_html: str
    size: str = "4x6"


@attrs.frozen(kw_only=True)
class Letter(Content):
    channel: ClassVar[str] = "direct_mail"
    template_fields: ClassVar[tuple[str, ...]] = ("html",)
    html: str
    color: bool = False


@attrs.frozen(kw_only=True)
class PosOffer(Content):
    """An offer attached to the customer at the point of sale, for the cashier to apply."""

    channel: ClassVar[str] = "pos"
    template_fields: ClassVar[tuple[str, ...]] = ("title", "description")
    title: str
    description: str = ""
    discount_percent: float | None = None
    discount_amount: float | None = None
    reward_points: int | None = None
    expires_days: int = 14


@attrs.frozen(init=False)
class Message:
    """One message in every channel's form, sharing content and voice.

    `Message("cart-reminder", email=Email(...), sms=SMS(...))`; `locales` maps a locale
    ("fr-FR", "fr") to a `Message` with that locale's renditions.
    """

    id: str
    renditions: Mapping[str, Content]
    locales: Mapping[str, Message]
    data: Mapping[str, Any]
    #: Promotional content (offers, recommendations): never sent as a transactional message.
    marketing: bool

    def __init__(
        self,
        id: str,
        *,
        email: Email | None = None,
        sms: SMS | None = None,
        push: Push | None = None,
        social: Social | None = None,
        direct_mail: Postcard | Letter | None = None,
        pos: PosOffer | None = None,
        locales: Mapping[str, Message] | None = None,
        data: Mapping[str, Any] | None = None,
        marketing: bool = False,
    ) -> None:
        if not id or not isinstance(id, str):
            raise ValidationError("a message needs a non-empty string id", field="id", value=id)
        given = {"email": email, "sms": sms, "push": push, "social": social, "direct_mail": direct_mail, "pos": pos}
        renditions: dict[str, Content] = {}
        for channel, content in given.items():
            if content is None:
                continue
            if not isinstance(content, Content) or content.channel != channel:
                raise ValidationError(
                    f"expected the {channel} rendition, got {type(content).__name__}", field=channel, value=content
                )
            renditions[channel] = content
        if not renditions:
            raise ValidationError(
                "a message needs at least one channel's rendition (email=, sms=, push=, social=, direct_mail=, pos=)",
                field=id,
            )
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "renditions", renditions)
        object.__setattr__(self, "locales", dict(locales or {}))
        object.__setattr__(self, "data", dict(data or {}))
        if not isinstance(marketing, bool):
            raise ValidationError("expected True or False", field=f"{id}.marketing", value=marketing)
        object.__setattr__(self, "marketing", marketing)

    @property
    def carries_marketing(self) -> str | None:
        """Why this message is promotional (flagged `marketing`, a POS offer, a block of
        recommendations), or None: such a message never goes out as a transactional one."""
        variants = (self, *self.locales.values())
        if any(v.marketing for v in variants):
            return "it is flagged marketing=True"
        if any("pos" in v.renditions for v in variants):
            return "it has a POS offer rendition"
        for variant in variants:
            for content in variant.renditions.values():
                for field in content.template_fields:
                    source = getattr(content, field, None)
                    if isinstance(source, str) and any(_PROMOTIONAL.search(b) for b in _BLOCK.findall(source)):
                        return f"its {content.channel} {field} has a recommendations/offer block"
        return None

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(c for c in MESSAGE_CHANNELS if c in self.renditions)

    def for_locale(self, locale: str | None) -> Message:
        """The best localised variant: exact ("fr-CA"), then language ("fr"), then this one."""
        if locale:
            for key in (locale, locale.split("-")[0]):
                if key in self.locales:
                    return self.locales[key]
        return self
