"""Bind each sensor of the site to a quantity of the model, and commands back to the model."""

from __future__ import annotations

from collections.abc import Callable

from pumpwatch.site import (
    Cabinet,
    EquipmentBase,
    Filter,
    Header,
    PressureTank,
    Pump,
    Room,
    Sensor,
    SensorKind,
    Site,
    Sump,
    Tank,
)
from simulators.model import SWITCH_POSITIONS, RoomState, SiteModel

Signal = Callable[[], float]


class SensorSignals:
    """The simulated value of every sensor, with stuck and offline sensors applied."""

    def __init__(self, site: Site, model: SiteModel) -> None:
        self.model = model
        self.site = site
        self.frozen: dict[str, float] = {}  # stuck sensors hold this value
        self.offline: set[str] = set()  # sensors that stopped reporting
        self._signals: dict[str, Signal] = {}
        self._writers: dict[str, Callable[[float], None]] = {}
        for room, equipment, sensor in site.iter_sensors():
            self._signals[sensor.id] = self._bind(model.rooms[room.id], room, equipment, sensor)

    def value(self, sensor_id: str) -> float:
        """The value the sensor reports now."""
        if sensor_id in self.frozen:
            return self.frozen[sensor_id]
        return self._signals[sensor_id]()

    def write(self, sensor_id: str, value: float) -> bool:
        """Apply a command written to a writable sensor; False if the sensor takes no command."""
        writer = self._writers.get(sensor_id)
        if writer is None:
            return False
        writer(value)
        return True

    def _bind(self, rs: RoomState, room: Room, eq: EquipmentBase | None, sensor: Sensor) -> Signal:
        kind = sensor.kind
        if eq is None:
            if kind is SensorKind.LEAK:
                return lambda: float(rs.floor_leak)
            if kind is SensorKind.TEMPERATURE:
                return lambda: round(rs.room_temp, 2)
        elif isinstance(eq, Pump):
            return self._bind_pump(rs, eq, sensor)
        elif isinstance(eq, (Header, PressureTank)):
            if kind is SensorKind.PRESSURE:
                return lambda: rs.pressure
            if kind is SensorKind.FLOW:
                return lambda: rs.supply_flow
            if kind is SensorKind.LEAK:
                eq_id = eq.id
                return lambda: float(eq_id in rs.flange_leaks)
        elif isinstance(eq, Tank) and kind is SensorKind.LEVEL:
            return lambda: rs.tank_level
        elif isinstance(eq, Sump) and kind is SensorKind.LEVEL:
            return lambda: rs.sump_level
        elif isinstance(eq, Filter) and kind is SensorKind.DIFFERENTIAL_PRESSURE:
            return lambda: 6 + 18 * (sum(p.flow for p in rs.pumps.values()) / 40) ** 2
        elif isinstance(eq, Cabinet):
            if kind is SensorKind.TEMPERATURE:
                return lambda: rs.cabinet_temp
            if kind is SensorKind.VOLTAGE:
                return lambda: rs.voltage
            if kind is SensorKind.DUTY_SELECT and room.duty_groups:
                group = room.duty_groups[0]

                def set_duty(value: float) -> None:
                    self.model.set_duty(group.id, round(value) - 1)

                self._writers[sensor.id] = set_duty
                return lambda: float(rs.duty_index[group.id] + 1)
        if kind is SensorKind.BATTERY:
            return lambda: 96.0
        # A sensor the model has no physics for reports the middle of its valid range.
        lo, hi = sensor.range or (0.0, 0.0)
        return lambda: (lo + hi) / 2

    def _bind_pump(self, rs: RoomState, pump: Pump, sensor: Sensor) -> Signal:
        ps = rs.pumps[pump.id]
        kind = sensor.kind
        if kind is SensorKind.RUN_COMMAND:
            def request(value: float) -> None:
                ps.run_request = value >= 0.5

            self._writers[sensor.id] = request
            return lambda: float(ps.run_request)
        if kind is SensorKind.SWITCH_POSITION:
            codes = sensor.state_codes
            return lambda: float(codes.get(ps.switch, SWITCH_POSITIONS.index(ps.switch)))
        signals: dict[SensorKind, Signal] = {
            SensorKind.CURRENT: lambda: ps.current,
            SensorKind.TEMPERATURE: lambda: ps.winding_temp,
            SensorKind.RUN_STATUS: lambda: float(ps.running),
            SensorKind.RUN_HOURS: lambda: ps.run_hours,
            SensorKind.VIBRATION: lambda: ps.vibration,
            SensorKind.FLOW: lambda: ps.flow,
            SensorKind.PRESSURE: lambda: rs.pressure,
            SensorKind.VOLTAGE: lambda: rs.voltage,
        }
        if kind in signals:
            return signals[kind]
        lo, hi = sensor.range or (0.0, 0.0)
        return lambda: (lo + hi) / 2
