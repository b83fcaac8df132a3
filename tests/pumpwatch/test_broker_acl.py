"""`pumpwatch broker-acl`: every identity may publish and read only its own topics.

These tests read the generated rules; tests/test_message_plane.py runs a real Mosquitto with them.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from pumpwatch.broker_acl import (
    AclError,
    Identity,
    Roles,
    centre_identities,
    password_hash,
    read_passwords,
    render_acl,
    room_identities,
    topic_matches,
)
from pumpwatch.cli import main
from pumpwatch.site import Site
from pumpwatch.sitefile import load_site, parse_site
from pumpwatch.wireless import plan_devices

ROOT = Path(__file__).resolve().parents[2]
ROLES = Roles(collectors=("collector-a", "collector-b"), apis=("api-1",), schedulers=("scheduler",),
              simulator="simulator", monitor="monitor")


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(ROOT / "examples" / "site.yaml")


@pytest.fixture(scope="module")
def edge_site() -> Site:
    return load_site(ROOT / "examples" / "edge-site.yaml")


@pytest.fixture(scope="module")
def centre(site: Site, edge_site: Site) -> dict[str, Identity]:
    return {i.name: i for i in centre_identities([site, edge_site], ROLES)}


def test_devices_publish_their_own_sensors_topics_and_nothing_else(centre: dict[str, Identity]) -> None:
    zigbee, tasmota = centre["harbour-view-zigbee2mqtt"], centre["harbour-view-tele-sensor"]
    assert zigbee.may("write", "zigbee2mqtt/dom-floor-leak")
    assert not zigbee.may("write", "zigbee2mqtt/dom-room-temp")  # not a sensor of this map
    assert not zigbee.may("write", "tele/dom-room-temp/SENSOR")  # another map's device
    assert tasmota.may("write", "tele/dom-room-temp/SENSOR")
    assert not tasmota.may("write", "zigbee2mqtt/dom-floor-leak")
    for device in (zigbee, tasmota, centre["harbour-view-sensors"]):
        for topic in ("pumpwatch/alarms/harbour-view/fire/fire-p1/leak", "pumpwatch/live/harbour-view/dom",
                      "pumpwatch/edge/room1-gw/batch", "pumpwatch/sim/control"):
            assert not device.may("write", topic), (device.name, topic)
        assert not any(rule.access != "write" for rule in device.rules)


def test_collectors_alone_publish_alarm_events_and_live_readings(centre: dict[str, Identity]) -> None:
    writers = {name for name, identity in centre.items()
               if identity.may("write", "pumpwatch/alarms/harbour-view/fire/fire-p1/leak")}
    assert writers == {"collector-a", "collector-b"}
    live = {name for name, identity in centre.items()
            if identity.may("write", "pumpwatch/live/harbour-view/dom")}
    assert live == {"collector-a", "collector-b"}
    collector = centre["collector-a"]
    assert not collector.may("write", "pumpwatch/alarms/harbour-view/nowhere/x/leak")  # the sites' rooms only
    assert not collector.may("write", "pumpwatch/alarms/elsewhere/fire/fire-p1/leak")  # their estates only
    assert not collector.may("write", "pumpwatch/alarms/fire/fire-p1/leak")  # the estate is a level
    assert collector.may("read", "zigbee2mqtt/dom-floor-leak")
    assert collector.may("read", "pumpwatch/edge/room1-gw/batch")
    assert collector.may("write", "pumpwatch/edge/room1-gw/time/reply")


def test_apis_only_subscribe(centre: dict[str, Identity]) -> None:
    api = centre["api-1"]
    assert api.may("read", "pumpwatch/alarms/harbour-view/dom/dom-p1/leak")
    assert api.may("read", "pumpwatch/live/harbour-view/fire")
    assert api.may("read", "pumpwatch/live/edge-example/room1")
    assert not api.may("read", "pumpwatch/live/edge-example/fire")  # that estate has no room fire
    assert not any("write" in rule.access for rule in api.rules)
    assert not api.may("read", "zigbee2mqtt/dom-floor-leak")


def test_the_scheduler_raises_only_failed_rotations(centre: dict[str, Identity]) -> None:
    scheduler = centre["scheduler"]
    assert scheduler.may("write", "pumpwatch/alarms/harbour-view/dom/dom-duty/rotation_failed")
    assert not scheduler.may("write", "pumpwatch/alarms/harbour-view/dom/dom-duty/leak")
    assert not scheduler.may("write", "pumpwatch/alarms/harbour-view/fire/fire-p1/rotation_failed")
    assert not scheduler.may("write", "pumpwatch/alarms/edge-example/dom/dom-duty/rotation_failed")


def test_an_edge_speaks_on_its_own_topics_only(centre: dict[str, Identity]) -> None:
    edge = centre["edge-room1-gw"]
    for kind in ("batch", "alarm", "time"):
        assert edge.may("write", f"pumpwatch/edge/room1-gw/{kind}")
        assert not edge.may("write", f"pumpwatch/edge/room2-gw/{kind}")
    assert edge.may("read", "pumpwatch/edge/room1-gw/time/reply")
    assert not edge.may("write", "pumpwatch/edge/room1-gw/time/reply")  # only the centre answers
    assert not edge.may("write", "pumpwatch/alarms/edge-example/room1/pump1/leak")
    assert not edge.may("read", "pumpwatch/edge/room2-gw/time/reply")


def test_the_simulator_publishes_what_it_simulates(site: Site, centre: dict[str, Identity]) -> None:
    simulated = {device.topic for device in plan_devices(site)}
    assert simulated
    assert all(centre["simulator"].may("write", topic) for topic in simulated)
    devices = [i for i in centre.values() if i.role == "device" and i.name.startswith("harbour-view")]
    assert {rule.topic for d in devices for rule in d.rules} == simulated  # each topic has its publisher
    assert centre["simulator"].may("read", "pumpwatch/sim/control")
    assert not centre["simulator"].may("write", "pumpwatch/alarms/harbour-view/dom/dom-p1/leak")
    assert centre["monitor"].rules[0].topic == "$SYS/broker/uptime"


def test_a_room_broker_lets_the_edge_read_its_rooms_devices(edge_site: Site) -> None:
    room = {i.name: i for i in room_identities(edge_site, "room1-gw", Roles())}
    assert set(room) == {"edge-example-zigbee2mqtt", "edge-room1-gw"}
    assert room["edge-room1-gw"].may("read", "zigbee2mqtt/room1-floor-leak")
    assert room["edge-example-zigbee2mqtt"].may("write", "zigbee2mqtt/room1-floor-leak")
    assert not room["edge-example-zigbee2mqtt"].may("write", "pumpwatch/alarms/edge-example/room1/room1/leak")
    assert room["edge-room1-gw"].may("write", "pumpwatch/alarms/edge-example/room1/room1/leak")
    with pytest.raises(AclError, match="no edge 'nowhere'"):
        room_identities(edge_site, "nowhere", Roles())


SHARED = """
site: {id: s, name: {zh: 站, en: Site}}
rooms:
  - id: r1
    name: {zh: 一号, en: One}
    sensors:
      - {id: leak1, kind: leak, source: mqtt}
      - {id: t1, kind: temperature, source: mqtt}
mqtt:
  - {topic: "gw/b/{sensor}", format: boolean, values: [{sensor: "{sensor}"}], username: gateway-1}
  - {topic: "gw/n/{sensor}", format: number, values: [{sensor: "{sensor}"}], username: gateway-1}
"""


def test_maps_with_one_username_share_an_identity_and_names_never_clash() -> None:
    site = parse_site(SHARED, "shared.yaml")
    identities = {i.name: i for i in centre_identities([site], Roles())}
    gateway = identities["gateway-1"]
    assert gateway.may("write", "gw/b/leak1")
    assert gateway.may("write", "gw/n/t1")
    assert not gateway.may("write", "gw/n/leak1")  # a leak detector is not a number
    with pytest.raises(AclError, match="given twice"):
        centre_identities([site], Roles(collectors=("gateway-1",)))
    with pytest.raises(AclError, match="given twice"):
        centre_identities([site], Roles(apis=("pumpwatch-collector",)))


def test_topic_filters_match_as_mqtt_does() -> None:
    assert topic_matches("a/+/c", "a/b/c")
    assert topic_matches("a/#", "a/b/c")
    assert not topic_matches("a/+", "a/b/c")
    assert not topic_matches("a/b", "a/b/c")


def test_password_hashes_are_mosquittos_pbkdf2_sha512() -> None:
    line = password_hash("s3cret", salt=b"0123456789ab")
    _empty, kind, rounds, salt, digest = line.split("$")
    assert (kind, rounds) == ("7", "101")
    assert base64.b64decode(salt) == b"0123456789ab"
    assert base64.b64decode(digest) == hashlib.pbkdf2_hmac("sha512", b"s3cret", b"0123456789ab", 101, 64)


def test_the_command_writes_the_acl_identities_and_password_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passwords = tmp_path / "passwords"
    passwords.write_text("# one a line\npumpwatch-collector:pw-c\npumpwatch-api:pw-a\n")
    out = tmp_path / "broker"
    site = str(ROOT / "examples" / "site.yaml")
    assert main(["broker-acl", "--site", site, "--out", str(out), "--passwords", str(passwords)]) == 0
    acl = (out / "acl").read_text()
    # The header names the command as it decides the ACL: where files go and passwords are left out.
    assert acl.startswith(f"# Mosquitto acl_file generated by `pumpwatch broker-acl --site {site}`.\n")
    assert "user pumpwatch-api\ntopic read pumpwatch/alarms/harbour-view/dom/#\n" in acl
    assert (out / "passwd").stat().st_mode & 0o777 == 0o600
    assert [line.split(":")[0] for line in (out / "passwd").read_text().splitlines()] == [
        "pumpwatch-collector", "pumpwatch-api"]
    assert "| pumpwatch-scheduler | scheduler |" in (out / "identities.md").read_text()
    printed = capsys.readouterr().out
    assert f"mosquitto_passwd {out / 'passwd'} pumpwatch-scheduler" in printed
    assert read_passwords(passwords) == {"pumpwatch-collector": "pw-c", "pumpwatch-api": "pw-a"}


def test_the_command_refuses_a_password_for_nobody_and_prints_without_out(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = str(ROOT / "examples" / "site.yaml")
    passwords = tmp_path / "passwords"
    passwords.write_text("pumpwatch-colector:typo\n")
    assert main(["broker-acl", "--site", site, "--out", str(tmp_path), "--passwords", str(passwords)]) == 2
    assert "pumpwatch-colector, which are not identities" in capsys.readouterr().err
    assert main(["broker-acl", "--site", site]) == 0
    assert capsys.readouterr().out == render_acl(
        centre_identities([load_site(Path(site))], Roles()), f"pumpwatch broker-acl --site {site}")


def _estate(estate: str, topic: str) -> Site:
    """An estate whose ids are the same as every other's (room `r1`, group `g1`), its devices on `topic`."""
    return parse_site(f"""
site: {{id: {estate}, name: {{zh: {estate}, en: {estate}}}}}
rooms:
  - id: r1
    name: {{zh: 一号, en: One}}
    sensors: [{{id: leak1, kind: leak, source: mqtt}}]
    equipment:
      - {{id: p1, type: pump, kind: domestic, rated_current: 10, duty_group: g1}}
      - {{id: p2, type: pump, kind: domestic, rated_current: 10, duty_group: g1}}
    duty_groups: [{{id: g1, pumps: [p1, p2]}}]
mqtt:
  - {{topic: "{topic}/{{sensor}}", format: boolean, values: [{{sensor: "{{sensor}}"}}]}}
edges:
  - {{id: {estate}-gw, rooms: [r1], username: {estate}-gw}}
""", f"{estate}.yaml")


def test_two_estates_with_the_same_room_ids_get_rules_naming_each_estate() -> None:
    north, south = _estate("north", "n/zb"), _estate("south", "s/zb")
    ids = {i.name: i for i in centre_identities([north, south], Roles())}
    collector, api, scheduler = ids["pumpwatch-collector"], ids["pumpwatch-api"], ids["pumpwatch-scheduler"]
    for estate in ("north", "south"):
        assert collector.may("write", f"pumpwatch/alarms/{estate}/r1/p1/leak")
        assert collector.may("write", f"pumpwatch/live/{estate}/r1")
        assert api.may("read", f"pumpwatch/live/{estate}/r1")
        assert scheduler.may("write", f"pumpwatch/alarms/{estate}/r1/g1/rotation_failed")
        assert ids[f"{estate}-gw"].may("write", f"pumpwatch/edge/{estate}-gw/batch")
    assert not collector.may("write", "pumpwatch/alarms/r1/p1/leak")  # an estate's room, never a bare one
    assert not collector.may("write", "pumpwatch/alarms/east/r1/p1/leak")
    assert ids["north-n-zb"].may("write", "n/zb/leak1")
    assert not ids["north-n-zb"].may("write", "s/zb/leak1")  # one estate's devices, not the other's
    assert not ids["north-gw"].may("write", "pumpwatch/edge/south-gw/batch")
    with pytest.raises(AclError, match="estate 'north' is given twice"):
        centre_identities([north, north], Roles())
    room = {i.name: i for i in room_identities(south, "south-gw", Roles())}
    assert room["south-gw"].may("write", "pumpwatch/alarms/south/r1/p1/leak")
    assert not room["south-gw"].may("write", "pumpwatch/alarms/north/r1/p1/leak")


def test_the_command_takes_a_folder_of_estates_and_finds_an_edges_estate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "estates"
    folder.mkdir()
    for estate, topic in (("north", "n/zb"), ("south", "s/zb")):
        (folder / f"{estate}.yaml").write_text(_estate_text(estate, topic), encoding="utf-8")
    assert main(["broker-acl", "--site", str(folder)]) == 0
    acl = capsys.readouterr().out
    assert "topic readwrite pumpwatch/alarms/north/r1/#\n" in acl
    assert "topic readwrite pumpwatch/alarms/south/r1/#\n" in acl
    assert main(["broker-acl", "--site", str(folder), "--edge", "south-gw"]) == 0
    edge_acl = capsys.readouterr().out
    assert "topic write pumpwatch/alarms/south/r1/#\n" in edge_acl
    assert "north" not in edge_acl.split("\n", 1)[1]


def _estate_text(estate: str, topic: str) -> str:
    """A smaller estate file of the same shape (one room `r1`, its devices on `topic`, one edge)."""
    return f"""site: {{id: {estate}, name: {{zh: {estate}, en: {estate}}}}}
rooms:
  - id: r1
    name: {{zh: 一号, en: One}}
    sensors: [{{id: leak1, kind: leak, source: mqtt}}]
mqtt:
  - {{topic: "{topic}/{{sensor}}", format: boolean, values: [{{sensor: "{{sensor}}"}}]}}
edges:
  - {{id: {estate}-gw, rooms: [r1], username: {estate}-gw}}
"""
