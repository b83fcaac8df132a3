"""Modbus polling against real Modbus TCP servers on loopback: merging, decoding, faults, commands."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
import yaml

from collector.metrics import CollectorMetrics
from collector.pipeline.sink import OnDurable
from collector.sources.modbus import DevicePoller, DeviceState, ModbusCollector
from collector.sources.modbus_plan import MAX_REGISTERS, plan_reads
from pumpwatch.clock import SystemClock
from pumpwatch.readings import Quality, Reading
from pumpwatch.site import ModbusDevice
from simulators.modbus_server import DeviceImage, DeviceServer


@dataclass
class RecordingSink:
    """A ReadingSink that keeps what it is given."""

    readings: list[Reading] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def accept(self, readings: Sequence[Reading], source: str, on_durable: OnDurable | None = None,
               key: str | None = None) -> None:
        self.readings.extend(readings)
        if on_durable is not None:
            on_durable()

    def delivered(self, key: str) -> bool:
        return False

    def reject(self, source: str, reason: str, detail: str) -> None:
        self.rejected.append((reason, detail))

    def of(self, sensor: str) -> list[Reading]:
        return [r for r in self.readings if r.sensor == sensor]


def _device(yaml_points: str, options: str) -> ModbusDevice:
    """A device from its points (YAML list items) and extra options like `max_gap: 4`."""
    base = {"id": "plc", "host": "127.0.0.1", "port": 1, "unit": 3, "poll_interval": 0.2, "timeout": 0.15}
    base.update(yaml.safe_load("{" + options + "}") or {})
    # The poller needs the device alone (sensors are the pipeline's business): validate just that.
    return ModbusDevice.model_validate({**base, "points": yaml.safe_load(yaml_points)})


MIXED = """
      - {sensor: u16, table: holding, address: 0, type: uint16, scale: 0.1}
      - {sensor: i16, table: holding, address: 1, type: int16}
      - {sensor: i32, table: holding, address: 2, type: int32, word_order: little}
      - {sensor: u32, table: holding, address: 4, type: uint32, byte_order: little}
      - {sensor: f32, table: holding, address: 6, type: float32}
      - {sensor: f32ll, table: holding, address: 8, type: float32, byte_order: little, word_order: little}
      - {sensor: f64, table: holding, address: 10, type: float64, word_order: little}
      - {sensor: bit3, table: holding, address: 14, type: bit, bit: 3}
      - {sensor: bit9, table: holding, address: 14, type: bit, bit: 9}
      - {sensor: ir, table: input, address: 100, type: int16, scale: 0.01, offset: -5}
      - {sensor: coil, table: coil, address: 7, type: bit, writable: true}
      - {sensor: di, table: discrete, address: 2, type: bit}
      - {sensor: cmd, table: holding, address: 40, type: uint16, writable: true}
"""
VALUES = {"u16": 6553.5, "i16": -1234.0, "i32": -123456789.0, "u32": 4000000000.0, "f32": 0.5,
          "f32ll": -2.25, "f64": 1234567.891011, "bit3": 1.0, "bit9": 0.0, "ir": -4.5, "coil": 1.0,
          "di": 1.0, "cmd": 7.0}


@contextlib.asynccontextmanager
async def served(dev: ModbusDevice, values: dict[str, float],
                 commands: list[tuple[str, float]] | None = None) -> AsyncIterator[DeviceServer]:
    def command(sensor: str, value: float) -> bool:
        if commands is not None:
            commands.append((sensor, value))
        values[sensor] = value
        return True

    server = DeviceServer(DeviceImage(dev, values.__getitem__, command), "127.0.0.1", 0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def at(dev: ModbusDevice, port: int) -> ModbusDevice:
    return dev.model_copy(update={"port": port})


@contextlib.asynccontextmanager
async def polling(poller: DevicePoller | ModbusCollector) -> AsyncIterator[None]:
    task = asyncio.create_task(poller.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: object, within: float = 10.0) -> None:
    """Wait until `check()` is true (polling every 50 ms), or fail."""
    assert callable(check)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


# --- request planning ---------------------------------------------------------------------------

def test_adjacent_points_merge_into_one_read_per_table() -> None:
    blocks = plan_reads(_device(MIXED, ""))
    shape = [(b.table.value, b.start, b.count) for b in blocks]
    assert shape == [("coil", 7, 1), ("discrete", 2, 1), ("holding", 0, 15), ("holding", 40, 1),
                     ("input", 100, 1)]
    holding = blocks[2]
    assert [(p.sensor, p.offset) for p in holding.points][:3] == [("u16", 0), ("i16", 1), ("i32", 2)]


def test_gaps_up_to_max_gap_are_read_through_and_larger_gaps_split() -> None:
    points = """
      - {sensor: a, table: holding, address: 0}
      - {sensor: b, table: holding, address: 5}
      - {sensor: c, table: holding, address: 20}
"""
    assert [(b.start, b.count) for b in plan_reads(_device(points, "max_gap: 4"))] == [(0, 6), (20, 1)]
    assert [(b.start, b.count) for b in plan_reads(_device(points, "max_gap: 14"))] == [(0, 21)]
    assert len(plan_reads(_device(points, "max_gap: 0"))) == 3


def test_a_read_never_exceeds_125_registers() -> None:
    points = "\n".join(f"      - {{sensor: p{i}, table: holding, address: {i * 2}, type: float32}}"
                       for i in range(200))
    blocks = plan_reads(_device(points, ""))
    assert all(b.count <= MAX_REGISTERS for b in blocks)
    assert sum(len(b.points) for b in blocks) == 200
    assert len(blocks) == 4  # 400 registers in reads of at most 125 (62 float32 each)


# --- polling real servers -------------------------------------------------------------------------

async def test_every_type_and_order_decodes_with_the_poll_timestamp() -> None:
    dev = _device(MIXED, "")
    values = dict(VALUES)
    sink = RecordingSink()
    clock = SystemClock()
    async with served(dev, values) as server:
        poller = DevicePoller(at(dev, server.port), sink, CollectorMetrics(), clock)
        before = clock.now()
        async with polling(poller):
            await until(lambda: {r.sensor for r in sink.readings} == set(VALUES))
        after = clock.now()
    latest = {r.sensor: r for r in sink.readings}
    for sensor, expected in VALUES.items():
        assert latest[sensor].value == pytest.approx(expected, rel=1e-7, abs=1e-9), sensor
        assert latest[sensor].quality is Quality.GOOD
        assert before <= latest[sensor].ts <= after
    assert poller.health.state is DeviceState.ONLINE
    assert server.reads >= 5  # one read per merged block per cycle, not one per point


async def test_an_exception_response_flags_only_the_points_it_concerns() -> None:
    served_points = MIXED
    polled_points = MIXED + "      - {sensor: ghost, table: holding, address: 45, type: uint16}\n"
    values = dict(VALUES)
    sink = RecordingSink()
    async with served(_device(served_points, ""), values) as server:
        poller = DevicePoller(at(_device(polled_points, ""), server.port), sink, CollectorMetrics(),
                              SystemClock())
        async with polling(poller):
            await until(lambda: len(sink.of("u16")) >= 3)
            values["u16"] = 12.3
            await until(lambda: sink.of("u16")[-1].value == pytest.approx(12.3))
    assert sink.of("ghost") == []  # never answered, so never stored as a value
    assert poller.health.state is DeviceState.DEGRADED
    assert "illegal data address" in (poller.health.last_error or "")
    assert {r.sensor for r in sink.readings} == set(VALUES)  # its neighbours all kept coming


async def test_a_dead_and_a_silent_device_never_delay_the_others_and_both_come_back() -> None:
    dev = _device(MIXED, "")
    values = dict(VALUES)
    silent = socket.socket()  # accepts connections, never answers: a hung gateway
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    metrics = CollectorMetrics()
    async with served(dev, values) as healthy, served(dev, dict(VALUES)) as dying:
        devices = [dev.model_copy(update={"id": "healthy", "port": healthy.port}),
                   dev.model_copy(update={"id": "dying", "port": dying.port}),
                   dev.model_copy(update={"id": "silent", "port": silent.getsockname()[1]})]
        sinks = {d.id: RecordingSink() for d in devices}
        collector = ModbusCollector([], RecordingSink(), metrics, SystemClock())
        collector.pollers = {d.id: DevicePoller(d, sinks[d.id], metrics, SystemClock()) for d in devices}
        async with polling(collector):
            await until(lambda: collector.pollers["dying"].health.state is DeviceState.ONLINE)
            await dying.stop()
            polls_before = len(sinks["healthy"].of("u16"))
            await asyncio.sleep(3.0)
            polls_during = len(sinks["healthy"].of("u16")) - polls_before
            assert polls_during >= 12  # 15 slots of 0.2 s: the healthy device kept its period
            state = collector.pollers["dying"].health.state
            assert state is DeviceState.OFFLINE
            assert collector.pollers["silent"].health.state is not DeviceState.ONLINE
            assert metrics.by_label(metrics.device_state, "device")["dying"] == 0
            stale = [r for r in sinks["dying"].readings if r.quality is Quality.STALE]
            assert {r.sensor for r in stale} == set(VALUES)  # last values marked stale once
            await dying.start()  # same port: the PLC is back
            await until(lambda: collector.pollers["dying"].health.state is DeviceState.ONLINE, 20)
            count = len(sinks["dying"].of("u16"))
            await until(lambda: len(sinks["dying"].of("u16")) > count + 3)
    silent.close()
    assert sinks["silent"].readings == []


def test_devices_start_spread_over_their_interval() -> None:
    dev = _device(MIXED, "")
    devices = [dev.model_copy(update={"id": f"plc-{i}", "port": 5020 + i}) for i in range(4)]
    collector = ModbusCollector(devices, RecordingSink(), CollectorMetrics(), SystemClock())
    assert [p.phase for p in collector.pollers.values()] == [0.0, 0.25, 0.5, 0.75]
    many = [dev.model_copy(update={"id": f"plc-{i}", "port": 5020 + i}) for i in range(12)]
    grouped = ModbusCollector(many, RecordingSink(), CollectorMetrics(), SystemClock())
    assert [p.phase for p in grouped.pollers.values()] == [0.0, 0.2, 0.4, 0.6, 0.8] * 2 + [0.0, 0.2]


async def test_commands_are_written_with_the_points_encoding_and_serialised_with_polls() -> None:
    dev = _device(MIXED, "")
    values = dict(VALUES)
    commands: list[tuple[str, float]] = []
    sink = RecordingSink()
    async with served(dev, values, commands) as server:
        collector = ModbusCollector([at(dev, server.port)], sink, CollectorMetrics(), SystemClock())
        async with polling(collector):
            await until(lambda: bool(sink.of("cmd")))
            await asyncio.gather(*(collector.write("cmd", float(n)) for n in range(1, 6)),
                                 collector.write("coil", 0.0))
            await until(lambda: sink.of("cmd")[-1].value == 5.0 and sink.of("coil")[-1].value == 0.0)
            with pytest.raises(ValueError, match="not a writable point"):
                await collector.write("u16", 1.0)
            with pytest.raises(ValueError, match="no Modbus device"):
                await collector.write("nowhere", 1.0)
            with pytest.raises(ValueError, match="outside"):
                await collector.write("cmd", 70000.0)
    assert ("coil", 0.0) in commands
    assert [v for s, v in commands if s == "cmd"] == [1.0, 2.0, 3.0, 4.0, 5.0]


async def test_pollers_stop_promptly_whenever_they_are_cancelled() -> None:
    dev = _device(MIXED, "").model_copy(update={"poll_interval": 0.02})
    async with served(dev, dict(VALUES)) as a, served(dev, dict(VALUES)) as b:
        devices = [dev.model_copy(update={"id": f"plc-{i}", "port": s.port})
                   for i, s in enumerate((a, b, a, b))]
        for attempt in range(20):  # cancels land at every point of a cycle: mid-request, mid-sleep
            sink = RecordingSink()
            collector = ModbusCollector(devices, sink, CollectorMetrics(), SystemClock())
            task = asyncio.create_task(collector.run())
            await until(lambda sink=sink: bool(sink.readings))  # polling
            await asyncio.sleep(0.003 * attempt)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=5)
            assert task in done, f"attempt {attempt}: the pollers did not stop"
