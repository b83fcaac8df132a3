"""Checks that cross sections of a site file: unique ids, references, register overlaps."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pumpwatch.alarm_config import Condition
from pumpwatch.plans import RunHours, Scope
from pumpwatch.registers import bus_cycle
from pumpwatch.site import BusTransport, Pump, PumpKind, Sensor, SensorKind, Site, Table, Tank

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
    problems += _buses(site)
    problems += _mqtt(site)
    problems += _rules(site)
    problems += _plans(site)
    problems += _edges(site)
    return problems


_EQUIPMENT_TYPES = ("pump", "tank", "pressure_tank", "header", "sump", "cabinet", "filter")


def _plans(site: Site) -> list[Problem]:
    """Plan references: rooms, pumps, duty groups, sensors and kinds the plans name must exist."""
    out: list[Problem] = []
    sensors = {s.id: s for _r, _e, s in site.iter_sensors()}
    rooms = {room.id for room in site.rooms}
    pumps = {eq.id for room in site.rooms for eq in room.equipment if isinstance(eq, Pump)}
    tanks = {eq.id for room in site.rooms for eq in room.equipment if isinstance(eq, Tank)}
    groups = {g.id for room in site.rooms for g in room.duty_groups}
    assets = {Scope.PUMP: (pumps, "pump"), Scope.DUTY_GROUP: (groups, "duty group"),
              Scope.TANK: (tanks, "tank")}
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
        if given.assets and plan.scope not in assets:
            out.append(Problem((*base, "assets"), "assets name pumps, duty groups or tanks: use scope pump, "
                                                  "duty_group or tank (rooms: use 'rooms')"))
        known, what = assets.get(plan.scope, (set(), ""))
        for j, asset in enumerate(given.assets):
            if plan.scope in assets and asset not in known:
                out.append(Problem((*base, "assets", j), f"unknown {what} {asset!r}"))
        for k, item in enumerate(given.checklist):
            path: Path = (*base, "checklist", k)
            if item.of_rated_current and plan.scope is not Scope.PUMP:
                out.append(Problem((*path, "of_rated_current"), "a share of rated current needs scope pump"))
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
    for group_id in rotation.groups:
        if group_id not in groups:
            out.append(Problem(("plans", "rotation", "groups", group_id), f"unknown duty group {group_id!r}"))
    fire = {eq.id for room in site.rooms for eq in room.equipment
            if isinstance(eq, Pump) and eq.kind in (PumpKind.FIRE, PumpKind.SPRINKLER)}
    for pump_id in site.plans.test_runs.pressure:
        if pump_id not in fire:
            what = "is not a fire or sprinkler pump" if pump_id in pumps else "is not a pump of the site"
            out.append(Problem(("plans", "test_runs", "pressure", pump_id), f"{pump_id!r} {what}"))
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
    assets = set(sensors) | {d.id for d in site.modbus} | {e.id for e in site.edges}
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
    for b, bus in enumerate(site.buses):
        claim("bus", bus.id, ("buses", b, "id"))
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
        if device.bus is None and endpoint in endpoints and device.port != 0:  # buses: in _buses
            out.append(Problem(("modbus", d, "unit"),
                               f"{device.host}:{device.port} unit {device.unit} is already "
                               f"device {endpoints[endpoint]!r}"))
        if device.bus is None:
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


def _buses(site: Site) -> list[Problem]:
    """RS-485 buses: known bus names, one device per unit id, addresses, and a cycle that fits."""
    out: list[Problem] = []
    buses = {bus.id: bus for bus in site.buses}
    gateways = {(b.host, b.tcp_port): b.id for b in site.buses if b.transport is BusTransport.TCP}
    units: dict[tuple[str, int], str] = {}
    shards: dict[str, int] = {}
    for d, device in enumerate(site.modbus):
        path: Path = ("modbus", d)
        if device.bus is None:
            gateway = gateways.get((device.host, device.port))
            if gateway is not None:
                out.append(Problem((*path, "host"), f"{device.host}:{device.port} is the gateway of "
                                                    f"bus {gateway!r}, which speaks Modbus RTU: put "
                                                    f"bus: {gateway} on the device instead of host and port"))
            continue
        bus = buses.get(device.bus)
        if bus is None:
            known = ", ".join(buses) or "none: add a buses: section"
            out.append(Problem((*path, "bus"), f"unknown bus {device.bus!r} (buses: {known})"))
            continue
        for key in ("host", "port"):
            if key in device.model_fields_set:
                out.append(Problem((*path, key), f"device is unit {device.unit} on {bus.transport.value} "
                                                 f"bus {bus.id!r} ({bus.address}): the bus is its "
                                                 f"address; remove {key}"))
        if not 1 <= device.unit <= 247:
            out.append(Problem((*path, "unit"), f"unit {device.unit} cannot be polled on an RS-485 line "
                                                "(0 is broadcast, 248-255 reserved): use 1-247"))
        first = units.setdefault((bus.id, device.unit), device.id)
        if first != device.id:
            out.append(Problem((*path, "unit"), f"unit {device.unit} on bus {bus.id!r} is already "
                                                f"device {first!r}"))
        shard = shards.setdefault(bus.id, device.shard)
        if shard != device.shard:
            out.append(Problem((*path, "shard"), f"every unit of bus {bus.id!r} is polled by one "
                                                 f"collector: use shard {shard}, as its other units"))
    for b, bus in enumerate(site.buses):
        cycle = bus_cycle(bus, site.units_on(bus.id))
        if cycle is not None and not cycle.fits:
            out.append(Problem(("buses", b), (
                f"one poll cycle of its units takes about {cycle.seconds * 1000:.0f} ms at "
                f"{bus.baudrate} bit/s ({cycle.traffic * 1000:.0f} ms for {cycle.requests} "
                f"request{'s' if cycle.requests != 1 else ''}, "
                f"+ {cycle.dead_timeout * 1000:.0f} ms timeout of one unit that does not answer), "
                f"longer than the shortest poll interval, {cycle.shortest_interval:g} s of device "
                f"{cycle.fastest!r}: raise the baud rate, lengthen poll_interval or shorten timeout")))
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


def _edges(site: Site) -> list[Problem]:
    """Edges (`edges:`): known rooms, each room and login with one edge, no clash with the file's ids."""
    out: list[Problem] = []
    rooms = {room.id for room in site.rooms}
    declared = {s.id for room in site.rooms
                for s in (*room.sensors, *(x for eq in room.equipment for x in eq.sensors))}
    taken = rooms | {eq.id for room in site.rooms for eq in room.equipment} | {d.id for d in site.modbus}
    served: dict[str, str] = {}
    ids: set[str] = set()
    logins: dict[str, str] = {}
    for i, edge in enumerate(site.edges):
        base: Path = ("edges", i)
        if edge.id in ids or edge.id in taken:
            out.append(Problem((*base, "id"), f"edge id {edge.id!r} is already the id of an edge, room, "
                                              "piece of equipment or Modbus device"))
        ids.add(edge.id)
        for j, room in enumerate(edge.rooms):
            if room not in rooms:
                out.append(Problem((*base, "rooms", j), f"unknown room {room!r}"))
            elif room in served:
                out.append(Problem((*base, "rooms", j), f"room {room!r} is already served by edge "
                                                        f"{served[room]!r}: one edge per room"))
            else:
                served[room] = edge.id
        if edge.username in logins:
            out.append(Problem((*base, "username"), f"username {edge.username!r} is edge "
                                                    f"{logins[edge.username]!r}'s: one login per edge"))
        logins.setdefault(edge.username, edge.id)
        for own in edge.as_equipment().sensors:
            if own.id in declared:
                out.append(Problem((*base, "id"), f"sensor {own.id!r} is the edge's own: "
                                                  "rename the sensor or the edge"))
    for place in site.rooms:
        for sensor in (*place.sensors, *(x for eq in place.equipment for x in eq.sensors)):
            if sensor.source == "edge":
                out.append(Problem((*_sensor_path(site, sensor.id), "source"),
                                   f"sensor {sensor.id!r}: source edge is for an edge's own health "
                                   "sensors, which `edges:` makes; use modbus or mqtt"))
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
