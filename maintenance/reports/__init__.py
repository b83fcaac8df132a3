"""The monthly maintenance report: what happened in a month, final once closed, amended, exported.

Figures of what happened in a month, snapshots that stay final once closed, amendments for later
changes, and exports (JSON, CSV, a printable page, PDF).

Modules: `month` (the calendar month), `history` (task histories from the audit trail), `figures`
(computing a month), `snapshots` (storing, closing, signing, archiving), `amendments`, `document` (the
one dict every export is written from), `csv_export`, `html_export`, `pdf` and `service`
(`MonthlyReport`).
"""

from maintenance.reports.csv_export import to_csv
from maintenance.reports.html_export import to_html
from maintenance.reports.month import Month
from maintenance.reports.service import MonthlyReport, to_pdf

__all__ = ["Month", "MonthlyReport", "to_csv", "to_html", "to_pdf"]
