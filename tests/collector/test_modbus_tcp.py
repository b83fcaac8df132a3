"""PumpWatch's own Modbus TCP client: its PDUs against pymodbus's, its framing against devices that
misbehave (split frames, late answers, garbage, silence, hang-ups) over real loopback connections.

Polling real pymodbus servers through it (every table, exception responses, writes) is in
`test_modbus.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.pdu.bit_message import (
    ReadCoilsResponse,
    ReadDiscreteInputsResponse,
    WriteSingleCoilRequest,
)
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
    WriteMultipleRegistersRequest,
)

from collector.sources.modbus_link import DeviceError, TcpLink
from collector.sources.modbus_pdu import (
    ExceptionResponse,
    MalformedResponse,
    read_request,
    read_response,
    write_request,
    write_response,
)
from collector.sources.modbus_tcp import ModbusTcpClient
from pumpwatch.errors import SourceUnavailable
from pumpwatch.site import ModbusDevice, Table

PROPERTY = settings(max_examples=300, deadline=None, database=None)


def pymodbus_pdu(message: object) -> bytes:
    """A pymodbus PDU object as bytes on the wire: function code, then its data."""
    code: int = message.function_code  # type: ignore[attr-defined]
    data: bytes = message.encode()  # type: ignore[attr-defined]
    return bytes([code]) + data


# --- PDUs -----------------------------------------------------------------------------------------


@PROPERTY
@given(words=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125),
       table=st.sampled_from([Table.HOLDING, Table.INPUT]))
def test_register_answers_encoded_by_pymodbus_read_back_word_for_word(words: list[int], table: Table) -> None:
    cls = ReadHoldingRegistersResponse if table is Table.HOLDING else ReadInputRegistersResponse
    assert read_response(table, len(words), pymodbus_pdu(cls(registers=words))) == words


@PROPERTY
@given(bits=st.lists(st.booleans(), min_size=1, max_size=2000),
       table=st.sampled_from([Table.COIL, Table.DISCRETE]))
def test_bit_answers_encoded_by_pymodbus_read_back_bit_for_bit(bits: list[bool], table: Table) -> None:
    cls = ReadCoilsResponse if table is Table.COIL else ReadDiscreteInputsResponse
    assert read_response(table, len(bits), pymodbus_pdu(cls(bits=bits))) == [int(b) for b in bits]


@PROPERTY
@given(start=st.integers(0, 0xFFFF - 125), count=st.integers(1, 125),
       values=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=123), on=st.booleans())
def test_requests_are_the_bytes_pymodbus_sends(start: int, count: int, values: list[int], on: bool) -> None:
    assert read_request(Table.HOLDING, start, count) == pymodbus_pdu(
        ReadHoldingRegistersRequest(address=start, count=count))
    assert write_request(Table.HOLDING, start, values) == pymodbus_pdu(
        WriteMultipleRegistersRequest(address=start, registers=values))
    assert write_request(Table.COIL, start, [int(on)]) == pymodbus_pdu(
        WriteSingleCoilRequest(address=start, bits=[on]))


@PROPERTY
@given(answer=st.binary(max_size=260), table=st.sampled_from(list(Table)), count=st.integers(1, 125))
def test_any_bytes_as_an_answer_give_values_or_a_named_error(answer: bytes, table: Table, count: int) -> None:
    """Fuzz: whatever a device sends, the answer is the right number of values or one of two errors."""
    try:
        values = read_response(table, count, answer)
    except (ExceptionResponse, MalformedResponse):
        return
    assert len(values) == count
    assert all(0 <= v <= (1 if table.is_bit_table else 0xFFFF) for v in values)


def test_wrong_answers_are_named() -> None:
    with pytest.raises(ExceptionResponse, match=r"exception 2 \(illegal data address\)"):
        read_response(Table.HOLDING, 2, bytes([0x83, 0x02]))
    with pytest.raises(MalformedResponse, match="expected 4 data bytes"):
        read_response(Table.HOLDING, 2, bytes([0x03, 0x02, 0x00, 0x01]))  # one register for two
    with pytest.raises(MalformedResponse, match="answered function 4 to function 3"):
        read_response(Table.HOLDING, 1, bytes([0x04, 0x02, 0x00, 0x01]))
    with pytest.raises(MalformedResponse, match="empty"):
        read_response(Table.COIL, 1, b"")
    with pytest.raises(MalformedResponse, match="echo"):
        write_response(write_request(Table.HOLDING, 40, [1, 2]), bytes([16, 0, 40, 0, 3]))
    with pytest.raises(ValueError, match="cannot read 126"):
        read_request(Table.HOLDING, 0, 126)
    with pytest.raises(ValueError, match="cannot write"):
        write_request(Table.HOLDING, 0, [70000])
    with pytest.raises(ValueError, match="not writable"):
        write_request(Table.INPUT, 0, [1])


# --- a device that misbehaves on purpose ----------------------------------------------------------

Answer = Callable[[int, int, bytes, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def device(answer: Answer) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A TCP server that reads Modbus TCP requests and lets `answer(tid, unit, pdu, writer)` reply."""
    requests: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readexactly(7)
                tid, _protocol, length, unit = struct.unpack(">HHHB", head)
                pdu = await reader.readexactly(length - 1)
                requests.append(pdu)
                await answer(tid, unit, pdu, writer)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], requests
    finally:
        server.close()
        await server.wait_closed()


def plc(port: int, unit: int = 1) -> ModbusDevice:
    return ModbusDevice.model_validate({
        "id": "plc", "host": "127.0.0.1", "port": port, "unit": unit, "timeout": 0.2,
        "points": [{"sensor": "p", "table": "holding", "address": 0, "type": "uint16"}]})


def frame(tid: int, unit: int, pdu: bytes, protocol: int = 0) -> bytes:
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1, unit) + pdu


def registers(pdu: bytes, base: int = 100) -> bytes:
    """A holding-register answer to a read request: register n holds base + n."""
    _code, start, count = struct.unpack(">BHH", pdu)
    return struct.pack(f">BB{count}H", 3, 2 * count, *(base + start + i for i in range(count)))


async def test_an_answer_in_pieces_and_answers_in_one_segment_are_taken_whole() -> None:
    async def byte_by_byte(tid: int, unit: int, pdu: bytes, writer: asyncio.StreamWriter) -> None:
        for b in frame(tid, unit, registers(pdu)):
            writer.write(bytes([b]))
            await writer.drain()
            await asyncio.sleep(0.001)

    async with device(byte_by_byte) as (port, _requests):
        client = await ModbusTcpClient.connect("127.0.0.1", port, 2)
        for start in (0, 7, 120):
            answer = await client.request(1, read_request(Table.HOLDING, start, 5), 2)
            assert read_response(Table.HOLDING, 5, answer) == [100 + start + i for i in range(5)]
        client.close()


async def test_a_late_answer_is_dropped_and_the_request_in_flight_gets_its_own() -> None:
    late: list[bytes] = []

    async def slow_then_prompt(tid: int, unit: int, pdu: bytes, writer: asyncio.StreamWriter) -> None:
        if not late:  # the first request: answered after the client gave up on it
            late.append(frame(tid, unit, registers(pdu, base=999)))
            return
        # The late answer and this request's own arrive in one segment, late first.
        writer.write(late[0] + frame(tid, unit, registers(pdu)))
        await writer.drain()

    async with device(slow_then_prompt) as (port, _requests):
        client = await ModbusTcpClient.connect("127.0.0.1", port, 2)
        with pytest.raises(TimeoutError, match=r"no answer within 0\.1 s"):
            await client.request(1, read_request(Table.HOLDING, 0, 2), 0.1)
        assert client.connected  # silence alone does not close the connection
        answer = await client.request(1, read_request(Table.HOLDING, 10, 2), 2)
        assert read_response(Table.HOLDING, 2, answer) == [110, 111]
        assert client.discarded == 1
        client.close()


async def test_garbage_closes_the_connection_and_fails_the_request() -> None:
    async def garbage(tid: int, unit: int, pdu: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(tid, unit, registers(pdu), protocol=7))
        await writer.drain()

    async with device(garbage) as (port, _requests):
        client = await ModbusTcpClient.connect("127.0.0.1", port, 2)
        with pytest.raises(ConnectionError, match="not a Modbus TCP answer"):
            await client.request(1, read_request(Table.HOLDING, 0, 2), 2)
        assert not client.connected


async def test_a_device_hanging_up_fails_the_request_at_once() -> None:
    async def hang_up(tid: int, unit: int, pdu: bytes, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with device(hang_up) as (port, _requests):
        client = await ModbusTcpClient.connect("127.0.0.1", port, 2)
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionError, match="closed"):
            await client.request(1, read_request(Table.HOLDING, 0, 2), 30)
        assert asyncio.get_running_loop().time() - started < 10  # not the 30 s timeout
        assert not client.connected
        with pytest.raises(ConnectionError, match="not connected"):
            await client.request(1, read_request(Table.HOLDING, 0, 2), 1)


async def test_the_link_turns_each_failure_into_the_pollers_errors() -> None:
    """Through `TcpLink`: an exception code and a malformed answer are the device's errors, silence
    and a closed connection are `SourceUnavailable`; the request carries the unit and the poll time."""
    def fixed(answer: bytes) -> Callable[[bytes], bytes]:
        return lambda _pdu: answer

    answers = iter([fixed(bytes([0x83, 0x02])), fixed(bytes([0x03, 0x02, 0x00, 0x01])), registers,
                    fixed(b"")])  # the last: silence

    async def scripted(tid: int, unit: int, pdu: bytes, writer: asyncio.StreamWriter) -> None:
        answer = next(answers)(pdu)
        data = frame(tid, unit, answer) if answer else b""
        if data:
            writer.write(data)
            await writer.drain()
        else:
            await asyncio.sleep(0.5)
            writer.close()

    async with device(scripted) as (port, requests):
        link = TcpLink(plc(port, unit=9))
        assert await link.open() is None
        assert link.is_open()
        with pytest.raises(DeviceError, match="illegal data address"):
            await link.read(9, Table.HOLDING, 0, 2, 0.2, lambda: 1.0)
        with pytest.raises(DeviceError, match="expected 4 data bytes"):
            await link.read(9, Table.HOLDING, 0, 2, 0.2, lambda: 1.0)
        assert await link.read(9, Table.HOLDING, 4, 2, 0.2, lambda: 42.0) == (42.0, [104, 105])
        with pytest.raises(SourceUnavailable, match="TimeoutError"):
            await link.read(9, Table.HOLDING, 0, 2, 0.2, lambda: 1.0)
        assert requests[2] == read_request(Table.HOLDING, 4, 2)
        await asyncio.sleep(0.6)  # the device hangs up
        assert not link.is_open()
        with pytest.raises(SourceUnavailable):
            await link.read(9, Table.HOLDING, 0, 2, 0.2, lambda: 1.0)
        link.close()


async def test_a_refused_connection_says_why() -> None:
    async with device(lambda *_args: asyncio.sleep(0)) as (port, _requests):
        pass  # the port is free again
    link = TcpLink(plc(port))
    why = await link.open()
    assert why is not None
    assert "ConnectionRefusedError" in why
    assert not link.is_open()


class _Wire(asyncio.Transport):
    """The client's side of a connection, kept in memory: what it sends is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


@PROPERTY
@given(late=st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(min_size=1, max_size=253)), max_size=4),
       answer=st.binary(min_size=1, max_size=253), cuts=st.lists(st.integers(0, 2000), max_size=8),
       unit=st.integers(0, 255))
def test_any_split_of_late_answers_and_the_awaited_one_gives_the_awaited_one(
        late: list[tuple[int, bytes]], answer: bytes, cuts: list[int], unit: int) -> None:
    """However the stream is cut into reads, the request gets its own answer, and every other
    transaction's answer before it is dropped and counted."""

    async def scenario() -> None:
        client = ModbusTcpClient()
        wire = _Wire()
        client.connection_made(wire)
        request = asyncio.create_task(client.request(unit, read_request(Table.HOLDING, 0, 1), 5))
        await asyncio.sleep(0)
        tid, _protocol, length, sent_unit = struct.unpack_from(">HHHB", wire.sent[0])
        assert (length, sent_unit) == (6, unit)
        stream = b"".join(frame(t if t != tid else (t + 1) & 0xFFFF, unit, pdu) for t, pdu in late)
        stream += frame(tid, unit, answer)
        at = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
        for a, b in itertools.pairwise(at):
            client.data_received(stream[a:b])
        assert await request == answer
        assert client.discarded == len(late)
        assert client.connected

    asyncio.run(scenario())


async def test_a_cut_off_answer_costs_its_own_request_only() -> None:
    """A device whose answer stops short: that request times out, the next is read from its first byte
    on the same connection (the cut-off start is dropped and counted)."""
    answered: list[int] = []

    async def short_then_whole(tid: int, unit: int, pdu: bytes, writer: asyncio.StreamWriter) -> None:
        whole = frame(tid, unit, registers(pdu))
        writer.write(whole if answered else whole[:-1])
        answered.append(tid)
        await writer.drain()

    async with device(short_then_whole) as (port, _requests):
        client = await ModbusTcpClient.connect("127.0.0.1", port, 2)
        with pytest.raises(TimeoutError):
            await client.request(1, read_request(Table.HOLDING, 0, 3), 0.2)
        for start in (3, 9):
            answer = await client.request(1, read_request(Table.HOLDING, start, 3), 2)
            assert read_response(Table.HOLDING, 3, answer) == [100 + start + i for i in range(3)]
        assert client.connected
        assert client.discarded == 1
        client.close()


async def test_a_request_that_cannot_be_framed_leaves_the_connection_usable() -> None:
    async def prompt(tid: int, unit: int, pdu: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(tid, 7 if unit == 1 else unit, registers(pdu)))  # unit 1 answered as unit 7
        await writer.drain()

    async with device(prompt) as (port, _requests):
        client = await ModbusTcpClient.connect("127.0.0.1", port, 2)
        with pytest.raises(ValueError, match="unit 256"):
            await client.request(256, read_request(Table.HOLDING, 0, 1), 1)
        with pytest.raises(ValueError, match="PDU of 0 bytes"):
            await client.request(1, b"", 1)
        # The transaction id pairs the answer with the request, whatever unit id the gateway wrote.
        answer = await client.request(1, read_request(Table.HOLDING, 2, 1), 2)
        assert read_response(Table.HOLDING, 1, answer) == [102]
        client.close()
