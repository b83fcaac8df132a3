"""Site model: rooms, equipment, sensors, Modbus register maps and MQTT topic maps.

The site file is the single source of truth. These pydantic models validate its shape;
`check_references` validates what crosses sections (ids, addresses, references), and
`pumpwatch.sitefile.load_site` turns both kinds of error into messages with file and line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pumpwatch.alarm_config import AlarmDefaults, Comparison, RuleSpec, SensorAlarms, Severity, Threshold
from pumpwatch.model_base import Identifier, Model, Text
from pumpwatch.plans import PlanSettings

__all__ = ["Comparison", "Identifier", "Model", "Severity", "Text", "Threshold"]


class PumpKind(StrEnum):
    """What a pump serves; the regulation treats each kind differently."""

    DOMESTIC = "domestic"
    FIRE = "fire"
    SPRINKLER = "sprinkler"
    SEWAGE = "sewage"
    CLEAN_WATER = "clean-water"


class SensorKind(StrEnum):
    """The physical quantity or state a sensor reports."""

    PRESSURE = "pressure"
    DIFFERENTIAL_PRESSURE = "differential_pressure"
    CURRENT = "current"
    VOLTAGE = "voltage"
    TEMPERATURE = "temperature"
    LEAK = "leak"
    LEVEL = "level"
    FLOW = "flow"
    VIBRATION = "vibration"
    SWITCH_POSITION = "switch_position"
    RUN_STATUS = "run_status"
    RUN_COMMAND = "run_command"
    DUTY_SELECT = "duty_select"
    RUN_HOURS = "run_hours"
    BATTERY = "battery"


# Numeric code of each named state, per kind. The collector stores the number and keeps the name.
DEFAULT_STATES: dict[SensorKind, dict[str, int]] = {
    SensorKind.SWITCH_POSITION: {"OFF": 0, "MANUAL": 1, "AUTO": 2},
    SensorKind.RUN_STATUS: {"STOPPED": 0, "RUNNING": 1},
    SensorKind.RUN_COMMAND: {"STOP": 0, "RUN": 1},
    SensorKind.LEAK: {"DRY": 0, "WET": 1},
}

DEFAULT_UNITS: dict[SensorKind, str] = {
    SensorKind.PRESSURE: "MPa",
    SensorKind.DIFFERENTIAL_PRESSURE: "kPa",
    SensorKind.CURRENT: "A",
    SensorKind.VOLTAGE: "V",
    SensorKind.TEMPERATURE: "°C",
    SensorKind.LEVEL: "m",
    SensorKind.FLOW: "m³/h",
    SensorKind.VIBRATION: "mm/s",
    SensorKind.RUN_HOURS: "h",
    SensorKind.BATTERY: "%",
}


class Sensor(Model):
    """One measured quantity, fed by a Modbus point or an MQTT mapping."""

    id: Identifier
    kind: SensorKind
    name: Text | None = None
    unit: str | None = None
    range: tuple[float, float] | None = Field(
        None, description="valid range [min, max]; values outside are flagged bad"
    )
    source: Literal["modbus", "mqtt"]
    states: dict[str, int] | None = None
    thresholds: tuple[Threshold, ...] | None = None
    expected_period: float | None = Field(
        None, gt=0, description="seconds between readings; no data after a few periods alarms"
    )
    alarms: SensorAlarms = SensorAlarms()

    @field_validator("range")
    @classmethod
    def _ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None:
            lo, hi = v
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError("range bounds must be finite numbers")
            if lo >= hi:
                raise ValueError(f"range minimum {lo} must be below maximum {hi}")
        return v

    @property
    def state_codes(self) -> dict[str, int]:
        """Named states of this sensor (explicit, or the kind's default), name -> code."""
        return dict(self.states) if self.states is not None else DEFAULT_STATES.get(self.kind, {})

    @property
    def display_unit(self) -> str:
        """The unit to show: explicit, or the kind's default."""
        return self.unit if self.unit is not None else DEFAULT_UNITS.get(self.kind, "")


class EquipmentBase(Model):
    """Fields every piece of equipment has."""

    id: Identifier
    name: Text | None = None
    sensors: tuple[Sensor, ...] = ()


class Pump(EquipmentBase):
    """A pump with its motor; domestic pumps usually run as a duty/standby pair."""

    type: Literal["pump"]
    kind: PumpKind
    rated_current: float = Field(gt=0, description="motor rated current, A")
    rated_power_kw: float | None = Field(None, gt=0)
    rated_flow: float = Field(30.0, gt=0, description="m³/h at the duty point")
    shutoff_pressure: float = Field(0.8, gt=0, description="MPa at zero flow")
    duty_group: Identifier | None = None


class Tank(EquipmentBase):
    """A break or storage tank with a level."""

    type: Literal["tank"]
    height: float = Field(3.0, gt=0, description="m")
    area: float = Field(10.0, gt=0, description="m² of water surface")
    refill_flow: float = Field(40.0, ge=0, description="m³/h through the float valve when open")


class PressureTank(EquipmentBase):
    """A diaphragm pressure tank on the supply header."""

    type: Literal["pressure_tank"]
    volume: float = Field(1.0, gt=0, description="m³")


class Header(EquipmentBase):
    """A pipe header or main (outlet, sprinkler main)."""

    type: Literal["header"]


class Sump(EquipmentBase):
    """A drainage sump emptied by a sewage pump."""

    type: Literal["sump"]
    depth: float = Field(2.0, gt=0, description="m")
    area: float = Field(2.0, gt=0, description="m²")
    inflow: float = Field(3.0, ge=0, description="m³/h average drainage inflow")


class Cabinet(EquipmentBase):
    """A control cabinet (starters, PLC, switches)."""

    type: Literal["cabinet"]


class Filter(EquipmentBase):
    """A strainer or filter on a pump suction."""

    type: Literal["filter"]


Equipment = Annotated[
    Pump | Tank | PressureTank | Header | Sump | Cabinet | Filter, Field(discriminator="type")
]


class DutyControl(Model):
    """Pressure switch settings of a pump group (start below, stop above), MPa."""

    start_pressure: float = Field(0.30, gt=0)
    stop_pressure: float = Field(0.45, gt=0)

    @model_validator(mode="after")
    def _band(self) -> DutyControl:
        if self.start_pressure >= self.stop_pressure:
            raise ValueError("start_pressure must be below stop_pressure")
        return self


class DutyGroup(Model):
    """Pumps that share one duty: one runs, the others stand by."""

    id: Identifier
    pumps: tuple[Identifier, ...] = Field(min_length=2)
    control: DutyControl = DutyControl()


class Room(Model):
    """A pump room: equipment, room-level sensors (floor leak, room temperature), duty groups."""

    id: Identifier
    name: Text
    equipment: tuple[Equipment, ...] = ()
    sensors: tuple[Sensor, ...] = ()
    duty_groups: tuple[DutyGroup, ...] = ()


class DataType(StrEnum):
    """Modbus point data types."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BIT = "bit"


REGISTER_COUNT: dict[DataType, int] = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
    DataType.BIT: 1,
}


class Table(StrEnum):
    """Modbus data tables."""

    COIL = "coil"
    DISCRETE = "discrete"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def is_bit_table(self) -> bool:
        """Coils and discrete inputs hold single bits."""
        return self in (Table.COIL, Table.DISCRETE)

    @property
    def is_writable(self) -> bool:
        """Coils and holding registers can be written by a client."""
        return self in (Table.COIL, Table.HOLDING)


class ByteOrder(StrEnum):
    """Order of bytes inside a 16-bit register, or of registers inside a value."""

    BIG = "big"
    LITTLE = "little"


class ModbusPoint(Model):
    """Where one sensor's value lives in a device, and how to decode it."""

    sensor: Identifier
    table: Table
    address: int = Field(ge=0, le=65535)
    type: DataType = DataType.UINT16
    bit: int | None = Field(None, ge=0, le=15, description="bit index in a register (type bit)")
    byte_order: ByteOrder | None = None
    word_order: ByteOrder | None = None
    scale: float = 1.0
    offset: float = 0.0
    writable: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> ModbusPoint:
        if self.table.is_bit_table and self.type is not DataType.BIT:
            raise ValueError(f"a {self.table} holds single bits: type must be 'bit'")
        if self.type is DataType.BIT and not self.table.is_bit_table and self.bit is None:
            raise ValueError("a bit in a register needs 'bit' (0-15)")
        if self.bit is not None and (self.type is not DataType.BIT or self.table.is_bit_table):
            raise ValueError("'bit' only applies to type bit in holding or input registers")
        if self.writable and not self.table.is_writable:
            raise ValueError(f"a {self.table} cannot be written; use coil or holding")
        if self.scale == 0 or not math.isfinite(self.scale) or not math.isfinite(self.offset):
            raise ValueError("scale must be a non-zero finite number, offset finite")
        end = self.address + self.register_count
        if end > 65536:
            raise ValueError(f"point ends at address {end - 1}, past 65535")
        return self

    @property
    def register_count(self) -> int:
        """Registers (or bits, in bit tables) this point occupies."""
        return REGISTER_COUNT[self.type]


class ModbusDevice(Model):
    """A Modbus TCP device (PLC, meter) polled on its own schedule."""

    id: Identifier
    room: Identifier | None = None
    host: str = "127.0.0.1"
    port: int = Field(502, ge=0, le=65535)
    unit: int = Field(1, ge=0, le=255)
    poll_interval: float = Field(1.0, gt=0, description="seconds")
    timeout: float = Field(0.5, gt=0, description="seconds")
    byte_order: ByteOrder = ByteOrder.BIG
    word_order: ByteOrder = ByteOrder.BIG
    max_gap: int = Field(8, ge=0, le=100, description="unused registers read to merge requests")
    shard: int = Field(0, ge=0)
    points: tuple[ModbusPoint, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> ModbusDevice:
        if self.timeout >= self.poll_interval:
            raise ValueError(
                f"timeout {self.timeout} s must be shorter than poll_interval "
                f"{self.poll_interval} s, or a slow reply delays the next poll"
            )
        return self


class PayloadFormat(StrEnum):
    """How an MQTT payload carries its value(s)."""

    JSON = "json"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ENUM = "enum"


class ValueType(StrEnum):
    """How one value inside a payload is read."""

    NUMBER = "number"
    BOOLEAN = "boolean"
    ENUM = "enum"


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MqttValue(Model):
    """One value taken from a message: a JSON field path (dots, list indexes) or the whole payload."""

    sensor: str = Field(min_length=1, description="sensor id; may use the topic's {wildcards}")
    field: str | None = Field(None, description="JSON path like 'DS18B20.Temperature'")
    type: ValueType = ValueType.NUMBER
    scale: float = 1.0
    offset: float = 0.0

    @property
    def placeholders(self) -> list[str]:
        """Names of topic wildcards used in the sensor template."""
        return _PLACEHOLDER.findall(self.sensor)


class MqttMapping(Model):
    """A topic filter with named wildcards and the sensor values each message feeds."""

    topic: str = Field(min_length=1, description="e.g. 'zigbee2mqtt/{device}' or 'tele/{dev}/SENSOR'")
    format: PayloadFormat = PayloadFormat.JSON
    values: tuple[MqttValue, ...] = Field(min_length=1)
    timestamp_field: str | None = Field(None, description="JSON path of a device timestamp")

    @field_validator("topic")
    @classmethod
    def _topic_shape(cls, v: str) -> str:
        levels = v.split("/")
        for i, level in enumerate(levels):
            if level == "#" and i != len(levels) - 1:
                raise ValueError("'#' may only be the last topic level")
            if level in ("+", "#"):
                continue
            if ("+" in level or "#" in level) or (
                "{" in level and not _PLACEHOLDER.fullmatch(level)
            ):
                raise ValueError(
                    f"topic level {level!r}: a wildcard must fill a whole level, "
                    "written '+', '#' or '{name}'"
                )
        names = _PLACEHOLDER.findall(v)
        if len(names) != len(set(names)):
            raise ValueError("each {wildcard} name may appear once in a topic")
        return v

    @model_validator(mode="after")
    def _fields_match_format(self) -> MqttMapping:
        wildcards = set(self.wildcards)
        for value in self.values:
            if self.format is PayloadFormat.JSON and value.field is None:
                raise ValueError(f"value for {value.sensor!r}: a JSON payload needs 'field'")
            if self.format is not PayloadFormat.JSON and value.field is not None:
                raise ValueError(f"value for {value.sensor!r}: 'field' needs format json")
            unknown = set(value.placeholders) - wildcards
            if unknown:
                raise ValueError(
                    f"sensor {value.sensor!r} uses {{{sorted(unknown)[0]}}}, "
                    f"which is not a wildcard of topic {self.topic!r}"
                )
        if self.format is not PayloadFormat.JSON and len(self.values) != 1:
            raise ValueError("a plain payload carries exactly one value")
        return self

    @property
    def wildcards(self) -> list[str]:
        """Named wildcards of the topic, in order."""
        return _PLACEHOLDER.findall(self.topic)

    @property
    def subscription(self) -> str:
        """The MQTT topic filter to subscribe to ({name} becomes +)."""
        return _PLACEHOLDER.sub("+", self.topic)

    def value_type(self, value: MqttValue) -> ValueType:
        """How `value` is read, given the payload format."""
        if self.format is PayloadFormat.JSON:
            return value.type
        return ValueType(self.format.value)


class SiteInfo(Model):
    """Who and where."""

    id: Identifier
    name: Text
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {v!r} (use an IANA name like Asia/Shanghai)") from err
        return v


class Defaults(Model):
    """Site-wide defaults: thresholds per sensor kind, used where a sensor sets none."""

    thresholds: dict[SensorKind, tuple[Threshold, ...]] = Field(default_factory=dict)
    expected_period: float = Field(10.0, gt=0)
    alarms: AlarmDefaults = AlarmDefaults()


class Site(Model):
    """A whole site file."""

    site: SiteInfo
    defaults: Defaults = Defaults()
    rooms: tuple[Room, ...] = Field(min_length=1)
    modbus: tuple[ModbusDevice, ...] = ()
    mqtt: tuple[MqttMapping, ...] = ()
    rules: tuple[RuleSpec, ...] = ()
    plans: PlanSettings = PlanSettings()

    def iter_sensors(self) -> Iterator[tuple[Room, EquipmentBase | None, Sensor]]:
        """Every sensor with its room and equipment (None for room-level sensors)."""
        for room in self.rooms:
            for sensor in room.sensors:
                yield room, None, sensor
            for equipment in room.equipment:
                for sensor in equipment.sensors:
                    yield room, equipment, sensor

    def sensor(self, sensor_id: str) -> Sensor:
        """The sensor with this id; KeyError if there is none."""
        for _room, _eq, sensor in self.iter_sensors():
            if sensor.id == sensor_id:
                return sensor
        raise KeyError(sensor_id)

    def thresholds_for(self, sensor: Sensor) -> tuple[Threshold, ...]:
        """The sensor's own thresholds, else the site default for its kind."""
        if sensor.thresholds is not None:
            return sensor.thresholds
        return self.defaults.thresholds.get(sensor.kind, ())
