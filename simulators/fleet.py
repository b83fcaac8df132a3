"""A deterministic fleet of estates: one site file per estate and a deployment file naming them.

`write_fleet` makes a portfolio that runs without hardware (`pumpwatch simulate --estates N`, `pumpwatch
demo --estates 3`, the overview's screenshots, the scale benchmark). The same seed gives the same bytes,
and estate n is the same whatever the number of estates asked for (each estate has its own random stream
drawn from the seed and its number), so a fleet of 5 is the first 5 estates of a fleet of 200.

Each estate has one or two pump rooms, equipped within the regulation (../shared/PUMP-ROOM-RULES.md):

- **domestic** (生活水泵房): a duty/standby group of two or three domestic pumps switched by header pressure,
  a break tank, the supply header (pressure, flow), a pressure tank, a suction strainer, the cabinet, the
  room, and the secondary supply's water quality (二次供水);
- **fire** (消防泵房): one or two fire pumps, a sprinkler pump with its jockey pump, the sprinkler and
  hydrant mains, a drainage sump and its sewage pumps, the cabinet and the room;
- an estate of one room gets a **combined** room: the domestic group, a fire pump with its jockey, a sump.

About 40 sensors a room. Pump sizes (rated power and current), tank and sump sizes, the duty group's
pressure band and the thresholds that follow from it vary per estate. How readings reach the centre is
the `feed`:

- `edge`: an edge gateway per estate serves its rooms (edge ids and logins unique); its PLCs are on the
  pump rooms' own networks (10.x.y.z:502, one address per room across the fleet);
- `modbus`: each room's PLC on Modbus TCP at 127.0.0.1, one port per room across the fleet
  (`modbus_port_base` + the room's number in the fleet);
- `mqtt`: each room's PLC readings through a 4G data terminal (DTU) publishing one JSON document a poll
  on `dtu/<estate>/<room>`;
- `mixed`: one of the three per estate, drawn from the seed.

Whatever the feed, the rooms' wireless sensors (floor and flange leaks with their batteries, room
temperature) publish Zigbee2MQTT payloads under the estate's own prefix, `z2m/<estate>/leak/<device>` and
`z2m/<estate>/climate/<device>`, so no
two estates' topic maps match one topic (`pumpwatch.portfolio.conflicts`).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

Feed = Literal["edge", "modbus", "mqtt", "mixed"]
FEEDS: tuple[str, ...] = ("edge", "modbus", "mqtt", "mixed")
DEPLOYMENT_FILE = "deployment.yaml"
ESTATES_DIR = "estates"
DEFAULT_MODBUS_PORT_BASE = 21000

# Estate names: a place word and a kind of estate, both languages; a name used up gets a phase (二期).
_PLACES: tuple[tuple[str, str], ...] = (
    ("海景", "Harbour View"), ("翠湖", "Green Lake"), ("金桂", "Golden Osmanthus"), ("龙湾", "Dragon Bay"),
    ("锦绣", "Splendour"), ("紫荆", "Bauhinia"), ("碧水", "Clearwater"), ("枫林", "Maple Grove"),
    ("阳光", "Sunshine"), ("御景", "Royal View"), ("半岛", "Peninsula"), ("星河", "Star River"),
    ("万象", "Panorama"), ("桃源", "Peach Spring"), ("松涛", "Pine Wave"), ("明珠", "Pearl"),
    ("香榭", "Champs"), ("云峰", "Cloud Peak"), ("东湖", "East Lake"), ("南山", "South Hill"),
    ("西溪", "West Creek"), ("北辰", "Polaris"), ("银杏", "Ginkgo"), ("春晓", "Spring Dawn"),
)
_KINDS: tuple[tuple[str, str], ...] = (
    ("花园", "Gardens"), ("苑", "Court"), ("华庭", "Residences"), ("新村", "Village"),
    ("公馆", "Mansions"), ("雅居", "Terrace"), ("名邸", "Manor"), ("家园", "Homes"),
)
_PHASES_ZH = "一二三四五六七八九十"
REGIONS: tuple[str, ...] = ("nanshan", "futian", "luohu", "baoan", "longgang", "longhua", "yantian")
GROUPS: tuple[str, ...] = ("team-east", "team-west", "team-north", "contract-a", "contract-b")

# Motor sizes: rated power kW -> rated current A (four-pole, 380 V, IE3).
_DOMESTIC_MOTORS: tuple[tuple[float, float], ...] = (
    (3.0, 6.8), (4.0, 8.8), (5.5, 11.6), (7.5, 15.6), (11.0, 22.6), (15.0, 30.3), (18.5, 36.7))
_FIRE_MOTORS: tuple[tuple[float, float], ...] = ((22.0, 43.1), (30.0, 56.9), (37.0, 69.8), (45.0, 84.2),
                                                  (55.0, 103.0))
_JOCKEY_MOTORS: tuple[tuple[float, float], ...] = ((1.5, 3.7), (2.2, 5.0), (3.0, 6.8))
_SEWAGE_MOTORS: tuple[tuple[float, float], ...] = ((1.1, 2.8), (1.5, 3.7), (2.2, 5.0), (3.0, 6.8))

# How a PLC carries each kind: table, data type, scale.
_REGISTERS: dict[str, tuple[str, str, float]] = {
    "pressure": ("input", "uint16", 0.001), "level": ("input", "uint16", 0.001),
    "current": ("input", "float32", 1.0), "flow": ("input", "float32", 1.0),
    "temperature": ("input", "int16", 0.1), "voltage": ("input", "uint16", 0.1),
    "run_hours": ("input", "uint32", 0.1), "switch_position": ("input", "uint16", 1.0),
    "vibration": ("input", "uint16", 0.01), "active_power": ("input", "uint16", 0.01),
    "humidity": ("input", "uint16", 0.1), "turbidity": ("input", "uint16", 0.001),
    "residual_chlorine": ("input", "uint16", 0.001), "ph": ("input", "uint16", 0.01),
    "differential_pressure": ("input", "uint16", 0.1), "run_status": ("discrete", "bit", 1.0),
    "door": ("discrete", "bit", 1.0), "smoke": ("discrete", "bit", 1.0), "leak": ("discrete", "bit", 1.0),
    "run_command": ("coil", "bit", 1.0), "duty_select": ("holding", "uint16", 1.0),
}
_WRITABLE = frozenset({"run_command", "duty_select"})


@dataclass
class _Room:
    """A room being built: its file entry, the sensors its PLC carries and its wireless sensors."""

    id: str
    name: dict[str, str]
    equipment: list[dict[str, Any]] = field(default_factory=list)
    sensors: list[dict[str, Any]] = field(default_factory=list)  # room-level
    duty_groups: list[dict[str, Any]] = field(default_factory=list)
    plc: list[dict[str, Any]] = field(default_factory=list)  # every wired sensor, in order
    wireless: list[str] = field(default_factory=list)  # the leak and temperature devices

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.duty_groups:
            out["duty_groups"] = self.duty_groups
        if self.sensors:
            out["sensors"] = self.sensors
        out["equipment"] = self.equipment
        return out


def _text(zh: str, en: str) -> dict[str, str]:
    return {"zh": zh, "en": en}


def _round(value: float, digits: int = 2) -> float:
    return round(value, digits)


class _Builder:
    """One estate's site file, drawn from its own random stream."""

    def __init__(self, number: int, seed: int, rooms: tuple[int, int], feed: str,
                 modbus_port_base: int, room_offset: int) -> None:
        self.number = number
        self.rng = random.Random(f"pumpwatch-fleet:{seed}:{number}")
        self.room_count = self.rng.randint(*rooms)
        self.feed = self.rng.choice(("edge", "modbus", "mqtt")) if feed == "mixed" else feed
        self.modbus_port_base = modbus_port_base
        self.room_offset = room_offset  # rooms of the estates before this one: a fleet-wide room number

    # --- sensors ------------------------------------------------------------------------------------

    def _wired(self, room: _Room, sid: str, kind: str, zh: str, en: str, *,
               range_: tuple[float, float] | None = None,
               thresholds: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        sensor: dict[str, Any] = {"id": sid, "kind": kind, "name": _text(zh, en)}
        if range_ is not None:
            sensor["range"] = [range_[0], range_[1]]
        sensor["source"] = "mqtt" if self.feed == "mqtt" else "modbus"
        if thresholds:
            sensor["thresholds"] = thresholds
        room.plc.append(sensor)
        return sensor

    def _wireless(self, room: _Room, sid: str, kind: str, zh: str, en: str, *, battery: bool,
                  range_: tuple[float, float] | None = None,
                  thresholds: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        sensor: dict[str, Any] = {"id": sid, "kind": kind, "name": _text(zh, en)}
        if range_ is not None:
            sensor["range"] = [range_[0], range_[1]]
        sensor["source"] = "mqtt"
        if thresholds:
            sensor["thresholds"] = thresholds
        room.wireless.append(sid)
        out = [sensor]
        if battery:
            out.append({"id": f"{sid}-battery", "kind": "battery", "name": _text(f"{zh}探头电量",
                                                                                 f"{en} detector battery"),
                        "range": [0, 100], "source": "mqtt",
                        "thresholds": [{"when": "below", "value": 15, "severity": "warning"}]})
        return out

    def _pump(self, room: _Room, pid: str, kind: str, zh: str, en: str, motor: tuple[float, float], *,
              flow: float, shutoff: float, duty_group: str | None = None, vibration: bool = True,
              temperature: bool = True, power: bool = False) -> dict[str, Any]:
        kw, amps = motor
        winding = self.rng.choice((105, 110, 115, 120))
        sensors = [self._wired(room, f"{pid}-current", "current", f"{zh}电流", f"{en} current",
                               range_=(0, float(max(20, round(amps * 4, -1)))))]
        if temperature:
            sensors.append(self._wired(room, f"{pid}-temp", "temperature", f"{zh}绕组温度",
                                       f"{en} winding temperature", range_=(-20, 200), thresholds=[
                                           {"when": "above", "value": winding, "severity": "major",
                                            "hysteresis": 5, "for_seconds": 60},
                                           {"when": "above", "value": winding + 20, "severity": "critical",
                                            "hysteresis": 5, "for_seconds": 30}]))
        if vibration:
            sensors.append(self._wired(room, f"{pid}-vibration", "vibration", f"{zh}振动", f"{en} vibration",
                                       range_=(0, 50)))
        if power:
            sensors.append(self._wired(room, f"{pid}-power", "active_power", f"{zh}有功功率",
                                       f"{en} active power", range_=(0, _round(kw * 2, 1))))
        sensors += [
            self._wired(room, f"{pid}-switch", "switch_position", f"{zh}转换开关", f"{en} selector switch"),
            self._wired(room, f"{pid}-run", "run_status", f"{zh}运行", f"{en} running"),
            self._wired(room, f"{pid}-cmd", "run_command", f"{zh}远程启动", f"{en} remote run"),
            self._wired(room, f"{pid}-hours", "run_hours", f"{zh}累计运行", f"{en} run hours",
                        range_=(0, 500000)),
        ]
        pump: dict[str, Any] = {"id": pid, "type": "pump", "kind": kind, "name": _text(zh, en),
                                "rated_current": amps, "rated_power_kw": kw, "rated_flow": flow,
                                "shutoff_pressure": shutoff}
        if duty_group is not None:
            pump["duty_group"] = duty_group
        pump["sensors"] = sensors
        room.equipment.append(pump)
        return pump

    def _room_climate(self, room: _Room, *, smoke: bool) -> None:
        p = room.id
        room.sensors += self._wireless(room, f"{p}-floor-leak", "leak", "地面漏水", "Floor leak",
                                       battery=True)
        room.sensors += self._wireless(room, f"{p}-room-temp", "temperature", "室温", "Room temperature",
                                       battery=False, range_=(-30, 70), thresholds=[
                                           {"when": "below", "value": 4, "severity": "major",
                                            "hysteresis": 1, "for_seconds": 300},
                                           {"when": "above", "value": 40, "severity": "warning",
                                            "hysteresis": 1, "for_seconds": 300}])
        room.sensors.append(self._wired(room, f"{p}-humidity", "humidity", "湿度", "Humidity",
                                        thresholds=[{"when": "above", "value": 85, "severity": "minor",
                                                     "hysteresis": 3, "for_seconds": 600}]))
        room.sensors.append(self._wired(room, f"{p}-door", "door", "门禁", "Door"))
        if smoke:
            room.sensors.append(self._wired(room, f"{p}-smoke", "smoke", "烟感", "Smoke detector"))

    def _cabinet(self, room: _Room, zh: str, en: str, *, duty_select: bool) -> None:
        p = room.id
        warm = self.rng.choice((42, 45, 48))
        sensors = [
            self._wired(room, f"{p}-cabinet-temp", "temperature", "柜内温度", "Cabinet temperature",
                        range_=(-20, 100), thresholds=[
                            {"when": "above", "value": warm, "severity": "minor", "hysteresis": 2,
                             "for_seconds": 120},
                            {"when": "above", "value": warm + 10, "severity": "major", "hysteresis": 2,
                             "for_seconds": 60}]),
            self._wired(room, f"{p}-supply-voltage", "voltage", "进线电压", "Supply voltage",
                        range_=(0, 500), thresholds=[
                            {"when": "below", "value": 342, "severity": "major", "hysteresis": 4,
                             "for_seconds": 10},
                            {"when": "above", "value": 418, "severity": "major", "hysteresis": 4,
                             "for_seconds": 10}]),
        ]
        if duty_select:
            sensors.append(self._wired(room, f"{p}-duty-select", "duty_select", "主用泵选择",
                                       "Duty pump select", range_=(1, 3)))
        room.equipment.append({"id": f"{p}-cabinet", "type": "cabinet", "name": _text(zh, en),
                               "sensors": sensors})

    # --- rooms --------------------------------------------------------------------------------------

    def _domestic(self, room: _Room, *, quality: bool) -> None:
        """The domestic group, break tank, header, pressure tank, strainer, cabinet and water quality."""
        r = self.rng
        p = room.id
        pumps = r.choice((2, 2, 3))
        motor = r.choice(_DOMESTIC_MOTORS)
        start = _round(r.choice((0.28, 0.30, 0.32, 0.35, 0.38, 0.40)))
        stop = _round(start + r.choice((0.12, 0.15, 0.18)))
        shutoff = _round(stop + r.choice((0.25, 0.30, 0.35)))
        flow = float(r.choice((20, 25, 30, 40, 50)))
        group = f"{p}-duty"
        ids = [f"{p}-p{n}" for n in range(1, pumps + 1)]
        room.duty_groups.append({"id": group, "pumps": ids,
                                 "control": {"start_pressure": start, "stop_pressure": stop}})
        for n, pid in enumerate(ids, start=1):
            self._pump(room, pid, "domestic", f"{n}号生活泵", f"Domestic pump {n}", motor, flow=flow,
                       shutoff=shutoff, duty_group=group, power=True)
        height = _round(r.choice((2.5, 3.0, 3.5, 4.0)), 1)
        area = float(r.choice((8, 10, 12, 16, 20, 30)))
        room.equipment.append({
            "id": f"{p}-tank", "type": "tank", "name": _text("生活水箱", "Break tank"), "height": height,
            "area": area, "refill_flow": _round(flow * 1.5, 1),
            "sensors": [self._wired(room, f"{p}-tank-level", "level", "水箱液位", "Tank level",
                                    range_=(0, _round(height + 0.5, 1)), thresholds=[
                                        {"when": "below", "value": _round(height * 0.25), "severity": "major",
                                         "hysteresis": 0.1, "for_seconds": 60},
                                        {"when": "below", "value": _round(height * 0.1),
                                         "severity": "critical", "hysteresis": 0.1, "for_seconds": 10}])]})
        room.equipment.append({
            "id": f"{p}-header", "type": "header", "name": _text("供水总管", "Supply header"),
            "sensors": [
                self._wired(room, f"{p}-header-pressure", "pressure", "出水压力", "Outlet pressure",
                            range_=(0, 1.6), thresholds=[
                                {"when": "below", "value": _round(start - 0.05), "severity": "major",
                                 "hysteresis": 0.02, "for_seconds": 60},
                                {"when": "below", "value": _round(max(0.08, start - 0.16)),
                                 "severity": "critical", "hysteresis": 0.02, "for_seconds": 20},
                                {"when": "above", "value": _round(stop + 0.2), "severity": "major",
                                 "hysteresis": 0.02, "for_seconds": 20}]),
                self._wired(room, f"{p}-header-flow", "flow", "出水流量", "Supply flow",
                            range_=(0, flow * pumps * 2))]})
        room.equipment.append({
            "id": f"{p}-ptank", "type": "pressure_tank", "name": _text("气压罐", "Pressure tank"),
            "volume": r.choice((0.5, 1.0, 1.5)),
            "sensors": self._wireless(room, f"{p}-flange-leak", "leak", "法兰漏水", "Flange leak",
                                      battery=True)})
        room.equipment.append({
            "id": f"{p}-filter", "type": "filter", "name": _text("进水过滤器", "Suction strainer"),
            "sensors": [self._wired(room, f"{p}-filter-dp", "differential_pressure", "过滤器压差",
                                    "Strainer differential pressure", range_=(0, 100), thresholds=[
                                        {"when": "above", "value": r.choice((30, 35, 40)),
                                         "severity": "minor", "hysteresis": 2, "for_seconds": 600}])]})
        self._cabinet(room, "生活泵控制柜", "Domestic pump control cabinet", duty_select=True)
        if quality:  # secondary water supply (二次供水): the quality the tank delivers
            room.sensors += [
                self._wired(room, f"{p}-turbidity", "turbidity", "浊度", "Turbidity", range_=(0, 10),
                            thresholds=[{"when": "above", "value": 1.0, "severity": "major",
                                         "hysteresis": 0.1, "for_seconds": 300}]),
                self._wired(room, f"{p}-chlorine", "residual_chlorine", "余氯", "Residual chlorine",
                            range_=(0, 4), thresholds=[{"when": "below", "value": 0.05, "severity": "major",
                                                        "hysteresis": 0.01, "for_seconds": 300}]),
                self._wired(room, f"{p}-ph", "ph", "pH值", "pH", thresholds=[
                    {"when": "below", "value": 6.5, "severity": "minor", "hysteresis": 0.1,
                     "for_seconds": 300},
                    {"when": "above", "value": 8.5, "severity": "minor", "hysteresis": 0.1,
                     "for_seconds": 300}]),
            ]

    def _fire(self, room: _Room, *, full: bool) -> None:
        """Fire and sprinkler pumps with the jockey, the mains, the sump and its sewage pumps."""
        r = self.rng
        p = room.id
        fire_motor = r.choice(_FIRE_MOTORS)
        shutoff = _round(r.choice((0.9, 1.0, 1.1, 1.2, 1.3)))
        fire_pumps = r.choice((1, 2)) if full else 1
        for n in range(1, fire_pumps + 1):
            self._pump(room, f"{p}-fp{n}", "fire", f"{n}号消防泵", f"Fire pump {n}", fire_motor,
                       flow=float(r.choice((72, 108, 144))), shutoff=shutoff, vibration=full)
        if full:
            self._pump(room, f"{p}-sp1", "sprinkler", "喷淋泵", "Sprinkler pump", r.choice(_FIRE_MOTORS[:3]),
                       flow=float(r.choice((72, 108))), shutoff=shutoff, vibration=False)
        self._pump(room, f"{p}-jockey", "sprinkler", "喷淋稳压泵", "Sprinkler jockey pump",
                   r.choice(_JOCKEY_MOTORS), flow=5.0, shutoff=_round(shutoff - 0.05), vibration=False)
        mains = [("main", "喷淋主管", "Sprinkler main", "管网压力", "Main pressure")]
        if full:
            mains.append(("hydrant", "消火栓主管", "Hydrant main", "消火栓管网压力", "Hydrant main pressure"))
        for key, zh, en, szh, sen in mains:
            room.equipment.append({
                "id": f"{p}-{key}", "type": "header", "name": _text(zh, en),
                "sensors": [self._wired(room, f"{p}-{key}-pressure", "pressure", szh, sen, range_=(0, 2.5),
                                        thresholds=[
                                            {"when": "below", "value": _round(shutoff * 0.5),
                                             "severity": "major", "hysteresis": 0.03, "for_seconds": 30},
                                            {"when": "below", "value": _round(shutoff * 0.32),
                                             "severity": "critical", "hysteresis": 0.03,
                                             "for_seconds": 10}])]})
        depth = _round(r.choice((1.5, 2.0, 2.5)), 1)
        room.equipment.append({
            "id": f"{p}-sump", "type": "sump", "name": _text("集水坑", "Drainage sump"), "depth": depth,
            "area": float(r.choice((1.5, 2.0, 3.0))), "inflow": float(r.choice((2, 3, 4))),
            "sensors": [self._wired(room, f"{p}-sump-level", "level", "集水坑液位", "Sump level",
                                    range_=(0, _round(depth + 0.2, 1)), thresholds=[
                                        {"when": "above", "value": _round(depth * 0.8), "severity": "major",
                                         "hysteresis": 0.1, "for_seconds": 30}])]})
        sewage_motor = r.choice(_SEWAGE_MOTORS)
        for n in range(1, (r.choice((1, 2)) if full else 1) + 1):
            self._pump(room, f"{p}-sewage{n}", "sewage", f"{n}号排污泵", f"Sewage pump {n}", sewage_motor,
                       flow=15.0, shutoff=0.2, vibration=False, temperature=False)

    # --- the file -----------------------------------------------------------------------------------

    def site(self, name: tuple[str, str], estate: str, region: str, group: str) -> dict[str, Any]:
        rooms: list[_Room] = []
        if self.room_count == 1:
            room = _Room("pump", _text("综合水泵房", "Pump room"))
            self._domestic(room, quality=False)
            self._fire(room, full=False)
            self._room_climate(room, smoke=False)
            rooms.append(room)
        else:
            dom = _Room("dom", _text("生活水泵房", "Domestic water pump room"))
            self._domestic(dom, quality=True)
            self._room_climate(dom, smoke=False)
            fire = _Room("fire", _text("消防泵房", "Fire pump room"))
            self._fire(fire, full=True)
            self._room_climate(fire, smoke=True)
            rooms += [dom, fire]
            for n in range(3, self.room_count + 1):  # more than two rooms: further domestic rooms
                extra = _Room(f"dom{n}", _text(f"{n}号生活水泵房", f"Domestic water pump room {n}"))
                self._domestic(extra, quality=True)
                self._room_climate(extra, smoke=False)
                rooms.append(extra)
        zh, en = name
        doc: dict[str, Any] = {
            "site": {"id": estate, "name": _text(zh, en), "timezone": "Asia/Shanghai", "region": region,
                     "group": group},
            "defaults": {"expected_period": 10},
            "rooms": [room.entry() for room in rooms],
        }
        if self.feed == "edge":
            doc["edges"] = [{"id": f"gw-{estate}", "name": _text(f"{zh}网关", f"{en} gateway"),
                             "rooms": [room.id for room in rooms], "username": f"edge-{estate}",
                             "heartbeat": 10, "offline_after": 60}]
        if self.feed in ("edge", "modbus"):
            doc["modbus"] = [self._plc(room, n) for n, room in enumerate(rooms)]
        mqtt: list[dict[str, Any]] = [
            {"topic": f"z2m/{estate}/leak/{{device}}", "format": "json",
             "values": [{"field": "water_leak", "type": "boolean", "sensor": "{device}"},
                        {"field": "battery", "sensor": "{device}-battery"}]},
            {"topic": f"z2m/{estate}/climate/{{device}}", "format": "json",
             "values": [{"field": "temperature", "sensor": "{device}"}]}]
        if self.feed == "mqtt":
            mqtt += [{"topic": f"dtu/{estate}/{room.id}", "format": "json",
                      "values": [self._dtu_value(s) for s in room.plc]} for room in rooms]
        doc["mqtt"] = mqtt
        return doc

    @staticmethod
    def _dtu_value(sensor: dict[str, Any]) -> dict[str, Any]:
        bits = {"run_status", "run_command", "leak", "door", "smoke"}
        value: dict[str, Any] = {"field": sensor["id"], "sensor": sensor["id"]}
        if sensor["kind"] in bits:
            value["type"] = "boolean"
        return value

    def _plc(self, room: _Room, index: int) -> dict[str, Any]:
        fleet_room = self.room_offset + index
        if self.feed == "edge":  # on the pump room's own network, behind the edge
            host, port = f"10.{fleet_room // 250 % 250}.{fleet_room % 250}.20", 502
        else:
            host, port = "127.0.0.1", self.modbus_port_base + fleet_room
        next_address = {"input": 0, "discrete": 0, "coil": 0, "holding": 0}
        points = []
        for sensor in room.plc:
            table, data_type, scale = _REGISTERS[sensor["kind"]]
            point: dict[str, Any] = {"sensor": sensor["id"], "table": table, "address": next_address[table],
                                     "type": data_type}
            if scale != 1.0:
                point["scale"] = scale
            if sensor["kind"] in _WRITABLE:
                point["writable"] = True
            next_address[table] += {"uint32": 2, "float32": 2}.get(data_type, 1)
            points.append(point)
        return {"id": f"plc-{room.id}", "room": room.id, "host": host, "port": port, "unit": 1 + index,
                "poll_interval": 1.0, "timeout": 0.5,
                "word_order": self.rng.choice(("big", "little")), "points": points}


def _names() -> Iterator[tuple[str, str, str]]:
    """(zh, en, id) of every estate name in the fleet's order; phases once the names are used up."""
    combos = [(pz + kz, f"{pe} {ke}") for pz, pe in _PLACES for kz, ke in _KINDS]
    random.Random("pumpwatch-fleet-names").shuffle(combos)  # fixed: estate n's name never changes
    phase = 0
    while True:
        for zh, en in combos:
            slug = en.lower().replace(" ", "-")
            if phase == 0:
                yield zh, en, slug
            else:
                number = phase + 1
                zh_phase = _PHASES_ZH[number - 1] if number <= len(_PHASES_ZH) else str(number)
                yield f"{zh}{zh_phase}期", f"{en} Phase {number}", f"{slug}-{number}"
        phase += 1


def fleet_sites(estates: int, seed: int, *, rooms: tuple[int, int] = (1, 2), feed: str = "edge",
                modbus_port_base: int = DEFAULT_MODBUS_PORT_BASE) -> list[dict[str, Any]]:
    """The fleet's site files as documents, in estate order (see the module)."""
    if estates < 1:
        raise ValueError(f"a fleet has at least one estate, not {estates}")
    if feed not in FEEDS:
        raise ValueError(f"unknown feed {feed!r}: use one of {', '.join(FEEDS)}")
    low, high = rooms
    if not 1 <= low <= high:
        raise ValueError(f"rooms must be (min, max) with 1 <= min <= max, not {rooms}")
    out = []
    names = _names()
    room_offset = 0
    for number in range(estates):
        zh, en, estate = next(names)
        builder = _Builder(number, seed, rooms, feed, modbus_port_base, room_offset)
        region = builder.rng.choice(REGIONS)
        group = builder.rng.choice(GROUPS)
        doc = builder.site((zh, en), estate, region, group)
        room_offset += len(doc["rooms"])
        if builder.feed == "modbus" and modbus_port_base + room_offset > 65535:
            raise ValueError(f"modbus ports from {modbus_port_base} run past 65535: lower the base")
        out.append(doc)
    return out


def write_fleet(directory: Path, estates: int, seed: int, *, rooms: tuple[int, int] = (1, 2),
                feed: str = "edge", modbus_port_base: int = DEFAULT_MODBUS_PORT_BASE,
                organisation: tuple[str, str] = ("演示物业", "Demo Property Management")) -> Path:
    """Write one site file per estate under `directory/estates/` and `directory/deployment.yaml`.

    Returns the deployment file's path. The deployment names its estate files one by one, so files
    left in the folder by an earlier, larger fleet are not part of it.
    """
    docs = fleet_sites(estates, seed, rooms=rooms, feed=feed, modbus_port_base=modbus_port_base)
    folder = directory / ESTATES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for doc in docs:
        name = f"{doc['site']['id']}.yaml"
        header = (f"# Generated by pumpwatch (simulators/fleet.py), seed {seed}: "
                  f"estate {doc['site']['id']}.\n")
        (folder / name).write_text(header + _dump(doc), encoding="utf-8")
        files.append(f"{ESTATES_DIR}/{name}")
    deployment = {"kind": "deployment", "organisation": _text(*organisation), "estates": files}
    target = directory / DEPLOYMENT_FILE
    target.write_text(f"# Generated by pumpwatch (simulators/fleet.py): {estates} estates, seed {seed}, "
                      f"feed {feed}.\n" + _dump(deployment), encoding="utf-8")
    return target


def _dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120)
