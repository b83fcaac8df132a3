"""Modbus request and response PDUs (function code and data, no framing) for the calls PumpWatch makes.

Reads of the four tables (function codes 1-4), one coil written (5) and holding registers written
(16). Building a request checks its range; reading a response checks everything a device or gateway
can get wrong (function, byte count, length, echoed address) and says what it was:
`ExceptionResponse` for a Modbus exception code, `MalformedResponse` for anything else.
"""

from __future__ import annotations

import struct

from pumpwatch.site import Table

READ_CODES = {Table.COIL: 1, Table.DISCRETE: 2, Table.HOLDING: 3, Table.INPUT: 4}
WRITE_COIL = 5
WRITE_REGISTERS = 16
MAX_READ_BITS = 2000
MAX_READ_WORDS = 125
MAX_WRITE_WORDS = 123
EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                   4: "device failure", 5: "acknowledge", 6: "device busy",
                   10: "gateway path unavailable", 11: "gateway target failed to respond"}

_FUNCTION_ADDRESS_COUNT = struct.Struct(">BHH")  # a read, and a coil's write (address, value)
_WORDS = {n: struct.Struct(f">{n}H") for n in range(1, MAX_READ_WORDS + 1)}


class ExceptionResponse(Exception):
    """The device answered with a Modbus exception code."""

    def __init__(self, code: int) -> None:
        super().__init__(exception_text(code))
        self.code = code


class MalformedResponse(Exception):
    """An answer that is not a valid response to the request."""


def exception_text(code: int) -> str:
    """A Modbus exception code in words."""
    return f"exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})"


def read_request(table: Table, start: int, count: int) -> bytes:
    """The PDU reading `count` registers or bits of `table` from `start`."""
    limit = MAX_READ_BITS if table.is_bit_table else MAX_READ_WORDS
    if not 1 <= count <= limit or not 0 <= start <= 0xFFFF or start + count > 0x10000:
        raise ValueError(f"cannot read {count} from {table} {start} (1..{limit}, inside 0..65535)")
    return _FUNCTION_ADDRESS_COUNT.pack(READ_CODES[table], start, count)


def read_response(table: Table, count: int, pdu: bytes) -> list[int]:
    """The words (or 0/1 bits) of a read's response PDU."""
    code = READ_CODES[table]
    _check_function(code, pdu)
    size = 2 * count if not table.is_bit_table else (count + 7) // 8
    if len(pdu) < 2 or pdu[1] != size or len(pdu) != 2 + size:
        raise MalformedResponse(f"read of {count}: expected {size} data bytes, got a "
                                f"{len(pdu)}-byte answer declaring {pdu[1] if len(pdu) > 1 else None}")
    if table.is_bit_table:
        return [(pdu[2 + i // 8] >> (i % 8)) & 1 for i in range(count)]
    return list(_WORDS[count].unpack_from(pdu, 2))


def write_request(table: Table, address: int, values: list[int]) -> bytes:
    """The PDU writing one coil (`values` [0|1]) or holding registers from `address`."""
    if table is Table.COIL:
        if len(values) != 1 or values[0] not in (0, 1) or not 0 <= address <= 0xFFFF:
            raise ValueError(f"a coil write takes one 0/1 value at 0..65535, not {values} at {address}")
        return _FUNCTION_ADDRESS_COUNT.pack(WRITE_COIL, address, 0xFF00 if values[0] else 0)
    if table is not Table.HOLDING:
        raise ValueError(f"{table} is not writable")
    if (not 1 <= len(values) <= MAX_WRITE_WORDS or not 0 <= address <= 0xFFFF
            or address + len(values) > 0x10000 or any(not 0 <= v <= 0xFFFF for v in values)):
        raise ValueError(f"cannot write {values} at {address} (1..{MAX_WRITE_WORDS} words of 0..65535)")
    n = len(values)
    return struct.pack(f">BHHB{n}H", WRITE_REGISTERS, address, n, 2 * n, *values)


def write_response(request: bytes, pdu: bytes) -> None:
    """Check a write's response PDU: the device echoes the address and the value or quantity."""
    _check_function(request[0], pdu)
    if pdu != request[:5]:
        raise MalformedResponse(f"write answered {pdu.hex()}, expected the echo {request[:5].hex()}")


def _check_function(code: int, pdu: bytes) -> None:
    if not pdu:
        raise MalformedResponse("empty response")
    if pdu[0] == code | 0x80:
        if len(pdu) != 2:
            raise MalformedResponse(f"exception response of {len(pdu)} bytes")
        raise ExceptionResponse(pdu[1])
    if pdu[0] != code:
        raise MalformedResponse(f"answered function {pdu[0]} to function {code}")
