"""A Modbus TCP connection of PumpWatch's own: MBAP framing, one request in flight at a time.

pymodbus's client costs about 90 µs of CPU per request (its transaction manager, framer and PDU
classes); a device polled once a second is one or two requests per cycle, so at 50 devices that is a
fifth of the collector's work. This connection does only what a poller needs: it frames a request
PDU (`collector.sources.modbus_pdu`), sends it, and resolves the one waiting request when the answer
with its transaction id arrives.

Failure policy:
- an answer carrying another transaction id (a late answer to a request that already timed out) is
  dropped and counted in `discarded`; the request in flight keeps waiting for its own;
- the transaction id alone pairs an answer with its request (as the MBAP header intends); a gateway
  that answers under another unit id is still answering this request;
- the start of an answer whose rest never came (cut off) is dropped, and counted, when the next
  request goes out, so the next answer is read from its first byte;
- a header that cannot be Modbus TCP (protocol id not 0, length outside 2..254) means the stream is
  out of step: the connection is closed and the request in flight fails with `ConnectionError`;
- a connection closed by the device fails the request in flight with `ConnectionError`;
- no answer within the request's time: `TimeoutError`; the connection stays open.
"""

from __future__ import annotations

import asyncio
import struct

_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id (0), length (unit + PDU), unit id
_HEADER = 7
_MAX_LENGTH = 254  # unit id + the largest PDU (253 bytes)


class ModbusTcpClient(asyncio.Protocol):
    """One connection to a Modbus TCP device or gateway; `connect` makes one."""

    def __init__(self) -> None:
        self.discarded = 0  # answers that matched no request in flight
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._tid = 0
        self._waiting: tuple[int, asyncio.Future[bytes]] | None = None

    @classmethod
    async def connect(cls, host: str, port: int, within: float) -> ModbusTcpClient:
        """Open a connection, or raise `TimeoutError`/`OSError`."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(within):
            _transport, client = await loop.create_connection(cls, host, port)
        return client

    @property
    def connected(self) -> bool:
        """Whether requests can be sent."""
        return self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        """Close the connection; a request in flight fails with `ConnectionError`."""
        if self._transport is not None:
            self._transport.close()
        self._fail(ConnectionError("connection closed"))

    async def request(self, unit: int, pdu: bytes, within: float) -> bytes:
        """Send one request PDU to `unit` and return the answer's PDU (unchecked)."""
        if not 0 <= unit <= 0xFF or not 1 <= len(pdu) <= _MAX_LENGTH - 1:
            raise ValueError(f"unit {unit} (0..255) with a PDU of {len(pdu)} bytes (1..253)")
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionError("not connected")
        if self._waiting is not None:
            raise RuntimeError("a Modbus TCP connection carries one request at a time")
        if self._buffer:  # the start of an answer that never ended (cut off): it answers nothing now
            self._buffer.clear()
            self.discarded += 1
        loop = asyncio.get_running_loop()
        tid = (self._tid + 1) & 0xFFFF
        frame = _MBAP.pack(tid, 0, len(pdu) + 1, unit) + pdu
        answer: asyncio.Future[bytes] = loop.create_future()
        self._tid = tid
        self._waiting = (tid, answer)
        transport.write(frame)
        timer = loop.call_later(within, _expire, answer, within)
        try:
            return await answer
        finally:
            timer.cancel()
            if self._waiting is not None and self._waiting[1] is answer:
                self._waiting = None

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        """The device or the network closed the connection."""
        self._transport = None
        self._fail(ConnectionError(f"connection lost: {exc}" if exc else "connection closed by the device"))

    def data_received(self, data: bytes) -> None:
        """Take every whole frame received so far; keep a partial one for the next read."""
        buffer = self._buffer
        buffer += data
        while len(buffer) >= _HEADER:
            tid, protocol, length, _unit = _MBAP.unpack_from(buffer)
            if protocol != 0 or not 2 <= length <= _MAX_LENGTH:
                buffer.clear()
                self._fail(ConnectionError(f"not a Modbus TCP answer (protocol {protocol}, length {length})"))
                self.close()  # out of step: nothing after this can be trusted
                return
            end = 6 + length
            if len(buffer) < end:
                return
            pdu = bytes(buffer[_HEADER:end])
            del buffer[:end]
            waiting = self._waiting
            if waiting is None or waiting[0] != tid:
                self.discarded += 1
                continue
            self._waiting = None
            if not waiting[1].done():
                waiting[1].set_result(pdu)

    def _fail(self, error: Exception) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting[1].done():
            waiting[1].set_exception(error)


def _expire(answer: asyncio.Future[bytes], within: float) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError(f"no answer within {within:g} s"))
