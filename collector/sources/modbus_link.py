"""How a Modbus device is reached: its own Modbus TCP connection, or a place on a shared bus.

A `Link` sends one request at a time for a unit and turns every way it can fail into the project's
errors: `DeviceError` when the device answered with an exception code, `SourceUnavailable` when it
did not answer or the connection is gone. `TcpLink` is one device's own connection (Modbus TCP,
as before buses existed); `collector.sources.modbus_bus.BusLink` is a line shared by many units.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ModbusException

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
    names = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
             4: "device failure", 5: "acknowledge", 6: "device busy", 10: "gateway path unavailable",
             11: "gateway target failed to respond"}
    return f"exception {code} ({names.get(code, 'unknown')})" if code is not None else str(resp)


class TcpLink:
    """A Modbus TCP device's own connection: its trouble is its own."""

    shared = False

    def __init__(self, device: ModbusDevice) -> None:
        self.device = device
        self.label = f"{device.host}:{device.port}"
        self._client: AsyncModbusTcpClient | None = None

    def is_open(self) -> bool:
        """Whether the TCP connection is up."""
        return self._client is not None and bool(self._client.connected)

    async def open(self) -> str | None:
        """Connect (once); None when connected, else why not."""
        if self.is_open():
            return None
        self.close()
        device = self.device
        client = AsyncModbusTcpClient(device.host, port=device.port, timeout=device.timeout, retries=0,
                                      reconnect_delay=0)
        error = None
        try:
            async with asyncio.timeout(device.timeout * 2 + 1):
                ok = await client.connect()
        except (TimeoutError, OSError, ModbusException) as err:
            ok = False
            error = f"connect: {type(err).__name__}: {err}"
        if not ok:
            client.close()
            return error or f"cannot connect to {device.host}:{device.port}"
        self._client = client
        return None

    def close(self) -> None:
        """Close the connection."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _require(self) -> AsyncModbusTcpClient:
        if self._client is None:
            raise SourceUnavailable(f"Modbus device {self.device.id} is not connected")
        return self._client

    async def read(self, unit: int, table: Table, start: int, count: int, within: float,
                   stamp: Stamp) -> tuple[float, list[int]]:
        """Read on this device's connection."""
        client = self._require()
        ts = stamp()
        # pymodbus gives up at the device's timeout; the guard only catches a request that hangs.
        return ts, await read_with(client, unit, table, start, count, within * 2)

    async def write(self, unit: int, table: Table, address: int, values: list[int],
                    within: float) -> None:
        """Write on this device's connection."""
        await write_with(self._require(), unit, table, address, values, within * 2)
