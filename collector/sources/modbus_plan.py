"""Which Modbus requests read a device's points: adjacent points merged into as few reads as possible."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pumpwatch.registers import PointCodec
from pumpwatch.site import ModbusDevice, ModbusPoint, Table

MAX_REGISTERS = 125  # per read of holding or input registers (Modbus spec)
MAX_BITS = 2000  # per read of coils or discrete inputs


@dataclass(frozen=True, slots=True)
class PlannedPoint:
    """A point inside a read: where its registers start relative to the read's first address."""

    point: ModbusPoint
    codec: PointCodec
    offset: int

    @property
    def sensor(self) -> str:
        """The sensor this point feeds."""
        return self.point.sensor


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request: a table, a first address and a count, and the points it covers."""

    table: Table
    start: int
    count: int
    points: tuple[PlannedPoint, ...]

    def decode(self, words: Sequence[int]) -> list[tuple[PlannedPoint, float | Exception]]:
        """Each point's engineering value, or the error that kept it from decoding."""
        out: list[tuple[PlannedPoint, float | Exception]] = []
        for planned in self.points:
            chunk = list(words[planned.offset : planned.offset + planned.codec.count])
            try:
                out.append((planned, planned.codec.decode(chunk)))
            except ValueError as err:
                out.append((planned, err))
        return out

    def split(self) -> list[ReadBlock]:
        """One read per point: used when a merged read gets an exception response."""
        return [_block([(p.point, p.codec)], p.point.address, p.point.address + p.codec.count)
                for p in self.points]


def plan_reads(device: ModbusDevice, *, max_gap: int | None = None) -> list[ReadBlock]:
    """Group points by table, sort by address, merge neighbours within `max_gap` unused registers."""
    gap = device.max_gap if max_gap is None else max_gap
    ordered = sorted(((p, PointCodec.for_point(p, device)) for p in device.points),
                     key=lambda pc: (pc[0].table, pc[0].address, pc[0].sensor))
    blocks: list[ReadBlock] = []
    current: list[tuple[ModbusPoint, PointCodec]] = []
    start = end = 0
    for point, codec in ordered:
        limit = MAX_BITS if point.table.is_bit_table else MAX_REGISTERS
        point_end = point.address + codec.count
        if (current and current[0][0].table is point.table
                and point.address <= end + gap and max(end, point_end) - start <= limit):
            current.append((point, codec))
            end = max(end, point_end)
            continue
        if current:
            blocks.append(_block(current, start, end))
        current, start, end = [(point, codec)], point.address, point_end
    if current:
        blocks.append(_block(current, start, end))
    return blocks


def _block(points: list[tuple[ModbusPoint, PointCodec]], start: int, end: int) -> ReadBlock:
    return ReadBlock(points[0][0].table, start, end - start,
                     tuple(PlannedPoint(p, c, p.address - start) for p, c in points))
