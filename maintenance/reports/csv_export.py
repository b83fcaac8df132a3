"""The report as CSV for a spreadsheet: `section, key, field, value` rows, every cell made inert.

Written with `maintenance.exports.csv_text`: a part name such as `=HYPERLINK(...)` comes out as text,
never as a formula. Names of kinds and figures are given in both languages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from maintenance.exports import Cell, csv_text
from maintenance.reports import names

HEADER = ("section", "key", "field", "value")


def _rows(report: dict[str, Any]) -> Iterator[tuple[Cell, Cell, Cell, Cell]]:
    site = report.get("site") or {}
    yield "report", "site", "", f"{site.get('zh', '')} {site.get('en', '')}".strip()
    for field in ("month", "status", "final", "as_of", "due_by", "built_at", "closed_at", "closed_by",
                  "timezone"):
        yield "report", field, "", report.get(field)
    for line, found in (report.get("signatures") or {}).items():
        if found:
            yield "signature", line, "name", found.get("name")
            yield "signature", line, "at", found.get("at")
    for kind, counts in (report.get("tasks_by_kind") or {}).items():
        for field, value in counts.items():
            yield "tasks", f"{kind} {names.both(names.kind_name(kind))}", field, value
    for kind, counts in (report.get("states_at_end") or {}).items():
        for state, value in counts.items():
            yield "state_at_end", f"{kind} {names.both(names.kind_name(kind))}", state, value
    for clock, row in (report.get("sla") or {}).items():
        for field, value in row.items():
            yield "sla", clock, field, value
    for row in report.get("repeat_faults") or []:
        for field in ("faults", "repeats", "alarm_repeats", "fault_reports"):
            yield "repeat_faults", row["asset"], field, row[field]
    for field, value in (report.get("rotation") or {}).items():
        yield "rotation", "", field, value
    for row in report.get("parts_used") or []:
        yield "parts_used", row["part"], row["unit"], row["quantity"]
    for row in report.get("amendments") or []:
        what = row.get("what") or {}
        key = f"#{row.get('task_id')} {row.get('happened_at')}"
        yield "amendment", key, "what", f"{what.get('zh', '')} / {what.get('en', '')}"
        yield "amendment", key, "why", row.get("why")
        yield "amendment", key, "counted_in", row.get("counted_in")
    for row in report.get("archive") or []:
        yield "archive", f"edition {row.get('edition')}", "sha256", row.get("sha256")


def to_csv(report: dict[str, Any]) -> str:
    """The whole report as CSV text (UTF-8 BOM, CRLF), safe to open in a spreadsheet."""
    return csv_text(HEADER, _rows(report))
