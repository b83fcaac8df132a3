"""An RS-485 line shared by many Modbus units: one connection, one lock, one request queue.

A bus is reached through a serial port of this machine (Modbus RTU or ASCII framing) or through a
serial-to-Ethernet gateway in transparent mode (RTU frames over TCP). Every unit on it keeps its own
poller, schedule and health (`collector.sources.modbus.DevicePoller`), but their requests go out one
at a time, in the order they were asked for (asyncio's lock is first come, first served), each after
the line has been silent for the bus's inter-frame delay.

Scheduling policy on a shared line (how one dead unit is kept from stalling the others):
- a unit waits at most its own timeout for an answer; a unit that does not answer ends its poll
  cycle there (its remaining reads are not tried), so it costs the line one timeout per cycle;
- after 3 such cycles in a row the unit is offline and rests: it is tried again (one read) after a
  jittered back-off of twice its poll interval, doubling up to ten times its interval (at least
  60 s); any answer brings it back to its own period at once;
- the other units keep their period throughout; their requests wait in the queue behind at most the
  one request in flight;
- pymodbus never drops the shared connection because units are silent; a gateway connection on
  which no unit has answered for 3 requests per unit in a row is closed and opened again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from collector.sources.modbus_link import DeviceError, Stamp, read_with, write_with
from pumpwatch.backoff import Backoff
from pumpwatch.errors import SourceUnavailable
from pumpwatch.site import BusTransport, Framer, ModbusBus, ModbusDevice, Table

log = logging.getLogger(__name__)

T = TypeVar("T")
NEVER_DROP = 2**30  # pymodbus's count of unanswered requests before it closes a TCP connection


class BusLink:
    """The shared connection of one bus; every unit's poller sends through it."""

    shared = True

    def __init__(self, bus: ModbusBus, units: Sequence[ModbusDevice]) -> None:
        self.bus = bus
        self.label = f"bus {bus.id} ({bus.address})"
        # pymodbus's own wait: the longest unit timeout; each request is cut at its unit's timeout.
        self.timeout = max((d.timeout for d in units), default=bus.timeout)
        self.units = len(units)
        self.requests = 0  # requests sent, and of them not answered (for tests and diagnostics)
        self.unanswered = 0
        self._lock = asyncio.Lock()
        self._open_lock = asyncio.Lock()
        self._client: ModbusBaseClient | None = None
        self._quiet_until = 0.0  # monotonic time from which the line has been silent long enough
        self._silent = 0  # requests in a row that no unit answered
        self._backoff = Backoff(first=0.5, cap=10.0)
        self._retry_at = 0.0
        self._last_error: str | None = None

    # --- connection ------------------------------------------------------------------------------

    def is_open(self) -> bool:
        """Whether the serial port or the gateway connection is open."""
        return self._client is not None and bool(self._client.connected)

    async def open(self) -> str | None:
        """Open the line if it is not (one attempt per back-off, whichever unit asks)."""
        async with self._open_lock:
            if self.is_open():
                return None
            now = time.monotonic()
            if now < self._retry_at:
                return self._last_error
            self.close()
            client = self._make_client()
            error = None
            try:
                async with asyncio.timeout(self.timeout * 2 + 1):
                    ok = await client.connect()
            except (TimeoutError, OSError, ModbusException) as err:
                ok, error = False, f"{type(err).__name__}: {err}"
            if not ok:
                client.close()
                self._last_error = f"{self._cannot_open()}{f' ({error})' if error else ''}"
                self._retry_at = time.monotonic() + self._backoff.next()
                log.warning("Modbus %s: %s", self.label, self._last_error)
                return self._last_error
            client.set_max_no_responses(NEVER_DROP)  # a silent unit must not close the shared line
            self._client = client
            self._silent = 0
            self._backoff.reset()
            self._retry_at = 0.0
            log.info("Modbus %s open", self.label)
            return None

    def close(self) -> None:
        """Close the line; it opens again on the next `open`."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _cannot_open(self) -> str:
        bus = self.bus
        if bus.transport is BusTransport.SERIAL:
            path = bus.path or ""
            missing = "://" not in path and not os.path.exists(path)
            return f"cannot open serial port {path}" + (": no such device" if missing else "")
        return f"cannot connect to gateway {bus.host}:{bus.tcp_port}"

    def _make_client(self) -> ModbusBaseClient:
        bus = self.bus
        framer = FramerType.RTU if bus.framer is Framer.RTU else FramerType.ASCII
        if bus.transport is BusTransport.SERIAL:
            return AsyncModbusSerialClient(bus.path or "", framer=framer, baudrate=bus.baudrate,
                                           bytesize=bus.bytesize, parity=bus.parity.value,
                                           stopbits=bus.stopbits, handle_local_echo=bus.local_echo,
                                           timeout=self.timeout, retries=0, reconnect_delay=0,
                                           name=f"bus-{bus.id}")
        return AsyncModbusTcpClient(bus.host or "", port=bus.tcp_port, framer=framer,
                                    timeout=self.timeout, retries=0, reconnect_delay=0,
                                    name=f"bus-{bus.id}")

    # --- requests --------------------------------------------------------------------------------

    async def read(self, unit: int, table: Table, start: int, count: int, within: float,
                   stamp: Stamp) -> tuple[float, list[int]]:
        """Read for one unit, in turn with every other unit of the line."""
        return await self._in_turn(
            lambda client: read_with(client, unit, table, start, count, within), stamp)

    async def write(self, unit: int, table: Table, address: int, values: list[int],
                    within: float) -> None:
        """Write for one unit, in turn with every other unit of the line."""
        await self._in_turn(lambda client: write_with(client, unit, table, address, values, within),
                            time.time)

    async def _in_turn(self, request: Callable[[ModbusBaseClient], Awaitable[T]],
                       stamp: Stamp) -> tuple[float, T]:
        async with self._lock:
            client = self._client
            if client is None or not client.connected:
                raise SourceUnavailable(f"Modbus {self.label} is not open")
            wait = self._quiet_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # the silent interval that ends the previous frame
            ts = stamp()
            self.requests += 1
            try:
                result = await request(client)
            except SourceUnavailable:
                self.unanswered += 1
                self._silent += 1
                if (self.bus.transport is BusTransport.TCP and self.units
                        and self._silent >= 3 * self.units):
                    log.warning("Modbus %s: no unit answered %d requests in a row; reconnecting",
                                self.label, self._silent)
                    self.close()
                raise
            except DeviceError:
                self._silent = 0
                raise
            finally:
                self._quiet_until = time.monotonic() + self.bus.frame_gap
            self._silent = 0
            return ts, result
