"""Measurement pages: experiments (`omni.experiments()` / `omni.experiment(...)`) and KPIs, with charts."""

from __future__ import annotations

from ..reports._svg import bar_chart
from ..reports._tables import format_value
from ._context import PageContext
from ._html import Safe, e, link, path_part, table, when

__all__ = ["experiment_page", "experiments_page", "kpis_page"]

_KPI_COLUMNS = ("messages", "sent", "delivered", "opened", "clicked", "converted", "failed", "skipped",
                "delivery_rate", "open_rate", "click_rate", "conversion_rate", "revenue")


def experiments_page(ctx: PageContext) -> tuple[str, Safe]:
    rows = [(link(ctx.root, f"/experiments/{path_part(x.experiment)}", x.experiment), ", ".join(x.variants),
             x.exposures, when(x.first_exposed_at), when(x.last_exposed_at)) for x in ctx.omni.experiments()]
    return "Experiments", table(["experiment", "variants", "exposures", "first exposure", "last exposure"], rows,
                                numeric=[2], empty="No experiment has exposed anyone yet.")


def experiment_page(ctx: PageContext, name: str, control: str, goal: str) -> tuple[str, Safe]:
    overview = next((x for x in ctx.omni.experiments() if x.experiment == name), None)
    if overview is None:
        from .._errors import NotFoundError

        raise NotFoundError(f"no experiment {name!r} has exposures")
    if control not in overview.variants:
        control = "control" if "control" in overview.variants else sorted(overview.variants)[0]
    result = ctx.omni.experiment(name, control=control, goal=goal or "Order Completed")
    rows = [(v.name, v.exposures, v.conversions, f"{v.conversion_rate:.2%}",
             "-" if v.conversion_lift is None else f"{v.conversion_lift.absolute:+.2%}",
             "-" if v.decision is None else str(v.decision)) for v in result.variants]
    chart = bar_chart(f"Conversion rate by variant ({goal or 'Order Completed'})", [v.name for v in result.variants],
                      {"conversion rate": [v.conversion_rate for v in result.variants]},
                      value_format=lambda x: f"{x:.2%}")
    options = "".join(f'<option{" selected" if v == control else ""}>{e(v)}</option>' for v in overview.variants)
    form = (f'<form method="get" action="{e(ctx.url("/experiments/" + path_part(name)))}">'
            f'<label for="control">Control</label> <select id="control" name="control">{options}</select> '
            '<label for="goal">Goal event</label> '
            f'<input id="goal" name="goal" value="{e(goal or "Order Completed")}"> '
            '<button type="submit">Show</button></form>')
    summary = (f'<p>Decision: <b>{e(result.decision)}</b>{" · winner: " + e(result.winner) if result.winner else ""}'
               f" · {e(result.method)} test at alpha = {result.alpha:g}</p>")
    lifts = table(["variant", "exposures", "conversions", "rate", "lift vs control", "decision"], rows,
                  numeric=[1, 2, 3, 4])
    return f"Experiment {name}", Safe(form + summary + chart + lifts)


def kpis_page(ctx: PageContext, by: str, days: str = "") -> tuple[str, Safe]:
    """KPIs over every message, or those of the last `days` (the whole history can take a while)."""
    by = by if by in ("channel", "provider", "journey", "template") else "channel"
    span = float(days) if days.replace(".", "", 1).isdigit() and float(days) > 0 else None
    since = ctx.omni.clock.timestamp() - span * 86400 if span else None
    kpis = ctx.omni.kpis(by, since=since)
    labels = [str(row.group.get(by) or "-") for row in kpis.rows]
    values = [row.as_dict() for row in kpis.rows]
    chart = bar_chart(f"Rates by {by}", labels,
                      {name: [float(v.get(name) or 0.0) for v in values] for name in ("delivery_rate", "open_rate",
                                                                                       "click_rate")},
                      value_format=lambda x: f"{x:.1%}") if labels else ""
    rows = [(label, *(format_value(c, v.get(c)) for c in _KPI_COLUMNS)) for label, v in zip(labels, values,
                                                                                            strict=True)]
    choices = "".join(f'<option{" selected" if b == by else ""}>{b}</option>'
                      for b in ("channel", "provider", "journey", "template"))
    form = (f'<form method="get" action="{e(ctx.url("/kpis"))}"><label for="by">Group by</label> '
            f'<select id="by" name="by">{choices}</select> <label for="days">Last days (empty: all)</label> '
            f'<input id="days" name="days" size="5" value="{e(days)}"> <button type="submit">Show</button></form>')
    return "KPIs", Safe(form + chart + table([by, *_KPI_COLUMNS], rows, numeric=range(1, len(_KPI_COLUMNS) + 1),
                                             empty="No messages yet."))
