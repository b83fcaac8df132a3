"""Bind each sensor of the site to a quantity of the model, and commands back to the model."""

from __future__ import annotations

import math
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
        field = self._field_device(rs, eq, sensor)
        if field is not None:
            return field
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

    def _field_device(self, rs: RoomState, eq: EquipmentBase | None, sensor: Sensor) -> Signal | None:
        """Energy meters, drives, water-quality analysers, room climate and security contacts.

        A meter on a pump measures that pump; anywhere else it measures the room's pumps together.
        Quality and climate values drift slowly with the model's time; contacts stay closed and
        smoke detectors clear unless a test or scenario freezes them otherwise.
        """
        model = self.model
        pumps = [rs.pumps[eq.id]] if isinstance(eq, Pump) else list(rs.pumps.values())

        def pf() -> float:
            return 0.86 if any(p.running for p in pumps) else 1.0

        def kw() -> float:
            return sum(math.sqrt(3) * rs.voltage * p.current * 0.86 / 1000 for p in pumps)

        def drift(mean: float, amplitude: float, period: float) -> Signal:
            return lambda: mean + amplitude * math.sin(2 * math.pi * model.time / period)

        match sensor.kind:
            case SensorKind.CURRENT if isinstance(eq, Cabinet):  # the room's incomer
                return lambda: sum(p.current for p in pumps)
            case SensorKind.ACTIVE_POWER:
                return kw
            case SensorKind.REACTIVE_POWER:
                return lambda: kw() * math.tan(math.acos(pf()))
            case SensorKind.POWER_FACTOR:
                return pf
            case SensorKind.ENERGY:  # kWh: a meter that has run for years, rising with run hours
                return lambda: 12_000.0 + sum(p.run_hours * (p.spec.rated_power_kw or 5.0) * 0.8
                                             for p in pumps)
            case SensorKind.FREQUENCY if isinstance(eq, Pump):  # a drive's output frequency
                return lambda: 48.5 if pumps[0].running else 0.0
            case SensorKind.FREQUENCY:
                return drift(50.0, 0.03, 97.0)
            case SensorKind.FAULT_CODE:
                codes = sorted(code for code in sensor.state_codes.values() if code)
                trip = float(codes[0]) if codes else 1.0
                return lambda: trip if any(p.tripped for p in pumps) else 0.0
            case SensorKind.HUMIDITY:
                return drift(62.0, 8.0, 86_400.0)
            case SensorKind.TURBIDITY:
                return drift(0.35, 0.05, 7_200.0)
            case SensorKind.RESIDUAL_CHLORINE:
                return drift(0.40, 0.04, 10_800.0)
            case SensorKind.PH:
                return drift(7.2, 0.1, 14_400.0)
            case SensorKind.CONDUCTIVITY:
                return drift(420.0, 15.0, 21_600.0)
            case SensorKind.DOOR | SensorKind.INTRUSION | SensorKind.SMOKE:
                return lambda: 0.0
            case _:
                return None

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
