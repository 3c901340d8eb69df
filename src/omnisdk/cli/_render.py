"""`omnisdk render TEMPLATE --customer ID --channel email`: preview a message as one customer would get it."""

from __future__ import annotations

import argparse
import json

from .._errors import ValidationError
from .._touchpoints import MESSAGE_CHANNELS
from ._command import Subparsers

__all__ = ["add_parser"]

HISTORY = 50


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser("render", help="preview a template rendered for a customer on a channel")
    parser.add_argument("template", help="template id")
    parser.add_argument("--customer", required=True, help="customer id")
    parser.add_argument("--channel", default="email", choices=MESSAGE_CHANNELS)
    parser.add_argument("--data", default="{}", help="JSON object passed as `data` (as ctx.send(data=...) would)")
    parser.add_argument("--locale", help="render in this locale instead of the customer's")
    parser.add_argument("--trigger", metavar="EVENT",
                        help="use the customer's latest EVENT touchpoint as the trigger (default: the latest of any)")
    parser.add_argument("--templates", metavar="FOLDER", help="load templates from this folder too")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._omni import Omni

    try:
        data = json.loads(args.data)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"not JSON: {exc}", field="--data") from None
    if not isinstance(data, dict):
        raise ValidationError("expected a JSON object", field="--data", value=args.data)
    with Omni(args.store, config=args.config) as omni:
        if args.templates:
            omni.templates.load_folder(args.templates)
        message = omni.templates.get(args.template)
        customer = omni.customer(args.customer)
        history = omni.timeline(customer.id, limit=HISTORY)
        candidates = [tp for tp in history if args.trigger in (None, tp.name)]
        if args.trigger and not candidates:
            raise ValidationError(f"customer {customer.id} has no {args.trigger!r} touchpoint", field="--trigger")
        context = omni.templates.context(customer, trigger=candidates[-1] if candidates else None, history=history,
                                         data=data, locale=args.locale, journey="preview", step="preview")
        content = omni.templates.render(message, args.channel, context)
    print(f"{message.id} · {args.channel} · {customer.id} · locale {args.locale or customer.locale or 'default'}")
    for field in content.template_fields:
        value = getattr(content, field)
        if value is None:
            continue
        if "\n" in value:
            print(f"{field}:")
            print("\n".join("  " + line for line in value.splitlines()))
        else:
            print(f"{field}: {value}")
    return 0
