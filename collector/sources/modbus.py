"""Modbus polling: one task per device, each with its own schedule, lock and health.

A device is reached through a link (`collector.sources.modbus_link`): its own Modbus TCP connection,
or a shared RS-485 bus (`collector.sources.modbus_bus`, serial RTU/ASCII or RTU over TCP through a
transparent gateway) whose units send their requests one at a time.

A device's poll cycle reads its merged blocks in turn, timestamps each block when it is requested,
and hands the decoded readings to the sink. An exception response splits a merged block into
single-point reads, so one bad address only flags its own point. Timeouts and lost connections mark
the device degraded, then offline; a TCP device reconnects by itself with a jittered backoff, a unit
on a bus rests for a back-off while the line serves the others (the policy is in modbus_bus.py).
Devices never wait for one another beyond the one request in flight on a shared line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from collector.estates import source_view
from collector.metrics import CollectorMetrics
from collector.pipeline.sink import ReadingSink
from collector.sources.base import SourceContext
from collector.sources.modbus_bus import BusLink
from collector.sources.modbus_link import DeviceError, Link, TcpLink
from collector.sources.modbus_plan import CodeKey, PlannedPoint, ReadBlock, plan_reads
from pumpwatch.backoff import Backoff
from pumpwatch.clock import Clock
from pumpwatch.errors import SourceUnavailable
from pumpwatch.readings import Quality, Reading
from pumpwatch.registers import PointCodec, RegisterValueError
from pumpwatch.site import DataType, ModbusBus, ModbusDevice, ModbusPoint, Table

__all__ = ["DeviceError", "DeviceHealth", "DevicePoller", "DeviceState", "ModbusCollector"]

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


def unit_backoff(device: ModbusDevice) -> Backoff:
    """How long a dead unit on a shared line rests between tries (see modbus_bus.py)."""
    interval = device.poll_interval
    return Backoff(first=2 * interval, cap=max(60.0, 10 * interval))


class DevicePoller:
    """Polls one device forever; `write` serialises commands with the polls."""

    def __init__(self, device: ModbusDevice, sink: ReadingSink, metrics: CollectorMetrics,
                 clock: Clock, *, backoff: Backoff | None = None, phase: float = 0.0,
                 link: Link | None = None) -> None:
        self.device = device
        self.phase = phase  # share of the interval to wait before the first poll (spreads devices)
        self.sink = sink
        self.metrics = metrics
        self.clock = clock
        self.link: Link = link if link is not None else TcpLink(device)
        self.blocks: list[ReadBlock] = plan_reads(device)
        self.health = DeviceHealth(since=clock.now())
        default_backoff = unit_backoff(device) if self.link.shared else Backoff(first=0.5, cap=10.0)
        self.backoff = backoff or default_backoff  # a dead device (or unit) waits this long to retry
        # A shared line that cannot be opened is retried sooner than a dead unit on an open line.
        self._reconnect = Backoff(first=0.5, cap=10.0) if self.link.shared else self.backoff
        self.lock = asyncio.Lock()
        self.polls = 0  # poll cycles started (tests measure a unit's period with it)
        self._resting = False  # a unit on a shared line that went offline waits out its back-off
        self._last: dict[str, float] = {}
        self._codes: dict[CodeKey, int] = {}  # decimal-point codes as last read
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
                    await asyncio.sleep(self._reconnect.next())
                    continue
                self._reconnect.reset()
                self._resting = False
                due = time.monotonic()
                while self._usable():
                    await self.poll_once()
                    _stop_if_cancelled()
                    due += interval
                    delay = due - time.monotonic()
                    if delay < 0:  # the cycle overran: skip the missed slots, keep the phase
                        self.metrics.overruns.labels(device=self.device.id).inc()
                        due += -(delay // interval) * interval
                        delay = due - time.monotonic()
                    await asyncio.sleep(delay)
                # The unit rests (it stopped answering), or the line went away (open it again soon).
                pause = self.backoff if self._resting or not self.link.shared else self._reconnect
                await asyncio.sleep(pause.next())
        finally:
            self._close()

    def _usable(self) -> bool:
        return self.link.is_open() and not self._resting

    async def poll_once(self) -> None:
        """Read every block once and hand the readings to the sink."""
        started = time.perf_counter()
        self.polls += 1
        readings: list[Reading] = []
        failed = refused = 0
        async with self.lock:
            for block in list(self.blocks):
                if not self.link.is_open():
                    break
                try:
                    readings += await self._read_block(block)
                except DeviceError as err:
                    refused += 1
                    readings += await self._after_exception(block, str(err))
                except SourceUnavailable as err:
                    failed += 1
                    self._set_error(str(err))
                    if not self.link.is_open():
                        self._close()
                        break
                    if self.link.shared:
                        break  # a unit that does not answer costs the line one timeout per cycle
        duration = time.perf_counter() - started
        self.metrics.poll_duration.labels(device=self.device.id).observe(duration)
        if readings:
            self.sink.accept(readings, self._source)
        self._after_cycle(failed, refused)

    async def _read_block(self, block: ReadBlock) -> list[Reading]:
        # The poll time is when the request goes out, not arrival or write time.
        ts, words = await self.link.read(self.device.unit, block.table, block.start, block.count,
                                         self.device.timeout, self.clock.now)
        for key, code in block.decode_codes(words):
            if isinstance(code, Exception):
                self._codes.pop(key, None)  # the points it scales are undecodable until it is sane
                self.sink.reject(self._source, "undecodable", str(code))
            else:
                self._codes[key] = code
        readings = []
        for planned, value in block.decode(words, self._codes):
            if isinstance(value, Exception):
                self.sink.reject(self._source, "undecodable", f"{planned.sensor}: {value}")
                continue
            readings.append(Reading(planned.sensor, ts, value))
            self._last[planned.sensor] = value
        return readings

    async def _after_exception(self, block: ReadBlock, error: str) -> list[Reading]:
        """Split a merged block so the good points keep coming; flag the points that fail alone."""
        if len(block.points) + len(block.codes) > 1:
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
                    for code in single.codes:
                        self._codes.pop(code.key, None)
                except SourceUnavailable as err:
                    self._set_error(str(err))
                    break
            return readings
        for code in block.codes:
            self._codes.pop(code.key, None)
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
        if not self.link.is_open() or self.health.failures >= OFFLINE_AFTER:
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
        self._resting = self.link.is_open()  # the device, not its line, stopped answering
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
        unit, timeout = self.device.unit, self.device.timeout
        if point.table is Table.COIL:
            words = [1 if value >= 0.5 else 0]
        else:
            current = 0
            if point.type is DataType.BIT and point.bit is not None:
                _ts, read = await self.link.read(unit, Table.HOLDING, point.address, 1, timeout,
                                                 self.clock.now)
                current = read[0]
            try:
                words = codec.encode(value, current)
            except RegisterValueError as err:
                raise ValueError(f"{point.sensor}: {err}") from err
        try:
            await self.link.write(unit, point.table, point.address, words, timeout)
        except DeviceError as err:
            raise DeviceError(f"write {point.sensor}: {err}") from err

    # --- connection ----------------------------------------------------------------------------

    async def _connected(self) -> bool:
        if self.link.is_open():
            return True
        self._close()
        error = await self.link.open()
        if error is not None:
            self._set_error(error)
            self._go_offline()
            return False
        return True

    def _close(self) -> None:
        """Close this device's own connection; a shared line stays open for the other units."""
        if not self.link.shared:
            self.link.close()


PHASE_SLOTS = 5  # groups of devices polled at different moments of the interval


class ModbusCollector:
    """The Modbus source: all device pollers of this collector (its shard), and command routing to them."""

    name = "modbus"

    def __init__(self, devices: Sequence[ModbusDevice], sink: ReadingSink, metrics: CollectorMetrics,
                 clock: Clock, buses: Sequence[ModbusBus] = ()) -> None:
        # One link per bus, shared by its units; a TCP device gets its own in its poller.
        self.links = {bus.id: BusLink(bus, [d for d in devices if d.bus == bus.id]) for bus in buses
                      if any(d.bus == bus.id for d in devices)}
        unknown = sorted({d.bus for d in devices if d.bus is not None} - set(self.links))
        if unknown:
            raise ValueError(f"Modbus devices name unknown bus {unknown[0]!r}")
        # Devices start in PHASE_SLOTS groups spread over their interval: requests do not all fall on
        # one instant, while each group still shares the event loop's wake-ups and one commit.
        slots = min(len(devices), PHASE_SLOTS)
        self.pollers = {d.id: DevicePoller(d, sink, metrics, clock, phase=(i % slots) / slots,
                                           link=self.links[d.bus] if d.bus is not None else None)
                        for i, d in enumerate(devices)}
        self._by_sensor = {p.sensor: poller for poller in self.pollers.values()
                           for p in poller.device.points}

    async def run(self) -> None:
        """Run every device's poller until cancelled; each in its own task."""
        if not self.pollers:
            await asyncio.Event().wait()
        try:
            async with asyncio.TaskGroup() as tasks:
                for device_id, poller in self.pollers.items():
                    tasks.create_task(poller.run(), name=f"modbus-{device_id}")
        finally:
            for link in self.links.values():
                link.close()

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


def sources_from_site(context: SourceContext) -> list[ModbusCollector]:
    """The Modbus source for one estate's devices (those of `COLLECTOR__SHARD` when one is set).

    Its devices feed sensor keys (`<estate>/<sensor>`) and are named `<estate>/<device>`.
    """
    shard = context.settings.collector.shard
    site = source_view(context.site)
    devices = [d for d in site.modbus if shard is None or d.shard == shard]
    if not devices:
        return []
    return [ModbusCollector(devices, context.sink, context.metrics, context.clock, site.buses)]
