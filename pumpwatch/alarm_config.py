"""Alarm configuration in the site file: thresholds, defaults per sensor and pump kind, custom rules.

The regulation gives no numbers (PUMP-ROOM-RULES.md), so a sensor whose site sets no thresholds gets the
built-in limits of its role (`DefaultLimits`: motor current and winding temperature of a pump, cabinet
temperature, supply voltage, supply pressure), taken from the standards named beside each. A site changes
them under `defaults.alarms.limits`, per kind under `defaults.thresholds`, per sensor with `thresholds`.
"""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from pumpwatch.model_base import Identifier, Model, Text


class Comparison(StrEnum):
    """Direction of a threshold."""

    ABOVE = "above"
    BELOW = "below"


class Severity(StrEnum):
    """Alarm severity, most severe first."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"


class Threshold(Model):
    """A limit on a sensor value: crossing it for `for_seconds` raises an alarm."""

    when: Comparison
    value: float
    severity: Severity = Severity.MAJOR
    hysteresis: float = Field(0.0, ge=0)
    for_seconds: float = Field(0.0, ge=0)

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class ShareThreshold(Model):
    """A limit given as a share of what the site model knows: rated current, nominal voltage, set pressure."""

    when: Comparison
    share: float = Field(gt=0, description="e.g. 1.1: 110 % of the reference")
    severity: Severity = Severity.MAJOR
    hysteresis: float = Field(0.0, ge=0, description="a share of the reference too")
    for_seconds: float = Field(0.0, ge=0)

    @field_validator("share")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    def of(self, reference: float) -> Threshold:
        """The threshold for a reference value (a pump's rated current, the nominal voltage, ...)."""
        return Threshold(when=self.when, value=round(self.share * reference, 6), severity=self.severity,
                         hysteresis=round(self.hysteresis * reference, 6), for_seconds=self.for_seconds)


def _t(when: Comparison, value: float, severity: Severity, hysteresis: float, seconds: float) -> Threshold:
    return Threshold(when=when, value=value, severity=severity, hysteresis=hysteresis, for_seconds=seconds)


def _s(when: Comparison, share: float, severity: Severity, hysteresis: float,
       seconds: float) -> ShareThreshold:
    return ShareThreshold(when=when, share=share, severity=severity, hysteresis=hysteresis,
                          for_seconds=seconds)


_UP, _DOWN = Comparison.ABOVE, Comparison.BELOW


class DefaultLimits(Model):
    """The thresholds a sensor gets from its role when neither it nor `defaults.thresholds` sets any."""

    # Motor overload: GB 14048.4 / IEC 60947-4-1 overload relays hold at 105 % and trip by 120 % of the
    # setting; a motor over 110 % of its rated current for half a minute (past any start) is overloaded.
    motor_current: tuple[ShareThreshold, ...] = Field(
        (_s(_UP, 1.1, Severity.MAJOR, 0.03, 30),),
        description="a pump's current, shares of its rated current")
    # Winding temperature: GB/T 755 / IEC 60034-1 allow class B windings 80 K over a 40 °C ambient (120 °C)
    # and 130 °C at the hot spot, class F 105 K (145 °C) and 155 °C. Small pump motors are class F insulated
    # and designed to the class B rise: warning 20 K short of that limit, major at it, critical 15 K short
    # of the class F limit (every 10 K more halves the insulation's life).
    motor_temperature: tuple[Threshold, ...] = Field(
        (_t(_UP, 100.0, Severity.WARNING, 3.0, 60), _t(_UP, 120.0, Severity.MAJOR, 3.0, 60),
         _t(_UP, 140.0, Severity.CRITICAL, 3.0, 30)), description="a pump's (winding) temperature, °C")
    # Cabinet: GB/T 7251.1 / IEC 61439-1 switchgear is built for at most 40 °C around it (35 °C over a day);
    # PLCs, soft starters and drives are commonly rated to 50-55 °C.
    cabinet_temperature: tuple[Threshold, ...] = Field(
        (_t(_UP, 45.0, Severity.MINOR, 2.0, 120), _t(_UP, 55.0, Severity.MAJOR, 2.0, 60)),
        description="a control cabinet's inside temperature, °C")
    # Supply voltage: GB/T 12325 lets a three-phase supply at 20 kV and below deviate 7 % from nominal;
    # GB/T 755 / IEC 60034-1 motors are built to run (zone B) only within 10 %.
    nominal_voltage: float = Field(380.0, gt=0, description="V, the supply's nominal (GB/T 156: 380 V)")
    supply_voltage: tuple[ShareThreshold, ...] = Field(
        (_s(_DOWN, 0.93, Severity.MINOR, 0.01, 10), _s(_UP, 1.07, Severity.MINOR, 0.01, 10),
         _s(_DOWN, 0.90, Severity.MAJOR, 0.01, 10), _s(_UP, 1.10, Severity.MAJOR, 0.01, 10)),
        description="supply voltage, shares of nominal_voltage")
    # Supply pressure, relative to the duty group's start pressure (the set pressure of the room): the
    # duty pump starts there, so a pressure that stays well below it means the pumps cannot hold it, and
    # at half of it the upper floors go dry.
    supply_pressure: tuple[ShareThreshold, ...] = Field(
        (_s(_DOWN, 0.85, Severity.MAJOR, 0.05, 60), _s(_DOWN, 0.5, Severity.CRITICAL, 0.05, 20)),
        description="header, pressure tank or pump outlet pressure in a room with a duty group, shares of "
                    "the group's start_pressure")


class SensorAlarms(Model):
    """Per-sensor overrides of the generated rules."""

    no_data: bool = Field(True, description="alarm when the sensor stops reporting")
    flatline_seconds: float | None = Field(None, ge=0, description="0 turns the stuck-value check off")
    max_rate: float | None = Field(None, gt=0, description="alarm when the value moves faster (per minute)")


class PumpRules(Model):
    """Limits of the pump rules that combine sensors (shares are of the pump's rated current)."""

    failed_start_current: float = Field(0.1, ge=0, le=1)
    failed_start_seconds: float = Field(15, ge=0)
    failed_start_severity: Severity = Severity.MAJOR
    dry_run_pressure: float = Field(0.15, gt=0, description="MPa at the outlet or header")
    dry_run_current: float = Field(0.6, gt=0, le=1.5)
    dry_run_seconds: float = Field(20, ge=0)
    bearing_current: float = Field(1.1, gt=0)
    bearing_temperature_rise: float = Field(1.0, gt=0, description="°C over bearing_window")
    bearing_window: float = Field(600, gt=0)
    bearing_seconds: float = Field(10, ge=0)
    switch_not_auto_seconds: float = Field(30, ge=0)
    switch_severity: Severity = Severity.MAJOR


class AlarmDefaults(Model):
    """Site-wide alarm defaults; pump kinds may override the pump rules."""

    no_data_periods: float = Field(3, gt=0, description="expected periods without data before alarming")
    no_data_severity: Severity = Severity.MINOR
    flatline_seconds: dict[str, float] = Field(
        default_factory=lambda: {"pressure": 900.0},
        description="sensor kind -> seconds a value may stay exactly still")
    leak_severity: Severity = Severity.CRITICAL
    tank_falling: float = Field(0.05, gt=0, description="m the tank level may fall over tank_window "
                                                        "while a pump runs before a valve fault")
    tank_window: float = Field(120, gt=0)
    tank_seconds: float = Field(300, ge=0, description="how long the fall must go on")
    sump_rising: float = Field(0.005, gt=0, description="m the sump may rise over sump_window while "
                                                       "its pump runs")
    sump_window: float = Field(60, gt=0)
    sump_seconds: float = Field(120, ge=0, description="how long the rise must go on")
    limits: DefaultLimits = DefaultLimits()
    pump: PumpRules = PumpRules()
    pump_kinds: dict[str, PumpRules] = Field(
        default_factory=lambda: {"fire": PumpRules(failed_start_severity=Severity.CRITICAL,
                                                   switch_severity=Severity.CRITICAL),
                                 "sprinkler": PumpRules(failed_start_severity=Severity.CRITICAL,
                                                        switch_severity=Severity.CRITICAL)},
        description="pump kind -> its own pump rules")

    def pump_rules(self, kind: str) -> PumpRules:
        """The pump rules for a pump kind."""
        return self.pump_kinds.get(kind, self.pump)


class Condition(Model):
    """One test on one sensor, or `all` / `any` of nested conditions."""

    sensor: Identifier | None = None
    above: float | None = None
    below: float | None = None
    hysteresis: float = Field(0.0, ge=0)
    state: str | None = None
    not_state: str | None = None
    rising: float | None = Field(None, gt=0, description="rise over `window` seconds")
    falling: float | None = Field(None, gt=0, description="fall over `window` seconds")
    window: float = Field(300, gt=0)
    no_data: float | None = Field(None, gt=0, description="seconds without a reading")
    all: tuple[Condition, ...] | None = None
    any: tuple[Condition, ...] | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [name for name in ("above", "below", "state", "not_state", "rising", "falling", "no_data",
                                   "all", "any") if getattr(self, name) is not None]
        if len(tests) != 1:
            raise ValueError("a condition needs exactly one of above, below, state, not_state, rising, "
                             f"falling, no_data, all, any (got {', '.join(tests) or 'none'})")
        if tests[0] in ("all", "any"):
            if self.sensor is not None:
                raise ValueError(f"'{tests[0]}' combines conditions; put 'sensor' on each of them")
        elif self.sensor is None:
            raise ValueError(f"'{tests[0]}' needs a 'sensor'")
        return self

    def sensors(self) -> set[str]:
        """Every sensor this condition reads."""
        nested = self.all or self.any or ()
        return {self.sensor} if self.sensor else set().union(*(c.sensors() for c in nested))


class RuleSpec(Model):
    """A custom alarm rule: when `when` has held for `for_seconds`, alarm `id` on `asset`."""

    id: Identifier
    asset: Identifier
    name: Text
    severity: Severity = Severity.MAJOR
    for_seconds: float = Field(0.0, ge=0)
    when: Condition
