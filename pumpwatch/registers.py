"""Encode and decode Modbus point values; the simulator and the collector share this code."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from pumpwatch.site import ByteOrder, DataType, ModbusDevice, ModbusPoint

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

    def decode(self, registers: list[int]) -> float:
        """Registers (or one bit as 0/1) -> engineering value (raw * scale + offset)."""
        if len(registers) != self.count:
            raise RegisterValueError(f"{self.type} needs {self.count} registers, got {len(registers)}")
        if self.type is DataType.BIT:
            word = registers[0]
            raw = float((word >> self.bit) & 1 if self.bit is not None else (1 if word else 0))
            return raw  # bits are states: never scaled
        raw_bytes = self._to_bytes(registers)
        value = float(struct.unpack(">" + _STRUCT[self.type], raw_bytes)[0])
        if not math.isfinite(value):
            raise RegisterValueError(f"{self.type} registers hold {value}")
        return value * self.scale + self.offset

    def encode(self, value: float, current: int = 0) -> list[int]:
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

    def _to_bytes(self, registers: list[int]) -> bytes:
        words = registers if self.word_order is ByteOrder.BIG else registers[::-1]
        fmt = ">H" if self.byte_order is ByteOrder.BIG else "<H"
        return b"".join(struct.pack(fmt, w & 0xFFFF) for w in words)

    def _from_bytes(self, data: bytes) -> list[int]:
        fmt = ">H" if self.byte_order is ByteOrder.BIG else "<H"
        words = [struct.unpack(fmt, data[i : i + 2])[0] for i in range(0, len(data), 2)]
        return words if self.word_order is ByteOrder.BIG else words[::-1]
