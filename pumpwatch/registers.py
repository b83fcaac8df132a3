"""Modbus arithmetic: point values, the requests that read a device, and a bus's poll cycle.

The simulator, the collector and the site checks share this code.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from pumpwatch.site import (
    MAX_DECIMALS,
    ByteOrder,
    DataType,
    DecimalPoint,
    Framer,
    ModbusBus,
    ModbusDevice,
    ModbusPoint,
    Table,
    line_silence,
)

MAX_REGISTERS = 125  # per read of holding or input registers (Modbus spec)
MAX_BITS = 2000  # per read of coils or discrete inputs

_STRUCT: dict[DataType, str] = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}
_INT_RANGE: dict[DataType, tuple[int, int]] = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
}


class RegisterValueError(ValueError):
    """A value that the point's data type cannot hold, or registers that do not decode."""


@dataclass(frozen=True)
class PointCodec:
    """How one point's registers map to an engineering value (orders resolved from the device)."""

    type: DataType
    byte_order: ByteOrder
    word_order: ByteOrder
    scale: float
    offset: float
    bit: int | None
    count: int
    # Formats worked out once per point: its registers as bytes in the device's byte order, and its
    # value type ("" for a bit). `struct` caches what they compile to.
    _words: str = field(init=False, repr=False, compare=False)
    _value: str = field(init=False, repr=False, compare=False)
    # A 16-bit integer is worked out without `struct`: whether its bytes swap, whether it is signed.
    _word: bool = field(init=False, repr=False, compare=False)
    _swap: bool = field(init=False, repr=False, compare=False)
    _signed: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        order = ">" if self.byte_order is ByteOrder.BIG else "<"
        object.__setattr__(self, "_words", f"{order}{self.count}H")
        code = _STRUCT.get(self.type)
        object.__setattr__(self, "_value", ">" + code if code else "")
        object.__setattr__(self, "_word", self.type in (DataType.UINT16, DataType.INT16))
        object.__setattr__(self, "_swap", self.byte_order is ByteOrder.LITTLE)
        object.__setattr__(self, "_signed", self.type is DataType.INT16)

    @classmethod
    def for_point(cls, point: ModbusPoint, device: ModbusDevice) -> PointCodec:
        """Resolve a point's byte and word order against its device defaults."""
        return cls(
            type=point.type,
            byte_order=point.byte_order or device.byte_order,
            word_order=point.word_order or device.word_order,
            scale=point.scale,
            offset=point.offset,
            bit=point.bit,
            count=point.register_count,
        )

    def decode(self, registers: list[int], decimals: int = 0) -> float:
        """Registers (or one bit as 0/1) -> engineering value (raw * scale * 10^-decimals + offset)."""
        if len(registers) != self.count:
            raise RegisterValueError(f"{self.type} needs {self.count} registers, got {len(registers)}")
        return self.decode_at(registers, 0, decimals)

    def decode_at(self, words: Sequence[int], start: int, decimals: int = 0) -> float:
        """`decode` of this point's registers inside a read's `words`, from index `start`."""
        if self._word:  # read in place: no slice, no `struct`
            if not 0 <= start < len(words):
                raise RegisterValueError(f"{self.type} needs 1 register at {start}, "
                                         f"the read has {len(words)}")
            word = words[start] & 0xFFFF
            if self._swap:
                word = ((word & 0xFF) << 8) | (word >> 8)
            value = float(word - 0x10000 if self._signed and word & 0x8000 else word)
        else:
            registers = list(words[start : start + self.count])
            if len(registers) != self.count:
                raise RegisterValueError(f"{self.type} needs {self.count} registers, got {len(registers)}")
            if self.type is DataType.BIT:
                word = registers[0]  # bits are states: never scaled
                return float((word >> self.bit) & 1 if self.bit is not None else (1 if word else 0))
            if self.word_order is ByteOrder.LITTLE:
                registers.reverse()
            packed = struct.pack(self._words, *[w & 0xFFFF for w in registers])
            value = float(struct.unpack(self._value, packed)[0])
            if not math.isfinite(value):
                raise RegisterValueError(f"{self.type} registers hold {value}")
        if decimals:
            # Divide by a power of ten rather than multiply by its inverse: 42 / 100 is exactly 0.42.
            value = value / 10**decimals if decimals > 0 else value * 10**-decimals
        return value * self.scale + self.offset

    def encode(self, value: float, current: int = 0, decimals: int = 0) -> list[int]:
        """Engineering value -> registers. `current` is the register a bit lives in."""
        if not math.isfinite(value):
            raise RegisterValueError(f"cannot encode {value}")
        if self.type is DataType.BIT:
            on = value >= 0.5
            if self.bit is None:
                return [1 if on else 0]
            mask = 1 << self.bit
            return [(current | mask) if on else (current & ~mask & 0xFFFF)]
        raw = (value - self.offset) / self.scale
        if decimals:
            raw = raw * 10**decimals if decimals > 0 else raw / 10**-decimals
        if not math.isfinite(raw):
            raise RegisterValueError(f"{value} with scale {self.scale:g} and offset {self.offset:g} "
                                     f"does not fit {self.type}")
        if self.type in _INT_RANGE:
            lo, hi = _INT_RANGE[self.type]
            raw_int = round(raw)
            if not lo <= raw_int <= hi:
                raise RegisterValueError(f"{value} needs raw {raw_int}, outside {self.type} [{lo}, {hi}]")
            packed = struct.pack(">" + _STRUCT[self.type], raw_int)
        else:
            try:
                packed = struct.pack(">" + _STRUCT[self.type], raw)
            except OverflowError as err:
                raise RegisterValueError(f"{value} does not fit {self.type}") from err
        return self._from_bytes(packed)

    def _from_bytes(self, data: bytes) -> list[int]:
        fmt = ">H" if self.byte_order is ByteOrder.BIG else "<H"
        words = [struct.unpack(fmt, data[i : i + 2])[0] for i in range(0, len(data), 2)]
        return words if self.word_order is ByteOrder.BIG else words[::-1]


def decimal_code(word: int, source: DecimalPoint) -> int:
    """The decimal-point code n held in a register word; RegisterValueError if it cannot be one."""
    n = word - 0x10000 if source.type is DataType.INT16 and word >= 0x8000 else word
    if not -MAX_DECIMALS <= n <= MAX_DECIMALS:
        raise RegisterValueError(f"decimal-point code {n} in {source.table} register {source.address} "
                                 f"is outside -{MAX_DECIMALS}..{MAX_DECIMALS}")
    return n


# --- which requests read a device ----------------------------------------------------------------

Item = ModbusPoint | DecimalPoint


@dataclass(frozen=True, slots=True)
class RequestSpan:
    """One read request: a table, a first address, a count, and the points and codes inside it."""

    table: Table
    start: int
    count: int
    items: tuple[Item, ...]


def item_count(item: Item) -> int:
    """Registers (or bits) an item occupies."""
    return item.register_count if isinstance(item, ModbusPoint) else 1


def request_spans(device: ModbusDevice, *, max_gap: int | None = None) -> list[RequestSpan]:
    """Group points by table, sort by address, merge neighbours within `max_gap` unused registers.

    The registers that hold decimal-point codes are read like points; spans that hold one come
    first, so a code read in a poll scales the points of that same poll.
    """
    gap = device.max_gap if max_gap is None else max_gap
    items: list[Item] = list(device.points)
    codes = {(p.scale_from.table, p.scale_from.address): p.scale_from
             for p in device.points if p.scale_from is not None}
    items += codes.values()
    ordered = sorted(items, key=lambda it: (it.table, it.address, isinstance(it, DecimalPoint),
                                            it.sensor if isinstance(it, ModbusPoint) else ""))
    spans: list[RequestSpan] = []
    current: list[Item] = []
    start = end = 0
    for item in ordered:
        limit = MAX_BITS if item.table.is_bit_table else MAX_REGISTERS
        item_end = item.address + item_count(item)
        if (current and current[0].table is item.table
                and item.address <= end + gap and max(end, item_end) - start <= limit):
            current.append(item)
            end = max(end, item_end)
            continue
        if current:
            spans.append(RequestSpan(current[0].table, start, end - start, tuple(current)))
        current, start, end = [item], item.address, item_end
    if current:
        spans.append(RequestSpan(current[0].table, start, end - start, tuple(current)))
    spans.sort(key=lambda sp: not any(isinstance(it, DecimalPoint) for it in sp.items))
    return spans


# --- how long a bus takes ------------------------------------------------------------------------

def _frame_chars(payload_bytes: int, framer: Framer) -> int:
    """Characters on the line of a frame with this many bytes of unit id, function code and data."""
    if framer is Framer.RTU:
        return payload_bytes + 2  # CRC
    return 1 + 2 * (payload_bytes + 1) + 2  # ':' + hex of payload and LRC + CR LF


def request_seconds(span: RequestSpan, bus: ModbusBus) -> float:
    """Line time of one read: request and response at 11 bits a character, each after a silence.

    The silence is 3.5 characters (1.75 ms above 19200 bit/s), or the bus's inter-frame delay if
    that is longer.
    """
    data = (span.count + 7) // 8 if span.table.is_bit_table else 2 * span.count
    chars = _frame_chars(6, bus.framer) + _frame_chars(3 + data, bus.framer)
    gap = max(line_silence(bus.baudrate), bus.inter_frame_delay or 0.0)
    return chars * bus.char_time + 2 * gap


@dataclass(frozen=True)
class BusCycle:
    """An estimate of one poll cycle of every unit on a bus."""

    requests: int
    traffic: float  # seconds of frames and silences when every unit answers
    dead_timeout: float  # what one unit that never answers adds: its timeout (it is skipped after)
    shortest_interval: float
    fastest: str  # the device with the shortest poll interval

    @property
    def seconds(self) -> float:
        """The cycle with one dead unit on the line."""
        return self.traffic + self.dead_timeout

    @property
    def fits(self) -> bool:
        """Whether the cycle fits the shortest poll interval of the bus's units."""
        return self.seconds <= self.shortest_interval


def bus_cycle(bus: ModbusBus, units: Sequence[ModbusDevice]) -> BusCycle | None:
    """The poll cycle of the units on a bus, or None for a bus without units."""
    if not units:
        return None
    spans = [(d, span) for d in units for span in request_spans(d)]
    fastest = min(units, key=lambda d: d.poll_interval)
    return BusCycle(requests=len(spans),
                    traffic=sum(request_seconds(span, bus) for _d, span in spans),
                    dead_timeout=max(d.timeout for d in units),
                    shortest_interval=fastest.poll_interval, fastest=fastest.id)
