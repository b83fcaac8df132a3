"""The sensors duty rotation uses per duty group: the duty_select point, supply pressure, each pump's own."""

from __future__ import annotations

from dataclasses import dataclass

from pumpwatch.plans import RotationSettings
from pumpwatch.site import DutyGroup, EquipmentBase, Header, Pump, Room, Sensor, SensorKind, Site


@dataclass(frozen=True, slots=True)
class GroupPoints:
    """The sensors rotation uses for one duty group (None where the site has none)."""

    group: DutyGroup
    room: Room
    pumps: dict[str, Pump]
    duty_select: str | None  # writable duty_select sensor
    codes: dict[str, float]  # pump -> the duty_select value that makes it duty
    pressure: str | None
    current: dict[str, str]
    running: dict[str, str]
    command: dict[str, str]
    hours: dict[str, str]

    def sensors(self) -> set[str]:
        """Every sensor id rotation watches for this group."""
        out = {s for s in (self.duty_select, self.pressure) if s is not None}
        for table in (self.current, self.running, self.command, self.hours):
            out |= set(table.values())
        return out

    def pump_of_code(self, value: float) -> str | None:
        """The pump a duty_select value names."""
        return next((p for p, code in self.codes.items() if abs(code - value) < 0.5), None)


def group_points(site: Site, settings: RotationSettings) -> dict[str, GroupPoints]:
    """The rotation sensors of every duty group of the site."""
    writable = {p.sensor for d in site.modbus for p in d.points if p.writable}
    out: dict[str, GroupPoints] = {}
    for room in site.rooms:
        pumps = {eq.id: eq for eq in room.equipment if isinstance(eq, Pump)}
        for group in room.duty_groups:
            members = {p: pumps[p] for p in group.pumps if p in pumps}

            def of_kind(pump: Pump, kind: SensorKind) -> str | None:
                return next((s.id for s in pump.sensors if s.kind is kind), None)

            def table(kind: SensorKind, members: dict[str, Pump] = members) -> dict[str, str]:
                return {p: sid for p, pump in members.items() if (sid := of_kind(pump, kind)) is not None}

            select_id = settings.duty_select.get(group.id) or _room_duty_select(room, len(room.duty_groups))
            if select_id is not None and select_id not in writable:
                select_id = None  # readable only: the swap is by hand
            codes = {p: float(i + 1) for i, p in enumerate(group.pumps)}
            if select_id is not None:
                states = site.sensor(select_id).states or {}
                if set(group.pumps) <= set(states):
                    codes = {p: float(states[p]) for p in group.pumps}
            out[group.id] = GroupPoints(
                group=group, room=room, pumps=members, duty_select=select_id, codes=codes,
                pressure=settings.pressure.get(group.id) or _room_pressure(room),
                current=table(SensorKind.CURRENT), running=table(SensorKind.RUN_STATUS),
                command=table(SensorKind.RUN_COMMAND), hours=table(SensorKind.RUN_HOURS))
    return out


def _room_duty_select(room: Room, groups: int) -> str | None:
    found = [s.id for _eq, s in _room_sensors(room) if s.kind is SensorKind.DUTY_SELECT]
    # Only unambiguous: one group and one duty_select point in the room; otherwise name it in the site file.
    return found[0] if groups == 1 and len(found) == 1 else None


def _room_pressure(room: Room) -> str | None:
    pressures = [(eq, s.id) for eq, s in _room_sensors(room) if s.kind is SensorKind.PRESSURE]
    on_header = [sid for eq, sid in pressures if isinstance(eq, Header)]
    found = on_header or [sid for _eq, sid in pressures]
    return found[0] if found else None


def _room_sensors(room: Room) -> list[tuple[EquipmentBase | None, Sensor]]:
    out: list[tuple[EquipmentBase | None, Sensor]] = [(None, s) for s in room.sensors]
    out += [(eq, s) for eq in room.equipment for s in eq.sensors]
    return out
