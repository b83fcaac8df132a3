"""Two collectors of one shared-subscription group judge every sensor whole and speak once per estate.

Mosquitto hands a group's messages to its members in turn, so with an even number of topics published
in a fixed order each topic goes to the same member every time: without the group's readings, the other
member's rules never see that sensor (this test then fails on false no-data alarms). Here every sensor
has a no-data rule of three seconds and a threshold; real Mosquitto, real InfluxDB, two
`CollectorService`s in one process with their own client ids; then one member stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.group import presence_topic, speaker
from collector.service import CollectorService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent
from pumpwatch.clock import SystemClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.portfolio import Portfolio
from pumpwatch.settings import CollectorSettings, InfluxSettings, MqttSettings, Settings
from pumpwatch.sitefile import parse_site
from pumpwatch.wire import ALARM_TOPIC, decode_alarm_event
from tests.support.services import HOST, InfluxDB, Mosquitto
from tests.support.waiting import eventually

SENSORS = [f"t{n:02d}" for n in range(1, 10)]  # with `p`: 10 a round per estate (one shared filter)
ESTATE = """
site: {id: %(estate)s, name: {zh: 小区, en: Estate}}
rooms:
  - id: r1
    name: {zh: 一号泵房, en: Room 1}
    sensors:
%(sensors)s
      - {id: p, kind: temperature, range: [-50, 200], source: mqtt, expected_period: 1,
         thresholds: [{when: above, value: 50, severity: major}]}
mqtt:
  - topic: "%(prefix)s/%(estate)s/{sensor}"
    format: number
    values: [{sensor: "{sensor}"}]
"""


def estate_file(estate: str, prefix: str) -> str:
    sensors = "\n".join(f"      - {{id: {s}, kind: temperature, range: [-50, 200], source: mqtt, "
                        f"expected_period: 1}}" for s in SENSORS)
    return ESTATE % {"estate": estate, "prefix": prefix, "sensors": sensors}


class Rounds:
    """Publishes every sensor of every estate once a round, in one fixed order, at QoS 1."""

    def __init__(self, port: int, topics: list[str]) -> None:
        self.topics = topics
        self.values = dict.fromkeys(topics, 20.0)
        self.rounds = 0
        self._stop = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rounds-{uuid.uuid4().hex[:8]}")
        self._client.connect(HOST, port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for topic in self.topics:
                self._client.publish(topic, str(self.values[topic]), qos=1)
            self.rounds += 1
            time.sleep(0.5)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.disconnect()
        self._client.loop_stop()


class AlarmWatch:
    """Every alarm event announced on the broker for these estates."""

    def __init__(self, port: int, estates: list[str]) -> None:
        self.events: list[AlarmEvent] = []
        subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{uuid.uuid4().hex[:8]}")
        client.on_connect = lambda c, *_a: c.subscribe([(f"{ALARM_TOPIC}/{e}/#", 1) for e in estates])
        client.on_subscribe = lambda *_a: subscribed.set()
        client.on_message = self._on_message
        client.connect(HOST, port)
        client.loop_start()
        assert subscribed.wait(15)
        self._client = client

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.events.append(decode_alarm_event(message.payload))

    def of(self, alarm_type: str, action: AlarmAction | None = None) -> list[AlarmEvent]:
        return [e for e in self.events
                if e.key.alarm_type.endswith(alarm_type) and (action is None or e.action is action)]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def member(tmp_path: Path, name: str, portfolio: Portfolio, influxdb: InfluxDB, mosquitto: Mosquitto,
           group: str, client_id: str) -> CollectorService:
    settings = Settings(
        influx=InfluxSettings(url=influxdb.url, database=f"group_{uuid.uuid4().hex[:8]}", timeout=2.0),
        collector=CollectorSettings(state_dir=tmp_path / name, client_id=client_id, share_group=group),
        mqtt=MqttSettings(url=mosquitto.url),
    )
    return CollectorService(portfolio, settings, SystemClock(), BrokerAddress(HOST, mosquitto.port))


def group_size(service: CollectorService) -> float:
    metrics = service.parts.metrics
    return metrics.total(metrics.group_members)


async def test_a_share_group_raises_no_false_no_data_and_announces_each_alarm_once(
        tmp_path: Path, influxdb: InfluxDB, mosquitto: Mosquitto, unique_topic: str) -> None:
    while True:  # names under which each member speaks for one estate
        tag = uuid.uuid4().hex[:6]
        estates = [f"north-{tag}", f"south-{tag}"]
        ids = [f"member-a-{tag}", f"member-b-{tag}"]
        if {speaker(e, ids) for e in estates} == set(ids):
            break
    portfolio = Portfolio.of(*(parse_site(estate_file(e, unique_topic), f"{e}.yaml") for e in estates))
    group = f"g{tag}"
    first, second = (member(tmp_path, f"c{n}", portfolio, influxdb, mosquitto, group, client_id)
                     for n, client_id in enumerate(ids))
    watch = AlarmWatch(mosquitto.port, estates)
    rounds: Rounds | None = None
    tasks = [asyncio.create_task(service.run()) for service in (first, second)]
    try:
        if True:
            async def both_see_both() -> bool:
                return group_size(first) == 2 and group_size(second) == 2

            await eventually(both_see_both, 15, 0.05)
            speakers = {e: speaker(e, ids) for e in estates}
            for service, client_id in ((first, ids[0]), (second, ids[1])):
                metrics = service.parts.metrics
                spoken = sum(s == client_id for s in speakers.values())
                assert metrics.total(metrics.estates_spoken_for) == spoken
            topics = [f"{unique_topic}/{e}/{s}" for e in estates for s in [*SENSORS, "p"]]
            rounds = Rounds(mosquitto.port, topics)
            await asyncio.sleep(6)  # two no-data periods of every sensor

            # Each member took part of the topics, and its rules still saw every sensor.
            taken = [s.parts.metrics.total(s.parts.metrics.mqtt_messages) for s in (first, second)]
            assert all(n > 0 for n in taken)
            for service in (first, second):
                metrics = service.parts.metrics
                assert metrics.total(metrics.peer_readings) > 0
                assert not service.parts.alarms.active()  # muted engines included: nothing is silent
            assert watch.of("no_data") == []

            # A threshold crossed in each estate: one RAISED event each, from the estate's speaker.
            for estate in estates:
                rounds.values[f"{unique_topic}/{estate}/p"] = 80.0

            async def raised_everywhere() -> bool:
                return {e.key.estate for e in watch.of("_high", AlarmAction.RAISED)} == set(estates)

            await eventually(raised_everywhere, 10, 0.05)
            await asyncio.sleep(1.5)  # time for a second announcement, were there one
            assert sorted(e.key.estate for e in watch.of("_high", AlarmAction.RAISED)) == sorted(estates)
            for service in (first, second):  # both members hold the alarms, the muted one too
                assert {key.estate for key in service.parts.alarms.active()} == set(estates)

            # One member stops: the other speaks for every estate, and clears what it now holds.
            tasks[1].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tasks[1]

            async def alone() -> bool:
                return group_size(first) == 1

            await eventually(alone, 10, 0.05)
            metrics = first.parts.metrics
            assert metrics.total(metrics.estates_spoken_for) == 2
            for estate in estates:
                rounds.values[f"{unique_topic}/{estate}/p"] = 20.0

            async def cleared_everywhere() -> bool:
                return {e.key.estate for e in watch.of("_high", AlarmAction.CLEARED)} == set(estates)

            await eventually(cleared_everywhere, 10, 0.05)
            assert watch.of("no_data") == []
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if rounds is not None:
            rounds.close()
        watch.close()


def test_the_speaker_of_an_estate_is_one_member_and_only_a_leaver_s_estates_move() -> None:
    estates = [f"estate-{n}" for n in range(300)]
    three = ["a", "b", "c"]
    before = {e: speaker(e, three) for e in estates}
    assert {e: speaker(e, list(reversed(three))) for e in estates} == before  # order does not matter
    counts = {m: sum(s == m for s in before.values()) for m in three}
    assert all(60 <= n <= 140 for n in counts.values()), counts  # spread, not all on one
    after = {e: speaker(e, ["a", "c"]) for e in estates}
    moved = {e for e in estates if after[e] != before[e]}
    assert moved == {e for e in estates if before[e] == "b"}
    assert presence_topic("fleet", "a") == "pumpwatch/collectors/fleet/a"


async def test_the_members_own_live_messages_coming_back_are_skipped_and_a_bad_one_counted() -> None:
    from collector.group import PeerReadings
    from collector.metrics import CollectorMetrics
    from pumpwatch.mqtt_session import Message
    from pumpwatch.readings import Reading
    from pumpwatch.signing import Verifier
    from pumpwatch.wire import encode_live_readings, live_topic

    metrics = CollectorMetrics()
    taken: list[list[tuple[str, list[Reading]]]] = []
    peers = PeerReadings(BrokerAddress(HOST, 9), "member-a", ["north"], Verifier({}), metrics, taken.append)
    peers._loop = asyncio.get_running_loop()
    topic = live_topic("north", "r1")
    own = encode_live_readings([Reading("t01", 1.0, 20.0)])
    theirs = encode_live_readings([Reading("t02", 1.0, 21.0)])
    peers.sent([own])
    peers._on_messages([Message(topic, own, 0, 0, False, 1), Message(topic, theirs, 0, 0, False, 1),
                        Message(topic, b"not json", 0, 0, False, 1)])
    await asyncio.sleep(0)  # the hand-over runs on the loop
    assert taken == [[("north", [Reading("t02", 1.0, 21.0)])]]
    assert metrics.total(metrics.peer_readings) == 1
    assert metrics.by_label(metrics.peer_refused, "reason") == {"malformed": 1.0}


async def test_a_member_sets_its_presence_again_when_a_stale_will_clears_it(mosquitto: Mosquitto) -> None:
    import paho.mqtt.publish as publish

    from collector.group import GroupPresence

    group, name = f"g{uuid.uuid4().hex[:6]}", f"m-{uuid.uuid4().hex[:6]}"
    seen: list[frozenset[str]] = []
    presence = GroupPresence(BrokerAddress(HOST, mosquitto.port), group, name, seen.append)
    history: list[bytes] = []  # the payloads of this member's presence topic, as a watcher sees them
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"w-{uuid.uuid4().hex[:6]}")
    watcher.on_connect = lambda c, *_a: c.subscribe(presence.topic, 1)
    watcher.on_message = lambda _c, _u, m: history.append(bytes(m.payload))
    watcher.connect(HOST, mosquitto.port)
    watcher.loop_start()
    presence.start()
    try:
        async def announced() -> bool:
            return bool(history) and bool(history[-1])

        await eventually(announced, 10, 0.05)
        # What the will of this member's previous connection would do: clear the retained presence.
        await asyncio.to_thread(publish.single, presence.topic, b"", qos=1, retain=True, hostname=HOST,
                                port=mosquitto.port)

        async def set_again() -> bool:
            return b"" in history and bool(history[-1])

        await eventually(set_again, 10, 0.05)
        assert presence.members == {name}
        another = presence_topic(group, "other")
        await asyncio.to_thread(publish.single, another, b"{}", qos=1, retain=True, hostname=HOST,
                                port=mosquitto.port)

        async def two() -> bool:
            return presence.members == {name, "other"}

        await eventually(two, 10, 0.05)
        await asyncio.to_thread(publish.single, another, b"", qos=1, retain=True, hostname=HOST,
                                port=mosquitto.port)

        async def one() -> bool:
            return presence.members == {name}

        await eventually(one, 10, 0.05)
        assert seen[-2:] == [frozenset({name, "other"}), frozenset({name})]
        presence.stop()

        async def gone() -> bool:
            return history[-1] == b""

        await eventually(gone, 10, 0.05)  # a clean stop clears it at once
    finally:
        presence.stop()
        watcher.disconnect()
        watcher.loop_stop()
