"""The whole collector against real Mosquitto, InfluxDB 1.6.7 and the simulators, counting exactly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.service import CollectorService
from pumpwatch.clock import FakeClock, SystemClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.registers import PointCodec
from pumpwatch.settings import CollectorSettings, InfluxSettings, MqttSettings, Settings
from pumpwatch.site import Site
from pumpwatch.sitefile import load_site, parse_site
from simulators.simulation import Simulation
from tests.support.influx import influx_query, stored_counts
from tests.support.mqtt import CountingPublisher, create_session, publish_one
from tests.support.services import InfluxDB, Mosquitto
from tests.support.waiting import eventually

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"

# A site with one MQTT sensor fed by plain numbers: each message's value is its sequence number,
# so what InfluxDB holds can be counted exactly (count and count of distinct values).
COUNTING_SITE = """
site: {id: counting, name: {zh: 计数, en: Counting}}
rooms:
  - id: r1
    name: {zh: 一号泵房, en: Room 1}
    sensors:
      - {id: seq, kind: flow, range: [0, 100000000], source: mqtt}
mqtt:
  - topic: "%s/{sensor}"
    format: number
    values: [{sensor: "{sensor}"}]
"""


def settings_for(tmp_path: Path, influx_url: str, database: str, broker: str) -> Settings:
    return Settings(
        influx=InfluxSettings(url=influx_url, database=database, timeout=2.0),
        collector=CollectorSettings(state_dir=tmp_path / "state", batch_size=2000,
                                    client_id=f"collector-{uuid.uuid4().hex[:8]}"),
        mqtt=MqttSettings(url=broker),
    )


@contextlib.asynccontextmanager
async def running(service: CollectorService) -> AsyncIterator[CollectorService]:
    task = asyncio.create_task(service.run())
    try:
        await eventually(lambda: _connected(service), 15, 0.05)
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _connected(service: CollectorService) -> bool:
    mqtt_source = service.parts.mqtt
    return mqtt_source is None or bool(service.parts.metrics.total(service.parts.metrics.mqtt_connected))


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(EXAMPLE)


async def test_every_demo_sensor_arrives_in_influxdb_with_the_simulated_value(
        tmp_path: Path, site: Site, influxdb: InfluxDB, mosquitto: Mosquitto) -> None:
    database = f"demo_{uuid.uuid4().hex[:8]}"
    clock = FakeClock(start=time.time())  # a still model: values stay put while we compare
    broker = BrokerAddress("127.0.0.1", mosquitto.port)
    sim = Simulation(site, clock, broker=broker, modbus_ports={d.id: 0 for d in site.modbus},
                     publish_period=0.0, client_id=f"sim-{uuid.uuid4().hex[:8]}")
    await sim.start()
    served = sim.served_site()
    service = CollectorService(served, settings_for(tmp_path, influxdb.url, database, mosquitto.url),
                               SystemClock(), broker)
    sensors = [s for _r, _e, s in site.iter_sensors()]
    try:
        async with running(service):
            async def all_sensors_stored() -> bool:
                await sim.step()  # publish every wireless sensor again until the collector has them
                rows = await influx_query(influxdb.url, database,
                                          'SHOW TAG VALUES FROM reading WITH KEY = "sensor"')
                return len(rows) == len(sensors)

            await eventually(all_sensors_stored, 30, 0.5)
    finally:
        await sim.stop()
    codecs = {p.sensor: PointCodec.for_point(p, d) for d in site.modbus for p in d.points}
    for sensor in sensors:
        rows = await influx_query(influxdb.url, database,
                                  f"SELECT last(value) FROM reading WHERE sensor = '{sensor.id}'")
        stored = float(rows[0][1])
        expected = sim.signals.value(sensor.id)
        codec = codecs.get(sensor.id)
        # Modbus values are quantised by their register's scale; MQTT values are published to 1e-3.
        tolerance = abs(codec.scale) / 2 + 1e-9 if codec is not None else 1e-3
        if codec is not None and codec.type.value == "float32":
            tolerance = max(tolerance, abs(expected) * 1e-6)
        assert stored == pytest.approx(expected, abs=tolerance), sensor.id


@pytest.mark.e2e  # A 30 s InfluxDB outage under load (about 35 s).
async def test_influxdb_down_for_30_s_under_load_loses_and_duplicates_nothing(
        tmp_path: Path, influxdb: InfluxDB, mosquitto: Mosquitto, unique_topic: str) -> None:
    database = f"outage_{uuid.uuid4().hex[:8]}"
    counting = parse_site(COUNTING_SITE % unique_topic, "counting.yaml")
    broker = BrokerAddress("127.0.0.1", mosquitto.port)
    service = CollectorService(counting, settings_for(tmp_path, influxdb.url, database, mosquitto.url),
                               SystemClock(), broker)
    publisher = CountingPublisher(mosquitto.port, f"{unique_topic}/seq", rate=300)
    try:
        async with running(service):
            publisher.start()
            await asyncio.sleep(2)
            await asyncio.to_thread(influxdb.stop)
            try:
                await asyncio.sleep(30)
                assert service.parts.buffer.depth > 0  # readings wait on disk meanwhile
                assert not service.parts.writer.healthy
            finally:
                await asyncio.to_thread(influxdb.start)
            await asyncio.sleep(2)
            publisher.stop()
            published = publisher.sent
            await eventually(lambda: _all_acked(publisher), 20)
            counts = await eventually(lambda: _counts_reach(influxdb.url, database, published), 60)
    finally:
        publisher.close()
    assert counts == (published, published)  # every value once: 0 lost, 0 duplicated
    assert service.parts.buffer.depth == 0


@pytest.mark.e2e  # An outage drill: the broker restarted under load (about 6 s).
async def test_broker_restart_under_load_loses_nothing_at_qos1(
        tmp_path: Path, influxdb: InfluxDB, mosquitto: Mosquitto, unique_topic: str) -> None:
    database = f"broker_{uuid.uuid4().hex[:8]}"
    counting = parse_site(COUNTING_SITE % unique_topic, "counting.yaml")
    broker = BrokerAddress("127.0.0.1", mosquitto.port)
    service = CollectorService(counting, settings_for(tmp_path, influxdb.url, database, mosquitto.url),
                               SystemClock(), broker)
    publisher = CountingPublisher(mosquitto.port, f"{unique_topic}/seq", rate=300)
    try:
        async with running(service):
            publisher.start()
            await asyncio.sleep(2)
            await asyncio.to_thread(mosquitto.restart)
            await asyncio.sleep(3)
            publisher.stop()
            published = publisher.sent
            await eventually(lambda: _all_acked(publisher), 30)
            counts = await eventually(lambda: _counts_reach(influxdb.url, database, published), 60)
    finally:
        publisher.close()
    assert counts == (published, published)  # every value stored once


@pytest.mark.e2e  # A SIGKILL drill on `pumpwatch collect` as its own process (about 9 s).
async def test_collector_killed_with_sigkill_loses_nothing_it_acknowledged(
        tmp_path: Path, influxdb: InfluxDB, mosquitto: Mosquitto, unique_topic: str) -> None:
    database = f"kill_{uuid.uuid4().hex[:8]}"
    site_file = tmp_path / "counting.yaml"
    site_file.write_text(COUNTING_SITE % unique_topic, encoding="utf-8")
    client_id = f"collector-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ,
               PUMPWATCH_INFLUX__URL=influxdb.url,
               PUMPWATCH_INFLUX__DATABASE=database,
               PUMPWATCH_COLLECTOR__STATE_DIR=str(tmp_path / "state"),
               PUMPWATCH_COLLECTOR__CLIENT_ID=client_id)
    command = [sys.executable, "-c", "import sys; from pumpwatch.cli import main; sys.exit(main())",
               "collect", "--site", str(site_file), "--mqtt", mosquitto.url]

    log_file = tmp_path / "collector.log"

    def start() -> subprocess.Popen[bytes]:
        with log_file.open("ab") as log:
            return subprocess.Popen(command, env=env, stdout=log, stderr=log)

    # The collector's persistent session exists before the first message, as in production.
    await asyncio.to_thread(create_session, mosquitto.port, client_id, f"{unique_topic}/+")
    publisher = CountingPublisher(mosquitto.port, f"{unique_topic}/seq", rate=300)
    collector = start()
    try:
        await eventually(lambda: _stored_any(influxdb.url, database, publisher), 30)
        await asyncio.sleep(2)
        collector.send_signal(signal.SIGKILL)
        collector.wait(10)
        await asyncio.sleep(2)  # messages keep coming while no collector runs
        collector = start()
        await asyncio.sleep(3)
        publisher.stop()
        published = publisher.sent
        await eventually(lambda: _all_acked(publisher), 20)
        try:
            counts = await eventually(lambda: _counts_reach(influxdb.url, database, published), 60)
        except AssertionError as err:
            raise AssertionError(f"{err}\ncollector log:\n{log_file.read_text()[-3000:]}") from err
        # All stored, none twice: redelivered messages are recognised by their delivery key.
        assert counts == (published, published)
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(20) == 0
    finally:
        publisher.close()
        if collector.poll() is None:
            collector.kill()
            collector.wait(5)


async def _all_acked(publisher: CountingPublisher) -> bool:
    return publisher.acked >= publisher.sent


async def _counts_reach(url: str, database: str, published: int) -> tuple[int, int] | None:
    counts = await stored_counts(url, database, "seq")
    return counts if counts[1] >= published else None


async def _stored_any(url: str, database: str, publisher: CountingPublisher) -> bool:
    if publisher.sent == 0:
        publisher.start()
    points, _distinct = await stored_counts(url, database, "seq")
    return points > 0


DEVICES_SITE = """
site: {id: devices, name: {zh: 设备, en: Devices}}
rooms:
  - id: r1
    name: {zh: 一号泵房, en: Room 1}
    sensors:
      - {id: leak1, kind: leak, source: mqtt}
      - {id: leak1-battery, kind: battery, range: [0, 100], source: mqtt}
      - {id: temp1, kind: temperature, range: [-20, 80], source: mqtt}
      - {id: dp1, kind: differential_pressure, range: [0, 100], source: mqtt}
      - {id: sw1, kind: switch_position, source: mqtt}
mqtt:
  - topic: "%(p)s/zigbee2mqtt/{device}"
    values:
      - {field: water_leak, type: boolean, sensor: "{device}"}
      - {field: battery, sensor: "{device}-battery"}
  - topic: "%(p)s/tele/{device}/SENSOR"
    values: [{field: DS18B20.Temperature, sensor: "{device}"}]
  - topic: "%(p)s/site/{room}/{sensor}"
    format: number
    values: [{sensor: "{sensor}"}]
  - topic: "%(p)s/switch/{sensor}"
    format: enum
    values: [{sensor: "{sensor}"}]
"""


async def test_real_device_payloads_arrive_and_bad_ones_are_counted_by_reason(
        tmp_path: Path, influxdb: InfluxDB, mosquitto: Mosquitto, unique_topic: str) -> None:
    database = f"devices_{uuid.uuid4().hex[:8]}"
    site = parse_site(DEVICES_SITE % {"p": unique_topic}, "devices.yaml")
    service = CollectorService(site, settings_for(tmp_path, influxdb.url, database, mosquitto.url),
                               SystemClock(), BrokerAddress("127.0.0.1", mosquitto.port))
    p = unique_topic
    messages = [
        (f"{p}/zigbee2mqtt/leak1", b'{"water_leak": true, "battery": 97, "linkquality": 120}'),
        (f"{p}/tele/temp1/SENSOR", b'{"Time": "2026-11-24T10:00:00", "DS18B20": {"Temperature": 23.5}, '
                                   b'"TempUnit": "C"}'),
        (f"{p}/site/r1/dp1", b"12.4"),
        (f"{p}/switch/sw1", b"MANUAL"),
        # bad ones, each next to or after good data
        (f"{p}/zigbee2mqtt/leak1", b'{"water_leak": "perhaps", "battery": 96}'),  # battery still good
        (f"{p}/site/r1/dp1", b"NaN"),
        (f"{p}/site/r1/dp1", b"{broken"),
        (f"{p}/site/r1/dp1", b"250"),  # outside the valid range: kept, flagged
        (f"{p}/site/r1/nope", b"1"),
        (f"{p}/switch/sw1", b"SIDEWAYS"),
        (f"{p}/tele/temp1/SENSOR", b'{"DS18B20": {}}'),
    ]
    async with running(service):
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:8]}")
        publisher.connect("127.0.0.1", mosquitto.port)
        publisher.loop_start()
        for topic, payload in messages:
            publisher.publish(topic, payload, qos=1).wait_for_publish(5)
        publisher.disconnect()
        publisher.loop_stop()
        metrics = service.parts.metrics

        async def all_seen() -> bool:
            return metrics.total(metrics.mqtt_messages) >= len(messages) and service.parts.buffer.depth == 0

        await eventually(all_seen, 20)
        await eventually(lambda: _stored_points(service, 7), 20)
        rejected = {reason: count for (source, reason), count in _rejected(metrics).items()
                    if source == "mqtt"}
        latest = await service.parts.store.latest()
    # "perhaps" is no boolean and "{broken" no number: both wrong_type
    assert rejected == {"wrong_type": 2, "not_finite": 1, "unknown_sensor": 1, "unknown_state": 1,
                        "missing_field": 1}
    latest = {key.removeprefix("devices/"): reading for key, reading in latest.items()}  # estate devices
    assert latest["leak1"].value == 1.0
    assert latest["leak1"].state == "WET"
    assert latest["leak1-battery"].value == 96.0  # the good neighbour of a bad value
    assert latest["temp1"].value == 23.5
    assert latest["sw1"].value == 1.0
    assert latest["sw1"].state == "MANUAL"
    assert latest["dp1"].value == 250.0
    assert latest["dp1"].quality.name == "OUT_OF_RANGE"
    assert metrics.total(metrics.flagged) == 1


async def _stored_points(service: CollectorService, at_least: int) -> bool:
    return await service.parts.store.count() >= at_least


def _rejected(metrics: Any) -> dict[tuple[str, str], float]:
    return {(s.labels["source"], s.labels["reason"]): s.value
            for family in metrics.rejected.collect() for s in family.samples
            if s.name.endswith("_total")}


async def test_a_message_redelivered_after_a_lost_ack_is_stored_once(
        tmp_path: Path, mosquitto: Mosquitto, unique_topic: str) -> None:
    from collector.metrics import CollectorMetrics
    from collector.pipeline.buffer import DurableBuffer
    from collector.pipeline.intake import Pipeline
    from collector.sources.mqtt import MqttSource
    from pumpwatch.catalog import SensorCatalog

    site = parse_site(COUNTING_SITE % unique_topic, "counting.yaml")
    buffer = DurableBuffer(tmp_path / "buffer.db")
    broker = BrokerAddress("127.0.0.1", mosquitto.port)
    client_id = f"dedupe-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(create_session, mosquitto.port, client_id, f"{unique_topic}/+")
    metrics = CollectorMetrics()
    pipeline = Pipeline(SensorCatalog(site), buffer, metrics, SystemClock())
    pipeline.start()
    first = MqttSource(site, broker, pipeline, metrics, SystemClock(), client_id=client_id)
    first.session.ack = lambda *_args, **_kwargs: None  # type: ignore[method-assign]  # lost ack
    first.start()
    await eventually(lambda: _true(first.connected), 10)
    publish_one(mosquitto.port, f"{unique_topic}/seq", "42")
    await eventually(lambda: _true(buffer.depth == 1), 10)
    first.stop()  # gone without acknowledging: the broker will send the message again
    second = MqttSource(site, broker, pipeline, metrics, SystemClock(), client_id=client_id)
    second.start()
    try:
        await eventually(lambda: _true(metrics.total(metrics.mqtt_messages) >= 2), 10)
        await asyncio.sleep(0.5)
    finally:
        second.stop()
        await asyncio.to_thread(pipeline.stop)
    assert buffer.depth == 1  # the redelivery was recognised, not stored again
    assert metrics.by_label(metrics.rejected, "reason").get("redelivered") == 1
    buffer.close()


async def _true(value: bool) -> bool:
    return value
