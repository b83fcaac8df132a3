"""Which Modbus requests read a device's points: adjacent points merged into as few reads as possible.

The grouping itself (`pumpwatch.registers.request_spans`) lives in the kernel, where the site checks
also use it to time a bus's poll cycle; this module adds each point's codec and its offset in a read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pumpwatch.registers import (
    MAX_BITS,
    MAX_REGISTERS,
    PointCodec,
    RegisterValueError,
    RequestSpan,
    decimal_code,
    request_spans,
)
from pumpwatch.site import DecimalPoint, ModbusDevice, ModbusPoint, Table

__all__ = ["MAX_BITS", "MAX_REGISTERS", "CodeKey", "PlannedPoint", "ReadBlock", "plan_reads"]

CodeKey = tuple[Table, int]  # where a decimal-point code lives


@dataclass(frozen=True, slots=True)
class PlannedPoint:
    """A point inside a read: where its registers start relative to the read's first address."""

    point: ModbusPoint
    codec: PointCodec
    offset: int
    sensor: str = field(init=False)  # the sensor this point feeds
    # Where this point's decimal-point code lives, if its scale comes from a register.
    code_key: CodeKey | None = field(init=False)

    def __post_init__(self) -> None:
        source = self.point.scale_from
        object.__setattr__(self, "sensor", self.point.sensor)
        object.__setattr__(self, "code_key", (source.table, source.address) if source is not None else None)


@dataclass(frozen=True, slots=True)
class PlannedCode:
    """A decimal-point code register inside a read."""

    source: DecimalPoint
    offset: int

    @property
    def key(self) -> CodeKey:
        """Its table and address."""
        return (self.source.table, self.source.address)


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request: a table, a first address and a count, and the points it covers."""

    table: Table
    start: int
    count: int
    points: tuple[PlannedPoint, ...]
    codes: tuple[PlannedCode, ...] = ()

    def decode_codes(self, words: Sequence[int]) -> list[tuple[CodeKey, int | Exception]]:
        """Each decimal-point code this read carries, or why it is not one."""
        out: list[tuple[CodeKey, int | Exception]] = []
        for code in self.codes:
            try:
                out.append((code.key, decimal_code(words[code.offset], code.source)))
            except RegisterValueError as err:
                out.append((code.key, err))
        return out

    def decode(self, words: Sequence[int], codes: Mapping[CodeKey, int] | None = None,
               ) -> list[tuple[PlannedPoint, float | Exception]]:
        """Each point's engineering value, or the error that kept it from decoding.

        `codes` holds the decimal-point codes known now (this read's and earlier reads' of the poll).
        """
        out: list[tuple[PlannedPoint, float | Exception]] = []
        for planned in self.points:
            key = planned.code_key
            try:
                if key is None:
                    out.append((planned, planned.codec.decode_at(words, planned.offset)))
                elif codes is None or key not in codes:
                    raise RegisterValueError(f"its decimal-point code ({key[0]} register {key[1]}) "
                                             "could not be read")
                else:
                    out.append((planned, planned.codec.decode_at(words, planned.offset, codes[key])))
            except ValueError as err:
                out.append((planned, err))
        return out

    def split(self) -> list[ReadBlock]:
        """One read per point and per code: used when a merged read gets an exception response."""
        codes = [ReadBlock(self.table, c.source.address, 1, (), (PlannedCode(c.source, 0),))
                 for c in self.codes]
        return codes + [ReadBlock(self.table, p.point.address, p.codec.count,
                                  (PlannedPoint(p.point, p.codec, 0),)) for p in self.points]


def plan_reads(device: ModbusDevice, *, max_gap: int | None = None) -> list[ReadBlock]:
    """Group points by table, sort by address, merge neighbours within `max_gap` unused registers."""
    return [_block(span, device) for span in request_spans(device, max_gap=max_gap)]


def _block(span: RequestSpan, device: ModbusDevice) -> ReadBlock:
    points = tuple(PlannedPoint(it, PointCodec.for_point(it, device), it.address - span.start)
                   for it in span.items if isinstance(it, ModbusPoint))
    codes = tuple(PlannedCode(it, it.address - span.start)
                  for it in span.items if isinstance(it, DecimalPoint))
    return ReadBlock(span.table, span.start, span.count, points, codes)
