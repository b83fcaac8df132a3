"""The monthly report as a printable PDF (reportlab): layout, charts and an embedded Chinese font."""

from maintenance.reports.pdf.layout import to_pdf

__all__ = ["to_pdf"]
