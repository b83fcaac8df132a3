"""A Modbus TCP server (pymodbus) that serves exactly a device's register map from the model.

`DeviceImage` is one device's registers; `sim_device` makes the pymodbus device that serves it, so a
bus of units (`simulators.modbus_bus_server`) serves the same images over RTU.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import cast

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from pumpwatch.registers import PointCodec, RegisterValueError
from pumpwatch.site import DataType, ModbusDevice, ModbusPoint, Table

log = logging.getLogger(__name__)

_TABLE_OF_FUNCTION: dict[int, Table] = {1: Table.COIL, 5: Table.COIL, 15: Table.COIL,
                                        2: Table.DISCRETE, 4: Table.INPUT}
_TABLE_OF_FUNCTION.update({fc: Table.HOLDING for fc in (3, 6, 16, 22, 23)})
_TABLE_ORDER = (Table.COIL, Table.DISCRETE, Table.HOLDING, Table.INPUT)  # pymodbus block order

ValueSource = Callable[[str], float]
CommandSink = Callable[[str, float], bool]
DEFAULT_DECIMALS = 2  # decimal-point code a simulated transmitter starts with (e.g. 0.42 MPa = 42)


class DeviceImage:
    """The register contents of one device, refreshed from sensor values on every read."""

    def __init__(self, device: ModbusDevice, value_of: ValueSource, command: CommandSink) -> None:
        self.device = device
        self._value_of = value_of
        self._command = command
        self.codecs = {p.sensor: PointCodec.for_point(p, device) for p in device.points}
        self.cells: dict[Table, dict[int, int]] = {t: {} for t in Table}
        self.encode_errors = 0
        # Decimal-point codes (scale_from): where each lives and the code it holds now.
        self.decimals: dict[tuple[Table, int], int] = {
            (p.scale_from.table, p.scale_from.address): DEFAULT_DECIMALS
            for p in device.points if p.scale_from is not None}
        self.refresh()

    def span(self, table: Table) -> tuple[int, int] | None:
        """First address and count covering every point (and decimal code) of `table`, or None."""
        ranges = [(p.address, p.address + p.register_count) for p in self.device.points
                  if p.table is table]
        ranges += [(address, address + 1) for t, address in self.decimals if t is table]
        if not ranges:
            return None
        first = min(start for start, _end in ranges)
        end = max(stop for _start, stop in ranges)
        return first, end - first

    def set_decimals(self, table: Table, address: int, code: int) -> None:
        """Change a decimal-point code, as a technician does on the transmitter's keypad."""
        if (table, address) not in self.decimals:
            raise KeyError(f"no decimal-point code at {table} {address} of {self.device.id}")
        self.decimals[(table, address)] = code
        self.refresh()

    def refresh(self) -> None:
        """Encode every point's current value (and every decimal-point code) into the cells."""
        for (table, address), code in self.decimals.items():
            self.cells[table][address] = code & 0xFFFF
        for point in self.device.points:
            self._store(point, self._value_of(point.sensor))

    def _store(self, point: ModbusPoint, value: float) -> None:
        cells = self.cells[point.table]
        codec = self.codecs[point.sensor]
        source = point.scale_from
        decimals = self.decimals[(source.table, source.address)] if source is not None else 0
        if source is not None and source.type is DataType.INT16 and decimals >= 0x8000:
            decimals -= 0x10000
        try:
            words = codec.encode(value, cells.get(point.address, 0), decimals)
        except RegisterValueError:
            self.encode_errors += 1  # a value the register cannot hold keeps its last encoding
            return
        for i, word in enumerate(words):
            cells[point.address + i] = word

    def write(self, table: Table, address: int, values: list[int] | list[bool]) -> ExcCodes | None:
        """Apply a client's write: only writable points may be touched; commands reach the model."""
        written = range(address, address + len(values))
        touched = [p for p in self.device.points if p.table is table
                   and p.address < written.stop and written.start < p.address + p.register_count]
        if not touched or any(not p.writable for p in touched):
            return ExcCodes.ILLEGAL_ADDRESS
        cells = self.cells[table]
        for i, v in enumerate(values):
            cells[address + i] = int(v)
        for point in touched:
            regs = [cells.get(point.address + i, 0) for i in range(point.register_count)]
            try:
                value = self.codecs[point.sensor].decode(regs)
            except RegisterValueError:
                return ExcCodes.ILLEGAL_VALUE
            if not self._command(point.sensor, value):
                return ExcCodes.ILLEGAL_ADDRESS
        self.refresh()
        return None


class DeviceServer:
    """One simulated PLC: a pymodbus TCP server on `port` serving a `DeviceImage`."""

    def __init__(self, image: DeviceImage, host: str, port: int) -> None:
        self.image = image
        self.host = host
        self.port = port
        self.reads = 0
        self.writes = 0
        self._server: ModbusTcpServer | None = None

    @property
    def online(self) -> bool:
        """Whether the server is listening."""
        return self._server is not None

    async def start(self) -> None:
        """Listen on the configured port (port 0 picks a free one, kept for restarts)."""
        if self._server is not None:
            return
        server = ModbusTcpServer(self._sim_device(), address=(self.host, self.port))
        await server.serve_forever(background=True)
        if self.port == 0:
            listener = cast(asyncio.Server, server.transport)
            self.port = listener.sockets[0].getsockname()[1]
        self._server = server
        log.info("modbus device %s listening on %s:%d", self.image.device.id, self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and drop connected clients."""
        server, self._server = self._server, None
        if server is not None:
            for handler in list(getattr(server, "active_connections", {}).values()):
                handler.close()
            await server.shutdown()  # type: ignore[no-untyped-call]

    def _sim_device(self) -> SimDevice:
        return sim_device(self.image, self._on_access)

    async def _on_access(self, function_code: int, start_address: int, address: int, count: int,
                         registers: list[int], set_values: list[int] | list[bool] | None,
                         ) -> ExcCodes | None:
        if set_values is not None:
            self.writes += 1
        else:
            self.reads += 1
        return serve(self.image, function_code, start_address, address, registers, set_values)


Access = Callable[[int, int, int, int, list[int], "list[int] | list[bool] | None"],
                  Coroutine[None, None, "ExcCodes | None"]]


def sim_device(image: DeviceImage, action: Access) -> SimDevice:
    """The pymodbus device (unit id, register blocks) serving `image` through `action`."""
    blocks: list[list[SimData]] = []
    for table in _TABLE_ORDER:
        span = image.span(table)
        if span is None and table.is_bit_table:  # pymodbus needs a block: one read-only bit
            blocks.append([SimData(65535, values=False, datatype=SimType.BITS, readonly=True)])
        elif span is None:
            blocks.append([SimData(65535, datatype=SimType.INVALID)])
        elif table.is_bit_table:
            blocks.append([SimData(span[0], count=span[1], values=False, datatype=SimType.BITS)])
        else:
            blocks.append([SimData(span[0], count=span[1], values=0, datatype=SimType.REGISTERS)])
    return SimDevice(id=image.device.unit, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]),
                     action=action)


def serve(image: DeviceImage, function_code: int, start_address: int, address: int,
          registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
    """Answer one access from the image: a write goes to the model, a read gets fresh registers."""
    table = _TABLE_OF_FUNCTION.get(function_code)
    if table is None:
        return ExcCodes.ILLEGAL_FUNCTION
    if set_values is not None:
        return image.write(table, address, set_values)
    image.refresh()
    cells = image.cells[table]
    if table.is_bit_table:
        words = len(registers) - 1  # pymodbus keeps a sentinel word at the end
        base = start_address * 16
        packed = [0] * words
        for bit_address, on in cells.items():
            i = bit_address - base
            if on and 0 <= i < words * 16:
                packed[i // 16] |= 1 << (i % 16)
        registers[:words] = packed
    else:
        for reg_address, word in cells.items():
            registers[reg_address - start_address] = word
    return None
