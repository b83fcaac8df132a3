"""Exports people open in a spreadsheet: CSV whose cells can never run as formulas.

A spreadsheet treats a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return as a
formula (CSV injection: `=HYPERLINK(...)` in a part name). Every text cell that starts so is written
with a leading apostrophe, which spreadsheets show as plain text; numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
Cell = str | int | float | bool | None


def safe_cell(value: Cell) -> str | int | float:
    """A cell that a spreadsheet shows as written: text that could start a formula gets a leading `'`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    """CSV (RFC 4180, CRLF line ends) with every cell made safe; starts with a UTF-8 BOM for Excel."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return "\ufeff" + out.getvalue()
