"""Modbus TCP polling: one task per device, each with its own connection, lock, timeout and health.

A device's poll cycle reads its merged blocks in turn, timestamps each block when it is requested,
and hands the decoded readings to the sink. An exception response splits a merged block into
single-point reads, so one bad address only flags its own point. Timeouts and lost connections mark
the device degraded, then offline, and it reconnects by itself with a jittered backoff. Devices
never wait for one another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from collector.metrics import CollectorMetrics
from collector.pipeline.sink import ReadingSink
from collector.sources.base import SourceContext
from collector.sources.modbus_plan import PlannedPoint, ReadBlock, plan_reads
from pumpwatch.backoff import Backoff
from pumpwatch.clock import Clock
from pumpwatch.errors import SourceUnavailable
from pumpwatch.readings import Quality, Reading
from pumpwatch.registers import PointCodec, RegisterValueError
from pumpwatch.site import DataType, ModbusDevice, ModbusPoint, Table

log = logging.getLogger(__name__)

OFFLINE_AFTER = 3  # failed cycles in a row before a connected device counts as offline


class DeviceState(IntEnum):
    """Health of a device, as the `pumpwatch_modbus_device_state` gauge shows it."""

    OFFLINE = 0
    DEGRADED = 1
    ONLINE = 2


@dataclass
class DeviceHealth:
    """What an operator wants to know about a device: state, since when, and the last error."""

    state: DeviceState = DeviceState.OFFLINE
    since: float = 0.0
    last_error: str | None = None
    last_poll: float | None = None
    failures: int = 0  # failed cycles in a row


class DeviceError(Exception):
    """A read or write answered with a Modbus exception code."""


class DevicePoller:
    """Polls one device forever; `write` serialises commands with the polls."""

    def __init__(self, device: ModbusDevice, sink: ReadingSink, metrics: CollectorMetrics,
                 clock: Clock, *, backoff: Backoff | None = None, phase: float = 0.0) -> None:
        self.device = device
        self.phase = phase  # share of the interval to wait before the first poll (spreads devices)
        self.sink = sink
        self.metrics = metrics
        self.clock = clock
        self.blocks: list[ReadBlock] = plan_reads(device)
        self.health = DeviceHealth(since=clock.now())
        self.backoff = backoff or Backoff(first=0.5, cap=10.0)
        self.lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | None = None
        self._last: dict[str, float] = {}
        self._source = f"modbus:{device.id}"
        self._points = {p.sensor: p for p in device.points}
        metrics.device_state.labels(device=device.id).set(DeviceState.OFFLINE)

    # --- polling -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll at the device's interval until cancelled; never raises for device trouble."""
        interval = self.device.poll_interval
        try:
            await asyncio.sleep(self.phase * interval)
            while True:
                connected = await self._connected()
                _stop_if_cancelled()
                if not connected:
                    await asyncio.sleep(self.backoff.next())
                    continue
                due = time.monotonic()
                while self._client is not None:
                    await self.poll_once()
                    _stop_if_cancelled()
                    due += interval
                    delay = due - time.monotonic()
                    if delay < 0:  # the cycle overran: skip the missed slots, keep the phase
                        self.metrics.overruns.labels(device=self.device.id).inc()
                        due += -(delay // interval) * interval
                        delay = due - time.monotonic()
                    await asyncio.sleep(delay)
                await asyncio.sleep(self.backoff.next())
        finally:
            self._close()

    async def poll_once(self) -> None:
        """Read every block once and hand the readings to the sink."""
        started = time.perf_counter()
        readings: list[Reading] = []
        failed = refused = 0
        async with self.lock:
            for block in list(self.blocks):
                if self._client is None:
                    break
                try:
                    readings += await self._read_block(block)
                except DeviceError as err:
                    refused += 1
                    readings += await self._after_exception(block, str(err))
                except SourceUnavailable as err:
                    failed += 1
                    self._set_error(str(err))
                    if not self._client_connected():
                        self._close()
                        break
        duration = time.perf_counter() - started
        self.metrics.poll_duration.labels(device=self.device.id).observe(duration)
        if readings:
            self.sink.accept(readings, self._source)
        self._after_cycle(failed, refused)

    async def _read_block(self, block: ReadBlock) -> list[Reading]:
        ts = self.clock.now()  # poll time, not arrival or write time
        words = await self._read(block.table, block.start, block.count)
        readings = []
        for planned, value in block.decode(words):
            if isinstance(value, Exception):
                self.sink.reject(self._source, "undecodable", f"{planned.sensor}: {value}")
                continue
            readings.append(Reading(planned.sensor, ts, value))
            self._last[planned.sensor] = value
        return readings

    async def _after_exception(self, block: ReadBlock, error: str) -> list[Reading]:
        """Split a merged block so the good points keep coming; flag the points that fail alone."""
        if len(block.points) > 1:
            log.warning("%s: read %s %d+%d answered %s; reading its points one by one",
                        self.device.id, block.table, block.start, block.count, error)
            index = self.blocks.index(block)
            singles = block.split()
            self.blocks[index : index + 1] = singles
            readings: list[Reading] = []
            for single in singles:
                try:
                    readings += await self._read_block(single)
                except DeviceError as err:
                    readings += self._flag(single.points, str(err))
                except SourceUnavailable as err:
                    self._set_error(str(err))
                    break
            return readings
        return self._flag(block.points, error)

    def _flag(self, points: Sequence[PlannedPoint], error: str) -> list[Reading]:
        self._set_error(error)
        ts = self.clock.now()
        return [Reading(p.sensor, ts, self._last[p.sensor], Quality.DEVICE_ERROR)
                for p in points if p.sensor in self._last]

    def _after_cycle(self, failed: int, refused: int) -> None:
        """Timeouts count towards offline; exception responses only degrade (the device answers)."""
        device = self.device.id
        if failed == 0:
            self.metrics.polls.labels(device=device, outcome="ok" if not refused else "exception").inc()
            self.health.failures = 0
            self.health.last_poll = self.clock.now()
            self.backoff.reset()
            self._set_state(DeviceState.DEGRADED if refused else DeviceState.ONLINE)
            return
        self.metrics.polls.labels(device=device, outcome="error").inc()
        self.health.failures += 1
        if self._client is None or self.health.failures >= OFFLINE_AFTER:
            self._go_offline()
        else:
            self._set_state(DeviceState.DEGRADED)

    def _go_offline(self) -> None:
        if self.health.state is not DeviceState.OFFLINE:
            ts = self.clock.now()
            stale = [Reading(sensor, ts, value, Quality.STALE) for sensor, value in self._last.items()]
            if stale:
                self.sink.accept(stale, self._source)  # the board shows the last values as stale
        self._set_state(DeviceState.OFFLINE)
        self._close()

    def _set_state(self, state: DeviceState) -> None:
        if state is not self.health.state:
            log.log(logging.INFO if state is DeviceState.ONLINE else logging.WARNING,
                    "Modbus device %s %s%s", self.device.id, state.name.lower(),
                    f" ({self.health.last_error})" if state is not DeviceState.ONLINE else "")
            self.health.state = state
            self.health.since = self.clock.now()
        if state is DeviceState.ONLINE:
            self.health.last_error = None
        self.metrics.device_state.labels(device=self.device.id).set(state)

    def _set_error(self, error: str) -> None:
        self.health.last_error = error

    # --- commands ------------------------------------------------------------------------------

    async def write(self, sensor: str, value: float) -> None:
        """Write a command point (start/stop, duty select); serialised with the polls."""
        point = self._points.get(sensor)
        if point is None or not point.writable or not point.table.is_writable:
            raise ValueError(f"{sensor!r} is not a writable point of Modbus device {self.device.id}")
        codec = PointCodec.for_point(point, self.device)
        async with self.lock:
            if not await self._connected():
                raise SourceUnavailable(f"Modbus device {self.device.id} is offline "
                                        f"({self.health.last_error})")
            await self._write_point(point, codec, value)
        log.info("Modbus device %s: wrote %s = %s", self.device.id, sensor, value)

    async def _write_point(self, point: ModbusPoint, codec: PointCodec, value: float) -> None:
        client = self._require_client()
        unit = self.device.unit
        if point.table is Table.COIL:
            resp: Any = await self._call(lambda: client.write_coil(point.address, value >= 0.5,
                                                                  device_id=unit))
        else:
            current = 0
            if point.type is DataType.BIT and point.bit is not None:
                current = (await self._read(Table.HOLDING, point.address, 1))[0]
            try:
                registers = codec.encode(value, current)
            except RegisterValueError as err:
                raise ValueError(f"{point.sensor}: {err}") from err
            resp = await self._call(lambda: client.write_registers(point.address, registers,
                                                                   device_id=unit))
        if resp.isError():
            raise DeviceError(f"write {point.sensor}: {_exception_text(resp)}")

    # --- connection ----------------------------------------------------------------------------

    async def _connected(self) -> bool:
        if self._client is not None and self._client_connected():
            return True
        self._close()
        client = AsyncModbusTcpClient(self.device.host, port=self.device.port,
                                      timeout=self.device.timeout, retries=0, reconnect_delay=0)
        try:
            async with asyncio.timeout(self.device.timeout * 2 + 1):
                ok = await client.connect()
        except (TimeoutError, OSError, ModbusException) as err:
            ok = False
            self._set_error(f"connect: {type(err).__name__}: {err}")
        if not ok:
            client.close()
            if self.health.last_error is None or not self.health.last_error.startswith("connect"):
                self._set_error(f"cannot connect to {self.device.host}:{self.device.port}")
            self._go_offline()
            return False
        self._client = client
        return True

    def _client_connected(self) -> bool:
        return self._client is not None and bool(self._client.connected)

    def _require_client(self) -> AsyncModbusTcpClient:
        if self._client is None:
            raise SourceUnavailable(f"Modbus device {self.device.id} is not connected")
        return self._client

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _read(self, table: Table, start: int, count: int) -> list[int]:
        client = self._require_client()
        unit = self.device.unit
        read = {Table.HOLDING: client.read_holding_registers, Table.INPUT: client.read_input_registers,
                Table.COIL: client.read_coils, Table.DISCRETE: client.read_discrete_inputs}[table]
        resp: Any = await self._call(lambda: read(start, count=count, device_id=unit))
        if resp.isError():
            raise DeviceError(_exception_text(resp))
        if table.is_bit_table:
            return [1 if bit else 0 for bit in resp.bits[:count]]
        words: list[int] = resp.registers
        if len(words) != count:
            raise DeviceError(f"asked for {count} registers, got {len(words)}")
        return words

    async def _call(self, request: Callable[[], Awaitable[Any]]) -> Any:
        """Send one request; every way it can fail becomes SourceUnavailable."""
        try:
            async with asyncio.timeout(self.device.timeout * 2):
                return await request()
        except (TimeoutError, ModbusException, OSError) as err:
            raise SourceUnavailable(f"{type(err).__name__}: {err}".strip(": ")) from err


PHASE_SLOTS = 5  # groups of devices polled at different moments of the interval


class ModbusCollector:
    """The Modbus source: all device pollers of this collector (its shard), and command routing to them."""

    name = "modbus"

    def __init__(self, devices: Sequence[ModbusDevice], sink: ReadingSink, metrics: CollectorMetrics,
                 clock: Clock) -> None:
        # Devices start in PHASE_SLOTS groups spread over their interval: requests do not all fall on
        # one instant, while each group still shares the event loop's wake-ups and one commit.
        slots = min(len(devices), PHASE_SLOTS)
        self.pollers = {d.id: DevicePoller(d, sink, metrics, clock, phase=(i % slots) / slots)
                        for i, d in enumerate(devices)}
        self._by_sensor = {p.sensor: poller for poller in self.pollers.values()
                           for p in poller.device.points}

    async def run(self) -> None:
        """Run every device's poller until cancelled; each in its own task."""
        if not self.pollers:
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tasks:
            for device_id, poller in self.pollers.items():
                tasks.create_task(poller.run(), name=f"modbus-{device_id}")

    def can_write(self, sensor: str) -> bool:
        """Whether a device of this collector has a point for `sensor`."""
        return sensor in self._by_sensor

    async def write(self, sensor: str, value: float) -> None:
        """Command a writable point by its sensor id."""
        poller = self._by_sensor.get(sensor)
        if poller is None:
            raise ValueError(f"no Modbus device of this collector has a point for {sensor!r}")
        await poller.write(sensor, value)

    def health(self) -> dict[str, DeviceHealth]:
        """Each device's health by id."""
        return {device_id: poller.health for device_id, poller in self.pollers.items()}


def _stop_if_cancelled() -> None:
    """Honour a cancellation that a library swallowed.

    pymodbus awaits through `asyncio.wait_for`, which on Python 3.11 can return a result and drop the
    CancelledError when the cancel arrives just as the response does; the request to cancel is still
    counted on the task, so the poller ends here instead of polling on and blocking shutdown.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _exception_text(resp: Any) -> str:
    code = getattr(resp, "exception_code", None)
    names = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
             4: "device failure", 5: "acknowledge", 6: "device busy", 10: "gateway path unavailable",
             11: "gateway target failed to respond"}
    return f"exception {code} ({names.get(code, 'unknown')})" if code is not None else str(resp)


def sources_from_site(context: SourceContext) -> list[ModbusCollector]:
    """The Modbus source for the site's devices (those of `COLLECTOR__SHARD` when one is set)."""
    shard = context.settings.collector.shard
    devices = [d for d in context.site.modbus if shard is None or d.shard == shard]
    if not devices:
        return []
    return [ModbusCollector(devices, context.sink, context.metrics, context.clock)]
