"""Reload while the collector runs: estates added, changed, removed, a broken file refused; nothing lost.

A real Mosquitto and a folder of estate files, read by the `DeploymentWatcher` the roles run. Every
reading of the estates that stay is counted from the publisher's acknowledged messages to the store's
writes across the reloads: none lost, none written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.service import CollectorService
from collector.stores.embedded import EmbeddedStore
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import SystemClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.portfolio import load_portfolio
from pumpwatch.readings import Reading
from pumpwatch.reload import DeploymentWatcher, EstateChange
from pumpwatch.settings import CollectorSettings, MqttSettings, Settings
from tests.support.services import HOST, Mosquitto
from tests.support.waiting import eventually


def estate_file(prefix: str, estate: str, threshold: float | None = None) -> str:
    """An estate of two MQTT temperature sensors fed by plain numbers on `<prefix>/<estate>/n/<sensor>`."""
    limit = f", thresholds: [{{when: above, value: {threshold}, severity: major}}]" if threshold else ""
    return f"""site: {{id: {estate}, name: {{zh: {estate}, en: {estate}}}}}
rooms:
  - id: room1
    name: {{zh: 泵房, en: Pump room}}
    sensors:
      - {{id: t1, kind: temperature, source: mqtt, alarms: {{no_data: false}}{limit}}}
      - {{id: t2, kind: temperature, source: mqtt, alarms: {{no_data: false}}}}
mqtt:
  - topic: "{prefix}/{estate}/n/{{sensor}}"
    format: number
    values: [{{sensor: "{{sensor}}"}}]
"""


class CountingStore(EmbeddedStore):
    """The embedded store, counting every (sensor key, value) it is asked to write (a repeat shows)."""

    def __init__(self, path: Path, catalog: SensorCatalog) -> None:
        super().__init__(path, catalog)
        self.writes: Counter[tuple[str, float]] = Counter()

    async def write(self, readings: Sequence[Reading]) -> None:
        await super().write(readings)
        self.writes.update((r.sensor, r.value) for r in readings)


class Publisher:
    """Publishes 0, 1, 2, ... to each of its topics in turn at QoS 1; counts what the broker acknowledged."""

    def __init__(self, port: int, topics: dict[str, str]) -> None:
        self.topics = topics  # sensor key -> topic
        self.sent: Counter[str] = Counter()
        self.acked: Counter[str] = Counter()
        self._mids: dict[int, str] = {}
        self._early: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
        self._client.max_queued_messages_set(0)
        self._client.on_publish = self._on_publish
        self._client.connect(HOST, port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _on_publish(self, _client: Any, _userdata: Any, mid: int, *_args: Any) -> None:
        with self._lock:  # never held around paho's own calls: it calls back holding its locks
            key = self._mids.pop(mid, None)
            if key is None:
                self._early.add(mid)  # acknowledged before `_run` noted whose it was
            else:
                self.acked[key] += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, topic in self.topics.items():
                info = self._client.publish(topic, str(self.sent[key]), qos=1)
                with self._lock:
                    self.sent[key] += 1
                    if info.mid in self._early:
                        self._early.discard(info.mid)
                        self.acked[key] += 1
                    else:
                        self._mids[info.mid] = key
            self._stop.wait(0.01)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@contextlib.asynccontextmanager
async def collecting(service: CollectorService) -> AsyncIterator[CollectorService]:
    task = asyncio.create_task(service.run())

    async def connected() -> bool:
        source = service.parts.mqtt
        return source is not None and source.connected
    try:
        await eventually(connected, 15, 0.05)
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _publish_once(port: int, topic: str, payload: str) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")
    client.connect(HOST, port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


async def test_estates_added_changed_removed_and_a_broken_file_while_the_others_lose_nothing(
        tmp_path: Path, mosquitto: Mosquitto, unique_topic: str, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "estates"
    folder.mkdir()
    for estate in ("north", "south"):
        (folder / f"{estate}.yaml").write_text(estate_file(unique_topic, estate), encoding="utf-8")
    portfolio = load_portfolio(folder)
    settings = Settings(collector=CollectorSettings(state_dir=tmp_path / "state",
                                                    client_id=f"reload-{uuid.uuid4().hex[:8]}",
                                                    write_linger=0.05),
                        mqtt=MqttSettings(url=mosquitto.url))
    store = CountingStore(tmp_path / "series.db", SensorCatalog(portfolio))
    service = CollectorService(portfolio, settings, SystemClock(), BrokerAddress(HOST, mosquitto.port),
                               store=store)
    store.catalog = service.parts.catalog  # the collector's own catalog, which the reload changes
    watcher = DeploymentWatcher(portfolio, interval=0)

    async def to_collector(change: EstateChange) -> None:
        if change.site is not None:
            await service.update_estate(change.site)
        else:
            await service.remove_estate(change.estate)
    watcher.listeners.append(to_collector)
    stays = {f"{estate}/{sensor}": f"{unique_topic}/{estate}/n/{sensor}"
             for estate in ("north", "south") for sensor in ("t1", "t2")}
    publisher = Publisher(mosquitto.port, stays)
    async with collecting(service):
        north_engine = service.parts.alarms.engine("north")
        publisher.start()
        try:
            await eventually(lambda: _written_of(store, stays, at_least=20), 20, 0.05)

            # Added: a third estate's file.
            (folder / "east.yaml").write_text(estate_file(unique_topic, "east"), encoding="utf-8")
            assert [(c.kind, c.estate) for c in await watcher.check()] == [("updated", "east")]
            assert service.estates == ["north", "south", "east"]
            east = f"{unique_topic}/east/n/t1"
            assert service.parts.mqtt is not None
            assert f"{unique_topic}/east/n/+" in service.parts.mqtt.subscriptions

            async def east_stored() -> bool:  # published until its subscription is in place
                await asyncio.to_thread(_publish_once, mosquitto.port, east, "21.5")
                return ("east/t1", 21.5) in store.writes
            await eventually(east_stored, 15, 0.2)

            # Changed: south gets a threshold; its rules are rebuilt, north's engine is untouched.
            rules_before = len(service.parts.alarms.engine("south").rules)
            (folder / "south.yaml").write_text(estate_file(unique_topic, "south", threshold=1e6),
                                               encoding="utf-8")
            assert [(c.kind, c.estate) for c in await watcher.check()] == [("updated", "south")]
            assert len(service.parts.alarms.engine("south").rules) == rules_before + 1
            assert service.parts.alarms.engine("north") is north_engine

            # Removed: east's file goes; so do its topics and its sensors.
            (folder / "east.yaml").unlink()
            assert [(c.kind, c.estate) for c in await watcher.check()] == [("removed", "east")]
            assert service.estates == ["north", "south"]
            assert service.parts.mqtt is not None
            assert all("/east/" not in topic for topic in service.parts.mqtt.subscriptions)
            assert service.parts.catalog.get("east/t1") is None

            # Broken: south's file no longer parses; south keeps running on the version it had.
            (folder / "south.yaml").write_text("site: {id: south\nrooms: [", encoding="utf-8")
            with caplog.at_level(logging.ERROR, logger="pumpwatch.reload"):
                assert await watcher.check() == []
                assert await watcher.check() == []  # polled again: nothing new, logged once
            refusals = [r for r in caplog.records if "estate south refused" in r.getMessage()]
            assert len(refusals) == 1
            assert f"{folder / 'south.yaml'}:2: YAML:" in refusals[0].getMessage()
            assert len(service.parts.alarms.engine("south").rules) == rules_before + 1
            assert watcher.portfolio.estate("south").rooms[0].sensors[0].thresholds is not None

            # A conflict is refused too: a new file that claims north's topic.
            claims_north = estate_file(unique_topic, "north").replace("id: north", "id: west")
            (folder / "west.yaml").write_text(claims_north, encoding="utf-8")
            assert await watcher.check() == []
            assert "west" not in service.estates
            await eventually(lambda: _written_of(store, stays, at_least=60), 20, 0.05)
        finally:
            publisher.stop()
        await eventually(lambda: _all_acked(publisher), 15, 0.05)
        await eventually(lambda: _written_of(store, stays, counts=publisher.acked), 30, 0.05)
    publisher.close()
    for key in stays:  # every acknowledged message of the estates that stayed, stored exactly once
        written = {value: n for (sensor, value), n in store.writes.items() if sensor == key}
        assert sorted(written) == [float(i) for i in range(publisher.acked[key])], key
        assert set(written.values()) == {1}, key
    assert store.writes[("east/t1", 21.5)] >= 1


async def _written_of(store: CountingStore, keys: dict[str, str], at_least: int = 0,
                      counts: Counter[str] | None = None) -> bool:
    """Whether each key has `at_least` (or its count in `counts`) distinct values written."""
    for key in keys:
        wanted = counts[key] if counts is not None else at_least
        if len({value for (sensor, value) in store.writes if sensor == key}) < wanted:
            return False
    return True


async def _all_acked(publisher: Publisher) -> bool:
    return publisher.acked == publisher.sent
