"""An edge and the centre across a real network cut: two network namespaces joined by a veth pair.

The centre namespace runs Mosquitto (TLS on the link with per-edge logins and an ACL, plain on its
own loopback), InfluxDB and `pumpwatch collect`; the edge namespace runs the room's Mosquitto, the
wireless sensors (200 readings/s at QoS 1, each with its own timestamp and value) and `pumpwatch
edge`. The link is rate-limited like 4G (tbf 1 Mbit/s). Under load: the link goes down for 60 s,
the centre's broker restarts, the link goes down for 5 minutes, and the edge is SIGKILLed while it
catches up. Every reading published in the room is stored at the centre once: 0 lost, 0 duplicated.
A leak raised in the room while the link is down reaches the centre's alarm topic when it returns,
and the centre raised `edge_offline` meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.netns import (
    Link,
    NamespacedInfluxDB,
    NamespacedMosquitto,
    NamespacedProcess,
    link_or_skip,
    make_ca,
    start_in_namespace,
)

pytestmark = pytest.mark.e2e

SENSORS = 20
RATE = 200.0  # readings per second, one reading a message
METRICS_PORT = 9108  # inside each namespace: nothing else listens there
SITE = """
site: {id: cut, name: {zh: 断网测试, en: Link cut}}
rooms:
  - id: r1
    name: {zh: 一号泵房, en: Room 1}
    sensors:
%(sensors)s
      - {id: leak1, kind: leak, source: mqtt, alarms: {no_data: false}}
  - id: hq
    name: {zh: 中心机房, en: Centre}
edges:
  - {id: e1, name: {zh: 一号网关, en: Gateway 1}, rooms: [r1], username: edge-e1, heartbeat: 5,
     offline_after: 30}
mqtt:
  - topic: "load/{sensor}"
    values: [{field: v, sensor: "{sensor}"}]
    timestamp_field: ts
  - topic: "leak/{sensor}"
    format: boolean
    values: [{sensor: "{sensor}"}]
"""


def _site() -> str:
    sensors = "\n".join(f"      - {{id: s{i:02d}, kind: flow, range: [0, 1000000000], source: mqtt, "
                        f"alarms: {{no_data: false}}}}" for i in range(SENSORS))
    return SITE % {"sensors": sensors}


@dataclass
class RoomSensors:
    """The room's wireless sensors: QoS 1 messages to the room's broker at a steady rate, counted."""

    port: int
    sent: int = 0  # readings
    alarms: int = 0  # leak messages
    acked: int = 0
    base_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    stop: threading.Event = field(default_factory=threading.Event)
    leak: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """Publish until `stop`, then wait for every acknowledgement (runs inside the edge namespace)."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"room-{uuid.uuid4().hex[:8]}",
                             clean_session=False)
        client.max_queued_messages_set(0)
        client.max_inflight_messages_set(200)

        def acked(*_args: Any) -> None:
            self.acked += 1

        client.on_publish = acked
        client.connect("127.0.0.1", self.port)
        period, next_at, k = 1.0 / RATE, time.monotonic(), 0
        try:
            while not self.stop.is_set():
                payload = json.dumps({"v": k, "ts": self.base_ms + 5 * k})  # unique value and time
                client.publish(f"load/s{k % SENSORS:02d}", payload, qos=1)
                self.sent += 1
                k += 1
                if self.leak.is_set():
                    client.publish("leak/leak1", "true", qos=1)
                    self.alarms += 1
                    self.leak.clear()
                next_at += period
                while time.monotonic() < next_at:
                    client.loop(timeout=max(0.0, min(0.05, next_at - time.monotonic())))
            deadline = time.monotonic() + 60
            while self.acked < self.sent + self.alarms and time.monotonic() < deadline:
                client.loop(timeout=0.1)
        finally:
            client.disconnect()
            self.done.set()


@dataclass
class AlarmWatch:
    """Everything on the centre's alarm topics (a persistent QoS 1 session inside the centre namespace)."""

    port: int
    user: str
    password: str
    topics: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """Collect alarm topics until `stop`."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{uuid.uuid4().hex[:8]}",
                             clean_session=False)
        client.username_pw_set(self.user, self.password)
        client.on_connect = lambda c, *_a: c.subscribe("pumpwatch/alarms/#", qos=1)
        client.on_message = lambda _c, _u, message: self.topics.append(message.topic)
        client.reconnect_delay_set(1, 2)
        client.connect("127.0.0.1", self.port)
        while not self.stop.is_set():
            if client.loop(timeout=0.2) != mqtt.MQTT_ERR_SUCCESS:
                time.sleep(0.5)
                try:
                    client.reconnect()
                except OSError:
                    continue
        client.disconnect()


@pytest.fixture
def link() -> Iterator[Link]:
    with link_or_skip() as made:
        yield made


def _metrics(link: Link, namespace: str) -> tuple[dict[str, Any], str]:
    """(/healthz, /metrics) of the pumpwatch process in a namespace."""
    def ask() -> tuple[dict[str, Any], str]:
        base = f"http://127.0.0.1:{METRICS_PORT}"
        return httpx.get(f"{base}/healthz", timeout=5).json(), httpx.get(f"{base}/metrics", timeout=5).text
    try:
        return link.run_in(namespace, ask)
    except httpx.HTTPError:
        return {}, ""


def _counter(text: str, name: str, **labels: str) -> float:
    wanted = "".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (not wanted or wanted in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _wait(check: Any, within: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"not within {within:g} s: {what}")


@pytest.mark.timeout(900)
def test_cuts_a_broker_restart_and_a_sigkill_lose_and_duplicate_nothing(link: Link, tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    ca = make_ca(tls, link.centre_ip)
    site = tmp_path / "site.yaml"
    site.write_text(_site(), encoding="utf-8")
    centre_password, edge_password = "centre-secret-1", "edge-e1-secret-1"
    centre_broker = NamespacedMosquitto(
        link.centre, link.centre_ip, tls=(tls / "broker.pem", tls / "broker.key"),
        users={"centre": centre_password, "edge-e1": edge_password},
        acl=["user centre", "topic readwrite #", "", "user edge-e1", "topic write pumpwatch/edge/e1/#",
             "topic read pumpwatch/edge/e1/time/reply"])
    influx = NamespacedInfluxDB(link.centre)
    room_broker = NamespacedMosquitto(link.edge, link.edge_ip)
    processes: list[NamespacedProcess] = []
    threads: list[threading.Thread] = []
    sensors = watch = None
    try:
        centre_broker.start()
        influx.start()
        room_broker.start()
        base = {k: v for k, v in os.environ.items() if not k.startswith("PUMPWATCH_")}
        centre = NamespacedProcess("centre", ["collect", "--site", str(site)], dict(
            base, PUMPWATCH_MQTT__URL=f"mqtt://centre:{centre_password}@127.0.0.1:{centre_broker.port}",
            PUMPWATCH_INFLUX__URL=influx.url, PUMPWATCH_INFLUX__DATABASE="cut",
            PUMPWATCH_COLLECTOR__STATE_DIR=str(tmp_path / "centre"),
            PUMPWATCH_COLLECTOR__CLIENT_ID="centre-a",
            PUMPWATCH_COLLECTOR__SHARE_GROUP="centre", PUMPWATCH_METRICS__PORT=str(METRICS_PORT),
            PUMPWATCH_COLLECTOR__PROBE_INTERVAL="0.5"), tmp_path / "centre.log", namespace=link.centre)
        edge = NamespacedProcess("edge", ["edge", "--site", str(site)], dict(
            base, PUMPWATCH_MQTT__URL=room_broker.url, PUMPWATCH_EDGE__ID="e1",
            PUMPWATCH_EDGE__UPLINK_URL=f"mqtts://edge-e1:{edge_password}@{link.centre_ip}:{centre_broker.link_port}",
            PUMPWATCH_EDGE__UPLINK_CA_FILE=str(ca), PUMPWATCH_EDGE__KEEPALIVE="10",
            PUMPWATCH_EDGE__ACK_TIMEOUT="10", PUMPWATCH_EDGE__LINGER="0.5",
            PUMPWATCH_COLLECTOR__BATCH_SIZE="1000", PUMPWATCH_COLLECTOR__STATE_DIR=str(tmp_path / "edge"),
            PUMPWATCH_COLLECTOR__CLIENT_ID="edge-e1-room", PUMPWATCH_METRICS__PORT=str(METRICS_PORT)),
            tmp_path / "edge.log", namespace=link.edge)
        processes += [centre, edge]
        watch = AlarmWatch(centre_broker.port, "centre", centre_password)
        threads.append(start_in_namespace(link.centre, watch.run))
        centre.start()
        edge.start()

        def uplink_up() -> bool:
            assert edge.proc is not None
            assert edge.proc.poll() is None, edge.text()[-3000:]
            return _metrics(link, link.edge)[0].get("uplink") == "up"

        _wait(uplink_up, 60, "the edge's uplink is up (the centre answered over TLS)")
        sensors = RoomSensors(room_broker.port)
        threads.append(start_in_namespace(link.edge, sensors.run))
        time.sleep(10)

        # 1. The link down for 60 s under load, then back: the edge catches up.
        link.cut()
        time.sleep(60)
        link.mend()

        def caught_up() -> bool:
            health = _metrics(link, link.edge)[0]
            return health.get("uplink") == "up" and 0 <= int(health.get("buffer_depth", 10**9)) < 2 * RATE

        _wait(caught_up, 120, "the edge caught up after the 60 s cut")

        # 2. The centre's broker restarts (persistent: its sessions and queued messages survive).
        centre_broker.stop()
        time.sleep(3)
        centre_broker.start()
        _wait(caught_up, 120, "the edge caught up after the centre broker's restart")

        # 3. The link down for 5 minutes; a leak in the room meanwhile; SIGKILL while catching up.
        time.sleep(5)
        link.cut()
        time.sleep(5)
        sensors.leak.set()
        time.sleep(295)
        acked_before = _counter(_metrics(link, link.edge)[1], "pumpwatch_uplink_batches_total",
                                outcome="acked")
        link.mend()

        def catching_up() -> int | None:
            health, text = _metrics(link, link.edge)
            depth = int(health.get("buffer_depth", 0))
            moving = _counter(text, "pumpwatch_uplink_batches_total", outcome="acked") > acked_before
            return depth if moving and depth > 0 else None

        depth_at_kill = _wait(catching_up, 120, "the edge started catching up", interval=0.1)
        edge.kill()
        edge.start()
        _wait(caught_up, 180, "the edge caught up after its SIGKILL")
        time.sleep(5)
        sensors.stop.set()
        assert sensors.done.wait(90), "the room's sensors did not get every acknowledgement"
        published = sensors.sent
        assert sensors.acked == published + sensors.alarms

        def stored() -> tuple[int, int] | None:
            rows = influx.query("cut", "SELECT count(value), count(distinct(value)) FROM reading "
                                "WHERE sensor =~ /^s[0-9]+$/")
            counts = (int(rows[0][1]), int(rows[0][2])) if rows else (0, 0)
            return counts if counts[0] >= published else None

        counts = _wait(stored, 180, f"{published} readings stored at the centre", interval=2)
        print(f"\nedge across a real cut: {published} published at {RATE:g}/s, stored {counts[0]} "
              f"({counts[1]} distinct); SIGKILL with {depth_at_kill} readings still buffered")
        assert counts == (published, published)  # 0 lost, 0 duplicated

        # The edge's health reached the centre, and the centre saw the edge go and come back.
        heartbeats = influx.query("cut", "SELECT count(value) FROM reading WHERE sensor = 'e1.heartbeat'")
        assert heartbeats
        assert int(heartbeats[0][1]) > 0
        offsets = influx.query("cut", "SELECT last(value) FROM reading WHERE sensor = 'e1.clock_offset'")
        assert offsets
        assert abs(float(offsets[0][1])) < 1.0
        assert re.search(r"alarm e1/edge_offline raised", centre.text())
        assert re.search(r"alarm e1/edge_offline cleared", centre.text())
        # The leak raised in the room during the cut reached the centre's alarm topic afterwards.
        _wait(lambda: "pumpwatch/alarms/cut/r1/r1/leak" in watch.topics if watch else False, 60,
              "the edge's leak alarm on the centre's alarm topic")
        _, centre_metrics = _metrics(link, link.centre)
        repeated = _counter(centre_metrics, "pumpwatch_edge_batches_total", edge="e1", outcome="repeated")
        print(f"centre: {repeated:g} batches recognised as sent before")
    finally:
        if sensors is not None:
            sensors.stop.set()
        if watch is not None:
            watch.stop.set()
        for process in processes:
            process.stop()
        for server in (room_broker, influx, centre_broker):
            server.close()
        for thread in threads:
            thread.join(10)
