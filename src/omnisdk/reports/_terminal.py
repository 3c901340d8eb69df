"""The report as aligned plain-text tables (what `omnisdk report` prints)."""

from __future__ import annotations

from ._data import ReportData
from ._tables import duration, tables

__all__ = ["render_text", "text_table"]


def text_table(columns: tuple[str, ...], cells: list[list[str]]) -> str:
    """Columns padded to their widest cell; text left-aligned, numbers right-aligned."""
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    numeric = [bool(cells) and all(_numeric(row[i]) for row in cells) for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(list(columns)).rstrip(), rule, *(line(row).rstrip() for row in cells)])


def _numeric(cell: str) -> bool:
    return cell == "-" or cell.replace(",", "").replace(".", "").replace("%", "").lstrip("-").isdigit()


def render_text(report: ReportData) -> str:
    period = f"{report.since or 'the beginning'} to {report.until or report.generated_at}"
    parts = [f"omnisdk report · {period} · conversion: {', '.join(report.conversion)}"]
    channels = report.channels
    parts.append(
        f"{channels.total.converted:,} conversions credited to a message within {duration(channels.window)} "
        f"({channels.total.revenue:,.2f} revenue); {channels.unattributed_conversions:,} more with no message "
        f"before them ({channels.unattributed_revenue:,.2f})"
    )
    for table in tables(report):
        parts.append(f"\n{table.title}\n" + (text_table(table.columns, table.cells()) if table.rows else "(none)"))
    parts.extend(f"note: {note}" for note in report.notes)
    return "\n".join(parts) + "\n"
