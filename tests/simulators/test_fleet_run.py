"""A simulated fleet into a real collector: every reading it published is stored, estate by estate.

Real Mosquitto, real InfluxDB, the collector in-process; the fleet through `run_fleet`, the entry point
of `pumpwatch simulate --estates N` and of the scale benchmark (in worker processes for the edge feed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from collector.service import CollectorService
from pumpwatch.clock import FakeClock, SystemClock
from pumpwatch.edge_wire import decode_batch
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.portfolio import load_portfolio
from pumpwatch.settings import CollectorSettings, InfluxSettings, MqttSettings, Settings
from pumpwatch.signing import Verifier
from simulators.fleet import write_fleet
from simulators.fleet_run import FleetReport, FleetSimulation, feed_of, run_fleet
from tests.support.influx import influx_query
from tests.support.services import InfluxDB, Mosquitto
from tests.support.waiting import eventually

ESTATES = 5


def _settings(tmp_path: Path, influx: InfluxDB, database: str, broker: str) -> Settings:
    return Settings(
        influx=InfluxSettings(url=influx.url, database=database, timeout=5.0),
        collector=CollectorSettings(state_dir=tmp_path / "state", batch_size=5000,
                                    client_id=f"collector-{uuid.uuid4().hex[:8]}"),
        mqtt=MqttSettings(url=broker),
    )


@contextlib.asynccontextmanager
async def _collecting(service: CollectorService) -> AsyncIterator[None]:
    task = asyncio.create_task(service.run())

    async def subscribed() -> bool:
        sources = [s for s in (service.parts.mqtt, service.parts.edges) if s is not None]
        return all(s.connected for s in sources)

    try:
        await eventually(subscribed, 20, 0.05)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _stored(influx: InfluxDB, database: str, estate: str) -> int:
    rows = await influx_query(influx.url, database,
                              f"SELECT count(value) FROM reading WHERE estate = '{estate}'")
    return int(rows[0][1]) if rows else 0


@pytest.mark.parametrize(("feed", "processes"), [("edge", 2), ("mqtt", 1)])
async def test_a_simulated_fleet_is_stored_reading_for_reading_estate_by_estate(
        tmp_path: Path, influxdb: InfluxDB, mosquitto: Mosquitto, feed: str, processes: int) -> None:
    deployment = write_fleet(tmp_path / "fleet", ESTATES, seed=7, feed=feed)
    portfolio = load_portfolio(deployment)
    assert {feed_of(site) for site in portfolio} == {feed}
    database = f"fleet_{uuid.uuid4().hex[:8]}"
    broker = BrokerAddress("127.0.0.1", mosquitto.port)
    service = CollectorService(portfolio, _settings(tmp_path, influxdb, database, mosquitto.url),
                               SystemClock(), broker)
    stop = threading.Event()
    seen: list[FleetReport] = []

    def status(report: FleetReport) -> None:
        seen.append(report)
        if len(seen) >= 3 and len(report.published) == ESTATES:  # every estate has published a while
            stop.set()

    async with _collecting(service):
        report = await asyncio.to_thread(run_fleet, deployment, broker, stop, seed=7, processes=processes,
                                         client_id=f"fleet-{uuid.uuid4().hex[:8]}", status=status,
                                         status_every=1.0)
        assert set(report.published) == set(portfolio.estates)
        assert report.estates == ESTATES
        assert report.cpu_seconds > 0

        async def all_stored() -> bool:
            counts = {estate: await _stored(influxdb, database, estate) for estate in portfolio.estates}
            return counts == dict(report.published)

        await eventually(all_stored, 60, 0.5)
    for estate, site in portfolio.estates.items():
        sensors = sum(1 for _r, _e, s in site.iter_sensors())
        assert report.published[estate] >= sensors  # at least one of everything, not a trickle


async def test_edge_batches_carry_every_sensor_of_the_edge_signed_with_its_key(tmp_path: Path) -> None:
    deployment = write_fleet(tmp_path, 1, seed=4, feed="edge")
    site = load_portfolio(deployment).first
    edge = site.edges[0]
    keys = tmp_path / "keys"
    keys.mkdir()
    key = "0123456789abcdef" * 4
    (keys / f"{edge.id}.key").write_text(key)
    fleet = FleetSimulation([site], BrokerAddress("127.0.0.1", 1), SystemClock(), edge_keys=keys)
    now = time.time()
    fleet.collect_edges(now)
    fleet.collect_edges(now + 1)
    (estate, topic, payload, count), = fleet.edge_batches(now + 1)
    assert (estate, topic) == (site.site.id, f"pumpwatch/edge/{edge.id}/batch")
    assert fleet.edge_batches(now + 1) == []  # taken: the next batch is of later readings
    verifier = Verifier({edge.id: key.encode()})
    opened = verifier.open(topic, payload, "edge-batch", sender=edge.id, replay=False)
    batch = decode_batch(opened.body, site.site.id)
    sensors = {s.id for _r, _e, s in site.iter_sensors()}
    assert {r.sensor for r in batch.readings} == {f"{site.site.id}/{s}" for s in sensors}
    assert len(batch.readings) == count
    # Two instants of every room sensor; the edge's health once (its heartbeat period is longer).
    assert count == 2 * (len(sensors) - len(edge.as_equipment().sensors)) + len(edge.as_equipment().sensors)
    assert sorted({r.ts for r in batch.readings}) == pytest.approx([now, now + 1], abs=1e-6)
    running = [r for r in batch.readings if r.sensor.endswith("-run")]
    assert running
    assert {r.state for r in running} <= {"RUNNING", "STOPPED"}


async def _fault_changes(site_docs: Path, seed: int) -> list[tuple[float, str, str, bool]]:
    """A day of one fleet's fault schedule, minute by minute, on a fake clock (no broker needed)."""
    clock = FakeClock()
    fleet = FleetSimulation(load_portfolio(site_docs).sites, BrokerAddress("127.0.0.1", 1), clock, seed=seed,
                            faults_per_day=6.0)
    changes: list[tuple[float, str, str, bool]] = []
    for _minute in range(24 * 60):
        await clock.advance(60)
        for estate, name, on in await fleet.schedule_faults(clock.now()):
            assert (name in fleet.sims[estate].active) is on  # the model has the fault exactly while it is on
            changes.append((clock.now(), estate, name, on))
    return changes


async def test_the_fault_schedule_is_drawn_from_the_seed_and_each_fault_ends(tmp_path: Path) -> None:
    deployment = write_fleet(tmp_path, 4, seed=3, feed="mqtt", rooms=(2, 2))
    first = await _fault_changes(deployment, seed=3)
    assert first == await _fault_changes(deployment, seed=3)
    assert first != await _fault_changes(deployment, seed=4)
    ons = [c for c in first if c[3]]
    assert len({estate for _t, estate, _n, _on in ons}) == 4  # six a day each: every estate has some
    assert len(ons) - 4 <= len(first) - len(ons) <= len(ons)  # every fault but each estate's last has ended
    for at, estate, name, _on in ons:
        off = next((t for t, e, n, on in first if (e, n, on) == (estate, name, False) and t > at), None)
        if off is not None:
            assert 5 * 60 <= off - at <= 31 * 60  # on for 5 to 30 minutes (checked each minute)


@pytest.mark.e2e  # `pumpwatch simulate --estates 3` as its own process, stopped by SIGTERM
async def test_pumpwatch_simulate_estates_publishes_signed_edge_batches_and_reports_its_cpu(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    import paho.mqtt.client as mqtt

    from pumpwatch.mqttclient import new_client, start_client, stop_client
    from tests.support.processes import PumpwatchProcess

    fleet_dir = tmp_path / "fleet"
    expected = load_portfolio(write_fleet(tmp_path / "expected", 3, seed=5, rooms=(2, 2)))
    keys = tmp_path / "keys"
    keys.mkdir()
    for _estate, edge in expected.edges():
        (keys / f"{edge.id}.key").write_text(f"{edge.id}-secret-" + "k" * 40)
    batches: list[tuple[str, bytes]] = []
    listener = new_client(BrokerAddress("127.0.0.1", mosquitto.port), f"listen-{uuid.uuid4().hex[:8]}")
    listener.on_connect = lambda c, *_a: c.subscribe("pumpwatch/edge/+/batch", qos=1)

    def keep(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        batches.append((message.topic, bytes(message.payload)))

    listener.on_message = keep
    start_client(listener, BrokerAddress("127.0.0.1", mosquitto.port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUMPWATCH_")}
    env["PUMPWATCH_COLLECTOR__STATE_DIR"] = str(tmp_path / "state")
    sim = PumpwatchProcess("simulate", ["simulate", "--estates", "3", "--seed", "5", "--out", str(fleet_dir),
                                        "--mqtt", mosquitto.url, "--edge-keys", str(keys),
                                        "--status-every", "1"], env, tmp_path / "simulate.log")
    try:
        await eventually(lambda: _listening(listener), 20, 0.05)
        sim.start()

        async def reported() -> bool:
            return "Fleet: 3 estates, 6 rooms:" in sim.text() and len(batches) >= 6

        await eventually(reported, 60, 0.2)
    finally:
        sim.stop()
        stop_client(listener)
    assert sim.proc is not None
    assert sim.proc.returncode == 0, sim.text()[-2000:]
    assert "CPU" in sim.text()
    assert load_portfolio(fleet_dir / "deployment.yaml").estates == expected.estates  # the same fleet
    estates = expected.edge_estates()
    for topic, payload in batches:
        edge_id = topic.split("/")[2]
        key = (keys / f"{edge_id}.key").read_text().encode()
        opened = Verifier({edge_id: key}).open(topic, payload, "edge-batch", sender=edge_id, replay=False)
        assert decode_batch(opened.body, estates[edge_id]).readings
    assert {topic.split("/")[2] for topic, _p in batches} == set(estates)


async def _listening(client: Any) -> bool:
    return bool(client.is_connected())
