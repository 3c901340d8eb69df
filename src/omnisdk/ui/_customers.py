"""Customer pages: search (id, email, phone, normalised like `identify`), the profile, one delivery's log."""

from __future__ import annotations

from .._errors import NotFoundError, OmniError
from ..store._customers import follow_merges
from ..store._deliveries import select_deliveries
from ..store._identities import identity_owners
from ._context import PageContext
from ._html import Safe, e, link, path_part, table, when
from ._http import Response

__all__ = ["customer_page", "delivery_page", "find_customers", "search_page"]

#: Identifier kinds a search term is tried as, after a customer id.
_SEARCH_KINDS = ("email", "phone", "anonymous_id")
_TIMELINE = 200


def find_customers(ctx: PageContext, term: str) -> list[str]:
    """Profiles a search term names: as a customer id, else as an email, phone or anonymous id (each
    normalised the way `identify` stores it)."""
    core = ctx.omni._core
    term = term.strip()
    if not term:
        return []
    pairs: list[tuple[str, str]] = []
    for kind in _SEARCH_KINDS:
        try:
            pairs.extend(core.identity.normalize({kind: term}))
        except OmniError:
            continue
    found: list[str] = []
    if pairs:
        with core.store.transaction(immediate=False) as tx:
            for owner in identity_owners(tx, pairs):
                cid = follow_merges(tx, owner.customer_id)
                if cid not in found:
                    found.append(cid)
    try:
        profile = ctx.omni.customer(term)
    except OmniError:  # not a customer id (or no such profile)
        return found
    return [profile.id, *(c for c in found if c != profile.id)]


def search_page(ctx: PageContext, term: str) -> tuple[str, Safe] | Response:
    form = Safe(
        f'<form method="get" action="{e(ctx.url("/customers"))}" role="search">'
        '<label for="q">Customer id, email or phone</label> '
        f'<input id="q" name="q" value="{e(term)}" size="40"> <button type="submit">Find</button></form>')
    if not term:
        return "Customers", form
    found = find_customers(ctx, term)
    if len(found) == 1:
        return Response.redirect(ctx.url(f"/customers/{path_part(found[0])}"))
    if not found:
        return "Customers", Safe(form + f'<p role="status">No customer matches {e(repr(term))}.</p>')
    rows = [(link(ctx.root, f"/customers/{path_part(c)}", c),) for c in found]
    return "Customers", Safe(form + table(["customer"], rows))


def customer_page(ctx: PageContext, customer_id: str) -> tuple[str, Safe]:
    omni = ctx.omni
    customer = omni.customer(customer_id)
    traits = table(["trait", "value"], sorted((k, repr(v) if not isinstance(v, str) else v)
                                              for k, v in customer.traits.items()))
    facts = table(["field", "value"], [("id", customer.id), ("time zone", customer.timezone),
                                       ("locale", customer.locale),
                                       ("preferred channels", ", ".join(customer.preferred_channels)),
                                       ("created", when(customer.created_at)), ("updated", when(customer.updated_at))])
    identities = table(["kind", "value"], [(i.kind, i.value) for i in customer.identities])
    consents = table(["recorded", "channel", "purpose", "granted", "source", "evidence"],
                     [(when(c.recorded_at), c.channel, c.purpose, "granted" if c.granted else "revoked", c.source,
                       c.evidence) for c in reversed(customer.consents)], empty="No consent recorded.")
    timeline = omni.timeline(customer.id)
    shown = timeline[-_TIMELINE:][::-1]
    touch_rows = [(when(t.occurred_at), t.channel, t.name, _properties(t.properties)) for t in shown]
    more = (f'<p class="note">The latest {_TIMELINE} of {len(timeline)} touchpoints.</p>'
            if len(timeline) > _TIMELINE else "")
    deliveries = omni.deliveries(customer_id=customer.id)
    delivery_rows = [
        (when(d.created_at), link(ctx.root, f"/customers/{path_part(customer.id)}/deliveries/{path_part(d.id)}",
                                  d.template), d.status, d.channel or "/".join(d.channels), d.provider, d.journey,
         d.decisions[-1].reason if d.decisions else "")
        for d in reversed(deliveries)]
    runs = omni.runs(customer_id=customer.id, limit=50)
    run_rows = [(r.journey, r.version, r.status, r.step, when(r.due_at), r.reason) for r in runs]
    delivery_table = table(["queued", "template", "status", "channel", "provider", "journey", "latest decision"],
                           delivery_rows, empty="No messages.")
    run_table = table(["journey", "version", "status", "step", "due", "reason"], run_rows)
    touch_table = table(["when", "channel", "event", "properties"], touch_rows)
    body = (f"<h2>Profile</h2>{facts}<h2>Traits</h2>{traits}<h2>Identities</h2>{identities}"
            f"<h2>Consent history</h2>{consents}"
            f"<h2>Deliveries</h2>{delivery_table}<h2>Journey runs</h2>{run_table}"
            f"<h2>Timeline</h2>{more}{touch_table}")
    return f"Customer {customer.id}", Safe(body)


def _properties(properties: object) -> str:
    if not isinstance(properties, dict):
        return str(properties)
    return ", ".join(f"{k}={v}" for k, v in properties.items())


def delivery_page(ctx: PageContext, customer_id: str, delivery_id: str) -> tuple[str, Safe]:
    """One delivery and its decision log: why it was (not) sent, entry by entry."""
    store = ctx.omni.store
    with store.transaction(immediate=False) as tx:
        found = select_deliveries(tx, ids=[delivery_id])
    if not found or found[0].customer_id != follow_merges_of(ctx, customer_id):
        raise NotFoundError(f"no delivery {delivery_id!r} for customer {customer_id!r}")
    d = found[0]
    facts = table(["field", "value"], [
        ("delivery", d.id), ("customer", link(ctx.root, f"/customers/{path_part(d.customer_id)}", d.customer_id)),
        ("template", d.template), ("status", d.status), ("channel", d.channel), ("channels", ", ".join(d.channels)),
        ("provider", d.provider), ("purpose", d.purpose), ("attempts", d.attempts),
        ("provider message id", d.provider_message_id), ("error", d.error), ("journey", d.journey),
        ("step", d.step), ("idempotency key", d.idempotency_key), ("due", when(d.due_at)),
        ("sent", when(d.sent_at)), ("queued", when(d.created_at)), ("updated", when(d.updated_at))])
    log = table(["when", "decision", "channel", "policy", "by", "why"],
                [(when(x.at), x.action, x.channel, x.policy, x.actor, x.reason) for x in d.decisions],
                caption="Decision log, oldest first", empty="No decisions logged yet.")
    return f"Delivery {d.template} to {d.customer_id}", Safe(
        f"{facts}<h2 id=\"decisions\">Why was this {'sent' if d.status in ('sent', 'delivered') else 'not sent'}?"
        f"</h2>{log}")


def follow_merges_of(ctx: PageContext, customer_id: str) -> str:
    with ctx.omni.store.transaction(immediate=False) as tx:
        return follow_merges(tx, customer_id)
