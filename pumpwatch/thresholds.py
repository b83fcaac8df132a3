"""The thresholds in force on each sensor, and where each comes from.

A sensor's own `thresholds` come first (an empty list means none); then the site's default for its kind
(`defaults.thresholds.<kind>`); then the built-in limit of its role (`defaults.alarms.limits`, which a site
may change): a pump's motor current (a share of its rated current) and winding temperature, a cabinet's
temperature, the supply voltage (a share of the nominal voltage) and the supply pressure of a room with a
duty group (a share of the group's start pressure). Other sensors have no threshold unless the site gives
one. The rulebook builds its threshold alarms from this; `pumpwatch thresholds` prints it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pumpwatch.alarm_config import DefaultLimits, ShareThreshold, Threshold
from pumpwatch.site import (
    Cabinet,
    EquipmentBase,
    Header,
    PressureTank,
    Pump,
    Room,
    Sensor,
    SensorKind,
    Site,
)

Source = Literal["sensor", "site default", "default", "none"]


@dataclass(frozen=True, slots=True)
class InForce:
    """The thresholds of one sensor, where they come from, and on what they are based."""

    room: Room
    equipment: EquipmentBase | None
    sensor: Sensor
    thresholds: tuple[Threshold, ...]
    source: Source
    basis: str  # the site-file key, and for shares the reference: "... × rated current 15.6 A"


def thresholds_in_force(site: Site, room: Room, equipment: EquipmentBase | None, sensor: Sensor) -> InForce:
    """The thresholds in force on `sensor` (in `room`, on `equipment`), with their source."""
    if sensor.thresholds is not None:
        return InForce(room, equipment, sensor, sensor.thresholds, "sensor", "thresholds")
    if sensor.kind in site.defaults.thresholds:
        return InForce(room, equipment, sensor, site.defaults.thresholds[sensor.kind], "site default",
                       f"defaults.thresholds.{sensor.kind.value}")
    limits = site.defaults.alarms.limits
    changed = limits.model_fields_set if "limits" in site.defaults.alarms.model_fields_set else set()
    role = _role(room, equipment, sensor, limits)
    if role is None:
        return InForce(room, equipment, sensor, (), "none", "")
    name, reference, what = role
    source: Source = "site default" if name in changed or (
        name == "supply_voltage" and "nominal_voltage" in changed) else "default"
    given: tuple[Threshold, ...] | tuple[ShareThreshold, ...] = getattr(limits, name)
    if reference is None:
        return InForce(room, equipment, sensor, tuple(t for t in given if isinstance(t, Threshold)), source,
                       f"defaults.alarms.limits.{name}")
    shares = tuple(t for t in given if isinstance(t, ShareThreshold))
    return InForce(room, equipment, sensor, tuple(t.of(reference) for t in shares), source,
                   f"defaults.alarms.limits.{name} × {what} {reference:g} {sensor.display_unit}")


def site_thresholds(site: Site) -> Iterator[InForce]:
    """The thresholds in force on every sensor of the site, in file order."""
    for room, equipment, sensor in site.iter_sensors():
        yield thresholds_in_force(site, room, equipment, sensor)


def _role(room: Room, equipment: EquipmentBase | None, sensor: Sensor,
          limits: DefaultLimits) -> tuple[str, float | None, str] | None:
    """Which built-in limit applies: (field of `DefaultLimits`, its reference value or None, what that is)."""
    kind = sensor.kind
    if kind is SensorKind.CURRENT and isinstance(equipment, Pump):
        return "motor_current", equipment.rated_current, "rated current"
    if kind is SensorKind.TEMPERATURE and isinstance(equipment, Pump):
        return "motor_temperature", None, ""
    if kind is SensorKind.TEMPERATURE and isinstance(equipment, Cabinet):
        return "cabinet_temperature", None, ""
    if kind is SensorKind.VOLTAGE:
        return "supply_voltage", limits.nominal_voltage, "nominal voltage"
    supply = isinstance(equipment, Header | PressureTank | Pump)
    if kind is SensorKind.PRESSURE and supply and room.duty_groups:
        start = min(group.control.start_pressure for group in room.duty_groups)
        return "supply_pressure", start, "start pressure"
    return None

