"""Two collectors in one MQTT shared-subscription group split the messages and store each exactly once.

The scale benchmark (`bench.fleet`) runs two collector processes on one deployment with
`collector.share_group`, so Mosquitto hands each message to one of them. Here the same happens in one
process: two `CollectorService`s with their own client ids and durable buffers, one group, a
two-estate portfolio, real Mosquitto and InfluxDB, counted exactly per sensor key.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collector.metrics import CollectorMetrics
from collector.service import CollectorService
from pumpwatch.clock import SystemClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.portfolio import Portfolio
from pumpwatch.settings import CollectorSettings, InfluxSettings, MqttSettings, Settings
from pumpwatch.sitefile import parse_site
from tests.support.influx import influx_query
from tests.support.mqtt import CountingPublisher, create_session
from tests.support.services import InfluxDB, Mosquitto
from tests.support.waiting import eventually

ESTATE = """
site: {id: %(estate)s, name: {zh: 小区, en: Estate}}
rooms:
  - id: r1
    name: {zh: 一号泵房, en: Room 1}
    sensors:
      - {id: seq, kind: flow, range: [0, 100000000], source: mqtt, alarms: {no_data: false}}
mqtt:
  - topic: "%(prefix)s/%(estate)s/{sensor}"
    format: number
    values: [{sensor: "{sensor}"}]
"""
GROUP = "fleet"
ESTATES = ("north", "south")


def collector(tmp_path: Path, name: str, portfolio: Portfolio, influxdb: InfluxDB, database: str,
              mosquitto: Mosquitto, client_id: str) -> CollectorService:
    """A collector of the shared group with its own client id and state directory."""
    settings = Settings(
        influx=InfluxSettings(url=influxdb.url, database=database, timeout=2.0),
        collector=CollectorSettings(state_dir=tmp_path / name, client_id=client_id, share_group=GROUP),
        mqtt=MqttSettings(url=mosquitto.url),
    )
    return CollectorService(portfolio, settings, SystemClock(), BrokerAddress("127.0.0.1", mosquitto.port))


@contextlib.asynccontextmanager
async def running(*services: CollectorService) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(service.run()) for service in services]
    try:
        for service in services:
            metrics = service.parts.metrics

            async def connected(metrics: CollectorMetrics = metrics) -> bool:
                return bool(metrics.total(metrics.mqtt_connected))

            await eventually(connected, 15, 0.05)
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def stored_counts_of(url: str, database: str, estate: str) -> tuple[int, int]:
    """(points, distinct values) stored for the estate's `seq` sensor (tags `estate` and `sensor`)."""
    rows = await influx_query(url, database, "SELECT count(value), count(distinct(value)) FROM reading "
                              f"WHERE estate = '{estate}' AND sensor = 'seq'")
    return (int(rows[0][1]), int(rows[0][2])) if rows else (0, 0)


def subscriptions(service: CollectorService) -> list[str]:
    source = service.parts.mqtt
    assert source is not None
    return list(source.subscriptions)


async def test_two_collectors_sharing_a_group_store_every_message_once_between_them(
        tmp_path: Path, influxdb: InfluxDB, mosquitto: Mosquitto, unique_topic: str) -> None:
    portfolio = Portfolio.of(*(parse_site(ESTATE % {"estate": e, "prefix": unique_topic}, f"{e}.yaml")
                               for e in ESTATES))
    database = f"shared_{uuid.uuid4().hex[:8]}"
    ids = [f"shared-{n}-{uuid.uuid4().hex[:6]}" for n in ("a", "b")]
    for client_id in ids:  # both sessions exist before the first message, as in production
        for estate in ESTATES:  # the collector's own filters: another filter would be another share
            await asyncio.to_thread(create_session, mosquitto.port, client_id,
                                    f"$share/{GROUP}/{unique_topic}/{estate}/+")
    first, second = (collector(tmp_path, f"c{n}", portfolio, influxdb, database, mosquitto, client_id)
                     for n, client_id in enumerate(ids))
    assert subscriptions(first) == [f"$share/{GROUP}/{unique_topic}/{e}/+" for e in ESTATES]
    publishers = [CountingPublisher(mosquitto.port, f"{unique_topic}/{e}/seq", rate=200) for e in ESTATES]
    try:
        async with running(first, second):
            for publisher in publishers:
                publisher.start()
            await asyncio.sleep(2)
            for publisher in publishers:
                publisher.stop()

            async def all_acked() -> bool:
                return all(p.acked >= p.sent for p in publishers)

            await eventually(all_acked, 20)
            published = {e: p.sent for e, p in zip(ESTATES, publishers, strict=True)}

            async def stored() -> dict[str, tuple[int, int]] | None:
                counts = {e: await stored_counts_of(influxdb.url, database, e) for e in ESTATES}
                return counts if all(counts[e][0] >= published[e] for e in ESTATES) else None

            counts = await eventually(stored, 30)
            received = [s.parts.metrics.total(s.parts.metrics.mqtt_messages) for s in (first, second)]
    finally:
        for publisher in publishers:
            publisher.close()
    assert all(n > 100 for n in published.values())
    # every value once per estate (points == distinct values == published): 0 lost, 0 duplicated
    assert counts == {e: (published[e], published[e]) for e in ESTATES}
    # the broker split the messages: each collector took a share, together exactly all of them
    assert all(n > 0 for n in received)
    assert sum(received) == sum(published.values())


@pytest.mark.parametrize("group", [None, ""])
def test_without_a_group_the_collector_subscribes_plainly(tmp_path: Path, group: str | None) -> None:
    site = parse_site(ESTATE % {"estate": "north", "prefix": "plain"}, "north.yaml")
    settings = Settings(influx=InfluxSettings(url="http://127.0.0.1:9", database="unused"),
                        collector=CollectorSettings(state_dir=tmp_path / "c", share_group=group),
                        mqtt=MqttSettings(url="mqtt://127.0.0.1:9"))
    service = CollectorService(site, settings, SystemClock(), BrokerAddress("127.0.0.1", 9))
    assert subscriptions(service) == ["plain/north/+"]
