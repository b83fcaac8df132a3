"""Register codecs: every type and order round-trips, known vectors, errors; and over real Modbus TCP."""

from __future__ import annotations

import math
import struct
from itertools import product
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient

from pumpwatch.registers import PointCodec, RegisterValueError, decimal_code, request_spans
from pumpwatch.site import (
    REGISTER_COUNT,
    ByteOrder,
    DataType,
    DecimalPoint,
    ModbusDevice,
    ModbusPoint,
    Table,
)
from pumpwatch.sitefile import load_site
from pumpwatch.sitereport import register_table
from simulators.modbus_server import DeviceImage, DeviceServer

INT_TYPES: dict[DataType, tuple[int, int, bool]] = {  # type -> (min, max, signed)
    DataType.INT16: (-(2**15), 2**15 - 1, True),
    DataType.UINT16: (0, 2**16 - 1, False),
    DataType.INT32: (-(2**31), 2**31 - 1, True),
    DataType.UINT32: (0, 2**32 - 1, False),
}
FLOAT_TYPES = (DataType.FLOAT32, DataType.FLOAT64)
ORDERS = list(product(ByteOrder, ByteOrder))  # (byte order, word order)
FLOAT32_MAX = struct.unpack(">f", b"\x7f\x7f\xff\xff")[0]
EPS64 = 2.0**-52

orders = st.sampled_from(ORDERS)
scales = st.sampled_from([1.0, 0.1, 0.01, 0.001, 10.0, 2.5, -0.5])
offsets = st.sampled_from([0.0, -40.0, 273.15, 1000.0, -0.25])

PROPERTY = settings(max_examples=200, deadline=None, database=None)


def codec(data_type: DataType, byte_order: ByteOrder = ByteOrder.BIG,
          word_order: ByteOrder = ByteOrder.BIG, *, scale: float = 1.0, offset: float = 0.0,
          bit: int | None = None, table: Table = Table.HOLDING) -> PointCodec:
    """The codec of a point built through the site model (so the model accepts the combination)."""
    point = ModbusPoint(sensor="s", table=table, address=0, type=data_type, bit=bit,
                        byte_order=byte_order, word_order=word_order, scale=scale, offset=offset)
    device = ModbusDevice(id="d", points=(point,))
    return PointCodec.for_point(point, device)


def reference_registers(big_endian: bytes, byte_order: ByteOrder, word_order: ByteOrder) -> list[int]:
    """Registers of a big-endian value, re-ordered independently of the code under test."""
    words = [big_endian[i : i + 2] for i in range(0, len(big_endian), 2)]
    if word_order is ByteOrder.LITTLE:
        words.reverse()
    if byte_order is ByteOrder.LITTLE:
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def reference_bytes(registers: list[int], byte_order: ByteOrder, word_order: ByteOrder) -> bytes:
    """The big-endian value carried by `registers` (the inverse of `reference_registers`)."""
    words = [r.to_bytes(2, "big") for r in registers]
    if byte_order is ByteOrder.LITTLE:
        words = [w[::-1] for w in words]
    if word_order is ByteOrder.LITTLE:
        words.reverse()
    return b"".join(words)


def int_bytes(data_type: DataType, raw: int) -> bytes:
    signed = INT_TYPES[data_type][2]
    return raw.to_bytes(2 * REGISTER_COUNT[data_type], "big", signed=signed)


def as_float32(value: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


def assert_words(registers: list[int], count: int) -> None:
    assert len(registers) == count
    assert all(isinstance(r, int) and 0 <= r <= 0xFFFF for r in registers), registers


# --- round trips ------------------------------------------------------------------------------


@st.composite
def int_cases(draw: st.DrawFn) -> tuple[DataType, int]:
    data_type = draw(st.sampled_from(list(INT_TYPES)))
    lo, hi, _signed = INT_TYPES[data_type]
    raw = draw(st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, lo + 1, hi - 1])))
    return data_type, raw


@PROPERTY
@given(case=int_cases(), order=orders)
def test_int_round_trip_matches_reference_layout(case: tuple[DataType, int],
                                                 order: tuple[ByteOrder, ByteOrder]) -> None:
    data_type, raw = case
    c = codec(data_type, *order)
    registers = c.encode(float(raw))
    assert_words(registers, REGISTER_COUNT[data_type])
    assert registers == reference_registers(int_bytes(data_type, raw), *order)
    decoded = c.decode(registers)
    assert decoded == raw
    assert isinstance(decoded, float)


@PROPERTY
@given(case=int_cases(), order=orders, scale=scales, offset=offsets)
def test_int_round_trip_with_scale_and_offset(case: tuple[DataType, int],
                                              order: tuple[ByteOrder, ByteOrder],
                                              scale: float, offset: float) -> None:
    data_type, raw = case
    value = raw * scale + offset
    c = codec(data_type, *order, scale=scale, offset=offset)
    registers = c.encode(value)
    # The registers hold the raw count, not the engineering value.
    assert registers == reference_registers(int_bytes(data_type, raw), *order)
    assert c.decode(registers) == value


@PROPERTY
@given(value=st.floats(width=32, allow_nan=False, allow_infinity=False), order=orders)
def test_float32_round_trip_is_exact_for_float32_values(value: float,
                                                        order: tuple[ByteOrder, ByteOrder]) -> None:
    c = codec(DataType.FLOAT32, *order)
    registers = c.encode(value)
    assert_words(registers, 2)
    assert registers == reference_registers(struct.pack(">f", value), *order)
    decoded = c.decode(registers)
    assert decoded == value


@PROPERTY
@given(value=st.floats(min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX), order=orders)
def test_float32_round_trip_within_float32_precision(value: float,
                                                     order: tuple[ByteOrder, ByteOrder]) -> None:
    c = codec(DataType.FLOAT32, *order)
    decoded = c.decode(c.encode(value))
    assert decoded == as_float32(value)
    assert math.isclose(decoded, value, rel_tol=2**-24, abs_tol=2**-150)


@PROPERTY
@given(raw=st.floats(min_value=-1e6, max_value=1e6, width=32), order=orders, scale=scales,
       offset=offsets)
def test_float32_round_trip_with_scale_and_offset(raw: float, order: tuple[ByteOrder, ByteOrder],
                                                  scale: float, offset: float) -> None:
    value = raw * scale + offset
    c = codec(DataType.FLOAT32, *order, scale=scale, offset=offset)
    registers = c.encode(value)
    stored = struct.unpack(">f", reference_bytes(registers, *order))[0]
    # Error budget: float32 rounding of the raw value, plus float64 cancellation in value - offset.
    cancellation = 4 * EPS64 * (abs(offset) + abs(value))
    assert abs(stored - raw) <= 2**-24 * abs(raw) + cancellation / abs(scale) + 2**-149
    assert abs(c.decode(registers) - value) <= 2**-24 * abs(raw * scale) + 2 * cancellation + 1e-300


@PROPERTY
@given(value=st.floats(allow_nan=False, allow_infinity=False), order=orders)
def test_float64_round_trip_is_exact(value: float, order: tuple[ByteOrder, ByteOrder]) -> None:
    c = codec(DataType.FLOAT64, *order)
    registers = c.encode(value)
    assert_words(registers, 4)
    assert registers == reference_registers(struct.pack(">d", value), *order)
    decoded = c.decode(registers)
    assert decoded == value  # -0.0 decodes as 0.0 (raw * 1.0 + 0.0), which compares equal


@PROPERTY
@given(raw=st.floats(min_value=-1e12, max_value=1e12), order=orders, scale=scales, offset=offsets)
def test_float64_round_trip_with_scale_and_offset(raw: float, order: tuple[ByteOrder, ByteOrder],
                                                  scale: float, offset: float) -> None:
    value = raw * scale + offset
    c = codec(DataType.FLOAT64, *order, scale=scale, offset=offset)
    registers = c.encode(value)
    stored = struct.unpack(">d", reference_bytes(registers, *order))[0]
    cancellation = 4 * EPS64 * (abs(offset) + abs(value))
    tiny = 1e-300  # subnormal values have fewer significant bits
    assert abs(stored - raw) <= 4 * EPS64 * abs(raw) + cancellation / abs(scale) + tiny
    assert abs(c.decode(registers) - value) <= 4 * EPS64 * abs(raw * scale) + 2 * cancellation + tiny


@PROPERTY
@given(current=st.integers(0, 0xFFFF), bit=st.integers(0, 15), on=st.booleans(),
       table=st.sampled_from([Table.HOLDING, Table.INPUT]), scale=scales)
def test_bit_in_register_sets_only_its_bit(current: int, bit: int, on: bool, table: Table,
                                           scale: float) -> None:
    c = codec(DataType.BIT, bit=bit, table=table, scale=scale)
    (word,) = c.encode(1.0 if on else 0.0, current)
    mask = 1 << bit
    assert word & ~mask & 0xFFFF == current & ~mask & 0xFFFF  # the other bits are kept
    assert bool(word & mask) is on
    assert c.decode([word]) == (1.0 if on else 0.0)  # a state: never scaled


@PROPERTY
@given(value=st.floats(min_value=-1e6, max_value=1e6), table=st.sampled_from([Table.COIL, Table.DISCRETE]))
def test_bit_in_bit_table_thresholds_at_one_half(value: float, table: Table) -> None:
    c = codec(DataType.BIT, table=table, scale=10.0, offset=3.0)
    expected = 1 if value >= 0.5 else 0
    assert c.encode(value) == [expected]
    assert c.decode([expected]) == float(expected)


def test_bit_decode_of_bit_table_treats_any_nonzero_as_on() -> None:
    c = codec(DataType.BIT, table=Table.COIL)
    assert c.decode([0]) == 0.0
    assert c.decode([1]) == 1.0
    assert c.decode([0x8000]) == 1.0


# --- errors -----------------------------------------------------------------------------------


@st.composite
def out_of_range_ints(draw: st.DrawFn) -> tuple[DataType, int]:
    data_type = draw(st.sampled_from(list(INT_TYPES)))
    lo, hi, _signed = INT_TYPES[data_type]
    raw = draw(st.one_of(st.integers(hi + 1, hi + 2**40), st.integers(lo - 2**40, lo - 1),
                         st.sampled_from([hi + 1, lo - 1])))
    return data_type, raw


@PROPERTY
@given(case=out_of_range_ints(), order=orders, scale=scales, offset=offsets)
def test_out_of_range_int_raises(case: tuple[DataType, int], order: tuple[ByteOrder, ByteOrder],
                                 scale: float, offset: float) -> None:
    data_type, raw = case
    c = codec(data_type, *order, scale=scale, offset=offset)
    with pytest.raises(RegisterValueError, match="outside"):
        c.encode(raw * scale + offset)


@pytest.mark.parametrize(("data_type", "value", "ok"), [
    (DataType.UINT16, 6553.5, True),     # raw 65535
    (DataType.UINT16, 6553.6, False),    # raw 65536
    (DataType.UINT16, -0.1, False),      # raw -1
    (DataType.INT16, -3276.8, True),     # raw -32768
    (DataType.INT16, -3276.9, False),    # raw -32769
    (DataType.INT16, 3276.7, True),
    (DataType.INT16, 3276.8, False),
])
def test_int_range_is_checked_on_the_raw_value(data_type: DataType, value: float, ok: bool) -> None:
    c = codec(data_type, scale=0.1)
    if ok:
        assert c.decode(c.encode(value)) == pytest.approx(value)
    else:
        with pytest.raises(RegisterValueError):
            c.encode(value)


@pytest.mark.parametrize("value", [1e39, -1e39, FLOAT32_MAX * 2, 1e300])
def test_float32_overflow_raises(value: float) -> None:
    with pytest.raises(RegisterValueError):
        codec(DataType.FLOAT32).encode(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("data_type", [t for t in DataType if t is not DataType.BIT])
def test_non_finite_values_raise(data_type: DataType, value: float) -> None:
    for byte_order, word_order in ORDERS:
        with pytest.raises(RegisterValueError):
            codec(data_type, byte_order, word_order).encode(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_bit_values_raise(value: float) -> None:
    with pytest.raises(RegisterValueError):
        codec(DataType.BIT, table=Table.COIL).encode(value)
    with pytest.raises(RegisterValueError):
        codec(DataType.BIT, bit=3).encode(value, 0x00FF)


@PROPERTY
@given(data_type=st.sampled_from(list(DataType)), count=st.integers(0, 8), order=orders,
       word=st.integers(0, 0xFFFF))
def test_decode_of_wrong_register_count_raises(data_type: DataType, count: int,
                                               order: tuple[ByteOrder, ByteOrder], word: int) -> None:
    needed = REGISTER_COUNT[data_type]
    bit = 0 if data_type is DataType.BIT else None
    c = codec(data_type, *order, bit=bit)
    assume(count != needed)
    with pytest.raises(RegisterValueError, match=f"needs {needed} registers, got {count}"):
        c.decode([word] * count)


@PROPERTY
@given(data_type=st.sampled_from(list(DataType)), order=orders, scale=scales, offset=offsets,
       words=st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=8), start=st.integers(0, 9),
       decimals=st.integers(-3, 3), bit=st.integers(0, 15))
def test_decode_at_a_reads_offset_equals_decode_of_its_registers(
        data_type: DataType, order: tuple[ByteOrder, ByteOrder], scale: float, offset: float,
        words: list[int], start: int, decimals: int, bit: int) -> None:
    """The read's words decoded in place (16-bit integers without `struct`) give what the slice gives,
    value or error, whatever the type, orders, scale, decimal code and where the point sits."""
    is_bit = data_type is DataType.BIT
    c = codec(data_type, *order, scale=1.0 if is_bit else scale, offset=0.0 if is_bit else offset,
              bit=bit if is_bit else None)
    chunk = words[start : start + c.count]
    try:
        expected: float | type[Exception] = c.decode(chunk, decimals)
    except RegisterValueError:
        expected = RegisterValueError
    if expected is RegisterValueError:
        with pytest.raises(RegisterValueError):
            c.decode_at(words, start, decimals)
    else:
        assert c.decode_at(words, start, decimals) == expected


def test_decode_at_takes_16_bit_words_signed_swapped_and_scaled() -> None:
    words = [0x0001, 0xFFFE, 0x3412, 0x8000]
    assert codec(DataType.INT16).decode_at(words, 1) == -2.0
    assert codec(DataType.UINT16).decode_at(words, 1) == 65534.0
    assert codec(DataType.UINT16, ByteOrder.LITTLE).decode_at(words, 2) == 0x1234
    assert codec(DataType.INT16).decode_at(words, 3) == -32768.0
    assert codec(DataType.INT16, scale=0.1, offset=-40.0).decode_at(words, 0, 1) == pytest.approx(-39.99)
    with pytest.raises(RegisterValueError, match="needs 1 register at 4"):
        codec(DataType.UINT16).decode_at(words, 4)


@pytest.mark.parametrize(("data_type", "registers"), [
    (DataType.FLOAT32, [0x7FC0, 0x0000]),  # NaN
    (DataType.FLOAT32, [0x7F80, 0x0000]),  # +inf
    (DataType.FLOAT32, [0xFF80, 0x0000]),  # -inf
    (DataType.FLOAT64, [0x7FF8, 0, 0, 0]),  # NaN
    (DataType.FLOAT64, [0xFFF0, 0, 0, 0]),  # -inf
])
def test_decode_of_non_finite_float_raises(data_type: DataType, registers: list[int]) -> None:
    with pytest.raises(RegisterValueError):
        codec(data_type).decode(registers)


# --- known vectors ----------------------------------------------------------------------------

BIG, LITTLE = ByteOrder.BIG, ByteOrder.LITTLE


@pytest.mark.parametrize(("data_type", "value", "byte_order", "word_order", "registers"), [
    # float32 123.456 is 0x42F6E979
    (DataType.FLOAT32, 123.456, BIG, BIG, [0x42F6, 0xE979]),
    (DataType.FLOAT32, 123.456, BIG, LITTLE, [0xE979, 0x42F6]),      # word order swaps words
    (DataType.FLOAT32, 123.456, LITTLE, BIG, [0xF642, 0x79E9]),      # byte order swaps bytes in words
    (DataType.FLOAT32, 123.456, LITTLE, LITTLE, [0x79E9, 0xF642]),
    (DataType.FLOAT32, 1.0, BIG, BIG, [0x3F80, 0x0000]),
    (DataType.FLOAT32, -2.0, BIG, BIG, [0xC000, 0x0000]),
    (DataType.FLOAT64, 1.0, BIG, BIG, [0x3FF0, 0, 0, 0]),
    (DataType.FLOAT64, 1.0, BIG, LITTLE, [0, 0, 0, 0x3FF0]),
    (DataType.FLOAT64, 1.0, LITTLE, BIG, [0xF03F, 0, 0, 0]),
    (DataType.FLOAT64, -2.5, BIG, BIG, [0xC004, 0, 0, 0]),
    (DataType.INT16, -2, BIG, BIG, [0xFFFE]),
    (DataType.INT16, 0x1234, LITTLE, BIG, [0x3412]),
    (DataType.INT16, 0x1234, BIG, LITTLE, [0x1234]),                  # one word: word order is moot
    (DataType.UINT16, 65535, BIG, BIG, [0xFFFF]),
    (DataType.INT32, 0x12345678, BIG, BIG, [0x1234, 0x5678]),
    (DataType.INT32, 0x12345678, BIG, LITTLE, [0x5678, 0x1234]),
    (DataType.INT32, 0x12345678, LITTLE, BIG, [0x3412, 0x7856]),
    (DataType.INT32, 0x12345678, LITTLE, LITTLE, [0x7856, 0x3412]),
    (DataType.INT32, -1, BIG, BIG, [0xFFFF, 0xFFFF]),
    (DataType.INT32, -65536, BIG, LITTLE, [0x0000, 0xFFFF]),
    (DataType.UINT32, 0x00010002, BIG, LITTLE, [0x0002, 0x0001]),
])
def test_known_vectors(data_type: DataType, value: float, byte_order: ByteOrder,
                       word_order: ByteOrder, registers: list[int]) -> None:
    c = codec(data_type, byte_order, word_order)
    assert c.encode(value) == registers
    decoded = c.decode(registers)
    if data_type is DataType.FLOAT32:
        assert decoded == as_float32(value)
        assert decoded == pytest.approx(value, rel=1e-7)
    else:
        assert decoded == value


def test_known_vectors_with_scale_and_offset() -> None:
    hours = codec(DataType.UINT32, scale=0.1)
    assert hours.encode(123456.7) == [0x0012, 0xD687]  # raw 1234567
    assert hours.decode([0x0012, 0xD687]) == pytest.approx(123456.7)
    temperature = codec(DataType.INT16, scale=0.1, offset=-40.0)
    assert temperature.encode(-40.0) == [0]
    assert temperature.encode(20.5) == [605]
    assert temperature.encode(-50.0) == [0xFF9C]  # raw -100
    assert temperature.decode([0xFF9C]) == pytest.approx(-50.0)
    pressure = codec(DataType.UINT16, scale=0.001)
    assert pressure.encode(0.452) == [452]
    assert pressure.decode([452]) == pytest.approx(0.452)


def test_encode_rounds_to_the_nearest_raw_count() -> None:
    c = codec(DataType.UINT16, scale=0.001)
    assert c.encode(0.0004) == [0]
    assert c.encode(0.0006) == [1]
    assert c.encode(1.2344) == [1234]


def test_bit_known_vectors() -> None:
    c = codec(DataType.BIT, bit=3)
    assert c.encode(1.0, 0x0000) == [0x0008]
    assert c.encode(0.0, 0xFFFF) == [0xFFF7]
    assert c.encode(1.0, 0x00F0) == [0x00F8]
    assert c.decode([0x0008]) == 1.0
    assert c.decode([0xFFF7]) == 0.0
    top = codec(DataType.BIT, bit=15)
    assert top.encode(1.0, 0) == [0x8000]
    assert top.decode([0x8000]) == 1.0


# --- order resolution -------------------------------------------------------------------------


def test_for_point_takes_orders_from_the_device_unless_the_point_sets_them() -> None:
    inherits = ModbusPoint(sensor="a", table=Table.INPUT, address=0, type=DataType.FLOAT32)
    overrides = ModbusPoint(sensor="b", table=Table.INPUT, address=2, type=DataType.FLOAT32,
                            byte_order=ByteOrder.BIG, word_order=ByteOrder.BIG, scale=0.5, offset=1.0)
    device = ModbusDevice(id="d", byte_order=ByteOrder.LITTLE, word_order=ByteOrder.LITTLE,
                          points=(inherits, overrides))
    a = PointCodec.for_point(inherits, device)
    b = PointCodec.for_point(overrides, device)
    assert (a.byte_order, a.word_order, a.count, a.scale, a.offset) == (LITTLE, LITTLE, 2, 1.0, 0.0)
    assert (b.byte_order, b.word_order, b.count, b.scale, b.offset) == (BIG, BIG, 2, 0.5, 1.0)
    assert a.encode(123.456) == [0x79E9, 0xF642]
    assert b.encode(123.456 * 0.5 + 1.0) == [0x42F6, 0xE979]


# --- end to end: simulator server, real pymodbus client ---------------------------------------

UNIT = 7


def e2e_points() -> tuple[ModbusPoint, ...]:
    h = Table.HOLDING
    return (
        ModbusPoint(sensor="u16", table=h, address=0, type=DataType.UINT16, scale=0.1),
        ModbusPoint(sensor="i16", table=h, address=1, type=DataType.INT16, byte_order=LITTLE),
        ModbusPoint(sensor="i32", table=h, address=2, type=DataType.INT32, word_order=LITTLE),
        ModbusPoint(sensor="u32", table=h, address=4, type=DataType.UINT32, byte_order=LITTLE,
                    scale=0.1),
        ModbusPoint(sensor="f32", table=h, address=6, type=DataType.FLOAT32),
        ModbusPoint(sensor="f32ll", table=h, address=8, type=DataType.FLOAT32, byte_order=LITTLE,
                    word_order=LITTLE, offset=-40.0),
        ModbusPoint(sensor="f64", table=h, address=10, type=DataType.FLOAT64, word_order=LITTLE),
        ModbusPoint(sensor="b3", table=h, address=14, type=DataType.BIT, bit=3),
        ModbusPoint(sensor="b7", table=h, address=14, type=DataType.BIT, bit=7),
        ModbusPoint(sensor="set16", table=h, address=15, type=DataType.UINT16, scale=0.01,
                    writable=True),
        ModbusPoint(sensor="set32", table=h, address=16, type=DataType.FLOAT32, word_order=LITTLE,
                    writable=True),
    )


async def test_values_served_by_simulator_decode_over_modbus_tcp() -> None:
    device = ModbusDevice(id="plc-e2e", host="127.0.0.1", port=0, unit=UNIT, poll_interval=2.0,
                          timeout=1.0, points=e2e_points())
    values: dict[str, float] = {
        "u16": 4321 * 0.1, "i16": -12345.0, "i32": -2_000_000_000.0, "u32": 4_000_000_000 * 0.1,
        "f32": 123.456, "f32ll": -17.25, "f64": 2.0 / 3.0, "b3": 1.0, "b7": 0.0,
        "set16": 12.34, "set32": 0.5,
    }
    commands: list[tuple[str, float]] = []

    def command(sensor: str, value: float) -> bool:
        commands.append((sensor, value))
        values[sensor] = value
        return True

    image = DeviceImage(device, values.__getitem__, command)
    server = DeviceServer(image, "127.0.0.1", 0)
    codecs = {p.sensor: PointCodec.for_point(p, device) for p in device.points}
    await server.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2, retries=1)
    try:
        assert server.port != 0
        assert await client.connect()

        async def read_all() -> dict[str, float]:
            response = await client.read_holding_registers(0, count=18, device_id=UNIT)
            assert not response.isError(), response
            registers = list(response.registers)
            assert len(registers) == 18
            return {p.sensor: codecs[p.sensor].decode(registers[p.address : p.address
                                                                + p.register_count])
                    for p in device.points}

        expected = dict(values)
        expected["f32"] = as_float32(123.456)
        assert await read_all() == expected

        # The model changes: the next read serves the new values.
        values.update({"u16": 0.0, "i16": 32767.0, "f64": -1e300, "b3": 0.0, "b7": 1.0,
                       "f32": -0.0, "u32": 0.0})
        expected = dict(values)
        assert await read_all() == expected

        # A client writes the writable points through the server; the model gets the commands.
        write16 = codecs["set16"].encode(55.55)
        write32 = codecs["set32"].encode(-273.15)
        response = await client.write_registers(15, write16 + write32, device_id=UNIT)
        assert not response.isError(), response
        assert [s for s, _v in commands] == ["set16", "set32"]
        assert commands[0][1] == pytest.approx(55.55)
        assert commands[1][1] == as_float32(-273.15)
        after = await read_all()
        assert after["set16"] == pytest.approx(55.55)
        assert after["set32"] == as_float32(-273.15)
        assert after["i16"] == 32767.0  # untouched points keep their values

        # A read-only point refuses a write, and the model sees no command.
        response = await client.write_register(0, 1, device_id=UNIT)
        assert response.isError()
        assert len(commands) == 2
        assert image.encode_errors == 0
        assert server.writes == 2
        assert server.reads >= 3
    finally:
        client.close()
        await server.stop()


# --- decimal-point codes, request spans, bus headings ------------------------------------------------

EDGE_ROOM = Path(__file__).parents[2] / "examples" / "edge-room.yaml"


@pytest.mark.parametrize(("raw", "decimals", "value"), [
    (42, 2, 0.42), (421, 3, 0.421), (16, 1, 1.6), (7, 0, 7.0), (-15, 2, -0.15), (12, -2, 1200.0)])
def test_a_decimal_point_code_scales_by_a_power_of_ten_exactly(raw: int, decimals: int, value: float) -> None:
    c = codec(DataType.INT16)
    assert c.decode([raw & 0xFFFF], decimals) == value  # exactly: 42 / 100, never 42 * 0.01
    assert c.encode(value, 0, decimals) == [raw & 0xFFFF]


def test_a_decimal_point_code_is_read_signed_or_not_and_bounded() -> None:
    unsigned = DecimalPoint(table=Table.HOLDING, address=3)
    signed = DecimalPoint(table=Table.HOLDING, address=3, type=DataType.INT16)
    assert decimal_code(3, unsigned) == 3
    assert decimal_code(0xFFFE, signed) == -2
    for word, source in ((10, unsigned), (0xFFFE, unsigned), (0xFFF0, signed)):
        with pytest.raises(RegisterValueError, match="decimal-point code"):
            decimal_code(word, source)


def test_the_decimal_code_is_read_with_its_point_and_before_the_points_it_scales() -> None:
    points = [
        ModbusPoint(sensor="a", table=Table.HOLDING, address=4, type=DataType.INT16,
                    scale_from=DecimalPoint(table=Table.HOLDING, address=3)),
        ModbusPoint(sensor="b", table=Table.HOLDING, address=60,
                    scale_from=DecimalPoint(table=Table.INPUT, address=200)),
        ModbusPoint(sensor="c", table=Table.INPUT, address=0),
    ]
    spans = request_spans(ModbusDevice(id="d", points=tuple(points)))
    shape = [(s.table.value, s.start, s.count) for s in spans]
    # Spans holding a code come first (b's code at input 200 is read before b at holding 60), so a
    # changed code applies from that same poll; a's code and a share one read.
    assert shape == [("holding", 3, 2), ("input", 200, 1), ("holding", 60, 1), ("input", 0, 1)]
    assert [type(it).__name__ for it in spans[0].items] == ["DecimalPoint", "ModbusPoint"]


def test_the_register_table_names_each_devices_bus_and_times_each_bus() -> None:
    out = register_table(load_site(EDGE_ROOM))
    assert ("### meter: bus rs485-1 (serial /tmp/pumpwatch-edge-room/rs485-1 9600 8N1 rtu) unit 1, "
            "poll every 2 s") in out.splitlines()
    assert "### water-quality: bus gw-tank (tcp 127.0.0.1:5040 rtu) unit 5, poll every 10 s" in out
    assert ("| holding | 4 | int16 | big/- | 1 x 10^-n, n in holding 3 | b2-pressure | pressure | MPa "
            "| read |") in out
    assert "| input | 12-13 | float32 |" not in out
    assert ("| input | 342-343 | float32 | big/big | 1 | b2-energy | energy | kWh | read |") in out
    buses = out.split("### buses:")[1].splitlines()
    assert buses[4].startswith("| rs485-1 | serial /tmp/pumpwatch-edge-room/rs485-1 9600 8N1 rtu | "
                               "1=meter, 2=vfd-1, 3=vfd-2, 4=pressure-tx | 8 | ")
    assert buses[4].endswith(" | 1 s |")
