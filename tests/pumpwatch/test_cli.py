"""The `pumpwatch` command: the register map of a site, and check-site on files that are not there."""

from __future__ import annotations

from pathlib import Path

import pytest

from pumpwatch.cli import main
from pumpwatch.site import REGISTER_COUNT
from pumpwatch.sitefile import load_site

EXAMPLES = Path(__file__).parents[2] / "examples"
SITE_EXAMPLE = EXAMPLES / "site.yaml"
MINIMAL_EXAMPLE = EXAMPLES / "minimal.yaml"

TABLE_HEADER = "| table | address | type | byte/word order | scale | sensor | kind | unit | access |"


def sections(output: str) -> dict[str, list[list[str]]]:
    """Device heading -> table rows (cells) of the `registers` output."""
    out: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for line in output.splitlines():
        if line.startswith("### "):
            current = out.setdefault(line, [])
        elif line.startswith("| ") and line != TABLE_HEADER:
            assert current is not None, f"table row before any device heading: {line!r}"
            current.append([cell.strip() for cell in line.strip("|").split("|")])
    return out


def test_registers_prints_the_register_map_of_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registers", "--site", str(SITE_EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert out.count(TABLE_HEADER) == 2
    assert out.count("|---|---|---|---|---|---|---|---|---|") == 2
    tables = sections(out)
    dom_heading = "### plc-dom: 127.0.0.1:5020 unit 1, poll every 1 s"
    fire_heading = "### plc-fire: 127.0.0.1:5021 unit 2, poll every 1 s"
    assert list(tables) == [dom_heading, fire_heading]

    # One row per point, every sensor of the device once.
    site = load_site(SITE_EXAMPLE)
    for heading, device in zip(tables, site.modbus, strict=True):
        rows = tables[heading]
        assert all(len(row) == 9 for row in rows), rows
        assert sorted(row[5] for row in rows) == sorted(p.sensor for p in device.points)
        # Rows are sorted by table, then address.
        keys = [(row[0], int(row[1].split("-")[0].split(" ")[0])) for row in rows]
        assert keys == sorted(keys)

    dom = {row[5]: row for row in tables[dom_heading]}
    fire = {row[5]: row for row in tables[fire_heading]}
    # uint16 with a scale: one address, the byte order only.
    assert dom["dom-header-pressure"] == [
        "input", "0", "uint16", "big/-", "0.001", "dom-header-pressure", "pressure", "MPa", "read"]
    # A word-swapped float32 of the point, on a big-endian device: an address range.
    assert dom["dom-p2-current"] == [
        "input", "4-5", "float32", "big/little", "1", "dom-p2-current", "current", "A", "read"]
    assert dom["dom-p1-current"][1:4] == ["2-3", "float32", "big/big"]
    assert dom["dom-header-flow"][1:4] == ["16-19", "float64", "big/big"]
    # Bits of a status word name the bit and the states.
    assert dom["dom-p2-run"] == [
        "input", "22 bit 1", "bit", "-", "1", "dom-p2-run", "run_status", "0=STOPPED, 1=RUNNING", "read"]
    # Writable points.
    assert dom["dom-p1-cmd"] == [
        "coil", "0", "bit", "-", "1", "dom-p1-cmd", "run_command", "0=STOP, 1=RUN", "read/write"]
    assert dom["dom-duty-select"][0:4] == ["holding", "0", "uint16", "big/-"]
    assert dom["dom-duty-select"][8] == "read/write"
    # The fire PLC's device-wide word order reaches its 32-bit points.
    assert fire["fire-p1-hours"] == [
        "input", "12-13", "uint32", "big/little", "0.1", "fire-p1-hours", "run_hours", "h", "read"]
    assert fire["fire-p1-run"][0:4] == ["discrete", "0", "bit", "-"]
    assert fire["fire-p1-temp"][3:5] == ["big/-", "0.1"]
    assert fire["fire-p1-temp"][7] == "°C"


def test_registers_address_ranges_match_register_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registers", "--site", str(SITE_EXAMPLE)]) == 0
    out, _err = capsys.readouterr()
    site = load_site(SITE_EXAMPLE)
    points = {p.sensor: p for d in site.modbus for p in d.points}
    for rows in sections(out).values():
        for row in rows:
            point = points[row[5]]
            first, _sep, last = row[1].split(" ")[0].partition("-")
            assert int(first) == point.address
            count = int(last) - int(first) + 1 if last else 1
            assert count == REGISTER_COUNT[point.type], row


def test_registers_of_minimal_site(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registers", "--site", str(MINIMAL_EXAMPLE)]) == 0
    out, _err = capsys.readouterr()
    assert out.splitlines() == [
        "### meter1: 127.0.0.1:5030 unit 1, poll every 1 s",
        "",
        TABLE_HEADER,
        "|---|---|---|---|---|---|---|---|---|",
        "| discrete | 0 | bit | - | 1 | pump1-run | run_status | 0=STOPPED, 1=RUNNING | read |",
        "| input | 0 | uint16 | big/- | 0.001 | header1-pressure | pressure | MPa | read |",
        "| input | 1 | uint16 | big/- | 0.01 | pump1-current | current | A | read |",
        "",
    ]


def test_registers_shows_offsets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = MINIMAL_EXAMPLE.read_text(encoding="utf-8")
    old = "{sensor: pump1-current, table: input, address: 1, scale: 0.01}"
    assert text.count(old) == 1
    path = tmp_path / "offset.yaml"
    path.write_text(text.replace(old, old[:-1] + ", offset: -5, type: int32, word_order: little}"),
                    encoding="utf-8")
    assert main(["registers", "--site", str(path)]) == 0
    out, _err = capsys.readouterr()
    assert "| input | 1-2 | int32 | big/little | 0.01 -5 | pump1-current | current | A | read |" in out


def test_registers_on_a_bad_site_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent.yaml"
    assert main(["registers", "--site", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == f"{missing}: cannot read: No such file or directory"


def test_check_site_missing_file_exits_2_with_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-site.yaml"
    assert main(["check-site", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    assert err.splitlines() == [f"{missing}: cannot read: No such file or directory"]


def test_check_site_of_a_folder_without_site_files_exits_2(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-site", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{tmp_path}: the folder holds no site file (*.yaml)\n"
    assert "Traceback" not in err


def test_check_site_needs_a_file_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check-site"])
    assert exited.value.code == 2
    _out, err = capsys.readouterr()
    assert "the following arguments are required: file" in err
