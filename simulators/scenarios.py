"""Fault scenarios that a test or a person switches on and off in a running simulation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from pumpwatch.site import Header, PressureTank, Pump, PumpKind, SensorKind, Site, Text
from simulators.model import SiteModel
from simulators.signals import SensorSignals

Target = Literal["room", "pump", "sensor", "device"]


class ScenarioHost(Protocol):
    """What a scenario acts on."""

    site: Site
    model: SiteModel
    signals: SensorSignals

    def set_device_offline(self, device_id: str, offline: bool) -> None:
        """Make a Modbus device stop (or resume) answering."""
        ...


@dataclass(frozen=True)
class Scenario:
    """A named fault with what it acts on and how to switch it on and off."""

    name: str
    text: Text
    target: Target
    default: Callable[[Site], str]
    on: Callable[[ScenarioHost, str], None]
    off: Callable[[ScenarioHost, str], None]


class ScenarioError(ValueError):
    """An unknown scenario or a target it cannot act on."""


def _first_pump(kind: PumpKind) -> Callable[[Site], str]:
    def pick(site: Site) -> str:
        for room in site.rooms:
            for eq in room.equipment:
                if isinstance(eq, Pump) and eq.kind is kind:
                    return eq.id
        raise ScenarioError(f"the site has no {kind} pump")
    return pick


def _room_with(predicate: Callable[[Pump], bool]) -> Callable[[Site], str]:
    def pick(site: Site) -> str:
        for room in site.rooms:
            if any(isinstance(eq, Pump) and predicate(eq) for eq in room.equipment):
                return room.id
        raise ScenarioError("the site has no room this scenario applies to")
    return pick


def _first_sensor(source: str, kind: SensorKind | None = None) -> Callable[[Site], str]:
    def pick(site: Site) -> str:
        for _room, _eq, sensor in site.iter_sensors():
            if sensor.source == source and (kind is None or sensor.kind is kind):
                return sensor.id
        raise ScenarioError(f"the site has no {source} sensor")
    return pick


def _first_device(site: Site) -> str:
    if not site.modbus:
        raise ScenarioError("the site has no Modbus device")
    return site.modbus[0].id


_domestic_room = _room_with(lambda p: p.kind is PumpKind.DOMESTIC)
_sump_room = _room_with(lambda p: p.kind is PumpKind.SEWAGE)


def _flange_on(host: ScenarioHost, room_id: str) -> None:
    rs = host.model.rooms[room_id]
    flanged = [e for e in rs.room.equipment if isinstance(e, (PressureTank, Header))]
    watched = [e for e in flanged if any(s.kind is SensorKind.LEAK for s in e.sensors)]
    rs.flange_leaks.update(e.id for e in (watched or flanged)[:1])
    rs.extra_leak = max(rs.extra_leak, 0.4)


def _flange_off(host: ScenarioHost, room_id: str) -> None:
    rs = host.model.rooms[room_id]
    rs.flange_leaks.clear()
    rs.extra_leak = 0.0
    rs.floor_wet_for = 0.0


def _burst_on(host: ScenarioHost, room_id: str) -> None:
    host.model.rooms[room_id].extra_leak = 150.0


def _burst_off(host: ScenarioHost, room_id: str) -> None:
    rs = host.model.rooms[room_id]
    rs.extra_leak = 0.0
    rs.floor_wet_for = 0.0


def _dry_on(host: ScenarioHost, room_id: str) -> None:
    rs = host.model.rooms[room_id]
    rs.refill_blocked = True
    rs.tank_level = min(rs.tank_level, 0.25)


def _dry_off(host: ScenarioHost, room_id: str) -> None:
    host.model.rooms[room_id].refill_blocked = False


def _wear_on(host: ScenarioHost, pump_id: str) -> None:
    host.model.pump(pump_id).wear = 0.8


def _wear_off(host: ScenarioHost, pump_id: str) -> None:
    host.model.pump(pump_id).wear = 0.0


def _manual_on(host: ScenarioHost, pump_id: str) -> None:
    host.model.pump(pump_id).switch = "MANUAL"


def _manual_off(host: ScenarioHost, pump_id: str) -> None:
    host.model.pump(pump_id).switch = "AUTO"


def _failstart_on(host: ScenarioHost, pump_id: str) -> None:
    host.model.pump(pump_id).fails_to_start = True


def _failstart_off(host: ScenarioHost, pump_id: str) -> None:
    pump = host.model.pump(pump_id)
    pump.fails_to_start = False
    pump.tripped = False


def _test_run_on(host: ScenarioHost, pump_id: str) -> None:
    # The weekly test under simulated automatic control: the remote run command starts the pump in AUTO
    # and the test valve returns water to the pool, sized so the pump runs near 80 % of its rated flow
    # (with the model's pump curve that is about 3/4 of its shut-off pressure).
    pump = host.model.pump(pump_id)
    pump.run_request = True
    host.model.room_of_equipment(pump_id).test_line = 0.5 * pump.spec.rated_flow


def _test_run_off(host: ScenarioHost, pump_id: str) -> None:
    host.model.pump(pump_id).run_request = False
    host.model.room_of_equipment(pump_id).test_line = 0.0


def _overheat_on(host: ScenarioHost, room_id: str) -> None:
    host.model.rooms[room_id].cabinet_fan_failed = True


def _overheat_off(host: ScenarioHost, room_id: str) -> None:
    host.model.rooms[room_id].cabinet_fan_failed = False


def _sump_on(host: ScenarioHost, room_id: str) -> None:
    host.model.rooms[room_id].sump_blocked = True


def _sump_off(host: ScenarioHost, room_id: str) -> None:
    host.model.rooms[room_id].sump_blocked = False


def _stuck_on(host: ScenarioHost, sensor_id: str) -> None:
    host.signals.frozen[sensor_id] = host.signals.value(sensor_id)


def _stuck_off(host: ScenarioHost, sensor_id: str) -> None:
    host.signals.frozen.pop(sensor_id, None)


def _silent_on(host: ScenarioHost, sensor_id: str) -> None:
    host.signals.offline.add(sensor_id)


def _silent_off(host: ScenarioHost, sensor_id: str) -> None:
    host.signals.offline.discard(sensor_id)


def _device_on(host: ScenarioHost, device_id: str) -> None:
    host.set_device_offline(device_id, True)


def _device_off(host: ScenarioHost, device_id: str) -> None:
    host.set_device_offline(device_id, False)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("flange_leak", Text(zh="法兰漏水", en="Flange leak"), "room", _domestic_room,
             _flange_on, _flange_off),
    Scenario("bearing_wear", Text(zh="轴承磨损(电流、温度、振动上升)",
                                  en="Bearing wear (current, temperature, vibration creep)"),
             "pump", _first_pump(PumpKind.DOMESTIC), _wear_on, _wear_off),
    Scenario("dry_run", Text(zh="水箱缺水,水泵干转", en="Tank empty, pump runs dry"), "room",
             _domestic_room, _dry_on, _dry_off),
    Scenario("pipe_burst", Text(zh="爆管,压力骤降", en="Pipe burst, pressure collapse"), "room",
             _domestic_room, _burst_on, _burst_off),
    Scenario("stuck_sensor", Text(zh="传感器卡死", en="Stuck sensor"), "sensor",
             _first_sensor("modbus", SensorKind.PRESSURE), _stuck_on, _stuck_off),
    Scenario("sensor_offline", Text(zh="无线传感器离线", en="Wireless sensor offline"), "sensor",
             _first_sensor("mqtt"), _silent_on, _silent_off),
    Scenario("switch_manual", Text(zh="转换开关留在手动", en="Selector switch left in MANUAL"),
             "pump", _first_pump(PumpKind.DOMESTIC), _manual_on, _manual_off),
    Scenario("failed_start", Text(zh="主用泵启动失败", en="Duty pump fails to start"), "pump",
             _first_pump(PumpKind.DOMESTIC), _failstart_on, _failstart_off),
    Scenario("fire_test_run", Text(zh="消防泵试运行（远程启动，试水阀放水）",
                                   en="Fire pump test run (remote start, test valve open)"),
             "pump", _first_pump(PumpKind.FIRE), _test_run_on, _test_run_off),
    Scenario("cabinet_overheat", Text(zh="控制柜过热(风扇故障)",
                                      en="Control cabinet overheating (fan failed)"),
             "room", _domestic_room, _overheat_on, _overheat_off),
    Scenario("sump_blocked", Text(zh="排水井堵塞", en="Drainage sump blocked"), "room",
             _sump_room, _sump_on, _sump_off),
    Scenario("device_offline", Text(zh="PLC 离线", en="PLC offline"), "device", _first_device,
             _device_on, _device_off),
)}


def parse_scenario(spec: str) -> tuple[str, str | None]:
    """Split 'NAME' or 'NAME:TARGET' and check the name."""
    name, _, target = spec.partition(":")
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    return name, target or None


def resolve_target(site: Site, scenario: Scenario, target: str | None) -> str:
    """The target to act on: the one given (checked against the site) or the default."""
    if target is None:
        return scenario.default(site)
    known: set[str] = set()
    if scenario.target == "room":
        known = {r.id for r in site.rooms}
    elif scenario.target == "pump":
        known = {e.id for r in site.rooms for e in r.equipment if isinstance(e, Pump)}
    elif scenario.target == "sensor":
        known = {s.id for _r, _e, s in site.iter_sensors()}
    elif scenario.target == "device":
        known = {d.id for d in site.modbus}
    if target not in known:
        raise ScenarioError(f"scenario {scenario.name}: no {scenario.target} {target!r} in the site")
    return target
