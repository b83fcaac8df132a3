"""A collector in a shared-subscription group: the members, whose alarms it announces, their readings.

Mosquitto hands each message of a `$share/<group>/...` subscription to one member of the group, so each
collector sees part of every sensor's readings: alone, its rules would judge a sensor whose messages
all went to the other member as silent (a false no-data alarm), and rules over time would see gaps.
Three things make the group's rules whole again:

- **One voice per estate**: the estate's speaker, chosen by rendezvous hashing of the estate id over the
  members present, evaluates the estate's rules and announces its events. When a member comes or goes,
  only the estates it had or takes move. The other members' engines of that estate are muted
  (`AlarmEngine.mute`): they evaluate nothing and follow the speaker's events instead, so each member
  knows every alarm's state when it takes an estate over.
- **Readings**: every member already publishes what it takes in as live readings
  (`pumpwatch/live/<estate>/<room>`, `collector.publishers.live`). The speaker of an estate also takes the
  estate's live readings and feeds them to its rules, so they see every sensor. Its own live messages
  coming back are recognised (`PeerReadings.sent`) and skipped, and a reading not newer than what the
  rules hold is left out. Live messages are the newest reading of each sensor per commit: under a
  backlog a rule over time sees fewer points of the other members' readings, never a false silence. The
  rules' work is split between the members, not done by each.
- **Presence**: each member keeps a retained message on `pumpwatch/collectors/<group>/<client id>`;
  its will, or its clean stop, clears it. A member that takes an estate over first waits one period
  before judging its sensors silent (its view held only its own share of the readings), and a duration
  that was counting at the old speaker starts again.

- **Timestamps**: two members may take messages of one sensor in the same instant, and the store keeps
  one point per sensor and instant. Each member stamps its MQTT readings on its own lane of
  microseconds (`TimeLane`, one of `TIME_LANES`): it starts on a lane hashed from its client id and
  announces it with its presence; of two members on one lane, the one that joined later moves to the
  lowest free lane and announces that. More members than lanes are counted
  (`pumpwatch_group_lane_clashes`) and logged, and so is a member whose presence says no lane (an
  older version's, during a rolling upgrade). A member that has just joined stamps on its first lane
  until the others' retained presence reaches it (moments after it connects): only then can it see a
  clash, so for those moments two members may share a lane.

Until it knows the group (not yet connected), a member speaks for every estate: an alarm said twice is
applied once by the alarm service, an alarm not said is lost.

A member that stops leaves the shared subscription first (`MqttSession.stop(leave=True)`), so the others
take its share of the messages. One that dies keeps its persistent session at the broker, and
Mosquitto keeps queueing its share there until it returns: nothing is lost, but meanwhile the sensors of
that share are silent to the others' rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from typing import Any

import paho.mqtt.client as mqtt

from collector.estates import EstateRules
from collector.metrics import CollectorMetrics
from collector.sources.mqtt_decode import TimeLane
from pumpwatch.mqtt_session import Message, MqttSession
from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Reading
from pumpwatch.signing import Verifier
from pumpwatch.wire import (
    ALARM_STREAM,
    ALARM_TOPIC,
    GROUP_TOPIC,
    LIVE_STREAM,
    LIVE_TOPIC,
    WireError,
    decode_alarm_event,
    decode_live_readings,
    live_place,
)

log = logging.getLogger(__name__)

OWN_REMEMBERED = 8_192  # this member's latest live messages, recognised when they come back
PEER_PENDING_LIMIT = 200_000  # peer readings waiting for the event loop at most; more are dropped, counted
STOP_TIMEOUT = 2.0  # seconds a clean stop waits for the broker to take the cleared presence
TIME_LANES = 16  # a group's timestamp lanes: up to this many members never stamp one instant twice


def presence_topic(group: str, member: str) -> str:
    """Where a member of the group keeps its retained presence."""
    return f"{GROUP_TOPIC}/{group}/{member}"


def speaker(estate: str, members: Collection[str]) -> str:
    """The member that announces an estate's alarm events (rendezvous hashing; `members` not empty)."""
    return max(members, key=lambda member: (
        hashlib.blake2b(f"{estate}\0{member}".encode(), digest_size=8).digest(), member))


def first_lane(member: str) -> int:
    """The timestamp lane a member starts on, before it knows the group (the same at every start)."""
    return int.from_bytes(hashlib.blake2b(member.encode(), digest_size=4).digest(), "big") % TIME_LANES


def _seen(payload: bytes | bytearray) -> tuple[float, int] | None:
    """(joined at, lane) from another member's presence; None where it says no lane."""
    try:
        data = json.loads(payload)
        since, lane = float(data["since"]), data["lane"]
    except (ValueError, TypeError, KeyError):
        return None
    if isinstance(lane, bool) or not isinstance(lane, int) or not 0 <= lane < TIME_LANES:
        return None
    return since, lane


class GroupPresence:
    """The members of one group as the broker's retained presence messages tell them (paho, QoS 1).

    It also keeps this member's timestamp lane apart from the others' (see the module's Timestamps).
    """

    def __init__(self, broker: BrokerAddress, group: str, member: str,
                 on_members: Callable[[frozenset[str]], None],
                 on_event: Callable[[str, bytes | bytearray], None] | None = None,
                 lane: TimeLane | None = None,
                 on_lane: Callable[[int, int], None] | None = None) -> None:
        self.group = group
        self.member = member
        self.broker = broker
        self.on_members = on_members
        self.on_event = on_event  # (topic, payload) of every alarm event on the broker
        self.on_lane = on_lane  # (lane, members clashing on it) after each look at the lanes
        self.members: frozenset[str] = frozenset((member,))
        self.lane = lane or TimeLane(TIME_LANES, first_lane(member))
        self.since = time.time()  # of two members on one lane, the one that joined later moves
        self._lanes: dict[str, tuple[float, int]] = {}  # the other members present: (joined at, lane)
        self._laneless: set[str] = set()  # other members present whose presence says no lane
        self._stopping = False
        self._lock = threading.Lock()
        self.topic = presence_topic(group, member)
        client = new_client(broker, f"{member}-group")
        client.will_set(self.topic, b"", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self.client = client

    def start(self) -> None:
        """Connect in the background; announce this member and follow the others."""
        self._stopping = False
        start_client(self.client, self.broker)

    def stop(self) -> None:
        """Clear this member's presence (the others take its estates at once), then disconnect."""
        self._stopping = True
        if self.client.is_connected():
            info = self.client.publish(self.topic, b"", qos=1, retain=True)
            info.wait_for_publish(STOP_TIMEOUT)
        stop_client(self.client)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                    _properties: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe(f"{GROUP_TOPIC}/{self.group}/+", qos=1)
        if self.on_event is not None:
            client.subscribe(f"{ALARM_TOPIC}/#", qos=1)
        self._announce(client)

    def _announce(self, client: mqtt.Client) -> None:
        client.publish(self.topic, json.dumps({"since": self.since, "lane": self.lane.index}).encode(),
                       qos=1, retain=True)

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic.startswith(ALARM_TOPIC + "/"):
            if self.on_event is not None:
                self.on_event(message.topic, message.payload)
            return
        member = message.topic.rsplit("/", 1)[-1]
        if member == self.member:
            if not message.payload and not self._stopping:
                # The will of this member's previous connection (a restart took its session over)
                # cleared the presence after this connection set it: set it again, or the others count
                # it gone. It is always a member of its own group, even while it stops.
                self._announce(client)
            return
        with self._lock:
            members = set(self.members)
            laneless = len(self._laneless)
            if message.payload:
                members.add(member)
                if (seen := _seen(message.payload)) is not None:
                    self._lanes[member] = seen
                    self._laneless.discard(member)
                else:
                    self._lanes.pop(member, None)
                    self._laneless.add(member)
            else:
                members.discard(member)
                self._lanes.pop(member, None)
                self._laneless.discard(member)
            moved, clashes = self._keep_lane_apart()
            clashes += len(self._laneless)
            changed = members != self.members
            self.members = frozenset(members)
        if len(self._laneless) > laneless:
            log.warning("group %s: %s announces no timestamp lane (a collector of an older version): its "
                        "readings of a sensor may fall on this collector's instants and overwrite them",
                        self.group, member)
        if moved:
            self._announce(client)
        if self.on_lane is not None:
            self.on_lane(self.lane.index, clashes)
        if changed:
            log.info("group %s: members %s", self.group, ", ".join(sorted(members)))
            self.on_members(self.members)

    def _keep_lane_apart(self) -> tuple[bool, int]:
        """Move off a lane a member that joined earlier holds (lock held): (moved, members still on it)."""
        me = (self.since, self.member)
        mine = self.lane.index
        senior = [m for m, (since, lane) in self._lanes.items() if lane == mine and (since, m) < me]
        if not senior:
            return False, 0
        taken = {lane for _since, lane in self._lanes.values()}
        free = [lane for lane in range(TIME_LANES) if lane not in taken]
        if not free:
            log.error("group %s: %d members, %d timestamp lanes: %s share lane %d with this collector, and "
                      "readings of one sensor in one instant may overwrite each other", self.group,
                      len(self._lanes) + 1, TIME_LANES, ", ".join(sorted(senior)), self.lane.index)
            return False, len(senior)
        log.info("group %s: timestamp lane %d is %s's; this collector takes lane %d", self.group,
                 self.lane.index, senior[0], free[0])
        self.lane.move(free[0])
        return True, 0


EstateReadings = tuple[str, list[Reading]]  # an estate and readings of it under their own sensor ids


class PeerReadings:
    """The group's live readings of the estates this collector speaks for, to its rules (lean, QoS 0)."""

    def __init__(self, broker: BrokerAddress, member: str, estates: Iterable[str], verifier: Verifier,
                 metrics: CollectorMetrics, on_readings: Callable[[list[EstateReadings]], None]) -> None:
        self.verifier = verifier
        self.metrics = metrics
        self.on_readings = on_readings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._pending: list[EstateReadings] = []
        self._pending_count = 0
        self._scheduled = False
        self._own: set[int] = set()  # hashes of this member's latest live payloads (`sent`)
        self._own_order: deque[int] = deque()
        self.subscriptions = _live_filters(estates)
        self.session = MqttSession(broker, f"{member}-peers", self.subscriptions,
                                   on_messages=self._on_messages, on_state=lambda _up: None, clean=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background; readings are handed to the rules on `loop`."""
        self._loop = loop
        self.session.start()

    def stop(self) -> None:
        """Disconnect."""
        self.session.stop()

    def sent(self, payloads: list[bytes]) -> None:
        """Take note of the member's own live payloads as it publishes them: coming back, they are skipped.

        Their readings are in its rules already; the subscription brings them back with the others'.
        """
        with self._lock:
            for payload in payloads:
                digest = hash(payload)
                self._own.add(digest)
                self._own_order.append(digest)
            while len(self._own_order) > OWN_REMEMBERED:
                self._own.discard(self._own_order.popleft())

    def set_estates(self, estates: Iterable[str]) -> None:
        """Follow these estates' live topics (a reload added or removed some)."""
        self.subscriptions = _live_filters(estates)
        self.session.subscribe_only(self.subscriptions)

    def _on_messages(self, messages: list[Message]) -> None:
        """The session's thread: open and decode each room's message; one hand-over for all of them.

        The readings keep the sensor ids the payload names (the topic says the estate): the estate's
        engine takes them as they are.
        """
        batches: list[EstateReadings] = []
        count = 0
        with self._lock:
            own = [hash(message.payload) in self._own for message in messages]
        for message, echo in zip(messages, own, strict=True):
            if echo:
                continue
            try:
                opened = self.verifier.open(message.topic, message.payload, LIVE_STREAM)
                estate, _room = live_place(message.topic)
                readings = decode_live_readings(opened.body)
                opened.record()
            except WireError as err:  # `Refused` included: forged, replayed, an unknown key
                reason = getattr(getattr(err, "reason", None), "value", "malformed")
                self.metrics.peer_refused.labels(reason=reason).inc()
                log.debug("group readings on %s not taken: %s", message.topic, err)
                continue
            batches.append((estate, readings))
            count += len(readings)
        if batches:
            self._hand_on(batches, count)

    def _hand_on(self, batches: list[EstateReadings], count: int) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._lock:
            if self._pending_count + count > PEER_PENDING_LIMIT:
                self.metrics.peer_refused.labels(reason="loop_behind").inc(count)
                return
            self._pending += batches
            self._pending_count += count
            if self._scheduled:
                return
            self._scheduled = True
        try:
            loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop closed meanwhile
            with self._lock:
                self._scheduled = False

    def _deliver(self) -> None:
        with self._lock:
            batches, self._pending = self._pending, []
            count, self._pending_count = self._pending_count, 0
            self._scheduled = False
        if batches:
            self.metrics.peer_readings.inc(count)
            self.on_readings(batches)


class ShareGroup:
    """A collector's place in its group: presence, the estates it speaks for, the peers' readings."""

    def __init__(self, broker: BrokerAddress, group: str, member: str, rules: EstateRules,
                 verifier: Verifier, metrics: CollectorMetrics) -> None:
        self.group = group
        self.member = member
        self.rules = rules
        self.verifier = verifier
        self.metrics = metrics
        self._loop: asyncio.AbstractEventLoop | None = None
        self.presence = GroupPresence(broker, group, member, self._members_changed, self._event,
                                      on_lane=self._lane_looked_at)
        metrics.group_time_lane.set(self.presence.lane.index)
        self.peers = PeerReadings(broker, member, (), verifier, metrics, self._peer_readings)
        rules.speaks_for = self.speaks_for

    @property
    def members(self) -> frozenset[str]:
        """The members present, as last told (this one included)."""
        return self.presence.members

    @property
    def lane(self) -> TimeLane:
        """The microseconds this member's MQTT readings fall on (the MQTT source's decoder reads it)."""
        return self.presence.lane

    def _lane_looked_at(self, lane: int, clashes: int) -> None:
        self.metrics.group_time_lane.set(lane)
        self.metrics.group_lane_clashes.set(clashes)

    def speaks_for(self, estate: str) -> bool:
        """Whether this member evaluates the estate's rules and announces its alarm events."""
        return speaker(estate, self.presence.members) == self.member

    def start(self) -> None:
        """Join the group and follow the peers' readings (inside the event loop)."""
        self._loop = asyncio.get_running_loop()
        self.peers.start(self._loop)
        self.presence.start()

    def stop(self) -> None:
        """Leave the group: the other members take this one's estates at once."""
        self.presence.stop()
        self.peers.stop()

    def estates_changed(self) -> None:
        """The estates this collector serves changed (start-up, a reload): who speaks, whose readings."""
        self._assign(self.presence.members)

    def _peer_readings(self, batches: list[EstateReadings]) -> None:
        self.rules.on_estate_readings(batches, only_newer=True)

    def _event(self, topic: str, payload: bytes | bytearray) -> None:
        """Presence's thread: an alarm event on the broker, for the muted engine of its estate."""
        try:
            opened = self.verifier.open(topic, payload, ALARM_STREAM)
            event = decode_alarm_event(opened.body)
            opened.record()
        except WireError as err:
            reason = getattr(getattr(err, "reason", None), "value", "malformed")
            self.metrics.peer_refused.labels(reason=reason).inc()
            log.debug("group alarm event on %s not taken: %s", topic, err)
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self.rules.follow, event)

    def _members_changed(self, members: frozenset[str]) -> None:
        """Presence's thread: the reassignment runs on the event loop, where the rules run."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._assign(members)  # not started: nothing evaluates concurrently
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._assign, members)

    def _assign(self, members: frozenset[str]) -> None:
        self.metrics.group_members.set(len(members))
        spoken = self.rules.assign_voices()
        self.peers.set_estates(self.rules.spoken())
        self.metrics.estates_spoken_for.set(spoken)
        log.info("group %s: %d members; this collector speaks for %d of its %d estates",
                 self.group, len(members), spoken, len(self.rules.engines))


def _live_filters(estates: Iterable[str]) -> list[str]:
    return sorted(f"{LIVE_TOPIC}/{estate}/+" for estate in estates)
