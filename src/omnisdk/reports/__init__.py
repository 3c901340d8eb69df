"""Reports: the period's KPIs, funnel and attribution as terminal tables, one HTML page, or CSV files.

    report = omni.report(html="report.html", csv="report-csv/")
    print(report.text())

The HTML page is self-contained (inline CSS and SVG charts, no script, nothing fetched): it can be
mailed or archived as is.
"""

from ._report import DEFAULT_FUNNEL, Report, build_report, create_report
from ._tables import Table, tables

__all__ = ["DEFAULT_FUNNEL", "Report", "Table", "build_report", "create_report", "tables"]
