"""Checks that cross sections of a site file: unique ids, references, register overlaps."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pumpwatch.alarm_config import Condition
from pumpwatch.plans import RunHours, Scope
from pumpwatch.site import Pump, PumpKind, Sensor, SensorKind, Site, Table

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a site file, at a path of keys and list indexes."""

    path: Path
    message: str


def check_references(site: Site) -> list[Problem]:
    """Return every cross-reference problem of a shape-valid site, in file order."""
    problems: list[Problem] = []
    problems += _unique_ids(site)
    problems += _duty_groups(site)
    problems += _modbus(site)
    problems += _mqtt(site)
    problems += _rules(site)
    problems += _plans(site)
    return problems


_EQUIPMENT_TYPES = ("pump", "tank", "pressure_tank", "header", "sump", "cabinet", "filter")


def _plans(site: Site) -> list[Problem]:
    """Plan references: rooms, pumps, duty groups, sensors and kinds the plans name must exist."""
    out: list[Problem] = []
    sensors = {s.id: s for _r, _e, s in site.iter_sensors()}
    rooms = {room.id for room in site.rooms}
    pumps = {eq.id for room in site.rooms for eq in room.equipment if isinstance(eq, Pump)}
    groups = {g.id for room in site.rooms for g in room.duty_groups}
    writable = {p.sensor for d in site.modbus for p in d.points if p.writable}
    effective = {plan.id: plan for plan in site.plans.effective()}
    for i, given in enumerate(site.plans.plans):
        base: Path = ("plans", "plans", i)
        plan = effective.get(given.id, given)
        for j, room_id in enumerate(given.rooms):
            if room_id not in rooms:
                out.append(Problem((*base, "rooms", j), f"unknown room {room_id!r}"))
        for j, kind in enumerate(given.pump_kinds):
            if kind not in {k.value for k in PumpKind}:
                out.append(Problem((*base, "pump_kinds", j), f"unknown pump kind {kind!r}"))
        if given.assets and plan.scope not in (Scope.PUMP, Scope.DUTY_GROUP):
            out.append(Problem((*base, "assets"), "assets name pumps or duty groups: use scope pump or "
                                                  "duty_group (rooms: use 'rooms')"))
        known = pumps if plan.scope is Scope.PUMP else groups
        what = "pump" if plan.scope is Scope.PUMP else "duty group"
        for j, asset in enumerate(given.assets):
            if plan.scope in (Scope.PUMP, Scope.DUTY_GROUP) and asset not in known:
                out.append(Problem((*base, "assets", j), f"unknown {what} {asset!r}"))
        for k, item in enumerate(given.checklist):
            path: Path = (*base, "checklist", k)
            if item.sensor_kind is not None and item.sensor_kind not in {x.value for x in SensorKind}:
                out.append(Problem((*path, "sensor_kind"), f"unknown sensor kind {item.sensor_kind!r}"))
            if item.equipment_type is not None and item.equipment_type not in _EQUIPMENT_TYPES:
                out.append(Problem((*path, "equipment_type"),
                                   f"unknown equipment type {item.equipment_type!r} "
                                   f"(one of {', '.join(_EQUIPMENT_TYPES)})"))
            for m, sensor_id in enumerate(item.sensors):
                if sensor_id not in sensors:
                    out.append(Problem((*path, "sensors", m), f"unknown sensor {sensor_id!r}"))
        if isinstance(given.schedule, RunHours):
            for pump_id, sensor_id in given.schedule.sensors.items():
                path = (*base, "schedule", "sensors", pump_id)
                if pump_id not in pumps:
                    out.append(Problem(path, f"unknown pump {pump_id!r}"))
                out += _sensor_of_kind(sensors, sensor_id, SensorKind.RUN_HOURS, path)
        both = {s.date for s in given.skip} & {r.date for r in given.reschedule}
        for day in sorted(both):
            out.append(Problem((*base, "reschedule"), f"{day} is both skipped and rescheduled"))
    rotation = site.plans.rotation
    for group_id, sensor_id in rotation.duty_select.items():
        path = ("plans", "rotation", "duty_select", group_id)
        if group_id not in groups:
            out.append(Problem(path, f"unknown duty group {group_id!r}"))
        found = _sensor_of_kind(sensors, sensor_id, SensorKind.DUTY_SELECT, path)
        out += found
        if not found and sensor_id not in writable:
            out.append(Problem(path, f"sensor {sensor_id!r} has no writable Modbus point "
                                     "(set writable: true on a coil or holding register)"))
    for group_id, sensor_id in rotation.pressure.items():
        path = ("plans", "rotation", "pressure", group_id)
        if group_id not in groups:
            out.append(Problem(path, f"unknown duty group {group_id!r}"))
        out += _sensor_of_kind(sensors, sensor_id, SensorKind.PRESSURE, path)
    return out


def _sensor_of_kind(sensors: dict[str, Sensor], sensor_id: str, kind: SensorKind,
                    path: Path) -> list[Problem]:
    sensor = sensors.get(sensor_id)
    if sensor is None:
        return [Problem(path, f"unknown sensor {sensor_id!r}")]
    if sensor.kind is not kind:
        return [Problem(path, f"sensor {sensor_id!r} is a {sensor.kind.value} sensor, not {kind.value}")]
    return []


def _rules(site: Site) -> list[Problem]:
    out: list[Problem] = []
    sensors = {s.id: s for _r, _e, s in site.iter_sensors()}
    assets = set(sensors) | {d.id for d in site.modbus}
    for room in site.rooms:
        assets |= {room.id} | {e.id for e in room.equipment}

    def walk(condition: Condition, path: Path) -> None:
        for key in ("all", "any"):
            for i, part in enumerate(getattr(condition, key) or ()):
                walk(part, (*path, key, i))
        if condition.sensor is None:
            return
        sensor = sensors.get(condition.sensor)
        if sensor is None:
            out.append(Problem((*path, "sensor"), f"unknown sensor {condition.sensor!r}"))
            return
        for key in ("state", "not_state"):
            name = getattr(condition, key)
            if name is not None and name not in sensor.state_codes:
                known = ", ".join(sensor.state_codes) or "none"
                out.append(Problem((*path, key), f"sensor {sensor.id!r} has no state {name!r} "
                                                 f"(its states: {known})"))

    for i, rule in enumerate(site.rules):
        if rule.asset not in assets:
            out.append(Problem(("rules", i, "asset"), f"unknown asset {rule.asset!r} (use a room, "
                                                      "equipment, sensor or Modbus device id)"))
        walk(rule.when, ("rules", i, "when"))
    return out


def _unique_ids(site: Site) -> list[Problem]:
    out: list[Problem] = []
    seen: dict[str, Path] = {}

    def claim(kind: str, ident: str, path: Path) -> None:
        key = f"{kind}:{ident}"
        if key in seen:
            where = dotted(seen[key])
            out.append(Problem(path, f"duplicate {kind} id {ident!r} (first defined at {where})"))
        else:
            seen[key] = path

    for r, room in enumerate(site.rooms):
        claim("room", room.id, ("rooms", r, "id"))
        for s, sensor in enumerate(room.sensors):
            claim("sensor", sensor.id, ("rooms", r, "sensors", s, "id"))
        for e, eq in enumerate(room.equipment):
            claim("equipment", eq.id, ("rooms", r, "equipment", e, "id"))
            for s, sensor in enumerate(eq.sensors):
                claim("sensor", sensor.id, ("rooms", r, "equipment", e, "sensors", s, "id"))
        for g, group in enumerate(room.duty_groups):
            claim("duty group", group.id, ("rooms", r, "duty_groups", g, "id"))
    for d, device in enumerate(site.modbus):
        claim("Modbus device", device.id, ("modbus", d, "id"))
    return out


def _duty_groups(site: Site) -> list[Problem]:
    out: list[Problem] = []
    for r, room in enumerate(site.rooms):
        pumps = {eq.id: eq for eq in room.equipment if isinstance(eq, Pump)}
        groups = {g.id: g for g in room.duty_groups}
        for g, group in enumerate(room.duty_groups):
            for p, pump_id in enumerate(group.pumps):
                path: Path = ("rooms", r, "duty_groups", g, "pumps", p)
                if pump_id not in pumps:
                    out.append(Problem(path, f"unknown pump {pump_id!r} in room {room.id!r}"))
                elif pumps[pump_id].duty_group != group.id:
                    out.append(Problem(path, f"pump {pump_id!r} must set duty_group: {group.id}"))
            for pump_id, count in Counter(group.pumps).items():
                if count > 1:
                    out.append(Problem(("rooms", r, "duty_groups", g, "pumps"),
                                       f"pump {pump_id!r} listed {count} times"))
        for e, eq in enumerate(room.equipment):
            if isinstance(eq, Pump) and eq.duty_group is not None:
                if eq.duty_group not in groups:
                    out.append(Problem(("rooms", r, "equipment", e, "duty_group"),
                                       f"unknown duty group {eq.duty_group!r} in room {room.id!r}"))
                elif eq.id not in groups[eq.duty_group].pumps:
                    out.append(Problem(("rooms", r, "equipment", e, "duty_group"),
                                       f"pump is not listed in duty group {eq.duty_group!r}"))
    return out


def _modbus(site: Site) -> list[Problem]:
    out: list[Problem] = []
    sensors = {s.id: s for _r, _e, s in site.iter_sensors()}
    rooms = {room.id for room in site.rooms}
    fed_by: dict[str, Path] = {}
    endpoints: dict[tuple[str, int, int], str] = {}
    for d, device in enumerate(site.modbus):
        if device.room is not None and device.room not in rooms:
            out.append(Problem(("modbus", d, "room"), f"unknown room {device.room!r}"))
        endpoint = (device.host, device.port, device.unit)
        if endpoint in endpoints and device.port != 0:
            out.append(Problem(("modbus", d, "unit"),
                               f"{device.host}:{device.port} unit {device.unit} is already "
                               f"device {endpoints[endpoint]!r}"))
        endpoints.setdefault(endpoint, device.id)
        used: dict[tuple[Table, int, int | None], int] = {}
        for p, point in enumerate(device.points):
            path: Path = ("modbus", d, "points", p)
            sensor = sensors.get(point.sensor)
            if sensor is None:
                out.append(Problem((*path, "sensor"), f"unknown sensor {point.sensor!r}"))
            elif sensor.source != "modbus":
                out.append(Problem((*path, "sensor"),
                                   f"sensor {point.sensor!r} has source {sensor.source}, not modbus"))
            elif point.sensor in fed_by:
                out.append(Problem((*path, "sensor"),
                                   f"sensor {point.sensor!r} is already fed by "
                                   f"{dotted(fed_by[point.sensor])}"))
            else:
                fed_by[point.sensor] = path
            for address in range(point.address, point.address + point.register_count):
                # Bits in the same register may share it; anything else may not.
                slot = (point.table, address, point.bit)
                clash = [q for (t, a, b), q in used.items()
                         if t == point.table and a == address and (b is None or point.bit is None
                                                                   or b == point.bit)]
                if clash:
                    other = device.points[clash[0]]
                    out.append(Problem((*path, "address"),
                                       f"{point.table} register {address} of {point.sensor!r} "
                                       f"overlaps {other.sensor!r} (points[{clash[0]}])"))
                    break
                used[slot] = p
    for _room, _eq, sensor in site.iter_sensors():
        if sensor.source == "modbus" and sensor.id not in fed_by:
            out.append(Problem((*_sensor_path(site, sensor.id), "source"),
                               f"sensor {sensor.id!r} has source modbus but no Modbus point feeds it"))
    return out


def _mqtt(site: Site) -> list[Problem]:
    out: list[Problem] = []
    sensors = {s.id: s for _r, _e, s in site.iter_sensors()}
    for m, mapping in enumerate(site.mqtt):
        for v, value in enumerate(mapping.values):
            if value.placeholders:
                continue  # resolved per message; unknown ids are counted at run time
            path: Path = ("mqtt", m, "values", v, "sensor")
            sensor = sensors.get(value.sensor)
            if sensor is None:
                out.append(Problem(path, f"unknown sensor {value.sensor!r}"))
            elif sensor.source != "mqtt":
                out.append(Problem(path, f"sensor {value.sensor!r} has source {sensor.source}, "
                                         "not mqtt"))
    return out


def _sensor_path(site: Site, sensor_id: str) -> Path:
    for r, room in enumerate(site.rooms):
        for s, sensor in enumerate(room.sensors):
            if sensor.id == sensor_id:
                return ("rooms", r, "sensors", s)
        for e, eq in enumerate(room.equipment):
            for s, sensor in enumerate(eq.sensors):
                if sensor.id == sensor_id:
                    return ("rooms", r, "equipment", e, "sensors", s)
    return ()


def dotted(path: Path) -> str:
    """Render a path as rooms[0].equipment[1].id."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
