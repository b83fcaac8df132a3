"""How a Modbus device is reached: its own Modbus TCP connection, or a place on a shared bus.

A `Link` sends one request at a time for a unit and turns every way it can fail into the project's
errors: `DeviceError` when the device answered with an exception code, `SourceUnavailable` when it
did not answer or the connection is gone. `TcpLink` is one device's own connection (Modbus TCP,
on PumpWatch's own client `collector.sources.modbus_tcp`); `collector.sources.modbus_bus.BusLink`
is a line shared by many units (pymodbus, for its RTU and ASCII framers and serial ports).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ModbusException

from collector.sources.modbus_pdu import (
    ExceptionResponse,
    MalformedResponse,
    read_request,
    read_response,
    write_request,
    write_response,
)
from collector.sources.modbus_pdu import exception_text as pdu_exception_text
from collector.sources.modbus_tcp import ModbusTcpClient
from pumpwatch.errors import SourceUnavailable
from pumpwatch.site import ModbusDevice, Table

Stamp = Callable[[], float]  # the clock's now, read when a request goes out


class DeviceError(Exception):
    """A read or write answered with a Modbus exception code."""


class Link(Protocol):
    """One way to a device; `shared` links carry several units and never close for one unit."""

    shared: bool
    label: str

    def is_open(self) -> bool:
        """Whether requests can be sent now."""
        ...

    async def open(self) -> str | None:
        """Open the connection if it is not; None when open, else why it is not."""
        ...

    def close(self) -> None:
        """Drop the connection (it opens again on the next `open`)."""
        ...

    async def read(self, unit: int, table: Table, start: int, count: int, within: float,
                   stamp: Stamp) -> tuple[float, list[int]]:
        """Read registers or bits: (the time the request went out, the words or 0/1 bits)."""
        ...

    async def write(self, unit: int, table: Table, address: int, values: list[int],
                    within: float) -> None:
        """Write one coil (values [0|1]) or holding registers."""
        ...


async def read_with(client: ModbusBaseClient, unit: int, table: Table, start: int, count: int,
                    within: float) -> list[int]:
    """One read request on a connected pymodbus client, with its failures turned into ours."""
    read = {Table.HOLDING: client.read_holding_registers, Table.INPUT: client.read_input_registers,
            Table.COIL: client.read_coils, Table.DISCRETE: client.read_discrete_inputs}[table]
    resp: Any = await call(lambda: read(start, count=count, device_id=unit), within)
    if resp.isError():
        raise DeviceError(exception_text(resp))
    if table.is_bit_table:
        return [1 if bit else 0 for bit in resp.bits[:count]]
    words: list[int] = resp.registers
    if len(words) != count:
        raise DeviceError(f"asked for {count} registers, got {len(words)}")
    return words


async def write_with(client: ModbusBaseClient, unit: int, table: Table, address: int,
                     values: list[int], within: float) -> None:
    """One write request (a coil, or holding registers) on a connected pymodbus client."""
    if table is Table.COIL:
        resp: Any = await call(lambda: client.write_coil(address, bool(values[0]), device_id=unit),
                               within)
    else:
        resp = await call(lambda: client.write_registers(address, values, device_id=unit), within)
    if resp.isError():
        raise DeviceError(exception_text(resp))


async def call(request: Callable[[], Awaitable[Any]], within: float) -> Any:
    """Send one request; every way it can fail becomes SourceUnavailable."""
    try:
        async with asyncio.timeout(within):
            return await request()
    except (TimeoutError, ModbusException, OSError) as err:
        raise SourceUnavailable(f"{type(err).__name__}: {err}".strip(": ")) from err


def exception_text(resp: Any) -> str:
    """A Modbus exception response in words."""
    code = getattr(resp, "exception_code", None)
    return pdu_exception_text(code) if code is not None else str(resp)


class TcpLink:
    """A Modbus TCP device's own connection (`ModbusTcpClient`): its trouble is its own."""

    shared = False

    def __init__(self, device: ModbusDevice) -> None:
        self.device = device
        self.label = f"{device.host}:{device.port}"
        self._client: ModbusTcpClient | None = None

    def is_open(self) -> bool:
        """Whether the TCP connection is up."""
        return self._client is not None and self._client.connected

    async def open(self) -> str | None:
        """Connect (once); None when connected, else why not."""
        if self.is_open():
            return None
        self.close()
        device = self.device
        try:
            self._client = await ModbusTcpClient.connect(device.host, device.port, device.timeout * 2 + 1)
        except (TimeoutError, OSError) as err:
            return f"connect: {type(err).__name__}: {err}".rstrip(": ")
        return None

    def close(self) -> None:
        """Close the connection."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def read(self, unit: int, table: Table, start: int, count: int, within: float,
                   stamp: Stamp) -> tuple[float, list[int]]:
        """Read on this device's connection."""
        request = read_request(table, start, count)
        ts = stamp()
        answer = await self._ask(unit, request, within)
        try:
            return ts, read_response(table, count, answer)
        except (ExceptionResponse, MalformedResponse) as err:
            raise DeviceError(str(err)) from err

    async def write(self, unit: int, table: Table, address: int, values: list[int],
                    within: float) -> None:
        """Write on this device's connection."""
        request = write_request(table, address, values)
        answer = await self._ask(unit, request, within)
        try:
            write_response(request, answer)
        except (ExceptionResponse, MalformedResponse) as err:
            raise DeviceError(str(err)) from err

    async def _ask(self, unit: int, request: bytes, within: float) -> bytes:
        client = self._client
        if client is None:
            raise SourceUnavailable(f"Modbus device {self.device.id} is not connected")
        try:
            return await client.request(unit, request, within)
        except (TimeoutError, OSError) as err:
            raise SourceUnavailable(f"{type(err).__name__}: {err}".rstrip(": ")) from err
