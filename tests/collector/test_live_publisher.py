"""The live publisher: one message per room per commit, all of a commit in one write, drops counted."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.publishers.live import LivePublisher
from pumpwatch import wire
from pumpwatch.catalog import SensorCatalog
from pumpwatch.mqtt_session import PacketReader, publish_packets
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Quality, Reading
from pumpwatch.sitefile import load_site
from pumpwatch.wire import decode_live_readings, encode_live_readings, live_topic
from tests.support.services import HOST, Mosquitto

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"


def test_qos0_publish_packets_read_back_as_sent() -> None:
    messages = [("pumpwatch/live/a/dom", b"[1]"), ("x" * 300, b"y" * 70_000), ("t", b"")]
    read, others = PacketReader().feed(publish_packets(messages), 1)
    assert others == []
    assert [(m.topic, m.payload, m.qos, m.mid) for m in read] == [(t, p, 0, 0) for t, p in messages]


class Watcher:
    """A paho subscriber to every room's live topic."""

    def __init__(self, port: int) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.cond = threading.Condition()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *a: c.subscribe("pumpwatch/live/#", qos=0)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._message
        self.client.connect(HOST, port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.received.append((message.topic, bytes(message.payload)))
            self.cond.notify_all()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(check: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_a_commit_of_two_rooms_is_two_messages_with_the_newest_reading_of_each_sensor(
        mosquitto: Mosquitto) -> None:
    site = load_site(EXAMPLE)
    catalog = SensorCatalog(site)
    estate = site.site.id
    (dom, dom_sensor), (fire, fire_sensor) = [
        (room.id, next(info.id for info in catalog if info.room == room.id)) for room in site.rooms[:2]]
    drops: list[int] = []
    publisher = LivePublisher(BrokerAddress(HOST, mosquitto.port), f"live-{uuid.uuid4().hex[:8]}", catalog,
                              on_dropped=drops.append)
    watcher = Watcher(mosquitto.port)
    publisher.start()
    try:
        assert wait_until(lambda: publisher.connected)
        dom_key, fire_key = f"{estate}/{dom_sensor}", f"{estate}/{fire_sensor}"
        publisher([Reading(dom_key, 100.0, 1.0), Reading(fire_key, 100.0, 5.0), Reading(dom_key, 101.0, 2.0)])
        with watcher.cond:
            assert watcher.cond.wait_for(lambda: len(watcher.received) == 2, 10)
        got = {topic: decode_live_readings(payload) for topic, payload in watcher.received}
        assert set(got) == {live_topic(estate, dom), live_topic(estate, fire)}
        assert [(r.sensor, r.ts, r.value) for r in got[live_topic(estate, dom)]] == [(dom_sensor, 101.0, 2.0)]
        assert [(r.sensor, r.value) for r in got[live_topic(estate, fire)]] == [(fire_sensor, 5.0)]
        assert drops == []
    finally:
        publisher.stop()
        watcher.close()
    # Disconnected: the commit's messages are dropped at once and counted, never queued for later.
    publisher([Reading(f"{estate}/{dom_sensor}", 102.0, 3.0), Reading(f"{estate}/{fire_sensor}", 102.0, 6.0)])
    assert drops == [2]
    assert publisher.dropped == 2


def test_live_readings_read_back_the_same_from_orjson_and_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = [Reading("dom-header-pressure", 1_800_000_000.125, 0.42, Quality.GOOD),
                Reading("dom-p1-switch", 1_800_000_000.5, 2.0, Quality.OUT_OF_RANGE, "AUTO"),
                Reading("冷水箱-level", 1.0, -1e-300, Quality.GOOD)]
    fast = encode_live_readings(readings)
    monkeypatch.setattr(wire, "_fast_dumps", None)
    plain = encode_live_readings(readings)
    assert decode_live_readings(fast) == decode_live_readings(plain) == readings
    assert decode_live_readings(fast, "harbour-view") == [r._replace(sensor=f"harbour-view/{r.sensor}")
                                                          for r in readings]  # under their keys
