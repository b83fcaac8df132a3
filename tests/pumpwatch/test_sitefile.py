"""Site files: the examples load; every bad file is reported with its file, line and field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pumpwatch.cli import main
from pumpwatch.site import PumpKind, Site
from pumpwatch.sitefile import SiteFileError, SiteIssue, load_site, parse_site

EXAMPLES = Path(__file__).parents[2] / "examples"
SITE_EXAMPLE = EXAMPLES / "site.yaml"
MINIMAL_EXAMPLE = EXAMPLES / "minimal.yaml"

# A small valid site. Each bad-file case below is a small text edit of it.
BASE = """\
site:
  id: test-site
  name: {zh: 测试, en: Test}
rooms:
  - id: room1
    name: {zh: 泵房, en: Pump room}
    equipment:
      - id: pump1
        type: pump
        kind: domestic
        rated_current: 10
        sensors:
          - id: pump1-current
            kind: current
            source: modbus
          - id: pump1-run
            kind: run_status
            source: modbus
modbus:
  - id: plc1
    port: 5020
    poll_interval: 1.0
    timeout: 0.5
    points:
      - sensor: pump1-current
        table: input
        address: 0
        type: float32
      - sensor: pump1-run
        table: input
        address: 2
        type: uint16
"""


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based number of the `occurrence`-th line of `text` whose stripped content equals `needle`."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip() == needle]
    assert len(hits) >= occurrence, f"{needle!r} occurs {len(hits)} times in the test YAML"
    return hits[occurrence - 1]


def edit(text: str, old: str, new: str) -> str:
    """Replace the one occurrence of `old` (a safety net against edits that silently do nothing)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def write(tmp_path: Path, text: str, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def issues_of(path: Path) -> list[SiteIssue]:
    with pytest.raises(SiteFileError) as caught:
        load_site(path)
    assert caught.value.issues, "a SiteFileError must carry at least one issue"
    return caught.value.issues


def issue_at(issues: list[SiteIssue], field: str) -> SiteIssue:
    found = [i for i in issues if i.field == field]
    assert len(found) == 1, f"expected one issue at {field!r}, got {issues}"
    return found[0]


# --- valid files ------------------------------------------------------------------------------


def test_example_site_loads() -> None:
    site = load_site(SITE_EXAMPLE)
    assert site.site.id == "harbour-view"
    assert [room.id for room in site.rooms] == ["dom", "fire"]
    assert [device.id for device in site.modbus] == ["plc-dom", "plc-fire"]
    assert len(site.mqtt) == 3
    # Every Modbus-sourced sensor is fed by exactly one point (the reference check passed).
    fed = [p.sensor for d in site.modbus for p in d.points]
    modbus_sensors = [s.id for _r, _e, s in site.iter_sensors() if s.source == "modbus"]
    assert sorted(fed) == sorted(modbus_sensors)
    assert site.sensor("dom-p1-current").kind == "current"


def test_minimal_site_loads() -> None:
    site = load_site(MINIMAL_EXAMPLE)
    assert site.site.id == "minimal"
    assert len(site.rooms) == 1
    assert [s.id for _r, _e, s in site.iter_sensors()] == [
        "room1-floor-leak", "pump1-current", "pump1-run", "header1-pressure",
    ]
    (device,) = site.modbus
    assert (device.id, device.port, device.unit) == ("meter1", 5030, 1)
    assert [p.sensor for p in device.points] == ["header1-pressure", "pump1-current", "pump1-run"]


def test_base_yaml_of_these_tests_is_valid(tmp_path: Path) -> None:
    site = load_site(write(tmp_path, BASE))
    assert isinstance(site, Site)
    assert site.rooms[0].equipment[0].id == "pump1"
    assert parse_site(BASE).site.id == "test-site"


def test_load_site_accepts_str_path() -> None:
    assert load_site(str(MINIMAL_EXAMPLE)).site.id == "minimal"


# --- bad files: one located issue each --------------------------------------------------------


@dataclass(frozen=True)
class BadCase:
    """A text edit of BASE, the line (by its stripped content) and field the issue must name."""

    make: Callable[[str], str]
    marker: str  # the stripped line the issue must point at (in the edited text)
    field: str
    message: str  # a fragment of the message
    occurrence: int = 1  # which line equal to `marker` (duplicate keys point at the second)
    only: bool = True  # whether this must be the only issue


BAD_CASES: dict[str, BadCase] = {
    "duplicate sensor id": BadCase(
        make=lambda t: edit(t, "          - id: pump1-run\n",
                            "          - id: pump1-current\n            kind: temperature\n"
                            "            source: modbus\n          - id: pump1-run\n"),
        marker="- id: pump1-current", occurrence=2,
        field="rooms[0].equipment[0].sensors[1].id",
        message="duplicate sensor id 'pump1-current' (first defined at "
                "rooms[0].equipment[0].sensors[0].id)",
    ),
    "duplicate sensor id across room and equipment": BadCase(
        make=lambda t: edit(t, "    equipment:\n",
                            "    sensors:\n      - {id: pump1-run, kind: leak, source: mqtt}\n"
                            "    equipment:\n"),
        marker="- id: pump1-run",
        field="rooms[0].equipment[0].sensors[1].id",
        message="duplicate sensor id 'pump1-run' (first defined at rooms[0].sensors[0].id)",
    ),
    "overlapping registers": BadCase(
        make=lambda t: edit(t, "        address: 2\n", "        address: 1\n"),
        marker="address: 1",
        field="modbus[0].points[1].address",
        message="input register 1 of 'pump1-run' overlaps 'pump1-current' (points[0])",
    ),
    "point of an unknown sensor": BadCase(
        make=lambda t: t + "      - sensor: ghost-sensor\n        table: input\n        address: 5\n",
        marker="- sensor: ghost-sensor",
        field="modbus[0].points[2].sensor",
        message="unknown sensor 'ghost-sensor'",
    ),
    "timeout equal to poll_interval": BadCase(
        make=lambda t: edit(t, "    timeout: 0.5\n", "    timeout: 1.0\n"),
        marker="- id: plc1",
        field="modbus[0]",
        message="timeout 1.0 s must be shorter than poll_interval 1.0 s",
    ),
    "timeout above poll_interval": BadCase(
        make=lambda t: edit(t, "    timeout: 0.5\n", "    timeout: 2.5\n"),
        marker="- id: plc1",
        field="modbus[0]",
        message="timeout 2.5 s must be shorter than poll_interval 1.0 s",
    ),
    "port of the wrong type": BadCase(
        make=lambda t: edit(t, "    port: 5020\n", '    port: "abc"\n'),
        marker='port: "abc"',
        field="modbus[0].port",
        message="valid integer",
    ),
    "unknown pump kind": BadCase(
        make=lambda t: edit(t, "        kind: domestic\n", "        kind: irrigation\n"),
        marker="kind: irrigation",
        field="rooms[0].equipment[0].kind",  # not ...equipment[0].pump.kind: the union tag is dropped
        message="Input should be 'domestic'",
        only=False,  # pydantic also reports `rooms` as too short (see the report)
    ),
    "unknown field": BadCase(
        make=lambda t: edit(t, "        rated_current: 10\n",
                            "        rated_current: 10\n        rated_curent: 11\n"),
        marker="rated_curent: 11",
        field="rooms[0].equipment[0].rated_curent",
        message="unknown field (check the spelling)",
        only=False,
    ),
    "unknown equipment type": BadCase(
        make=lambda t: edit(t, "        type: pump\n", "        type: boiler\n"),
        marker="- id: pump1",
        field="rooms[0].equipment[0]",
        message="unknown type 'boiler'",
        only=False,
    ),
    "missing required field": BadCase(
        make=lambda t: edit(t, "        rated_current: 10\n", ""),
        marker="- id: pump1",
        field="rooms[0].equipment[0].rated_current",
        message="required field is missing",
        only=False,
    ),
    "duplicate YAML key": BadCase(
        make=lambda t: edit(t, "        rated_current: 10\n",
                            "        rated_current: 10\n        kind: fire\n"),
        marker="kind: fire",
        field="rooms[0].equipment[0].kind",
        message="key given twice in the same mapping",
    ),
    "duplicate top-level YAML key": BadCase(
        make=lambda t: t + "site:\n  id: again\n",
        marker="site:", occurrence=2,
        field="site",
        message="key given twice in the same mapping",
    ),
    "YAML syntax error": BadCase(
        make=lambda t: edit(t, "  id: test-site\n", "  id: test-site: oops\n"),
        marker="id: test-site: oops",
        field="",
        message="YAML: mapping values are not allowed here",
    ),
    "tab indentation": BadCase(
        make=lambda t: edit(t, "    port: 5020\n", "\tport: 5020\n"),
        marker="port: 5020",
        field="",
        message="YAML:",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES.values()), ids=list(BAD_CASES))
def test_bad_site_file_is_located(tmp_path: Path, case: BadCase) -> None:
    text = case.make(BASE)
    path = write(tmp_path, text, "bad-site.yaml")
    issues = issues_of(path)
    if case.only:
        assert len(issues) == 1, issues
    issue = issue_at(issues, case.field)
    assert issue.file == str(path)
    assert issue.line == line_of(text, case.marker, case.occurrence)
    assert case.message in issue.message
    # The rendered form is what the command prints: "file:line: field: message".
    prefix = f"{path}:{issue.line}: " + (f"{case.field}: " if case.field else "")
    assert str(issue) == prefix + issue.message


def test_unknown_pump_kind_names_the_valid_kinds(tmp_path: Path) -> None:
    issues = issues_of(write(tmp_path, edit(BASE, "kind: domestic", "kind: irrigation")))
    message = issue_at(issues, "rooms[0].equipment[0].kind").message
    for kind in PumpKind:
        assert f"'{kind.value}'" in message
    assert len(issues) == 1  # no knock-on "rooms: should have at least 1 item" for the failed item


def test_several_problems_are_all_reported_in_file_order(tmp_path: Path) -> None:
    text = edit(BASE, "        address: 2\n", "        address: 1\n")
    text += "      - sensor: ghost-sensor\n        table: input\n        address: 9\n"
    path = write(tmp_path, text)
    issues = issues_of(path)
    assert [(i.line, i.field) for i in issues] == [
        (line_of(text, "address: 1"), "modbus[0].points[1].address"),
        (line_of(text, "- sensor: ghost-sensor"), "modbus[0].points[2].sensor"),
    ]
    assert all(i.file == str(path) for i in issues)


def test_unclosed_flow_mapping_is_a_yaml_error(tmp_path: Path) -> None:
    text = edit(BASE, "name: {zh: 泵房, en: Pump room}", "name: {zh: 泵房, en: Pump room")
    path = write(tmp_path, text)
    (issue,) = issues_of(path)
    assert issue.file == str(path)
    assert issue.field == ""
    assert issue.message.startswith("YAML: while parsing a flow mapping")
    # PyYAML notices the missing '}' on the line after the one that opened the mapping.
    opened = line_of(text, "name: {zh: 泵房, en: Pump room")
    assert issue.line == opened + 1


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"], ids=["empty", "blank", "comment"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text, "empty.yaml")
    (issue,) = issues_of(path)
    assert issue.file == str(path)
    assert issue.line == 1
    assert issue.field == ""
    assert issue.message == "a site file is a mapping with site, rooms, ..."


def test_file_that_is_a_list_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- site\n- rooms\n")
    (issue,) = issues_of(path)
    assert (issue.file, issue.line, issue.field) == (str(path), 1, "")
    assert "mapping" in issue.message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "no-such-site.yaml"
    (issue,) = issues_of(path)
    assert issue.file == str(path)
    assert issue.line == 0
    assert issue.field == ""
    assert issue.message == "cannot read: No such file or directory"
    assert str(issue) == f"{path}: cannot read: No such file or directory"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    (issue,) = issues_of(tmp_path)
    assert (issue.file, issue.line, issue.field) == (str(tmp_path), 0, "")
    assert issue.message.startswith("cannot read: ")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(BASE.replace("测试", "Tést").encode("latin-1", errors="replace"))
    (issue,) = issues_of(path)
    assert (issue.file, issue.line, issue.field) == (str(path), 0, "")
    assert issue.message.startswith("not UTF-8 text")


def test_parse_site_uses_the_given_name() -> None:
    with pytest.raises(SiteFileError) as caught:
        parse_site(edit(BASE, "    port: 5020\n", "    port: -1\n"), "inline.yaml")
    (issue,) = caught.value.issues
    assert issue.file == "inline.yaml"
    assert issue.field == "modbus[0].port"
    assert issue.line == line_of(BASE, "port: 5020")
    assert str(caught.value) == str(issue)


# --- pumpwatch check-site ---------------------------------------------------------------------


def test_check_site_example_prints_one_line_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-site", str(SITE_EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1, out
    (line,) = lines
    site = load_site(SITE_EXAMPLE)
    sensors = sum(len(r.sensors) + sum(len(e.sensors) for e in r.equipment) for r in site.rooms)
    points = sum(len(d.points) for d in site.modbus)
    assert line.startswith(f"{SITE_EXAMPLE}: OK: site harbour-view (海景花园 / Harbour View Gardens), ")
    assert "2 rooms" in line
    assert f"{sensors} sensors" in line
    assert f"2 Modbus devices ({points} points)" in line
    assert "3 MQTT topic maps" in line
    assert "Traceback" not in err


def test_check_site_minimal_uses_singular_nouns(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-site", str(MINIMAL_EXAMPLE)]) == 0
    out, _err = capsys.readouterr()
    assert out.strip() == (
        f"{MINIMAL_EXAMPLE}: OK: site minimal (最小示例 / Minimal example), 1 room, 2 equipment, "
        "4 sensors, 1 Modbus device (3 points), 1 MQTT topic map"
    )


def test_check_site_bad_file_exits_2_with_located_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = edit(BASE, "        address: 2\n", "        address: 1\n")
    text += "      - sensor: ghost-sensor\n        table: input\n        address: 9\n"
    path = write(tmp_path, text, "bad.yaml")
    assert main(["check-site", str(path)]) == 2
    out, err = capsys.readouterr()
    assert "OK" not in out
    assert "Traceback" not in out + err
    printed = err.splitlines()
    assert printed == [
        f"{path}:{line_of(text, 'address: 1')}: modbus[0].points[1].address: "
        "input register 1 of 'pump1-run' overlaps 'pump1-current' (points[0])",
        f"{path}:{line_of(text, '- sensor: ghost-sensor')}: modbus[0].points[2].sensor: "
        "unknown sensor 'ghost-sensor'",
    ]


def test_check_site_yaml_error_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = edit(BASE, "  id: test-site\n", "  id: test-site: oops\n")
    path = write(tmp_path, text, "broken.yaml")
    assert main(["check-site", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith(f"{path}:{line_of(text, 'id: test-site: oops')}: YAML: ")


# --- buses, the field's sensor kinds, decimal-point codes, entry selectors ----------------------

EDGE_ROOM_EXAMPLE = EXAMPLES / "edge-room.yaml"

# BASE with an RS-485 line: the pump's meter is unit 1 on a serial bus, and a gateway bus.
BUS_BASE = edit(BASE, "modbus:\n  - id: plc1\n    port: 5020\n", """\
buses:
  - id: line1
    transport: serial
    path: /dev/ttyUSB0
    baudrate: 9600
  - id: gw1
    transport: tcp
    host: 10.0.0.9
    port: 4001
modbus:
  - id: plc1
    bus: line1
    unit: 1
""")


def test_edge_room_example_loads_with_its_buses_kinds_scale_and_entry_selectors() -> None:
    site = load_site(EDGE_ROOM_EXAMPLE)
    assert [(b.id, b.transport.value, b.framer.value) for b in site.buses] == [
        ("rs485-1", "serial", "rtu"), ("gw-tank", "tcp", "rtu")]
    assert {d.id: (d.bus, d.unit) for d in site.modbus} == {
        "meter": ("rs485-1", 1), "vfd-1": ("rs485-1", 2), "vfd-2": ("rs485-1", 3),
        "pressure-tx": ("rs485-1", 4), "water-quality": ("gw-tank", 5)}
    # A unit without a timeout of its own takes its bus's.
    assert {d.id: d.timeout for d in site.modbus}["meter"] == 0.3
    assert {d.id: d.timeout for d in site.modbus}["water-quality"] == 0.5
    kinds = {s.kind.value for _r, _e, s in site.iter_sensors()}
    assert {"active_power", "reactive_power", "energy", "frequency", "power_factor", "fault_code",
            "humidity", "door", "smoke", "turbidity", "residual_chlorine", "ph", "conductivity",
            "custom"} <= kinds
    fault = site.sensor("b2-p1-fault")
    assert (fault.state_codes["OK"], fault.state_codes["MOTOR_OVERLOAD"]) == (0, 10)
    assert site.sensor("b2-p2-fault").state_codes == fault.state_codes  # the YAML anchor is shared
    pressure = next(p for d in site.modbus for p in d.points if p.sensor == "b2-pressure")
    assert pressure.scale_from is not None
    assert (pressure.scale_from.table.value, pressure.scale_from.address) == ("holding", 3)
    assert site.sensor("b2-pf").valid_range == (-1.0, 1.0)
    assert site.sensor("b2-noise").display_unit == "dB(A)"
    assert site.sensor("b2-energy").display_unit == "kWh"
    assert site.mqtt[0].values[0].field == "values[id=hum].v"


def test_check_site_passes_the_edge_room_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-site", str(EDGE_ROOM_EXAMPLE)]) == 0
    out, _err = capsys.readouterr()
    assert out.startswith(f"{EDGE_ROOM_EXAMPLE}: OK: site edge-room")
    assert "5 Modbus devices" in out


def test_bus_base_of_these_tests_is_valid() -> None:
    site = parse_site(BUS_BASE)
    assert site.modbus[0].bus == "line1"
    assert site.buses[1].tcp_port == 4001


BUS_CASES: dict[str, BadCase] = {
    "a unit id used twice on one bus": BadCase(
        make=lambda t: t + """\
  - id: plc2
    bus: line1
    unit: 1
    points:
      - {sensor: pump2-current, table: input, address: 0}
""".replace("pump2-current", "pump1-current"),
        marker="unit: 1", occurrence=2,
        field="modbus[1].unit",
        message="unit 1 on bus 'line1' is already device 'plc1'",
        only=False,  # the point also feeds a sensor plc1 feeds
    ),
    "a device naming an unknown bus": BadCase(
        make=lambda t: edit(t, "    bus: line1\n", "    bus: line9\n"),
        marker="bus: line9",
        field="modbus[0].bus",
        message="unknown bus 'line9' (buses: line1, gw1)",
    ),
    "a serial device with a TCP host": BadCase(
        make=lambda t: edit(t, "    bus: line1\n", "    bus: line1\n    host: 10.0.0.5\n"),
        marker="host: 10.0.0.5",
        field="modbus[0].host",
        message="device is unit 1 on serial bus 'line1' (serial /dev/ttyUSB0 9600 8N1 rtu): the bus "
                "is its address; remove host",
    ),
    "a TCP device whose host is a serial port": BadCase(
        make=lambda t: edit(t, "    bus: line1\n    unit: 1\n", "    host: /dev/ttyUSB1\n"),
        marker="host: /dev/ttyUSB1",
        field="modbus[0].host",
        message="host '/dev/ttyUSB1' is a serial port, not a network address: use a serial bus",
    ),
    "a TCP device at a gateway that speaks RTU": BadCase(
        make=lambda t: edit(t, "    bus: line1\n    unit: 1\n", "    host: 10.0.0.9\n    port: 4001\n"),
        marker="host: 10.0.0.9", occurrence=2,
        field="modbus[0].host",
        message="10.0.0.9:4001 is the gateway of bus 'gw1', which speaks Modbus RTU",
    ),
    "a poll cycle that cannot fit the bus": BadCase(
        make=lambda t: edit(edit(t, "    baudrate: 9600\n", "    baudrate: 1200\n"),
                            "    poll_interval: 1.0\n    timeout: 0.5\n",
                            "    poll_interval: 0.5\n    timeout: 0.45\n"),
        marker="- id: line1",
        field="buses[0]",
        # One read of 3 input registers: 8 + 11 characters at 11 bits and 1200 bit/s (174 ms), and two
        # silences of 3.5 characters (64 ms).
        message="one poll cycle of its units takes about 688 ms at 1200 bit/s (238 ms for 1 request, "
                "+ 450 ms timeout of one unit that does not answer), longer than the shortest poll "
                "interval, 0.5 s of device 'plc1': raise the baud rate, lengthen poll_interval or "
                "shorten timeout",
    ),
    "a serial bus with a host": BadCase(
        make=lambda t: edit(t, "    path: /dev/ttyUSB0\n", "    path: /dev/ttyUSB0\n    host: 10.0.0.1\n"),
        marker="- id: line1",
        field="buses[0]",
        message="a serial bus is reached through 'path'",
    ),
    "a tcp bus without a host": BadCase(
        make=lambda t: edit(t, "    host: 10.0.0.9\n", ""),
        marker="- id: gw1",
        field="buses[1]",
        message="a tcp bus needs 'host'",
    ),
    "RTU with 7 data bits": BadCase(
        make=lambda t: edit(t, "    baudrate: 9600\n", "    baudrate: 9600\n    bytesize: 7\n"),
        marker="- id: line1",
        field="buses[0]",
        message="Modbus RTU needs 8 data bits",
    ),
    "unit 0 on a bus": BadCase(
        make=lambda t: edit(t, "    unit: 1\n", "    unit: 0\n"),
        marker="unit: 0",
        field="modbus[0].unit",
        message="unit 0 cannot be polled on an RS-485 line (0 is broadcast",
    ),
    "a duplicate bus id": BadCase(
        make=lambda t: edit(t, "  - id: gw1\n", "  - id: line1\n"),
        marker="- id: line1", occurrence=2,
        field="buses[1].id",
        message="duplicate bus id 'line1'",
    ),
    "a custom sensor without a unit": BadCase(
        make=lambda t: edit(t, "            kind: run_status\n", "            kind: custom\n"),
        marker="- id: pump1-run",
        field="rooms[0].equipment[0].sensors[1]",
        message="a custom sensor needs its 'unit'",
        only=False,
    ),
    "states given twice": BadCase(
        make=lambda t: edit(t, "            kind: run_status\n",
                            "            kind: fault_code\n            states: {OK: 0}\n"
                            "            codes: {0: OK}\n"),
        marker="- id: pump1-run",
        field="rooms[0].equipment[0].sensors[1]",
        message="give the states either as 'states'",
        only=False,
    ),
    "a decimal-point code on a bit": BadCase(
        make=lambda t: edit(t, "        address: 2\n        type: uint16\n",
                            "        address: 2\n        type: bit\n        bit: 0\n"
                            "        scale_from: {table: holding, address: 3}\n"),
        marker="- sensor: pump1-run",
        field="modbus[0].points[1]",
        message="'scale_from' applies to numbers read from registers",
        only=False,
    ),
    "a decimal-point code in a coil": BadCase(
        make=lambda t: edit(t, "        type: uint16\n",
                            "        type: uint16\n        scale_from: {table: coil, address: 3}\n"),
        marker="scale_from: {table: coil, address: 3}",
        field="modbus[0].points[1].scale_from.table",
        message="a decimal-point code lives in a holding or input register",
        only=False,
    ),
}


@pytest.mark.parametrize("case", list(BUS_CASES.values()), ids=list(BUS_CASES))
def test_bad_bus_or_kind_is_located(tmp_path: Path, case: BadCase) -> None:
    text = case.make(BUS_BASE)
    path = write(tmp_path, text, "bad-bus.yaml")
    issues = issues_of(path)
    if case.only:
        assert len(issues) == 1, issues
    issue = issue_at(issues, case.field)
    assert issue.line == line_of(text, case.marker, case.occurrence)
    assert case.message in issue.message, issue.message


@pytest.mark.parametrize(("field", "message"), [
    ("values[id=]", "write an entry selector as [key=value]"),
    ("values[id=p1", "'[' without ']'"),
    ("values..v", "empty name"),
])
def test_a_bad_entry_selector_is_located(tmp_path: Path, field: str, message: str) -> None:
    text = BASE.replace("            kind: current\n            source: modbus\n",
                        "            kind: current\n            source: mqtt\n") + f"""\
mqtt:
  - topic: gw/batch
    values:
      - {{field: "{field}", sensor: pump1-current}}
"""
    issues = issues_of(write(tmp_path, text))
    issue = issue_at(issues, "mqtt[0].values[0].field")
    assert message in issue.message
    assert issue.line == line_of(text, f'- {{field: "{field}", sensor: pump1-current}}')
