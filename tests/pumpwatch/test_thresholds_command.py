"""`pumpwatch thresholds`: what alarm limits apply to each sensor, and where each comes from."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pumpwatch.cli import main

EXAMPLES = Path(__file__).parents[2] / "examples"
HEADER = "| sensor | kind | on | when | value | severity | for | hysteresis | from |"


def rows(output: str) -> dict[str, list[list[str]]]:
    """Sensor id -> its rows (cells) in the table."""
    out: dict[str, list[list[str]]] = {}
    for line in output.splitlines():
        if line.startswith("| ") and line != HEADER:
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            out.setdefault(cells[0], []).append(cells)
    return out


def test_thresholds_lists_each_sensors_limits_and_their_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["thresholds", "--site", str(EXAMPLES / "site.yaml")]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.count(HEADER) == 2  # a table per room
    assert "### dom: 生活水泵房 / Domestic water pump room" in out
    table = rows(out)
    # A pump's current: the default, 110 % of its rated current (15.6 A).
    [current] = table["dom-p1-current"]
    assert current[:8] == ["dom-p1-current", "current", "dom-p1", "above", "17.16 A", "major", "30 s",
                           "0.468"]
    assert current[8] == "default (defaults.alarms.limits.motor_current × rated current 15.6 A)"
    # The jockey pump's winding temperature has none of its own: the three default levels.
    assert [(r[4], r[5], r[8]) for r in table["fire-jockey-temp"]] == [
        ("100 °C", "warning", "default (defaults.alarms.limits.motor_temperature)"),
        ("120 °C", "major", "default (defaults.alarms.limits.motor_temperature)"),
        ("140 °C", "critical", "default (defaults.alarms.limits.motor_temperature)")]
    # The demo site's own default for supply voltage, and a sensor's own thresholds.
    assert {(r[3], r[4], r[8]) for r in table["dom-supply-voltage"]} == {
        ("below", "342 V", "site default (defaults.thresholds.voltage)"),
        ("above", "418 V", "site default (defaults.thresholds.voltage)")}
    assert {r[8] for r in table["dom-p1-temp"]} == {"sensor"}
    # A sensor with nothing in force says so.
    assert table["dom-floor-leak"] == [["dom-floor-leak", "leak", "dom", "-", "-", "-", "-", "-", "none"]]


def test_thresholds_shows_a_changed_default_as_the_sites(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load((EXAMPLES / "minimal.yaml").read_text())
    data["defaults"] = {"alarms": {"limits": {"motor_current": [{"when": "above", "share": 1.05}]}}}
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(data, allow_unicode=True))
    assert main(["thresholds", "--site", str(site)]) == 0
    [current] = rows(capsys.readouterr().out)["pump1-current"]
    assert current[3:6] == ["above", "10.5 A", "major"]
    assert current[8] == "site default (defaults.alarms.limits.motor_current × rated current 10 A)"


def test_thresholds_reports_a_bad_site_file_with_its_line(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.yaml"
    site.write_text((EXAMPLES / "minimal.yaml").read_text().replace("rated_current: 10", "rated_current: -1"))
    assert main(["thresholds", "--site", str(site)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{site}:" in err
    assert "rated_current" in err
