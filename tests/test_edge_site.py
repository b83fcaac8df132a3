"""Edges in the site file: their health sensors, the checks with file and line, who runs which rule,
and `pumpwatch edge` refusing to start without what it needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.edge_scope import centre_devices, centre_rules, edge_rules, scope_to_edge
from collector.rules.rulebook import Rulebook
from pumpwatch.catalog import SensorCatalog
from pumpwatch.cli import main
from pumpwatch.site import SensorKind, Site
from pumpwatch.sitefile import SiteFileError, parse_site

SITE = """\
site: {id: t, name: {zh: 测试, en: Test}}
rooms:
  - id: r1
    name: {zh: 一号泵房, en: Room 1}
    sensors:
      - {id: leak1, kind: leak, source: mqtt}
    equipment:
      - id: header1
        type: header
        sensors: [{id: p1, kind: pressure, source: modbus, range: [0, 2]}]
  - id: r2
    name: {zh: 二号泵房, en: Room 2}
    sensors:
      - {id: leak2, kind: leak, source: mqtt}
modbus:
  - id: plc1
    points: [{sensor: p1, table: input, address: 0}]
mqtt:
  - topic: "z/{sensor}"
    format: boolean
    values: [{sensor: "{sensor}"}]
rules:
  - id: low_and_wet
    asset: r1
    name: {zh: 低压且漏水, en: Low and wet}
    when: {all: [{sensor: p1, below: 0.1}, {sensor: leak1, state: WET}]}
  - id: edge_backlog
    asset: gw1
    name: {zh: 网关积压, en: Gateway backlog}
    when: {sensor: gw1.backlog_age, above: 600}
edges:
  - {id: gw1, name: {zh: 一号网关, en: Gateway 1}, rooms: [r1], username: edge-gw1}
"""


@pytest.fixture(scope="module")
def site() -> Site:
    return parse_site(SITE, "edges.yaml")


def test_an_edge_brings_its_health_sensors_into_the_catalog(site: Site) -> None:
    catalog = SensorCatalog(site)
    heartbeat = catalog.get("t/gw1.heartbeat")
    assert heartbeat is not None
    assert (heartbeat.room, heartbeat.equipment, heartbeat.kind) == ("r1", "gw1", SensorKind.EDGE_HEARTBEAT)
    assert {i.id for i in catalog if i.equipment == "gw1"} == {
        "gw1.heartbeat", "gw1.buffer_depth", "gw1.backlog_age", "gw1.clock_offset", "gw1.dropped",
        "gw1.version"}
    assert site.sensor("gw1.buffer_depth").display_unit == "readings"
    assert site.edge_rooms() == {"r1": "gw1"}


def test_the_edge_reads_its_rooms_and_the_centre_the_rest(site: Site) -> None:
    scoped = scope_to_edge(site, "gw1")
    assert [room.id for room in scoped.rooms] == ["r1"]
    assert [device.id for device in scoped.modbus] == ["plc1"]
    edge = {(r.key.asset, r.key.alarm_type) for r in edge_rules(Rulebook(scoped).rules, scoped)}
    centre = {(r.key.asset, r.key.alarm_type) for r in centre_rules(Rulebook(site).rules, site)}
    assert ("r1", "leak") in edge
    assert ("r1", "low_and_wet") in edge
    assert ("gw1", "edge_backlog") not in edge  # the edge's own health alarms at the centre
    assert ("r1", "leak") not in centre
    assert ("r1", "low_and_wet") not in centre
    assert {("r2", "leak"), ("gw1", "edge_backlog"), ("gw1", "edge_offline")} <= centre
    assert centre_devices(site).modbus == ()  # plc1 is in room 1: the edge polls it, not the centre
    with pytest.raises(KeyError):
        scope_to_edge(site, "gw9")


@pytest.mark.parametrize(("edges", "where", "message"), [
    ("  - {id: gw1, rooms: [r1, r9], username: a}\n", "edges[0].rooms[1]", "unknown room 'r9'"),
    ("  - {id: gw1, rooms: [r1], username: a}\n  - {id: gw2, rooms: [r1], username: b}\n",
     "edges[1].rooms[0]", "already served by edge 'gw1'"),
    ("  - {id: gw1, rooms: [r1], username: a}\n  - {id: gw2, rooms: [r2], username: a}\n",
     "edges[1].username", "one login per edge"),
    ("  - {id: header1, rooms: [r1], username: a}\n", "edges[0].id", "already the id of"),
    ("  - {id: gw1, rooms: [r1], username: a, heartbeat: 30, offline_after: 45}\n", "edges[0]",
     "at least two heartbeats"),
    ("  - {id: gw/1, rooms: [r1], username: a}\n", "edges[0].id", "pattern"),
])
def test_edge_mistakes_are_located_by_line(edges: str, where: str, message: str) -> None:
    text = SITE.split("edges:\n")[0].replace("  - id: edge_backlog", "  - id: edge_backlog_unused") \
        .replace("gw1.backlog_age", "p1").replace("asset: gw1", "asset: r1") + "edges:\n" + edges
    with pytest.raises(SiteFileError) as caught:
        parse_site(text, "edges.yaml")
    issue = next(i for i in caught.value.issues if message in i.message)
    assert issue.field.startswith(where)
    assert issue.line == text[:text.index("edges:\n")].count("\n") + 2 + (
        1 if where.startswith("edges[1]") else 0)


def test_a_declared_sensor_may_not_claim_to_come_from_an_edge() -> None:
    text = SITE.replace("{id: leak2, kind: leak, source: mqtt}", "{id: leak2, kind: leak, source: edge}")
    with pytest.raises(SiteFileError, match="source edge is for an edge's own health"):
        parse_site(text, "edges.yaml")


@pytest.mark.parametrize(("argv", "env", "message"), [
    ([], {}, "which edge is this box"),
    (["--edge-id", "gw9"], {}, "the site has no edge 'gw9'"),
    (["--edge-id", "gw1"], {}, "where is the centre"),
    (["--edge-id", "gw1", "--uplink", "http://centre"], {}, "scheme must be mqtt"),
    # A plain-text uplink in production: the production guard, exit 1 (tests/test_production_guard.py).
])
def test_pumpwatch_edge_refuses_to_start_without_what_it_needs(
        argv: list[str], env: dict[str, str], message: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PUMPWATCH_EDGE__ID", raising=False)
    monkeypatch.delenv("PUMPWATCH_EDGE__UPLINK_URL", raising=False)
    site = tmp_path / "site.yaml"
    site.write_text(SITE, encoding="utf-8")
    assert main(["edge", "--site", str(site), *argv]) == 2
    assert message in capsys.readouterr().err
