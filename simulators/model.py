"""Physical model of a pump room: hydraulics, pump control, motors, tanks, sumps and cabinets.

The model advances in fixed sub-steps on whatever time it is given, so it runs the same under a
fake clock, in real time, or many times faster. It knows nothing about Modbus or MQTT.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from pumpwatch.site import DutyGroup, PressureTank, Pump, PumpKind, Room, Site, Sump, Tank

SUBSTEP = 0.2  # seconds of model time per integration step
SWITCH_POSITIONS = ("OFF", "MANUAL", "AUTO")
CHANGEOVER_AFTER = 20.0  # s a demanded duty pump may show no pressure before the standby takes over

# Pressure band (start below, stop above) per pump kind when the pump is not in a duty group.
# Sewage pumps run on sump level instead (start above, stop below, metres).
PRESSURE_BAND: dict[PumpKind, tuple[float, float]] = {
    PumpKind.DOMESTIC: (0.30, 0.45),
    PumpKind.CLEAN_WATER: (0.30, 0.45),
    PumpKind.SPRINKLER: (0.65, 0.80),
    PumpKind.FIRE: (0.50, 0.85),
}
SUMP_BAND = (1.2, 0.3)

# Domestic demand in m³/h by local hour (a residential estate: morning and evening peaks).
_DEMAND_BY_HOUR = (2, 1.5, 1.2, 1.2, 1.5, 3, 9, 20, 16, 9, 7, 9, 12, 10, 7, 6, 7, 10, 16, 20, 18,
                   13, 8, 4)


def demand_at(local_hour: float) -> float:
    """Household demand (m³/h) at a local time of day, interpolated between hours."""
    h = local_hour % 24
    lo = int(h)
    frac = h - lo
    return _DEMAND_BY_HOUR[lo] * (1 - frac) + _DEMAND_BY_HOUR[(lo + 1) % 24] * frac


@dataclass
class PumpState:
    """What one pump and its motor are doing."""

    spec: Pump
    switch: str = "AUTO"
    run_request: bool = False  # the remote run command (coil), honoured in AUTO
    demanded: bool = False  # the controller wants it running
    running: bool = False  # contactor closed (run feedback)
    flow: float = 0.0  # m³/h
    current: float = 0.0  # A
    winding_temp: float = 25.0  # °C
    run_hours: float = 0.0
    wear: float = 0.0  # 0 healthy .. 1 badly worn bearing
    fails_to_start: bool = False
    tripped: bool = False  # the controller gave up on it after a failed start
    no_flow_for: float = 0.0

    @property
    def vibration(self) -> float:
        """RMS vibration, mm/s: low when healthy, rising with bearing wear."""
        if not self.running or self.current == 0:
            return 0.05
        return 1.6 + 7.5 * self.wear

    @property
    def available(self) -> bool:
        """Whether automatic control may use this pump."""
        return self.switch == "AUTO" and not self.tripped


@dataclass
class RoomState:
    """Everything that varies in one pump room."""

    room: Room
    pumps: dict[str, PumpState]
    pressure: float = 0.4  # MPa on the room's supply header / main
    tank_level: float = 2.5  # m in the break tank
    refill_open: bool = False
    refill_blocked: bool = False
    sump_level: float = 0.5
    sump_blocked: bool = False
    supply_flow: float = 0.0  # m³/h delivered to the building
    extra_leak: float = 0.0  # m³/h lost from the header at nominal pressure (burst, flange)
    test_line: float = 0.0  # m³/h through an open test valve at nominal pressure, back to the pool
    floor_wet_for: float = 0.0  # seconds of water reaching the floor
    flange_leaks: set[str] = field(default_factory=set)  # equipment ids with a leaking flange
    floor_leak: bool = False
    cabinet_temp: float = 28.0
    cabinet_fan_failed: bool = False
    room_temp: float = 22.0
    voltage: float = 380.0
    duty_index: dict[str, int] = field(default_factory=dict)  # duty group id -> index into pumps
    changeover_timer: dict[str, float] = field(default_factory=dict)

    @property
    def tank(self) -> Tank | None:
        """The room's break tank, if it has one."""
        return next((e for e in self.room.equipment if isinstance(e, Tank)), None)

    @property
    def sump(self) -> Sump | None:
        """The room's drainage sump, if it has one."""
        return next((e for e in self.room.equipment if isinstance(e, Sump)), None)

    def duty_pump(self, group: DutyGroup) -> PumpState:
        """The pump currently selected as duty in `group`."""
        return self.pumps[group.pumps[self.duty_index[group.id] % len(group.pumps)]]


class SiteModel:
    """All rooms of a site, advanced together on model time."""

    def __init__(self, site: Site, start: float, seed: int = 1) -> None:
        self.site = site
        self.time = start
        self.rng = random.Random(seed)
        self.zone = ZoneInfo(site.site.timezone)
        self.rooms: dict[str, RoomState] = {}
        for room in site.rooms:
            pumps = {e.id: PumpState(spec=e) for e in room.equipment if isinstance(e, Pump)}
            state = RoomState(room=room, pumps=pumps)
            state.duty_index = {g.id: 0 for g in room.duty_groups}
            state.pressure = self._nominal_pressure(state)
            if state.tank is not None:
                state.tank_level = state.tank.height * 0.8
            if state.sump is not None:
                state.sump_level = 0.5
            self.rooms[room.id] = state

    def pump(self, pump_id: str) -> PumpState:
        """The state of one pump, found in any room."""
        for room in self.rooms.values():
            if pump_id in room.pumps:
                return room.pumps[pump_id]
        raise KeyError(pump_id)

    def room_of_equipment(self, equipment_id: str) -> RoomState:
        """The room that holds a piece of equipment."""
        for room in self.rooms.values():
            if any(e.id == equipment_id for e in room.room.equipment):
                return room
        raise KeyError(equipment_id)

    def local_hour(self) -> float:
        """Hour of day in the site's time zone, fractional."""
        t = datetime.fromtimestamp(self.time, self.zone)
        return t.hour + t.minute / 60 + t.second / 3600

    def advance(self, seconds: float) -> None:
        """Move the model forward by `seconds` of model time."""
        remaining = seconds
        while remaining > 1e-9:
            dt = min(SUBSTEP, remaining)
            for room in self.rooms.values():
                self._step_room(room, dt)
            self.time += dt
            remaining -= dt

    def set_duty(self, group_id: str, index: int) -> None:
        """Select the duty pump of a group by position (0-based)."""
        for room in self.rooms.values():
            for group in room.room.duty_groups:
                if group.id == group_id:
                    room.duty_index[group.id] = index % len(group.pumps)
                    return
        raise KeyError(group_id)

    # --- one room, one sub-step -------------------------------------------------------------

    def _nominal_pressure(self, room: RoomState) -> float:
        for group in room.room.duty_groups:
            return (group.control.start_pressure + group.control.stop_pressure) / 2
        bands = [PRESSURE_BAND[p.spec.kind] for p in room.pumps.values()
                 if p.spec.kind in PRESSURE_BAND]
        return max((hi for _lo, hi in bands), default=0.0) * 0.95

    def _step_room(self, room: RoomState, dt: float) -> None:
        self._control(room, dt)
        self._hydraulics(room, dt)
        for pump in room.pumps.values():
            self._motor(room, pump, dt)
        self._environment(room, dt)

    def _control(self, room: RoomState, dt: float) -> None:
        grouped: set[str] = set()
        for group in room.room.duty_groups:
            grouped.update(group.pumps)
            duty = room.duty_pump(group)
            if not duty.available:
                # The controller runs the first available standby instead.
                duty = next((room.pumps[p] for p in group.pumps if room.pumps[p].available), duty)
            band = (group.control.start_pressure, group.control.stop_pressure)
            want = self._pressure_demand(room.pressure, duty.demanded, band)
            for pid in group.pumps:
                pump = room.pumps[pid]
                pump.demanded = (pump is duty and want and pump.available) or (
                    pump.run_request and pump.switch == "AUTO")
            # Changeover: a demanded duty pump that delivers nothing is tripped.
            if duty.demanded and duty.running and duty.flow <= 0.01 and room.tank_level > 0.05:
                duty.no_flow_for += dt
                if duty.no_flow_for >= CHANGEOVER_AFTER:
                    duty.tripped = True
            else:
                duty.no_flow_for = 0.0
        for pid, pump in room.pumps.items():
            if pid in grouped:
                continue
            if pump.spec.kind is PumpKind.SEWAGE:
                start, stop = SUMP_BAND
                auto = room.sump_level > start or (pump.demanded and room.sump_level > stop)
            else:
                auto = self._pressure_demand(room.pressure, pump.demanded,
                                             PRESSURE_BAND[pump.spec.kind])
            pump.demanded = pump.switch == "AUTO" and (auto or pump.run_request)
        for pump in room.pumps.values():
            if pump.switch == "OFF" or not pump.demanded:
                pump.running = False
            else:
                pump.running = True

    @staticmethod
    def _pressure_demand(pressure: float, running: bool, band: tuple[float, float]) -> bool:
        start, stop = band
        return pressure < start or (running and pressure < stop)

    def _hydraulics(self, room: RoomState, dt: float) -> None:
        tank = room.tank
        has_water = tank is None or room.tank_level > 0.02
        delivered = 0.0
        for pump in room.pumps.values():
            if pump.spec.kind is PumpKind.SEWAGE:
                continue
            if pump.running and not pump.fails_to_start and has_water:
                q_max = pump.spec.rated_flow * 1.6
                head = max(0.0, 1 - room.pressure / pump.spec.shutoff_pressure)
                pump.flow = q_max * math.sqrt(head)
            else:
                pump.flow = 0.0
            delivered += pump.flow
        nominal = 0.35
        pressure = max(room.pressure, 0.0)
        is_domestic = any(p.spec.kind in (PumpKind.DOMESTIC, PumpKind.CLEAN_WATER)
                          for p in room.pumps.values())
        base = demand_at(self.local_hour()) if is_domestic else 0.04
        demand = base * math.sqrt(pressure / nominal)
        leak = room.extra_leak * math.sqrt(pressure / nominal)
        test = room.test_line * math.sqrt(pressure / nominal)
        room.supply_flow = demand
        compliance = 0.05  # m³ per MPa of a bare main
        for eq in room.room.equipment:
            if isinstance(eq, PressureTank):
                compliance += eq.volume * 0.5
        room.pressure = max(0.0, pressure + (delivered - demand - leak - test) / 3600 * dt / compliance)
        if tank is not None:
            lo, hi = tank.height * 0.85, tank.height * 0.95
            if room.tank_level < lo:
                room.refill_open = True
            elif room.tank_level > hi:
                room.refill_open = False
            refill = tank.refill_flow if room.refill_open and not room.refill_blocked else 0.0
            room.tank_level += (refill - delivered) / 3600 * dt / tank.area
            room.tank_level = min(max(room.tank_level, 0.0), tank.height)
        sump = room.sump
        if sump is not None:
            out = 0.0
            for pump in room.pumps.values():
                if pump.spec.kind is PumpKind.SEWAGE:
                    ok = pump.running and not pump.fails_to_start and room.sump_level > 0.05
                    pump.flow = pump.spec.rated_flow * (0.1 if room.sump_blocked else 1.0) if ok else 0.0
                    out += pump.flow
            hour_factor = 0.6 + 0.8 * demand_at(self.local_hour()) / 20
            inflow = sump.inflow * hour_factor + (room.extra_leak if room.floor_leak else 0.0)
            room.sump_level += (inflow - out) / 3600 * dt / sump.area
            room.sump_level = min(max(room.sump_level, 0.0), sump.depth)
        if room.extra_leak > 0:
            room.floor_wet_for += dt
        room.floor_leak = room.floor_wet_for > 60 or room.extra_leak >= 5

    def _motor(self, room: RoomState, pump: PumpState, dt: float) -> None:
        rated = pump.spec.rated_current
        if pump.running:
            pump.run_hours += dt / 3600
        if not pump.running or pump.fails_to_start:
            pump.current = 0.0
        elif pump.flow <= 0.01:
            pump.current = rated * 0.3  # a pump with no water in it barely loads its motor
        else:
            load = min(pump.flow / pump.spec.rated_flow, 1.3)
            # A worn bearing adds friction: a load-independent share of rated current on top.
            pump.current = rated * ((0.45 + 0.45 * load) * (1 + 0.25 * pump.wear) + 0.35 * pump.wear)
        if pump.current:
            pump.current *= 1 + self.rng.gauss(0, 0.005)
        target = room.room_temp + 75 * (pump.current / rated) ** 2 + 25 * pump.wear
        pump.winding_temp += (target - pump.winding_temp) * min(1.0, dt / 600)

    def _environment(self, room: RoomState, dt: float) -> None:
        hour = self.local_hour()
        room.room_temp = 21 + 3 * math.sin((hour - 9) / 24 * 2 * math.pi)
        running = sum(1 for p in room.pumps.values() if p.running)
        target = 70.0 if room.cabinet_fan_failed else room.room_temp + 6 + 1.5 * running
        room.cabinet_temp += (target - room.cabinet_temp) * min(1.0, dt / 400)
        big_motor = any(p.running and p.spec.kind is PumpKind.FIRE for p in room.pumps.values())
        room.voltage = 380 * (0.97 if big_motor else 1.0) + self.rng.gauss(0, 0.8)
