"""Modbus RTU on real lines: pymodbus RTU servers on a socat pseudo-terminal pair and on TCP.

The collector is configured by site file alone; an Eastron SDM630-style meter (float32 input
registers, big-endian words) is served by a plain pymodbus RTU server whose registers the test packs
with `struct`, independently of the project's codec, and what InfluxDB stores is compared exactly.
A dead unit shares a line with healthy ones: their poll period is measured with it and without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import struct
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from collector.metrics import CollectorMetrics
from collector.service import CollectorService
from collector.sources.modbus import DeviceState, ModbusCollector
from collector.sources.modbus_bus import BusLink
from collector.sources.modbus_plan import plan_reads
from pumpwatch.clock import SystemClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Quality
from pumpwatch.registers import bus_cycle
from pumpwatch.settings import CollectorSettings, InfluxSettings, MqttSettings, Settings
from pumpwatch.site import ModbusBus, Site, Table
from pumpwatch.sitefile import parse_site
from simulators.modbus_bus_server import BusServer
from simulators.modbus_server import DeviceImage
from simulators.serial_line import SerialLine
from tests.collector.test_modbus import RecordingSink, polling, until
from tests.support.influx import influx_query
from tests.support.services import InfluxDB, Mosquitto
from tests.support.waiting import eventually

# --- an SDM630-style meter, by its register map ----------------------------------------------------

# Input register (0-based, as the Eastron map's 3xxxx numbers minus 30001) -> the value it holds.
METER_VALUES = {
    0x0000: 231.7,  # phase 1 line-to-neutral voltage, V
    0x0006: 14.62,  # phase 1 current, A
    0x000C: 3120.5,  # phase 1 active power, W
    0x0018: -1850.25,  # phase 1 reactive power, VAr
    0x001E: 0.861,  # phase 1 power factor
    0x0046: 49.98,  # frequency, Hz
    0x0156: 18234.7,  # total active energy, kWh
}
METER_SENSORS = {  # sensor -> (kind, register, scale in the site file)
    "m-voltage": ("voltage", 0x0000, 1.0),
    "m-current": ("current", 0x0006, 1.0),
    "m-power": ("active_power", 0x000C, 0.001),
    "m-reactive": ("reactive_power", 0x0018, 0.001),
    "m-pf": ("power_factor", 0x001E, 1.0),
    "m-frequency": ("frequency", 0x0046, 1.0),
    "m-energy": ("energy", 0x0156, 1.0),
}
METER_UNIT = 7

METER_SITE = """
site: {id: meter-test, name: {zh: 电表测试, en: Meter test}}
rooms:
  - id: r1
    name: {zh: 泵房, en: Pump room}
    equipment:
      - id: cab
        type: cabinet
        sensors:
          - {id: m-voltage, kind: voltage, source: modbus}
          - {id: m-current, kind: current, source: modbus}
          - {id: m-power, kind: active_power, source: modbus}
          - {id: m-reactive, kind: reactive_power, source: modbus}
          - {id: m-pf, kind: power_factor, source: modbus}
          - {id: m-frequency, kind: frequency, source: modbus}
          - {id: m-energy, kind: energy, source: modbus}
buses:
  - BUS
modbus:
  - id: sdm630
    bus: line
    unit: 7
    poll_interval: 0.5
    points:
      - {sensor: m-voltage, table: input, address: 0x0000, type: float32}
      - {sensor: m-current, table: input, address: 0x0006, type: float32}
      - {sensor: m-power, table: input, address: 0x000C, type: float32, scale: 0.001}
      - {sensor: m-reactive, table: input, address: 0x0018, type: float32, scale: 0.001}
      - {sensor: m-pf, table: input, address: 0x001E, type: float32}
      - {sensor: m-frequency, table: input, address: 0x0046, type: float32}
      - {sensor: m-energy, table: input, address: 0x0156, type: float32}
"""


def float32(value: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


def meter_device(unit: int) -> SimDevice:
    """A pymodbus device holding METER_VALUES as big-endian float32 input registers."""
    words = [0] * 0x160
    for address, value in METER_VALUES.items():
        words[address : address + 2] = list(struct.unpack(">HH", struct.pack(">f", value)))
    bits = [SimData(65535, values=False, datatype=SimType.BITS, readonly=True)]
    return SimDevice(id=unit, simdata=(bits, list(bits), [SimData(65535, datatype=SimType.INVALID)],
                                       [SimData(0, values=words, datatype=SimType.REGISTERS)]))


@contextlib.asynccontextmanager
async def serial_line(tmp_path: Path) -> AsyncIterator[SerialLine]:
    """`socat -d -d pty,raw,echo=0,link=<a> pty,raw,echo=0,link=<b>`: the collector opens a."""
    line = SerialLine(tmp_path / "ttyRS485", tmp_path / "ttyRS485.far")
    await line.start()
    try:
        yield line
    finally:
        await line.stop()


@contextlib.asynccontextmanager
async def meter_on(transport: str, tmp_path: Path) -> AsyncIterator[str]:
    """A real pymodbus RTU server with the meter; yields the site file's bus entry that reaches it."""
    if transport == "serial":
        async with serial_line(tmp_path) as line:
            server = ModbusSerialServer(meter_device(METER_UNIT), framer=FramerType.RTU,
                                        port=str(line.simulator_end), baudrate=9600)
            await server.serve_forever(background=True)
            try:
                yield (f"{{id: line, transport: serial, path: {line.collector_end}, baudrate: 9600, "
                       "parity: N, bytesize: 8, stopbits: 1, framer: rtu, timeout: 0.3}")
            finally:
                await server.shutdown()  # type: ignore[no-untyped-call]
    else:
        tcp = ModbusTcpServer(meter_device(METER_UNIT), framer=FramerType.RTU,
                              address=("127.0.0.1", 0))
        await tcp.serve_forever(background=True)
        port = cast(asyncio.Server, tcp.transport).sockets[0].getsockname()[1]
        try:
            yield (f"{{id: line, transport: tcp, host: 127.0.0.1, port: {port}, framer: rtu, "
                   "timeout: 0.3}")
        finally:
            await tcp.shutdown()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("transport", ["serial", "tcp"])
async def test_an_sdm630_meter_on_an_rtu_line_arrives_exactly_in_influxdb(
        transport: str, tmp_path: Path, influxdb: InfluxDB, mosquitto: Mosquitto) -> None:
    database = f"rtu_{uuid.uuid4().hex[:8]}"
    async with meter_on(transport, tmp_path) as bus_entry:
        site = parse_site(METER_SITE.replace("BUS", bus_entry), "meter.yaml")
        settings = Settings(
            influx=InfluxSettings(url=influxdb.url, database=database, timeout=2.0),
            collector=CollectorSettings(state_dir=tmp_path / "state",
                                        client_id=f"collector-{uuid.uuid4().hex[:8]}"),
            mqtt=MqttSettings(url=mosquitto.url))
        service = CollectorService(site, settings, SystemClock(),
                                   BrokerAddress("127.0.0.1", mosquitto.port))
        task = asyncio.create_task(service.run())
        try:
            async def all_stored() -> bool:
                rows = await influx_query(influxdb.url, database,
                                          'SHOW TAG VALUES FROM reading WITH KEY = "sensor"')
                return len(rows) == len(METER_SENSORS)

            await eventually(all_stored, 20, 0.2)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    for sensor, (kind, register, scale) in METER_SENSORS.items():
        rows = await influx_query(influxdb.url, database,
                                  f"SELECT last(value), quality, kind FROM reading WHERE sensor = '{sensor}'")
        _time, value, quality, stored_kind = rows[0]
        # Exactly what the float32 register carries, times the site's scale: nothing lost on the way.
        assert value == float32(METER_VALUES[register]) * scale, sensor
        assert quality == Quality.GOOD
        assert stored_kind == kind  # the InfluxDB kind tag is the sensor's own kind


async def test_modbus_ascii_on_a_serial_line(tmp_path: Path) -> None:
    # ASCII lines usually run 7E1; a Linux pseudo-terminal refuses some switches of character size
    # and parity, so this line runs 8N1 (ASCII framing does not depend on it).
    async with serial_line(tmp_path) as line:
        server = ModbusSerialServer(meter_device(METER_UNIT), framer=FramerType.ASCII,
                                    port=str(line.simulator_end), baudrate=19200)
        await server.serve_forever(background=True)
        try:
            entry = (f"{{id: line, transport: serial, path: {line.collector_end}, baudrate: 19200, "
                     "parity: none, framer: ascii, timeout: 0.2}")
            site = parse_site(METER_SITE.replace("BUS", entry), "meter-ascii.yaml")
            sink = RecordingSink()
            collector = ModbusCollector(site.modbus, sink, CollectorMetrics(), SystemClock(), site.buses)
            async with polling(collector):
                await until(lambda: {r.sensor for r in sink.readings} == set(METER_SENSORS))
        finally:
            await server.shutdown()  # type: ignore[no-untyped-call]
    latest = {r.sensor: r.value for r in sink.readings}
    assert latest["m-energy"] == float32(18234.7)
    assert latest["m-pf"] == float32(0.861)


# --- a shared line: one dead unit among healthy ones -------------------------------------------------

LINE_INTERVAL = 0.3  # every unit's poll interval, s
DEAD_TIMEOUT = 0.15  # how long the line waits for each unit's answer, s
WINDOW = 3.0  # seconds the period is measured over


def line_site(path: Path, *, dead: bool) -> Site:
    """Three healthy units (1-3) on a serial line, and unit 9 that nothing answers for if `dead`."""
    units = [1, 2, 3] + ([9] if dead else [])
    sensors = "\n".join(f"          - {{id: u{u}-pressure, kind: pressure, source: modbus}}"
                        for u in units)
    devices = "\n".join(
        f"  - {{id: unit-{u}, bus: line, unit: {u}, poll_interval: {LINE_INTERVAL}, points: ["
        f"{{sensor: u{u}-pressure, table: holding, address: 10, type: uint16, scale: 0.001}}, "
        f"{{sensor: u{u}-pressure-2, table: holding, address: 40, type: uint16, scale: 0.001}}]}}"
        for u in units)
    sensors += "\n" + "\n".join(f"          - {{id: u{u}-pressure-2, kind: pressure, source: modbus}}"
                                for u in units)
    text = f"""
site: {{id: line-test, name: {{zh: 总线, en: Line}}}}
rooms:
  - id: r1
    name: {{zh: 泵房, en: Pump room}}
    equipment:
      - id: h1
        type: header
        sensors:
{sensors}
buses:
  - {{id: line, transport: serial, path: {path}, baudrate: 19200, timeout: {DEAD_TIMEOUT}}}
modbus:
{devices}
"""
    return parse_site(text, "line.yaml")


def periods(timestamps: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(sorted(set(timestamps)))]


async def measure_line(tmp_path: Path, *, dead: bool) -> tuple[dict[str, list[float]], ModbusCollector]:
    """Poll the line for WINDOW seconds; the poll times of each healthy unit, and the collector."""
    site = line_site(tmp_path / "ttyLINE", dead=dead)
    healthy = [d for d in site.modbus if d.unit != 9]
    values = {f"u{d.unit}-pressure{suffix}": 0.1 * d.unit for d in healthy for suffix in ("", "-2")}
    images = [DeviceImage(d, values.__getitem__, lambda _s, _v: False) for d in healthy]
    server = BusServer(site.buses[0], images, collector_end=tmp_path / "ttyLINE")  # unit 9: nobody
    await server.start()
    try:
        sink = RecordingSink()
        collector = ModbusCollector(site.modbus, sink, CollectorMetrics(), SystemClock(), site.buses)
        async with polling(collector):
            await until(lambda: all(sink.of(f"u{d.unit}-pressure") for d in healthy))
            start = time.time()
            await asyncio.sleep(WINDOW)
        times = {d.id: [r.ts for r in sink.of(f"u{d.unit}-pressure") if r.ts >= start] for d in healthy}
    finally:
        await server.stop()
    return times, collector


async def test_a_dead_unit_never_stalls_the_line_and_the_healthy_units_keep_their_period(
        tmp_path: Path) -> None:
    clean, _ = await measure_line(tmp_path / "clean", dead=False)
    shared, collector = await measure_line(tmp_path / "dead", dead=True)
    figures = {}
    for name, times in (("without the dead unit", clean), ("with the dead unit", shared)):
        gaps = [g for unit_times in times.values() for g in periods(unit_times)]
        figures[name] = (statistics.mean(gaps), max(gaps), min(len(t) for t in times.values()))
        # Polls stay on their grid: a poll waits behind at most the one request in flight, the dead
        # unit's, which gives up after its timeout (0.1 s allows for the event loop's own delays).
        assert statistics.mean(gaps) <= LINE_INTERVAL * 1.1, (name, figures[name])
        assert max(gaps) <= LINE_INTERVAL + DEAD_TIMEOUT + 0.1, (name, figures[name])
        assert min(len(t) for t in times.values()) >= WINDOW / LINE_INTERVAL - 2, (name, figures[name])
    print(f"healthy units' poll period (mean, max, polls in {WINDOW:.0f} s): "
          + "; ".join(f"{name}: {m * 1000:.0f} ms, {x * 1000:.0f} ms, {n}"
                      for name, (m, x, n) in figures.items()))
    dead = collector.pollers["unit-9"]
    assert dead.health.state is DeviceState.OFFLINE
    assert "TimeoutError" in (dead.health.last_error or "")
    healthy_polls = min(p.polls for d, p in collector.pollers.items() if d != "unit-9")
    assert dead.polls <= healthy_polls / 2  # it rests between tries instead of taking every slot
    for device_id, poller in collector.pollers.items():
        if device_id != "unit-9":
            assert poller.health.state is DeviceState.ONLINE, device_id
    link = next(iter(collector.links.values()))
    assert isinstance(link, BusLink)
    # One timeout per cycle of the dead unit, never two (the last cycle may have been cut short).
    assert dead.polls - 1 <= link.unanswered <= dead.polls


async def test_a_unit_that_comes_back_is_polled_again_at_its_period(tmp_path: Path) -> None:
    site = line_site(tmp_path / "ttyLINE", dead=False)
    values = {f"u{d.unit}-pressure{suffix}": 0.5 for d in site.modbus for suffix in ("", "-2")}
    images = [DeviceImage(d, values.__getitem__, lambda _s, _v: False) for d in site.modbus]
    server = BusServer(site.buses[0], images, collector_end=tmp_path / "ttyLINE")
    server.set_unit_silent(2, True)
    await server.start()
    try:
        sink = RecordingSink()
        collector = ModbusCollector(site.modbus, sink, CollectorMetrics(), SystemClock(), site.buses)
        async with polling(collector):
            await until(lambda: collector.pollers["unit-2"].health.state is DeviceState.OFFLINE
                        and bool(sink.of("u1-pressure")))
            assert sink.of("u2-pressure") == []
            server.set_unit_silent(2, False)
            await until(lambda: collector.pollers["unit-2"].health.state is DeviceState.ONLINE, 15)
            count = len(sink.of("u2-pressure"))
            await until(lambda: len(sink.of("u2-pressure")) >= count + 3)
    finally:
        await server.stop()
    assert sink.of("u2-pressure")[-1].value == 0.5


async def test_a_missing_serial_port_leaves_units_offline_until_the_line_appears(tmp_path: Path) -> None:
    path = tmp_path / "ttyUSB-late"
    site = line_site(path, dead=False)
    values = {f"u{d.unit}-pressure{suffix}": 0.25 for d in site.modbus for suffix in ("", "-2")}
    images = [DeviceImage(d, values.__getitem__, lambda _s, _v: False) for d in site.modbus]
    sink = RecordingSink()
    collector = ModbusCollector(site.modbus, sink, CollectorMetrics(), SystemClock(), site.buses)
    server = BusServer(site.buses[0], images, collector_end=path)
    async with polling(collector):
        await until(lambda: "no such device" in (collector.pollers["unit-1"].health.last_error or ""))
        assert all(p.health.state is DeviceState.OFFLINE for p in collector.pollers.values())
        await server.start()  # the adapter is plugged in
        try:
            await until(lambda: all(p.health.state is DeviceState.ONLINE
                                    for p in collector.pollers.values()), 20)
        finally:
            await server.stop()
    assert {r.value for r in sink.of("u3-pressure")} == {0.25}


# --- decimal-point codes and commands on a bus ------------------------------------------------------

TRANSMITTER_SITE = """
site: {id: tx-test, name: {zh: 变送器, en: Transmitter}}
rooms:
  - id: r1
    name: {zh: 泵房, en: Pump room}
    equipment:
      - id: h1
        type: header
        sensors:
          - {id: tx-pressure, kind: pressure, source: modbus}
          - {id: tx-setpoint, kind: pressure, source: modbus}
buses:
  - {id: line, transport: serial, path: PATH, baudrate: 19200, timeout: 0.3}
modbus:
  - id: tx
    bus: line
    unit: 4
    poll_interval: 0.2
    timeout: 0.15
    points:
      - {sensor: tx-pressure, table: holding, address: 4, type: int16,
         scale_from: {table: holding, address: 3}}
      - {sensor: tx-setpoint, table: holding, address: 20, type: uint16, scale: 0.001, writable: true}
"""


async def test_a_decimal_point_register_scales_its_point_from_the_poll_that_reads_it(
        tmp_path: Path) -> None:
    site = parse_site(TRANSMITTER_SITE.replace("PATH", str(tmp_path / "ttyTX")), "tx.yaml")
    device = site.modbus[0]
    # The decimal code (holding 3) and the value (holding 4) come in one read.
    assert [(b.start, b.count) for b in plan_reads(device)] == [(3, 2), (20, 1)]
    values = {"tx-pressure": 0.42, "tx-setpoint": 0.35}

    def command(sensor: str, value: float) -> bool:
        values[sensor] = value
        return True

    image = DeviceImage(device, values.__getitem__, command)
    server = BusServer(site.buses[0], [image], collector_end=tmp_path / "ttyTX")
    await server.start()
    try:
        sink = RecordingSink()
        collector = ModbusCollector(site.modbus, sink, CollectorMetrics(), SystemClock(), site.buses)
        async with polling(collector):
            await until(lambda: bool(sink.of("tx-pressure")))
            assert sink.of("tx-pressure")[-1].value == 0.42  # raw 42 with two decimals
            values["tx-pressure"] = 0.421
            image.set_decimals(Table.HOLDING, 3, 3)  # a technician sets three decimals
            await until(lambda: sink.of("tx-pressure")[-1].value == 0.421)
            # Every reading is scaled by the code of its own poll: never 4.21 nor 0.0421.
            assert {r.value for r in sink.of("tx-pressure")} == {0.42, 0.421}
            image.set_decimals(Table.HOLDING, 3, 42)  # not a decimal-point code: a wrong register
            await until(lambda: any("decimal-point code 42" in d for _r, d in sink.rejected))
            count = len(sink.of("tx-pressure"))
            await asyncio.sleep(0.5)
            assert len(sink.of("tx-pressure")) == count  # its point is rejected, not guessed
            await collector.write("tx-setpoint", 0.5)  # commands go through the line's queue too
            await until(lambda: sink.of("tx-setpoint")[-1].value == 0.5)
    finally:
        await server.stop()
    assert values["tx-setpoint"] == 0.5


# --- the cycle estimate ------------------------------------------------------------------------------

@pytest.mark.parametrize(("baudrate", "fits"), [(19200, True), (9600, False)])
def test_the_cycle_estimate_counts_frames_gaps_and_one_dead_units_timeout(baudrate: int, fits: bool) -> None:
    bus = ModbusBus.model_validate({"id": "b", "transport": "serial", "path": "/dev/ttyUSB0",
                                    "baudrate": baudrate})
    site = line_site(Path("/dev/ttyUSB0"), dead=False)
    cycle = bus_cycle(bus, site.modbus)
    assert cycle is not None
    # Per read of one register: request 8 characters, response 1+1+1+2+2 = 7; at 11 bits a character,
    # plus a 3.5-character silence before each frame.
    char = 11 / baudrate
    per_read = (8 + 7) * char + 2 * 3.5 * char
    assert cycle.requests == 6  # three units, two reads each (addresses 10 and 40 are too far apart)
    assert cycle.traffic == pytest.approx(6 * per_read)
    assert cycle.dead_timeout == DEAD_TIMEOUT
    assert cycle.seconds == pytest.approx(6 * per_read + DEAD_TIMEOUT)
    assert cycle.fits is fits  # against the units' 0.3 s interval: 0.226 s at 19200, 0.301 s at 9600
