"""Simulated RS-485 buses: every unit of a bus served by one pymodbus server in RTU (or ASCII) framing.

A serial bus is served on the far end of a simulated line (`simulators.serial_line`): the collector
opens the near end, at the bus's `path`, as its serial port. A tcp bus is served on a TCP port as a
serial-to-Ethernet gateway in transparent mode does: RTU frames over TCP. A unit that is switched
off (or that no device of the site is) never answers, as on a real line: its request times out.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from pumpwatch.site import BusTransport, Framer, ModbusBus, Site
from simulators.modbus_server import Access, CommandSink, DeviceImage, ValueSource, serve, sim_device
from simulators.serial_line import SerialLine, can_make

log = logging.getLogger(__name__)

ANY_UNIT = 0  # pymodbus serves an id it does not know with the device of id 0


class BusServer:
    """One simulated bus: its units' images behind one RTU (or ASCII) server."""

    def __init__(self, bus: ModbusBus, images: Sequence[DeviceImage], *,
                 collector_end: Path | None = None, host: str | None = None,
                 port: int | None = None) -> None:
        self.bus = bus
        self.images = {image.device.unit: image for image in images}
        self.silent: set[int] = set()  # units that do not answer
        self.reads: Counter[int] = Counter()  # requests answered, by unit
        self.writes: Counter[int] = Counter()
        self.host = host or bus.host or "127.0.0.1"
        self.port = port if port is not None else bus.tcp_port
        self.line: SerialLine | None = None
        if bus.transport is BusTransport.SERIAL:
            near = collector_end or Path(bus.path or "")
            self.line = SerialLine(near, near.with_name(near.name + ".sim"))
        self._server: ModbusSerialServer | ModbusTcpServer | None = None

    @property
    def path(self) -> Path | None:
        """Where the collector opens the line (serial buses)."""
        return self.line.collector_end if self.line is not None else None

    @property
    def online(self) -> bool:
        """Whether the server is up."""
        return self._server is not None

    def served_bus(self) -> ModbusBus:
        """The bus as the collector reaches this server (the line's path, or the TCP port)."""
        if self.line is not None:
            return self.bus.model_copy(update={"path": str(self.line.collector_end)})
        return self.bus.model_copy(update={"host": self.host, "port": self.port})

    def set_unit_silent(self, unit: int, silent: bool) -> None:
        """Switch a unit off (it stops answering) or on again."""
        if silent:
            self.silent.add(unit)
        else:
            self.silent.discard(unit)

    async def start(self) -> None:
        """Make the line (serial) and start serving every unit."""
        if self._server is not None:
            return
        devices = [sim_device(image, self._action(unit)) for unit, image in self.images.items()]
        devices.append(_nobody())
        framer = FramerType.RTU if self.bus.framer is Framer.RTU else FramerType.ASCII
        server: ModbusSerialServer | ModbusTcpServer
        if self.line is not None:
            await self.line.start()
            bus = self.bus
            server = ModbusSerialServer(devices, framer=framer, port=str(self.line.simulator_end),
                                        baudrate=bus.baudrate, bytesize=bus.bytesize,
                                        parity=bus.parity.value, stopbits=bus.stopbits,
                                        trace_packet=self._on_the_wire)
        else:
            server = ModbusTcpServer(devices, framer=framer, address=(self.host, self.port),
                                     trace_packet=self._on_the_wire)
        try:
            await server.serve_forever(background=True)
        except BaseException:
            if self.line is not None:
                await self.line.stop()
            raise
        if self.line is None and self.port == 0:
            listener = cast(asyncio.Server, server.transport)
            self.port = listener.sockets[0].getsockname()[1]
        self._server = server
        log.info("simulated Modbus bus %s: units %s on %s", self.bus.id, sorted(self.images),
                 self.path or f"{self.host}:{self.port} (RTU over TCP)")

    async def stop(self) -> None:
        """Stop serving and remove the line."""
        server, self._server = self._server, None
        if server is not None:
            for handler in list(getattr(server, "active_connections", {}).values()):
                handler.close()
            await server.shutdown()  # type: ignore[no-untyped-call]
        if self.line is not None:
            await self.line.stop()

    def _action(self, unit: int) -> Access:
        image = self.images[unit]

        async def on_access(function_code: int, start_address: int, address: int, count: int,
                            registers: list[int], set_values: list[int] | list[bool] | None,
                            ) -> ExcCodes | None:
            if unit in self.silent:
                return ExcCodes.DEVICE_FAILURE  # never sent: see _on_the_wire
            (self.writes if set_values is not None else self.reads)[unit] += 1
            return serve(image, function_code, start_address, address, registers, set_values)

        return on_access

    def _on_the_wire(self, sending: bool, frame: bytes) -> bytes:
        """Drop the answers of units that are off or not on the line: silence, as on RS-485."""
        if not sending or not frame:
            return frame
        unit = frame[0] if self.bus.framer is Framer.RTU else _ascii_unit(frame)
        if unit not in self.images or unit in self.silent:
            return b""
        return frame


def _ascii_unit(frame: bytes) -> int:
    try:
        return int(frame[1:3], 16)
    except ValueError:
        return -1


def _nobody() -> SimDevice:
    """The device pymodbus answers unknown unit ids with (its answers are never sent)."""
    bits = [SimData(65535, values=False, datatype=SimType.BITS, readonly=True)]
    registers = [SimData(65535, datatype=SimType.INVALID)]
    return SimDevice(id=ANY_UNIT, simdata=(bits, list(bits), registers, list(registers)))


class SimulatedBuses:
    """Every bus of a site, served from the model's values."""

    def __init__(self, site: Site, value_of: ValueSource, command: CommandSink, *,
                 ports: dict[str, int] | None = None, host: str | None = None,
                 serial_dir: Path | None = None) -> None:
        self.site = site
        ports = ports or {}
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        self.servers: dict[str, BusServer] = {}
        self.images: dict[str, DeviceImage] = {}
        for bus in site.buses:
            units = site.units_on(bus.id)
            images = [DeviceImage(d, value_of, command) for d in units]
            self.images.update({image.device.id: image for image in images})
            self.servers[bus.id] = BusServer(bus, images, collector_end=self._near_end(bus, serial_dir),
                                             host=host, port=ports.get(bus.id))

    def _near_end(self, bus: ModbusBus, serial_dir: Path | None) -> Path | None:
        """Where the collector's end of a serial bus goes: its path if free, else a temporary folder."""
        if bus.transport is not BusTransport.SERIAL:
            return None
        path = Path(bus.path or bus.id)
        if serial_dir is None and can_make(path):
            return path
        if serial_dir is None:
            if self._temp is None:
                self._temp = tempfile.TemporaryDirectory(prefix="pumpwatch-sim-serial-")
            serial_dir = Path(self._temp.name)
        return serial_dir / bus.id

    def server_of(self, device_id: str) -> BusServer | None:
        """The bus server a device is a unit of, or None for a device not on a bus."""
        device = next((d for d in self.site.modbus if d.id == device_id), None)
        if device is None or device.bus is None:
            return None
        return self.servers[device.bus]

    def served_buses(self) -> tuple[ModbusBus, ...]:
        """The site's buses as the collector reaches the simulated ones."""
        return tuple(self.servers[b.id].served_bus() for b in self.site.buses)

    async def start(self) -> None:
        """Start every bus."""
        for server in self.servers.values():
            await server.start()

    async def stop(self) -> None:
        """Stop every bus and remove the temporary folder of serial line ends."""
        for server in self.servers.values():
            await server.stop()
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None
