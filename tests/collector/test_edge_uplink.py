"""An edge and the centre in one process, against real brokers: the room's and the centre's Mosquitto.

The edge reads its room's broker and forwards to the centre's; the centre stores into its embedded
store. Batches arrive once, a batch sent twice is stored once (also across a restart of the centre),
alarm events raised while the centre is away arrive after it returns (across a restart of the
edge), a silent edge raises `edge_offline`, and an edge speaks only for its own rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import paho.mqtt.publish as publish
import pytest
from pydantic import SecretStr

from collector.service import CollectorService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent
from pumpwatch.clock import SystemClock
from pumpwatch.edge_wire import batch_topic, encode_batch
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Reading
from pumpwatch.settings import Settings
from pumpwatch.site import Site
from pumpwatch.sitefile import parse_site
from tests.support.mqtt import create_session
from tests.support.services import HOST, Mosquitto
from tests.support.waiting import eventually

SITE = """
site: {id: up, name: {zh: 上行, en: Uplink}}
rooms:
  - id: r1
    name: {zh: 一号泵房, en: Room 1}
    sensors:
      - {id: t1, kind: temperature, source: mqtt, alarms: {no_data: false}}
      - {id: leak1, kind: leak, source: mqtt, alarms: {no_data: false}}
  - id: r2
    name: {zh: 二号泵房, en: Room 2}
    sensors:
      - {id: t2, kind: temperature, source: mqtt, alarms: {no_data: false}}
edges:
  - {id: e1, rooms: [r1], username: edge-e1, heartbeat: 0.5, offline_after: 1.5}
mqtt:
  - topic: "room/n/{sensor}"
    format: number
    values: [{sensor: "{sensor}"}]
  - topic: "room/b/{sensor}"
    format: boolean
    values: [{sensor: "{sensor}"}]
"""


@pytest.fixture(scope="module")
def site() -> Site:
    return parse_site(SITE, "uplink-site.yaml")


@pytest.fixture
def centre_broker() -> Iterator[Mosquitto]:
    with Mosquitto() as broker:
        yield broker


@pytest.fixture
def room_broker() -> Iterator[Mosquitto]:
    with Mosquitto() as broker:
        yield broker


def _centre(site: Site, broker: Mosquitto, state: Path) -> CollectorService:
    settings = Settings()
    settings.collector.state_dir = state
    settings.collector.client_id = f"centre-{state.name}"
    settings.collector.probe_interval = 0.1
    return CollectorService(site, settings, SystemClock(), BrokerAddress.parse(broker.url))


def _edge(site: Site, room: Mosquitto, centre: Mosquitto, state: Path) -> CollectorService:
    """An edge whose room session exists before it starts (nothing published meanwhile is lost)."""
    for topic in ("room/n/+", "room/b/+"):
        create_session(room.port, f"room-{state.name}", topic)
    settings = Settings()
    settings.collector.state_dir = state
    settings.collector.client_id = f"room-{state.name}"
    settings.collector.probe_interval = 0.1
    settings.edge.id = "e1"
    settings.edge.uplink_url = SecretStr(centre.url)
    settings.edge.linger = 0.05
    settings.edge.ack_timeout = 5
    return CollectorService(site, settings, SystemClock(), BrokerAddress.parse(room.url))


@contextlib.asynccontextmanager
async def running(service: CollectorService) -> AsyncIterator[CollectorService]:
    task = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _until(check: object, within: float = 20) -> object:
    async def probe() -> object:
        return check() if callable(check) else check
    return await eventually(probe, within, interval=0.05)


def _publish(broker: Mosquitto, topic: str, payload: str) -> None:
    publish.single(topic, payload, qos=1, hostname=HOST, port=broker.port)


async def test_readings_and_the_edge_health_reach_the_centre_once(
        site: Site, room_broker: Mosquitto, centre_broker: Mosquitto, tmp_path: Path) -> None:
    centre = _centre(site, centre_broker, tmp_path / "centre")
    edge = _edge(site, room_broker, centre_broker, tmp_path / "edge")
    async with running(centre), running(edge):
        link = edge.parts.uplink
        assert link is not None
        await _until(lambda: link.ready and edge.parts.mqtt is not None and edge.parts.mqtt.connected)
        for value in range(30):
            await asyncio.to_thread(_publish, room_broker, "room/n/t1", str(20 + value))
        await asyncio.to_thread(_publish, room_broker, "room/n/t2", "5")  # room 2: not this edge's
        await _until(lambda: centre.parts.metrics.total(centre.parts.metrics.written) >= 30)

        async def health_stored() -> bool:
            return bool(await centre.store.count("up/e1.heartbeat")) and bool(
                await centre.store.count("up/e1.clock_offset"))

        await eventually(health_stored, 20)
        assert await centre.store.count("up/t1") == 30
        assert await centre.store.count("up/t2") == 0
        latest = await centre.store.latest(["up/e1.version", "up/e1.buffer_depth", "up/e1.clock_offset"])
        assert latest["up/e1.version"].state == edge.parts.sources[-1].version  # type: ignore[attr-defined]
        # One clock: the measured offset is within its error bound, half the round trip.
        assert link.offset is not None
        assert link.round_trip is not None
        assert abs(link.offset) <= link.round_trip / 2 + 0.001
        rejected = edge.parts.metrics.by_label(edge.parts.metrics.rejected, "reason")
        assert rejected.get("unknown_sensor") == 1  # t2 is another room's: the edge leaves it out
        health = edge.health()
        assert health["uplink"] == "up"
        assert health["edge"] == "e1"


async def test_a_batch_sent_twice_is_stored_once_even_after_the_centre_restarts(
        site: Site, centre_broker: Mosquitto, tmp_path: Path) -> None:
    readings = [Reading("t1", 1_700_000_000.0 + i, float(i)) for i in range(50)]
    stray = [Reading("t2", 1_700_000_000.0, 1.0)]  # room 2: not e1's to send
    payload = encode_batch(7, 0.0, readings + stray)
    state = tmp_path / "centre"
    async with running(_centre(site, centre_broker, state)) as centre:
        await _until(lambda: centre.parts.edges is not None and centre.parts.edges.connected)
        for _ in range(2):
            await asyncio.to_thread(publish.single, batch_topic("e1"), payload, qos=1, hostname=HOST,
                                    port=centre_broker.port)
        m = centre.parts.metrics
        await _until(lambda: m.by_label(m.edge_batches, "outcome").get("repeated") == 1)
        await _until(lambda: m.total(m.written) >= 50)
        assert await centre.store.count("up/t1") == 50
        assert await centre.store.count("up/t2") == 0
        assert m.by_label(m.rejected, "reason").get("not_this_edge") == 1
    async with running(_centre(site, centre_broker, state)) as again:
        await _until(lambda: again.parts.edges is not None and again.parts.edges.connected)
        await asyncio.to_thread(publish.single, batch_topic("e1"), payload, qos=1, hostname=HOST,
                                port=centre_broker.port)
        m = again.parts.metrics
        await _until(lambda: m.by_label(m.edge_batches, "outcome").get("repeated") == 1)
        assert m.by_label(m.edge_batches, "outcome").get("stored") is None


async def test_alarms_raised_while_the_centre_is_away_arrive_after_an_edge_restart(
        site: Site, room_broker: Mosquitto, tmp_path: Path) -> None:
    centre_broker = Mosquitto()
    try:
        centre_broker.start()
        centre_broker.stop()  # its port is known; nothing listens there now
        edge_state = tmp_path / "edge"
        async with running(_edge(site, room_broker, centre_broker, edge_state)) as edge:
            await _until(lambda: edge.parts.mqtt is not None and edge.parts.mqtt.connected)
            await asyncio.to_thread(_publish, room_broker, "room/b/leak1", "true")
            forwarder = edge.parts.forwarder
            assert forwarder is not None
            await _until(lambda: len(forwarder.outbox) == 1)  # raised locally, kept on disk
        centre_broker.start()
        events: list[AlarmEvent] = []
        centre = _centre(site, centre_broker, tmp_path / "centre")
        centre.add_alarm_listener(events.append)
        async with running(centre), running(_edge(site, room_broker, centre_broker, edge_state)) as again:
            await _until(lambda: any(e.key.alarm_type == "leak" for e in events), 30)
            again_forwarder = again.parts.forwarder
            assert again_forwarder is not None
            await _until(lambda: len(again_forwarder.outbox) == 0)
        leaks = [e for e in events if e.key.alarm_type == "leak"]
        assert [(e.action, e.key.asset, e.room) for e in leaks] == [(AlarmAction.RAISED, "r1", "r1")]
    finally:
        centre_broker.close()


async def test_a_silent_edge_raises_edge_offline_at_the_centre(
        site: Site, centre_broker: Mosquitto, tmp_path: Path) -> None:
    events: list[AlarmEvent] = []
    centre = _centre(site, centre_broker, tmp_path / "centre")
    centre.add_alarm_listener(events.append)
    keys = {rule.key.alarm_type for rule in centre.parts.alarms.rules}
    assert "edge_offline" in keys
    assert "leak" not in keys
    async with running(centre):
        await _until(lambda: [e for e in events if e.key.alarm_type == "edge_offline"], 10)
    (offline,) = events
    assert (offline.action, offline.key.asset, offline.room) == (AlarmAction.RAISED, "e1", "r1")
    assert "e1" in offline.message.zh
    assert "offline" in offline.message.en
