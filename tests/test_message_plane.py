"""The message plane nobody can forge: a real Mosquitto with the ACL `pumpwatch broker-acl` generates,
and signed alarm events and live readings checked by the API's feed.

Each forgery found on the unprotected plane is tried again here:

- a device login publishing an alarm event (`raised` for fire-p1, for an asset that does not exist,
  `cleared` for a real leak) or a live reading: the broker drops it, no subscriber ever sees it;
- a device publishing on another device's topic: dropped likewise;
- what the broker lets through (a collector's login stolen without its key, or a key the API does not
  trust, a message captured and sent again, an event about an asset the site does not have): the
  API's feed refuses it and counts it in `pumpwatch_wire_refused_total`, and the alarm state
  (SQLite and PostgreSQL) does not change.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.publishers.alarms import AlarmPublisher
from collector.publishers.live import LivePublisher
from maintenance.alarms import AlarmFilter, AlarmService
from maintenance.feed import AlarmFeed
from maintenance.tasks import TaskService
from maintenance.vocab import AlarmState
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.broker_acl import Roles, centre_identities
from pumpwatch.catalog import SensorCatalog
from pumpwatch.cli import main
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Quality, Reading
from pumpwatch.settings import Settings
from pumpwatch.signing import Sequences, Signer, feed_verifier
from pumpwatch.site import Severity, Site, Text
from pumpwatch.sitefile import load_site
from pumpwatch.wire import (
    ALARM_STREAM,
    LIVE_STREAM,
    SiteAssets,
    alarm_topic,
    encode_alarm_event,
    encode_live_readings,
)
from tests.support.services import HOST, Mosquitto
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]
ROLES = Roles(collectors=("collector-a",), apis=("api-1", "api-2"), schedulers=("scheduler",),
              simulator="simulator")
KEY_A = "collector-a-" + "k" * 40
ROGUE = "rogue-" + "r" * 40

HV = "harbour-view"  # the estate of examples/site.yaml


def _password(name: str) -> str:
    return f"{name}-pw"


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(ROOT / "examples" / "site.yaml")


@pytest.fixture(scope="module")
def edge_site() -> Site:
    return load_site(ROOT / "examples" / "edge-site.yaml")


@pytest.fixture(scope="module")
def acl_broker(site: Site, edge_site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """Mosquitto with the ACL and password file the command generates for both example sites."""
    work = tmp_path_factory.mktemp("plane")
    names = [i.name for i in centre_identities([site, edge_site], ROLES)]
    (work / "passwords").write_text("".join(f"{name}:{_password(name)}\n" for name in names))
    argv = ["broker-acl", "--site", str(ROOT / "examples" / "site.yaml"),
            "--site", str(ROOT / "examples" / "edge-site.yaml"), "--collector", "collector-a",
            "--api", "api-1", "--api", "api-2", "--scheduler", "scheduler", "--simulator", "simulator",
            "--out", str(work / "broker"), "--passwords", str(work / "passwords")]
    assert main(argv) == 0
    with Mosquitto(password_file=work / "broker" / "passwd", acl_file=work / "broker" / "acl") as broker:
        yield broker


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API's trusted keys: collector-a's only."""
    directory = tmp_path_factory.mktemp("trusted")
    (directory / "collector-a.key").write_text(KEY_A)
    return directory


def _address(broker: Mosquitto, name: str) -> BrokerAddress:
    return BrokerAddress.parse(broker.url_for(name, _password(name)))


class Probe:
    """One MQTT login: subscribes to `topics`, keeps what arrives, publishes and waits for the PUBACK."""

    def __init__(self, broker: Mosquitto, name: str, topics: tuple[str, ...] = (),
                 password: str | None = None) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.refused: str | None = None
        self._connected, self._subscribed = threading.Event(), threading.Event()
        self._acks: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:6]}",
                             protocol=mqtt.MQTTv311)
        if name:
            client.username_pw_set(name, _password(name) if password is None else password)

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                self.refused = str(reason)
            elif topics:
                c.subscribe([(topic, 1) for topic in topics])
            else:
                self._subscribed.set()
            self._connected.set()

        def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
            self.got.append((message.topic, bytes(message.payload)))

        def on_publish(_c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
            with self._lock:
                self._acks.setdefault(mid, threading.Event()).set()

        client.on_connect = on_connect
        client.on_subscribe = lambda *_a: self._subscribed.set()
        client.on_message = on_message
        client.on_publish = on_publish
        client.connect(HOST, broker.port)
        client.loop_start()
        self.client = client
        assert self._connected.wait(10), f"{name}: no CONNACK"

    def ready(self) -> Probe:
        assert self.refused is None, self.refused
        assert self._subscribed.wait(10), "no SUBACK"
        return self

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait until the broker has taken it (or dropped it: same PUBACK)."""
        info = self.client.publish(topic, payload, qos=1)
        with self._lock:
            acked = self._acks.setdefault(info.mid, threading.Event())
        assert acked.wait(10), f"no PUBACK for {topic}"

    def payloads(self) -> list[bytes]:
        return [payload for _topic, payload in self.got]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _event(action: AlarmAction, asset: str, alarm_type: str, room: str,
           severity: Severity = Severity.CRITICAL, estate: str = HV) -> AlarmEvent:
    return AlarmEvent(action, AlarmKey(asset, alarm_type, estate), severity, 1_800_000_000.0, room,
                      Text(zh="测试", en="test"))


async def _never_arrives(broker: Mosquitto, forger: str, topic: str, payload: bytes, listener: str,
                         listened: str, honest: str, honest_topic: str) -> None:
    """`forger` publishes; `listener` (subscribed to `listened`) sees `honest`'s later marker, not it."""
    sub = Probe(broker, listener, (listened,)).ready()
    bad, good = Probe(broker, forger).ready(), Probe(broker, honest).ready()
    try:
        bad.publish(topic, payload)
        good.publish(honest_topic, b"marker")

        async def marked() -> bool:
            return b"marker" in sub.payloads()
        await eventually(marked, 10, interval=0.02)
        assert payload not in sub.payloads(), f"{forger} reached {listener} on {topic}"
    finally:
        for probe in (sub, bad, good):
            probe.close()


RAISED_ELSEWHERE = encode_alarm_event(_event(AlarmAction.RAISED, "fire-p1", "leak", "fire",
                                             estate="elsewhere"))
RAISED_FIRE = encode_alarm_event(_event(AlarmAction.RAISED, "fire-p1", "leak", "fire"))
RAISED_GHOST = encode_alarm_event(_event(AlarmAction.RAISED, "ghost-pump", "leak", "ghost-room"))
CLEARED_LEAK = encode_alarm_event(_event(AlarmAction.CLEARED, "dom", "leak", "dom"))
LIVE_GOOD = encode_live_readings([Reading("dom-header-pressure", 1_800_000_000.0, 0.42, Quality.GOOD)])


@pytest.mark.parametrize(("forger", "topic", "payload"), [
    ("harbour-view-zigbee2mqtt", f"pumpwatch/alarms/{HV}/fire/fire-p1/leak", RAISED_FIRE),
    ("harbour-view-zigbee2mqtt", f"pumpwatch/alarms/{HV}/ghost-room/ghost-pump/leak", RAISED_GHOST),
    ("harbour-view-tele-sensor", f"pumpwatch/alarms/{HV}/dom/dom/leak", CLEARED_LEAK),
    ("simulator", f"pumpwatch/alarms/{HV}/fire/fire-p1/leak", RAISED_FIRE),
    ("scheduler", f"pumpwatch/alarms/{HV}/fire/fire-p1/leak", RAISED_FIRE),
    ("api-2", f"pumpwatch/alarms/{HV}/fire/fire-p1/leak", RAISED_FIRE),  # a stolen API login
    ("edge-room1-gw", "pumpwatch/alarms/edge-example/room1/pump1/leak", RAISED_FIRE),
    ("collector-a", "pumpwatch/alarms/elsewhere/fire/fire-p1/leak", RAISED_ELSEWHERE),  # no such estate
])
async def test_only_collectors_reach_the_alarm_topics(acl_broker: Mosquitto, forger: str, topic: str,
                                                      payload: bytes) -> None:
    await _never_arrives(acl_broker, forger, topic, payload, "api-1", "pumpwatch/alarms/#",
                         "collector-a", f"pumpwatch/alarms/{HV}/dom/marker/test")


@pytest.mark.parametrize("forger", ["harbour-view-zigbee2mqtt", "simulator", "api-2", "edge-room1-gw"])
async def test_only_collectors_reach_the_live_topics(acl_broker: Mosquitto, forger: str) -> None:
    await _never_arrives(acl_broker, forger, f"pumpwatch/live/{HV}/dom", LIVE_GOOD, "api-1",
                         "pumpwatch/live/#", "collector-a", f"pumpwatch/live/{HV}/dom")


async def test_a_device_cannot_publish_as_another_device(acl_broker: Mosquitto) -> None:
    # Twelve wet readings on the Zigbee leak detector's topic, from the Tasmota fleet's login.
    sub = Probe(acl_broker, "collector-a", ("zigbee2mqtt/+",)).ready()
    bad = Probe(acl_broker, "harbour-view-tele-sensor").ready()
    good = Probe(acl_broker, "harbour-view-zigbee2mqtt").ready()
    try:
        for _ in range(12):
            bad.publish("zigbee2mqtt/dom-floor-leak", b'{"water_leak": true}')
        bad.publish("zigbee2mqtt/dom-room-temp", b'{"water_leak": true}')
        good.publish("zigbee2mqtt/dom-floor-leak", b"marker")

        async def marked() -> bool:
            return b"marker" in sub.payloads()
        await eventually(marked, 10, interval=0.02)
        assert sub.got == [("zigbee2mqtt/dom-floor-leak", b"marker")]
    finally:
        for probe in (sub, bad, good):
            probe.close()


async def test_an_edge_cannot_speak_for_another_edge(acl_broker: Mosquitto) -> None:
    await _never_arrives(acl_broker, "edge-room1-gw", "pumpwatch/edge/other-gw/batch", b"PWE1 forged",
                         "collector-a", "pumpwatch/edge/+/batch", "edge-room1-gw",
                         "pumpwatch/edge/room1-gw/batch")


async def test_every_identity_reaches_what_it_is_for(acl_broker: Mosquitto) -> None:
    routes = [("harbour-view-zigbee2mqtt", "zigbee2mqtt/dom-floor-leak", "collector-a", "zigbee2mqtt/+"),
              ("simulator", "tele/dom-room-temp/SENSOR", "collector-a", "tele/+/SENSOR"),
              ("collector-a", f"pumpwatch/alarms/{HV}/fire/fire-p1/leak", "api-2", "pumpwatch/alarms/#"),
              ("scheduler", f"pumpwatch/alarms/{HV}/dom/dom-duty/rotation_failed", "api-1",
               "pumpwatch/alarms/#"),
              ("edge-room1-gw", "pumpwatch/edge/room1-gw/alarm", "collector-a", "pumpwatch/edge/+/alarm"),
              ("collector-a", "pumpwatch/edge/room1-gw/time/reply", "edge-room1-gw",
               "pumpwatch/edge/room1-gw/time/reply")]
    for sender, topic, receiver, subscription in routes:
        sub = Probe(acl_broker, receiver, (subscription,)).ready()
        pub = Probe(acl_broker, sender).ready()
        try:
            pub.publish(topic, f"from {sender}".encode())

            async def arrived(sub: Probe = sub, sender: str = sender) -> bool:
                return f"from {sender}".encode() in sub.payloads()
            await eventually(arrived, 10, interval=0.02)
        finally:
            sub.close()
            pub.close()


def test_anonymous_clients_and_wrong_passwords_are_refused(acl_broker: Mosquitto) -> None:
    assert Probe(acl_broker, "").refused is not None
    assert Probe(acl_broker, "collector-a", password="wrong").refused is not None
    assert Probe(acl_broker, "nobody").refused is not None


# --- what the broker lets through: the API's feed checks signatures, replays and assets ----------


class Feed:
    """An API's alarm feed logged in as api-1, trusting collector-a's key, applying events to `alarms`."""

    def __init__(self, broker: Mosquitto, site: Site, keys: Path, marks: Path, alarms: AlarmService | None
                 ) -> None:
        settings = Settings()
        settings.signing.trusted_dir = keys
        self.events: list[AlarmEvent] = []
        self.readings: list[list[Reading]] = []
        handlers: list[Callable[[AlarmEvent], object]] = [self.events.append]
        if alarms is not None:
            handlers.append(alarms.apply)
        self.feed = AlarmFeed(_address(broker, "api-1"), f"api-1-{uuid.uuid4().hex[:6]}", handlers,
                              on_readings=self.readings.append, verifier=feed_verifier(settings, site, marks),
                              assets=SiteAssets(site))

    async def __aenter__(self) -> Feed:
        self.feed.start(asyncio.get_running_loop())

        async def connected() -> bool:
            return self.feed.client.is_connected()
        await eventually(connected, 10, interval=0.02)
        await asyncio.sleep(0.2)  # the SUBACK follows the CONNACK
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.feed.stop()

    def refused(self, reason: str | None = None) -> float:
        return self.feed.refusals.total(reason)


def _signer(kid: str, key: str, state: Path) -> Signer:
    return Signer(kid, key.encode(), Sequences(state / f"{kid}.json"))


async def _settled(feed: Feed, events: int, refused: float) -> None:
    async def done() -> bool:
        return len(feed.events) >= events and feed.refused() >= refused
    await eventually(done, 10, interval=0.02)
    await asyncio.sleep(0.1)  # nothing else is on its way
    assert (len(feed.events), feed.refused()) == (events, refused)


async def test_a_stolen_collector_login_without_its_key_changes_no_alarm(
        acl_broker: Mosquitto, site: Site, keys: Path, tmp_path: Path, alarms: AlarmService,
        tasks: TaskService) -> None:
    honest = AlarmPublisher(_address(acl_broker, "collector-a"), f"a-{uuid.uuid4().hex[:6]}",
                            _signer("collector-a", KEY_A, tmp_path))
    stolen = Probe(acl_broker, "collector-a").ready()  # the login, without the key
    rogue = _signer("rogue", ROGUE, tmp_path)
    honest.start()
    try:
        async with Feed(acl_broker, site, keys, tmp_path / "marks.db", alarms) as feed:
            leak = _event(AlarmAction.RAISED, "dom", "leak", "dom")
            honest.publish(leak)
            await _settled(feed, 1, 0)
            (active,), _n = alarms.list_alarms(AlarmFilter(state=AlarmState.ACTIVE))
            assert (active.asset, active.alarm_type) == ("dom", "leak")

            fire = _event(AlarmAction.RAISED, "fire-p1", "leak", "fire")
            stolen.publish(alarm_topic(fire), encode_alarm_event(fire))  # unsigned
            cleared = _event(AlarmAction.CLEARED, "dom", "leak", "dom")
            stolen.publish(alarm_topic(cleared), encode_alarm_event(cleared))
            stolen.publish(alarm_topic(cleared), rogue.seal(alarm_topic(cleared), encode_alarm_event(cleared),
                                                            ALARM_STREAM))
            await _settled(feed, 1, 3)
            assert feed.refused("forged") == 2
            assert feed.refused("unknown_key") == 1
            (still,), _n = alarms.list_alarms(AlarmFilter(state=AlarmState.ACTIVE))
            assert still.id == active.id  # the leak is still on, fire-p1 has no alarm
            assert tasks.list_tasks()[1] == 1
    finally:
        honest.stop()
        stolen.close()


async def test_a_captured_event_sent_again_is_refused_also_after_a_restart(
        acl_broker: Mosquitto, site: Site, keys: Path, tmp_path: Path, alarms: AlarmService) -> None:
    signer = _signer("collector-a", KEY_A, tmp_path)
    wire = Probe(acl_broker, "collector-a").ready()
    raised, cleared = (_event(action, "dom", "leak", "dom") for action in (AlarmAction.RAISED,
                                                                          AlarmAction.CLEARED))
    topic = alarm_topic(raised)
    captured_clear = signer.seal(topic, encode_alarm_event(cleared), ALARM_STREAM)
    try:
        async with Feed(acl_broker, site, keys, tmp_path / "marks.db", alarms) as feed:
            wire.publish(topic, signer.seal(topic, encode_alarm_event(raised), ALARM_STREAM))
            wire.publish(topic, captured_clear)
            wire.publish(topic, signer.seal(topic, encode_alarm_event(raised), ALARM_STREAM))
            await _settled(feed, 3, 0)
            wire.publish(topic, captured_clear)  # the leak is back; an old "cleared" must not end it
            await _settled(feed, 3, 1)
            assert feed.refused("replayed") == 1
        async with Feed(acl_broker, site, keys, tmp_path / "marks.db", alarms) as restarted:
            wire.publish(topic, captured_clear)
            await _settled(restarted, 0, 1)
            assert restarted.refused("replayed") == 1
        (active,), _n = alarms.list_alarms(AlarmFilter(state=AlarmState.ACTIVE))
        assert (active.asset, active.alarm_type) == ("dom", "leak")
    finally:
        wire.close()


async def test_events_and_readings_about_what_the_site_has_not_are_refused(
        acl_broker: Mosquitto, site: Site, keys: Path, tmp_path: Path) -> None:
    signer = _signer("collector-a", KEY_A, tmp_path)
    wire = Probe(acl_broker, "collector-a").ready()
    live = LivePublisher(_address(acl_broker, "collector-a"), f"live-{uuid.uuid4().hex[:6]}",
                         SensorCatalog(site), signer)
    live.start()
    try:
        async with Feed(acl_broker, site, keys, tmp_path / "marks.db", None) as feed:
            for event in (_event(AlarmAction.RAISED, "ghost-pump", "leak", "dom"),  # no such asset
                          _event(AlarmAction.RAISED, "fire-p1", "leak", "ghost-room"),  # the ACL drops it
                          _event(AlarmAction.RAISED, "fire-p1", "leak", "dom")):  # not in that room
                topic = alarm_topic(event)
                wire.publish(topic, signer.seal(topic, encode_alarm_event(event), ALARM_STREAM))
            misplaced = [Reading("fire-main-pressure", 1_800_000_000.0, 0.5, Quality.GOOD)]
            live_dom = f"pumpwatch/live/{HV}/dom"
            wire.publish(live_dom, signer.seal(live_dom, encode_live_readings(misplaced), LIVE_STREAM))
            wire.publish(live_dom, LIVE_GOOD)  # unsigned
            await _settled(feed, 0, 4)
            assert feed.refused("unknown_asset") == 3
            assert feed.refused("forged") == 1
            assert feed.readings == []
            live([Reading(f"{HV}/dom-header-pressure", 1_800_000_000.0, 0.42, Quality.GOOD)])  # its own

            async def shown() -> bool:
                return bool(feed.readings)
            await eventually(shown, 10, interval=0.02)
            assert [r.sensor for r in feed.readings[0]] == [f"{HV}/dom-header-pressure"]  # its key
    finally:
        live.stop()
        wire.close()
