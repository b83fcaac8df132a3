"""An edge speaks for its own rooms only, and only with its own key: the centre checks both.

The edge and the centre run in one process against a real Mosquitto with the ACL `pumpwatch broker-acl`
generates; the edge signs its batches and alarm events with its key. The centre stores and relays
what the edge signed, and refuses (acknowledged, counted in `pumpwatch_wire_refused_total`) what its
login sends without its key, with another edge's key, about an asset outside its rooms, or again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from collector.service import CollectorService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.broker_acl import Roles, centre_identities, render_acl, render_password_file
from pumpwatch.clock import SystemClock
from pumpwatch.edge_wire import (
    BATCH_STREAM,
    EDGE_ALARM_STREAM,
    alarm_topic,
    batch_topic,
    encode_batch,
    encode_edge_alarm,
)
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Quality, Reading
from pumpwatch.settings import Settings
from pumpwatch.signing import Sequences, Signer
from pumpwatch.site import Severity, Site, Text
from pumpwatch.sitefile import parse_site
from tests.support.services import HOST, Mosquitto
from tests.support.waiting import eventually

SITE = """
site: {id: signed, name: {zh: 签名, en: Signed}}
rooms:
  - id: r1
    name: {zh: 一号泵房, en: Room 1}
    sensors:
      - {id: t1, kind: temperature, source: mqtt, alarms: {no_data: false}}
  - id: r2
    name: {zh: 二号泵房, en: Room 2}
    sensors:
      - {id: t2, kind: temperature, source: mqtt, alarms: {no_data: false}}
edges:
  - {id: e1, rooms: [r1], username: edge-e1, heartbeat: 0.5, offline_after: 5}
  - {id: e2, rooms: [r2], username: edge-e2, heartbeat: 0.5, offline_after: 5}
mqtt:
  - topic: "room/n/{sensor}"
    format: number
    values: [{sensor: "{sensor}"}]
"""
KEYS = {"e1": "e1-" + "1" * 40, "e2": "e2-" + "2" * 40}


@pytest.fixture(scope="module")
def site() -> Site:
    return parse_site(SITE, "signed-site.yaml")


@pytest.fixture(scope="module")
def broker(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    work = tmp_path_factory.mktemp("edge-acl")
    identities = centre_identities([site], Roles(collectors=("centre",)))
    passwd, missing = render_password_file(identities, {i.name: f"{i.name}-pw" for i in identities})
    assert not missing
    (work / "passwd").write_text(passwd)
    (work / "acl").write_text(render_acl(identities, "test"))
    with Mosquitto(password_file=work / "passwd", acl_file=work / "acl") as server:
        yield server


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("edge-keys")
    for edge, key in KEYS.items():
        (directory / f"{edge}.key").write_text(key)
    return directory


def _login(broker: Mosquitto, name: str) -> str:
    return broker.url_for(name, f"{name}-pw")


@contextlib.asynccontextmanager
async def running(*services: CollectorService) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(service.run()) for service in services]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _centre(site: Site, broker: Mosquitto, keys: Path, state: Path) -> CollectorService:
    settings = Settings()
    settings.collector.state_dir = state
    settings.collector.client_id = f"centre-{uuid.uuid4().hex[:6]}"
    settings.collector.probe_interval = 0.1
    settings.signing.trusted_dir = keys
    return CollectorService(site, settings, SystemClock(), BrokerAddress.parse(_login(broker, "centre")))


def _edge(site: Site, broker: Mosquitto, keys: Path, state: Path) -> CollectorService:
    settings = Settings()
    settings.collector.state_dir = state
    settings.collector.probe_interval = 0.1
    settings.edge.id = "e1"
    settings.edge.uplink_url = SecretStr(_login(broker, "edge-e1"))
    settings.edge.linger = 0.05
    settings.edge.ack_timeout = 5
    settings.signing.key_file = keys / "e1.key"
    return CollectorService(site, settings, SystemClock(), None)


class EdgeLogin:
    """The edge's broker login in a thief's hands: publishes what it likes and waits for the PUBACK."""

    def __init__(self, broker: Mosquitto) -> None:
        self._acked: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"thief-{uuid.uuid4().hex[:6]}")
        self.client.username_pw_set("edge-e1", "edge-e1-pw")
        self.client.on_publish = self._on_publish
        self.client.connect(HOST, broker.port)
        self.client.loop_start()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, _r: object, _p: object) -> None:
        with self._lock:
            self._acked.setdefault(mid, threading.Event()).set()

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        with self._lock:
            acked = self._acked.setdefault(info.mid, threading.Event())
        assert acked.wait(10), topic

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _event(asset: str, room: str) -> AlarmEvent:
    return AlarmEvent(AlarmAction.RAISED, AlarmKey(asset, "temperature_high"), Severity.MAJOR,
                      1_800_000_000.0, room, Text(zh="过高", en="high"), 80.0, asset)


async def _until(check: object, within: float = 20) -> None:
    async def probe() -> object:
        return check() if callable(check) else check
    await eventually(probe, within, interval=0.05)


async def test_the_centre_takes_only_what_the_edge_signed_about_its_own_rooms(
        site: Site, broker: Mosquitto, keys: Path, tmp_path: Path) -> None:
    centre = _centre(site, broker, keys, tmp_path / "centre")
    edge = _edge(site, broker, keys, tmp_path / "edge")
    relayed: list[AlarmEvent] = []  # the edge's events (the centre's own edge_offline rules left out)
    centre.add_alarm_listener(lambda e: relayed.append(e) if e.key.alarm_type == "temperature_high" else None)
    intake = centre.parts.edges
    assert intake is not None
    thief = EdgeLogin(broker)
    e1 = Signer("e1", KEYS["e1"].encode(), Sequences(None))
    e2 = Signer("e2", KEYS["e2"].encode(), Sequences(None))
    try:
        async with running(centre, edge):
            await _until(lambda: centre.parts.metrics.total(centre.parts.metrics.written) > 0)
            assert await centre.store.count("signed/e1.heartbeat") > 0  # the edge's own signed batches

            forwarder = edge.parts.forwarder
            assert forwarder is not None
            forwarder(_event("t1", "r1"))
            await _until(lambda: [e.key.asset for e in relayed] == ["t1"])

            before = await centre.store.count("signed/t1")
            readings = [Reading("t1", 1_800_000_000.0, 99.0, Quality.GOOD)]
            thief.publish(batch_topic("e1"), encode_batch(900_001, 1_800_000_000.0, readings))  # unsigned
            topic = batch_topic("e1")
            other_key = e2.seal(topic, encode_batch(900_002, 1_800_000_000.0, readings), BATCH_STREAM)
            thief.publish(topic, other_key)
            alarms = alarm_topic("e1")
            outside = encode_edge_alarm(900_003, _event("t2", "r1"))  # r2's sensor, said to be in r1
            thief.publish(alarms, e1.seal(alarms, outside, EDGE_ALARM_STREAM))
            captured = e1.seal(alarms, encode_edge_alarm(900_004, _event("t1", "r1")), EDGE_ALARM_STREAM)
            thief.publish(alarms, captured)
            await _until(lambda: len(relayed) == 2)
            thief.publish(alarms, captured)  # sent again: refused, not relayed twice
            await _until(lambda: intake.refusals.total() == 4)
            assert intake.refusals.total("forged") == 2
            assert intake.refusals.total("unknown_asset") == 1
            assert intake.refusals.total("replayed") == 1
            assert [e.key.asset for e in relayed] == ["t1", "t1"]
            assert await centre.store.count("signed/t1") == before  # neither forged batch was stored
    finally:
        thief.close()
