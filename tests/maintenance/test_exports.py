"""CSV exports: formula cells come out inert, numbers and text as they are."""

from __future__ import annotations

import csv
import io

import pytest

from maintenance.exports import csv_text, safe_cell

FORMULAS = ['=HYPERLINK("http://x","click")', "+1+1", "-2+3", "@SUM(A1)", "\tX", "\rX"]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_cell_that_could_start_a_formula_comes_out_inert(text: str) -> None:
    assert safe_cell(text) == "'" + text
    rows = list(csv.reader(io.StringIO(csv_text(["part"], [[text]]).lstrip("\ufeff"))))
    assert rows[1] == ["'" + text]


def test_numbers_and_plain_text_stay_as_they_are() -> None:
    assert safe_cell(-3.5) == -3.5
    assert safe_cell(7) == 7
    assert safe_cell("法兰垫片") == "法兰垫片"
    assert safe_cell(None) == ""
    assert safe_cell(True) == "true"
    rows = list(csv.reader(io.StringIO(csv_text(["a", "b"], [[-1, "x,y"]]).lstrip("\ufeff"))))
    assert rows == [["a", "b"], ["-1", "x,y"]]
