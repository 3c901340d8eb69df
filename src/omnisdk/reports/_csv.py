"""The report's tables as CSV files, one per table, raw values (rates as fractions, empty for none)."""

from __future__ import annotations

import csv
from pathlib import Path

from ._data import ReportData
from ._tables import tables

__all__ = ["write_csv"]


def write_csv(report: ReportData, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables(report):
        path = directory / f"{table.key}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(table.columns)
            writer.writerows(["" if value is None else value for value in row] for row in table.rows)
        written.append(path)
    return written
