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
from typing import Annotated, Literal, NamedTuple

from pydantic import Field, field_validator, model_validator

from pumpwatch.alarm_config import AlarmDefaults, Comparison, RuleSpec, SensorAlarms, Severity, Threshold
from pumpwatch.model_base import Identifier, Model, Text
from pumpwatch.plans import PlanSettings
from pumpwatch.sla_config import SlaSettings

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
    # Energy meters (Eastron SDM120/SDM630 style) and VFDs.
    ACTIVE_POWER = "active_power"
    REACTIVE_POWER = "reactive_power"
    ENERGY = "energy"  # a counter: it only rises; a fall is a meter replaced or rolled over
    FREQUENCY = "frequency"
    POWER_FACTOR = "power_factor"
    FAULT_CODE = "fault_code"  # a drive's fault code; the site names its codes
    # Room climate and security.
    HUMIDITY = "humidity"
    DOOR = "door"
    INTRUSION = "intrusion"
    SMOKE = "smoke"
    # Water quality of secondary water supply (二次供水).
    TURBIDITY = "turbidity"
    RESIDUAL_CHLORINE = "residual_chlorine"
    PH = "ph"
    CONDUCTIVITY = "conductivity"
    CUSTOM = "custom"  # anything else; needs its own unit
    # An edge gateway's own health, as the centre stores it (sensors of `edges:`, made by the site).
    EDGE_HEARTBEAT = "edge_heartbeat"
    EDGE_BUFFER_DEPTH = "edge_buffer_depth"
    EDGE_BACKLOG_AGE = "edge_backlog_age"
    EDGE_CLOCK_OFFSET = "edge_clock_offset"
    EDGE_DROPPED = "edge_dropped"
    EDGE_VERSION = "edge_version"


# Numeric code of each named state, per kind. The collector stores the number and keeps the name.
DEFAULT_STATES: dict[SensorKind, dict[str, int]] = {
    SensorKind.SWITCH_POSITION: {"OFF": 0, "MANUAL": 1, "AUTO": 2},
    SensorKind.RUN_STATUS: {"STOPPED": 0, "RUNNING": 1},
    SensorKind.RUN_COMMAND: {"STOP": 0, "RUN": 1},
    SensorKind.LEAK: {"DRY": 0, "WET": 1},
    SensorKind.DOOR: {"CLOSED": 0, "OPEN": 1},
    SensorKind.INTRUSION: {"CLOSED": 0, "OPEN": 1},
    SensorKind.SMOKE: {"CLEAR": 0, "ALARM": 1},
    SensorKind.FAULT_CODE: {"OK": 0},
}

# Kinds whose every integer code is a state: a code the site does not name is kept as UNKNOWN_<code>.
OPEN_CODE_KINDS = frozenset({SensorKind.FAULT_CODE})

# Counters: the value only rises; a fall is a reset (the reading is flagged COUNTER_RESET).
COUNTER_KINDS = frozenset({SensorKind.ENERGY})

# Valid range of a kind where physics fixes it; a sensor's own `range` overrides it.
DEFAULT_RANGES: dict[SensorKind, tuple[float, float]] = {
    SensorKind.POWER_FACTOR: (-1.0, 1.0),
    SensorKind.HUMIDITY: (0.0, 100.0),
    SensorKind.PH: (0.0, 14.0),
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
    SensorKind.ACTIVE_POWER: "kW",
    SensorKind.REACTIVE_POWER: "kvar",
    SensorKind.ENERGY: "kWh",
    SensorKind.FREQUENCY: "Hz",
    SensorKind.HUMIDITY: "%RH",
    SensorKind.TURBIDITY: "NTU",
    SensorKind.RESIDUAL_CHLORINE: "mg/L",
    SensorKind.PH: "pH",
    SensorKind.CONDUCTIVITY: "µS/cm",
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
    source: Literal["modbus", "mqtt", "edge"]  # edge: an edge gateway's health (made from `edges:`)
    states: dict[str, int] | None = None
    codes: dict[int, str] | None = Field(
        None, description="code -> state name, as a device manual lists them (e.g. a drive's fault codes)"
    )
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

    @model_validator(mode="after")
    def _kind_needs(self) -> Sensor:
        if self.kind is SensorKind.CUSTOM and not (self.unit and self.unit.strip()):
            raise ValueError("a custom sensor needs its 'unit' (e.g. unit: bar)")
        if self.states is not None and self.codes is not None:
            raise ValueError("give the states either as 'states' (name: code) or as 'codes' "
                             "(code: name), not both")
        if self.codes is not None:
            names = list(self.codes.values())
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"codes: state name {twice[0]!r} is given to more than one code")
        return self

    @property
    def state_codes(self) -> dict[str, int]:
        """Named states of this sensor (explicit, or the kind's default), name -> code."""
        if self.codes is not None:
            return {name: code for code, name in self.codes.items()}
        return dict(self.states) if self.states is not None else DEFAULT_STATES.get(self.kind, {})

    @property
    def display_unit(self) -> str:
        """The unit to show: explicit, or the kind's default."""
        return self.unit if self.unit is not None else DEFAULT_UNITS.get(self.kind, "")

    @property
    def valid_range(self) -> tuple[float, float] | None:
        """The valid range: explicit, or the kind's physical range (power factor, humidity, pH)."""
        return self.range if self.range is not None else DEFAULT_RANGES.get(self.kind)


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


class DecimalPoint(Model):
    """A register of the same device holding a point's decimal-point code n.

    The point's scale is `scale` x 10^-n, from the poll that reads the code on (pressure
    transmitters and panel meters whose decimal point is a setting).
    """

    table: Table = Table.HOLDING
    address: int = Field(ge=0, le=65535)
    type: Literal[DataType.UINT16, DataType.INT16] = DataType.UINT16

    @field_validator("table")
    @classmethod
    def _register_table(cls, v: Table) -> Table:
        if v.is_bit_table:
            raise ValueError("a decimal-point code lives in a holding or input register")
        return v


MAX_DECIMALS = 9  # |n| of a decimal-point code; anything larger is a wrong register, not a scale


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
    scale_from: DecimalPoint | None = Field(
        None, description="register holding the decimal-point code n: the scale becomes scale x 10^-n"
    )
    writable: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> ModbusPoint:
        if self.scale_from is not None and (self.type is DataType.BIT or self.writable):
            raise ValueError("'scale_from' applies to numbers read from registers, not to bits or "
                             "writable points")
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


class BusTransport(StrEnum):
    """How the collector reaches an RS-485 line."""

    SERIAL = "serial"  # a serial port of this machine (USB-RS485 adapter, on-board UART)
    TCP = "tcp"  # a serial-to-Ethernet gateway in transparent mode: RTU frames over TCP


class Framer(StrEnum):
    """Modbus serial framing."""

    RTU = "rtu"
    ASCII = "ascii"


class Parity(StrEnum):
    """Serial parity, as pyserial names it."""

    NONE = "N"
    EVEN = "E"
    ODD = "O"


RTU_BITS_PER_CHAR = 11  # start, 8 data, parity or a second stop bit, stop (Modbus over serial line)
DEFAULT_TCP_BUS_PORT = 502
_SERIAL_PATH = re.compile(r"^(/dev/|COM\d+$|\\\\\.\\)", re.IGNORECASE)


class ModbusBus(Model):
    """One RS-485 line: every unit on it shares one connection, one lock and one request queue."""

    id: Identifier
    transport: BusTransport
    path: str | None = Field(None, min_length=1,
                             description="serial port, e.g. /dev/ttyUSB0 (or a pyserial URL)")
    host: str | None = Field(None, min_length=1, description="gateway address (transport tcp)")
    port: int | None = Field(None, ge=1, le=65535, description="gateway TCP port (default 502)")
    baudrate: int = Field(9600, ge=300, le=921600,
                          description="bit/s; for tcp the line behind the gateway (cycle estimate)")
    parity: Parity = Parity.NONE
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    framer: Framer = Framer.RTU
    timeout: float = Field(0.5, gt=0, description="seconds a unit may take to answer (a device may "
                                                  "set its own)")
    inter_frame_delay: float | None = Field(
        None, ge=0, le=1.0, description="seconds of silence before each request; default: 3.5 "
                                        "character times (1.75 ms above 19200 bit/s) on a serial port, "
                                        "none through a gateway (it keeps the line's timing)")
    local_echo: bool = Field(False, description="the adapter hears its own requests (some RS-485 "
                                                "dongles without echo suppression): skip them")

    @field_validator("parity", mode="before")
    @classmethod
    def _parity_word(cls, v: object) -> object:
        words = {"none": "N", "even": "E", "odd": "O"}
        return words.get(v.lower(), v.upper()) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _address_fits_transport(self) -> ModbusBus:
        if self.transport is BusTransport.SERIAL:
            if self.host is not None or self.port is not None:
                raise ValueError("a serial bus is reached through 'path' (its serial port, e.g. "
                                 "/dev/ttyUSB0); host and port are for transport: tcp")
            if self.path is None:
                raise ValueError("a serial bus needs 'path': its serial port, e.g. /dev/ttyUSB0")
        else:
            if self.path is not None:
                raise ValueError("'path' is a serial port: use transport: serial, or give a tcp "
                                 "bus its gateway's host and port")
            if self.host is None:
                raise ValueError("a tcp bus needs 'host': the serial-to-Ethernet gateway's address")
            if _SERIAL_PATH.match(self.host):
                raise ValueError(f"host {self.host!r} is a serial port: use transport: serial "
                                 "with path: instead")
            if self.local_echo:
                raise ValueError("local_echo is a serial adapter's; a gateway never echoes")
        if self.framer is Framer.RTU and self.bytesize != 8:
            raise ValueError("Modbus RTU needs 8 data bits (7 is for framer: ascii)")
        return self

    @property
    def tcp_port(self) -> int:
        """The gateway's TCP port (transport tcp)."""
        return self.port if self.port is not None else DEFAULT_TCP_BUS_PORT

    @property
    def char_time(self) -> float:
        """Seconds one character takes on the line (11 bits, as the Modbus serial spec counts)."""
        return RTU_BITS_PER_CHAR / self.baudrate

    @property
    def frame_gap(self) -> float:
        """Seconds of silence the collector leaves before each request."""
        if self.inter_frame_delay is not None:
            return self.inter_frame_delay
        if self.transport is BusTransport.TCP:
            return 0.0
        return line_silence(self.baudrate)

    @property
    def address(self) -> str:
        """Where the line is, for people: `serial /dev/ttyUSB0 9600 8N1 rtu` or `tcp 10.0.0.9:4001 rtu`."""
        if self.transport is BusTransport.SERIAL:
            return (f"serial {self.path} {self.baudrate} {self.bytesize}{self.parity.value}"
                    f"{self.stopbits} {self.framer.value}")
        return f"tcp {self.host}:{self.tcp_port} {self.framer.value}"


def line_silence(baudrate: int) -> float:
    """The Modbus silent interval t3.5 at a baud rate: 3.5 characters, fixed at 1.75 ms above 19200."""
    return 0.00175 if baudrate > 19200 else 3.5 * RTU_BITS_PER_CHAR / baudrate


class ModbusDevice(Model):
    """A Modbus device (PLC, meter, drive) polled on its own schedule.

    Reached through its own Modbus TCP connection (host, port), or as a unit on an RS-485 bus
    (bus, unit).
    """

    id: Identifier
    room: Identifier | None = None
    bus: Identifier | None = Field(None, description="the bus (buses:) this unit is on; then host "
                                                     "and port are the bus's")
    host: str = "127.0.0.1"
    port: int = Field(502, ge=0, le=65535)
    unit: int = Field(1, ge=0, le=255)
    poll_interval: float = Field(1.0, gt=0, description="seconds")
    timeout: float = Field(0.5, gt=0, description="seconds (on a bus: default the bus's timeout)")
    byte_order: ByteOrder = ByteOrder.BIG
    word_order: ByteOrder = ByteOrder.BIG
    max_gap: int = Field(8, ge=0, le=100, description="unused registers read to merge requests")
    shard: int = Field(0, ge=0)
    points: tuple[ModbusPoint, ...] = Field(min_length=1)

    @field_validator("host")
    @classmethod
    def _network_host(cls, v: str) -> str:
        if _SERIAL_PATH.match(v):
            raise ValueError(f"host {v!r} is a serial port, not a network address: use a serial bus "
                             "(buses: with transport: serial and path: ...) and put bus: and unit: "
                             "on the device")
        return v

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


class EntryKey(NamedTuple):
    """A step of a field path that picks the array entry whose `key` equals `value`: `[id=p1]`."""

    key: str
    value: str


FieldStep = str | EntryKey


def parse_field_path(text: str) -> tuple[FieldStep, ...]:
    """Split a JSON field path into steps: `values[id=p1].v` -> ('values', EntryKey('id', 'p1'), 'v').

    Dots separate object keys (or list positions, `temps.0`); `[key=value]` after a name picks, from
    the array under that name, the one entry whose `key` is `value`, wherever it is in the array.
    """
    steps: list[FieldStep] = []
    i, n = 0, len(text)
    while True:
        j = i
        while j < n and text[j] not in ".[]":
            j += 1
        if j == i and not (i == 0 and text.startswith("[")):  # a payload that is an array: [id=p1].v
            raise ValueError(f"field path {text!r}: empty name at character {i + 1}")
        if j > i:
            steps.append(text[i:j])
        while j < n and text[j] == "[":
            close = text.find("]", j)
            if close < 0:
                raise ValueError(f"field path {text!r}: '[' without ']'")
            key, eq, value = text[j + 1 : close].partition("=")
            if not eq or not key.strip() or not value.strip() or "[" in key + value:
                raise ValueError(f"field path {text!r}: write an entry selector as [key=value], "
                                 "e.g. values[id=p1].v (positions are written .0)")
            steps.append(EntryKey(key.strip(), value.strip()))
            j = close + 1
        if j == n:
            return tuple(steps)
        if text[j] != ".":
            raise ValueError(f"field path {text!r}: unexpected {text[j]!r} at character {j + 1}")
        i = j + 1


class MqttValue(Model):
    """One value taken from a message: a JSON field path, or the whole payload.

    A path has dots between keys, list positions (`temps.0`) and entry selectors (`values[id=p1].v`).
    """

    sensor: str = Field(min_length=1, description="sensor id; may use the topic's {wildcards}")
    field: str | None = Field(None, description="JSON path like 'DS18B20.Temperature' or "
                                                "'values[id=p1].v'")
    type: ValueType = ValueType.NUMBER
    scale: float = 1.0
    offset: float = 0.0

    @field_validator("field")
    @classmethod
    def _path_parses(cls, v: str | None) -> str | None:
        if v is not None:
            parse_field_path(v)
        return v

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
    username: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[^\s/#+:]+$",
                                 description="the broker login of the gateway or devices publishing this map "
                                 "(`pumpwatch broker-acl`); default <site id>-<the topic's fixed levels>")

    @field_validator("timestamp_field")
    @classmethod
    def _timestamp_path_parses(cls, v: str | None) -> str | None:
        if v is not None:
            parse_field_path(v)
        return v

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


# The health readings every edge reports, as sensors `<edge id>.<name>`: (name, kind, unit, zh, en).
EDGE_SENSORS: tuple[tuple[str, SensorKind, str, str, str], ...] = (
    ("heartbeat", SensorKind.EDGE_HEARTBEAT, "s", "心跳(运行时长)", "heartbeat (uptime)"),
    ("buffer_depth", SensorKind.EDGE_BUFFER_DEPTH, "readings", "缓存待发读数", "readings buffered"),
    ("backlog_age", SensorKind.EDGE_BACKLOG_AGE, "s", "最早待发读数的滞后", "oldest buffered reading's age"),
    ("clock_offset", SensorKind.EDGE_CLOCK_OFFSET, "s", "时钟偏差(中心减边缘)", "clock offset (centre-edge)"),
    ("dropped", SensorKind.EDGE_DROPPED, "readings", "缓存满丢弃的读数", "readings dropped, buffer full"),
    ("version", SensorKind.EDGE_VERSION, "", "软件版本", "software version"),
)


class Edge(Model):
    """An edge gateway: the box in a pump room that polls the room's devices and forwards to the centre.

    Its health readings are sensors of the site (`<id>.heartbeat`, `<id>.buffer_depth`, ...), placed
    in its first room, so the centre stores them and they can alarm; a silent heartbeat raises
    `edge_offline` on the edge's id after `offline_after` seconds.
    """

    id: Annotated[str, Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9_\-]+$")]
    name: Text | None = None
    rooms: tuple[Identifier, ...] = Field(min_length=1, description="the rooms whose devices it reads")
    username: str = Field(min_length=1, max_length=128, pattern=r"^[^\s/#+]+$",
                          description="its own login at the centre's broker")
    heartbeat: float = Field(10.0, gt=0, le=3600, description="seconds between two health reports")
    offline_after: float = Field(60.0, gt=0, description="seconds without a heartbeat before "
                                 "edge_offline is raised")
    offline_severity: Severity = Severity.MAJOR

    @model_validator(mode="after")
    def _offline_after_heartbeats(self) -> Edge:
        if self.offline_after < 2 * self.heartbeat:
            raise ValueError(f"offline_after ({self.offline_after} s) must be at least two heartbeats "
                             f"({2 * self.heartbeat} s), or one late report raises edge_offline")
        return self

    def sensor_id(self, name: str) -> str:
        """The id of one of its health sensors, e.g. `sensor_id("heartbeat")`."""
        return f"{self.id}.{name}"

    def as_equipment(self) -> EquipmentBase:
        """The edge as a piece of equipment of its first room, with its health sensors."""
        label = self.name or Text(zh=self.id, en=self.id)
        sensors = tuple(Sensor(id=self.sensor_id(name), kind=kind, unit=unit, source="edge",
                               name=Text(zh=f"{label.zh} {zh}", en=f"{label.en} {en}"),
                               alarms=SensorAlarms(no_data=False))
                        for name, kind, unit, zh, en in EDGE_SENSORS)
        return EquipmentBase(id=self.id, name=label, sensors=sensors)


class SiteInfo(Model):
    """Who and where: the estate (项目 / 小区) this file describes.

    Its `id` is the estate's id across the deployment (`pumpwatch.portfolio`): unique among the
    estates of one deployment, and the `estate` field of everything outside the file (series tags,
    topics, alarm keys, task keys). `region` and `group` only sort estates for the overview's filters.
    """

    id: Identifier
    name: Text
    timezone: str = "Asia/Shanghai"
    region: str | None = Field(None, min_length=1, max_length=64,
                               description="where the estate is (a district), for the overview's filters")
    group: str | None = Field(None, min_length=1, max_length=64,
                              description="the team or contract of the estate, for the overview's filters")

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
    buses: tuple[ModbusBus, ...] = ()
    modbus: tuple[ModbusDevice, ...] = ()
    mqtt: tuple[MqttMapping, ...] = ()
    rules: tuple[RuleSpec, ...] = ()
    plans: PlanSettings = PlanSettings()
    sla: SlaSettings = SlaSettings()
    edges: tuple[Edge, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _bus_timeouts(cls, data: object) -> object:
        """A unit that sets no timeout of its own takes its bus's."""
        if not isinstance(data, dict):
            return data
        buses, devices = data.get("buses"), data.get("modbus")
        if not isinstance(buses, list) or not isinstance(devices, list):
            return data
        timeouts = {b.get("id"): b["timeout"] for b in buses if isinstance(b, dict) and "timeout" in b}
        if not timeouts:
            return data
        devices = [{**d, "timeout": timeouts[d.get("bus")]}
                   if isinstance(d, dict) and "timeout" not in d and d.get("bus") in timeouts else d
                   for d in devices]
        return {**data, "modbus": devices}

    def bus(self, bus_id: str) -> ModbusBus | None:
        """The bus with this id, or None."""
        return next((b for b in self.buses if b.id == bus_id), None)

    def units_on(self, bus_id: str) -> list[ModbusDevice]:
        """The devices on a bus, in file order."""
        return [d for d in self.modbus if d.bus == bus_id]

    def iter_sensors(self) -> Iterator[tuple[Room, EquipmentBase | None, Sensor]]:
        """Every sensor with its room and equipment (None for room-level sensors)."""
        for room in self.rooms:
            for sensor in room.sensors:
                yield room, None, sensor
            for equipment in room.equipment:
                for sensor in equipment.sensors:
                    yield room, equipment, sensor
        rooms = {room.id: room for room in self.rooms}
        for edge in self.edges:  # an edge's health sensors, in its first room
            home = rooms.get(edge.rooms[0])
            if home is not None:
                gateway = edge.as_equipment()
                for sensor in gateway.sensors:
                    yield home, gateway, sensor

    def edge(self, edge_id: str) -> Edge:
        """The edge with this id; KeyError if there is none."""
        for edge in self.edges:
            if edge.id == edge_id:
                return edge
        raise KeyError(edge_id)

    def edge_rooms(self) -> dict[str, str]:
        """Room id -> the id of the edge that serves it (rooms no edge serves are left out)."""
        return {room: edge.id for edge in self.edges for room in edge.rooms}

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
