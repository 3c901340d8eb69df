"""Consistent messages: one `Message`, rendered per channel from shared content and brand voice.

    content = omnisdk.messages.render(message, "email", omni.templates.context(customer, data={...}))

Templates render in Jinja2's sandbox with `StrictUndefined`; an undefined variable or a syntax
error is a `TemplateError` for that delivery, never a crash of the runner, and a render that goes
over its `TemplateBudget` (`[templates.budget]`) is a `TemplateBudgetExceeded`.
"""

from .._content import SMS, Content, Email, Letter, Message, PosOffer, Postcard, Push, Social
from ._brand import BrandKit
from ._budget import TemplateBudget
from ._files import load_message_file, message_from_dict
from ._links import Click, Links, LinkSettings, Unsubscribe
from ._products import ProductBlock, ProductView, Shop, Stocked, format_price
from ._registry import Templates
from ._render import RenderContext, Renderer, render, source_reads

__all__ = [
    "SMS",
    "BrandKit",
    "Click",
    "Content",
    "Email",
    "Letter",
    "LinkSettings",
    "Links",
    "Message",
    "PosOffer",
    "Postcard",
    "ProductBlock",
    "ProductView",
    "Push",
    "RenderContext",
    "Renderer",
    "Shop",
    "Social",
    "Stocked",
    "TemplateBudget",
    "Templates",
    "Unsubscribe",
    "format_price",
    "load_message_file",
    "message_from_dict",
    "render",
    "source_reads",
]
