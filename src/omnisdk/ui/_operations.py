"""Operator pages: journeys (runs by state and step, stuck and failed runs), the outbox and provider
health, quarantined rows. Action buttons appear only when the dashboard allows actions."""

from __future__ import annotations

from collections import Counter, defaultdict

from ..reports._svg import bar_chart
from ..store._operations import outbox_ids, outbox_status, overdue_runs, provider_counts, quarantine_count, run_counts
from ._context import PageContext
from ._html import Safe, ago, button_form, e, link, path_part, table, when

__all__ = ["journeys_page", "outbox_page", "overview_page", "quarantine_page"]

#: Provider health looks at the deliveries updated in the last day, unless the page asks for more hours.
HEALTH_HOURS = 24.0
_FAILED_SHOWN = 100
#: Statuses that count against a provider: it refused or lost the message.
_ERRORS = ("failed",)
_DONE = ("sent", "delivered", "failed")


def _customer(ctx: PageContext, customer_id: str) -> Safe:
    return link(ctx.root, f"/customers/{path_part(customer_id)}", customer_id)


def _run_action(ctx: PageContext, run_id: str, status: str) -> Safe:
    """Retry for a failed run, cancel for an active one; nothing when actions are off."""
    if not ctx.allow_actions:
        return Safe("")
    action = "retry" if status == "failed" else "cancel"
    return button_form(ctx.url(f"/runs/{path_part(run_id)}/{action}"), action.capitalize(), ctx.csrf, name=run_id)


def journeys_page(ctx: PageContext) -> tuple[str, Safe]:
    omni, now = ctx.omni, ctx.omni.clock.timestamp()
    with omni.store.transaction(immediate=False) as tx:
        counts = run_counts(tx)
        stuck = overdue_runs(tx, now - ctx.stuck_after, 100)
    by_state: dict[str, Counter[str]] = defaultdict(Counter)
    for c in counts:
        by_state[c.journey][c.status] += c.count
    journeys, statuses = sorted(by_state), sorted({c.status for c in counts})
    state_rows = [(j, *(by_state[j].get(s, 0) for s in statuses)) for j in journeys]
    chart = bar_chart("Runs by journey and status", journeys,
                      {s: [float(by_state[j].get(s, 0)) for j in journeys] for s in statuses}) if counts else ""
    step_rows = [(c.journey, c.step, c.status, c.count) for c in counts if c.status in ("running", "waiting")]
    actions = ["action"] if ctx.allow_actions else []
    stuck_rows = [(r.journey, r.version, _customer(ctx, r.customer_id), r.status, r.step, when(r.due_at),
                   ago(now - r.due_at if r.due_at is not None else None), *([_run_action(ctx, r.id, r.status)]
                                                                            if actions else []))
                  for r in stuck]
    failed = omni.runs(status="failed", limit=_FAILED_SHOWN)
    failed_rows = [(r.journey, r.version, _customer(ctx, r.customer_id), r.step, r.attempts, r.reason,
                    when(r.updated_at), *([_run_action(ctx, r.id, r.status)] if actions else [])) for r in failed]
    state_table = table(["journey", *statuses], state_rows, numeric=range(1, len(statuses) + 1))
    step_table = table(["journey", "step", "status", "runs"], step_rows, numeric=[3])
    stuck_table = table(["journey", "version", "customer", "status", "step", "due", "overdue", *actions],
                        stuck_rows, empty="No stuck runs.")
    failed_table = table(["journey", "version", "customer", "step", "attempts", "reason", "failed", *actions],
                         failed_rows, empty="No failed runs.")
    body = (f"<h2>Runs by state</h2>{chart}{state_table}<h2>Active runs by step</h2>{step_table}"
            f'<h2 id="stuck">Stuck runs (due more than {e(ago(ctx.stuck_after))} ago)</h2>{stuck_table}'
            f'<h2 id="failed">Failed runs</h2>{failed_table}')
    return "Journeys", Safe(body)


def outbox_page(ctx: PageContext, hours: str = "") -> tuple[str, Safe]:
    omni, now = ctx.omni, ctx.omni.clock.timestamp()
    try:
        window = min(max(float(hours), 0.1), 24.0 * 366) if hours else HEALTH_HOURS
    except ValueError:
        window = HEALTH_HOURS
    with omni.store.transaction(immediate=False) as tx:
        statuses = outbox_status(tx, now)
        oldest = outbox_ids(tx, now, 50)
        providers = provider_counts(tx, now - window * 3600)
    status_rows = [(s.status, s.count, s.in_doubt if s.status == "sending" else "-",
                    ago(now - s.oldest_due_at) if s.oldest_due_at is not None and s.oldest_due_at <= now else "-")
                   for s in statuses]
    waiting_rows = [(_customer(ctx, d.customer_id),
                     link(ctx.root, f"/customers/{path_part(d.customer_id)}/deliveries/{path_part(d.id)}", d.template),
                     d.status, d.channel or "/".join(d.channels), d.attempts, when(d.due_at),
                     ago(now - d.due_at.timestamp())) for d in oldest]
    health_rows, labels, rates = [], [], []
    for p in sorted(providers, key=lambda p: (p.channel or "", p.provider)):
        done = sum(p.statuses.get(s, 0) for s in _DONE)
        errors = sum(p.statuses.get(s, 0) for s in _ERRORS)
        rate = errors / done if done else 0.0
        label = f"{p.channel}/{p.provider}"
        labels.append(label)
        rates.append(rate)
        health_rows.append((label, ", ".join(f"{s} {n}" for s, n in sorted(p.statuses.items())), p.retries,
                            f"{rate:.1%}" if done else "-"))
    span = f"last {window:g} h"
    chart = bar_chart(f"Error rate per provider, {span}", labels, {"error rate": rates},
                      value_format=lambda v: f"{v:.1%}") if labels else ""
    status_table = table(["status", "deliveries", "in doubt", "oldest overdue by"], status_rows, numeric=[1, 2],
                         empty="The outbox is empty.")
    waiting_table = table(["customer", "template", "status", "channel", "attempts", "due", "overdue by"],
                          waiting_rows, empty="Nothing is overdue.")
    health_table = table(["provider", "deliveries by status", "retries", "error rate"], health_rows, numeric=[2, 3],
                         empty=f"No provider activity in the {span}.")
    body = (f"<h2>Pending deliveries</h2>{status_table}<h2>Waiting longest</h2>{waiting_table}"
            f"<h2>Provider health ({e(span)})</h2>{chart}{health_table}")
    return "Outbox and providers", Safe(body)


def quarantine_page(ctx: PageContext) -> tuple[str, Safe]:
    rows = ctx.omni.quarantine(limit=200)
    actions = ["action"] if ctx.allow_actions else []
    cells = []
    for r in rows:
        key = ", ".join(f"{k}={v}" for k, v in r.key.items())
        buttons = []
        if ctx.allow_actions:
            base = ctx.url(f"/quarantine/{r.id}")
            buttons = [Safe(button_form(base + "/repair", "Repair", ctx.csrf, name=f"row {r.id}")
                            + button_form(base + "/drop", "Drop", ctx.csrf, name=f"row {r.id}"))]
        cells.append((r.id, r.table, key, f"{r.error_type}: {r.error}", when(r.quarantined_at), r.repair_error,
                      *buttons))
    note = ('<p class="note">Rows a read could not decode, kept aside so the runner goes on. Repair puts a row back '
            "once it decodes (after the known fixes); drop deletes it for good.</p>")
    return "Quarantine", Safe(note + table(["id", "table", "key", "error", "quarantined", "repair error", *actions],
                                           cells, numeric=[0], empty="No quarantined rows."))


def overview_page(ctx: PageContext) -> tuple[str, Safe]:
    omni, now = ctx.omni, ctx.omni.clock.timestamp()
    with omni.store.transaction(immediate=False) as tx:
        counts = run_counts(tx)
        statuses = outbox_status(tx, now)
        stuck = len(overdue_runs(tx, now - ctx.stuck_after, 1000))
        quarantined = quarantine_count(tx)
    runs: Counter[str] = Counter()
    for c in counts:
        runs[c.status] += c.count
    pending = sum(s.count for s in statuses)
    in_doubt = sum(s.in_doubt for s in statuses)
    figures = [
        ("Runs waiting or running", runs["waiting"] + runs["running"], "/journeys"),
        ("Stuck runs", stuck, "/journeys"),
        ("Failed runs", runs["failed"], "/journeys"),
        ("Pending deliveries", pending, "/outbox"),
        ("In-doubt deliveries", in_doubt, "/outbox"),
        ("Quarantined rows", quarantined, "/quarantine"),
    ]
    rows = [(link(ctx.root, path, label), f"{n:,}") for label, n, path in figures]
    search = (f'<form method="get" action="{e(ctx.url("/customers"))}" role="search">'
              '<label for="q">Find a customer (id, email or phone)</label> '
              '<input id="q" name="q" size="40"> <button type="submit">Find</button></form>')
    mode = ("Actions are on: retry, cancel, repair and drop buttons change the store."
            if ctx.allow_actions else "Read-only: start with --allow-actions for retry, cancel, repair and drop.")
    return "omnisdk dashboard", Safe(f"{search}<h2>At a glance</h2>{table(['what', 'how many'], rows, numeric=[1])}"
                                     f'<p class="note">{e(mode)} Times are UTC; now is {e(when(now))}.</p>')
