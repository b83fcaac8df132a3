"""Alarm events and live readings from the broker, for a process apart from the collector.

A persistent QoS 1 session (paho), so alarm events published while the process was down arrive when
it returns; live readings come through a clean session of their own (`pumpwatch.mqtt_session`). Each
event goes to every handler on the event loop (the alarm service applies it idempotently); live
readings (QoS 0) go to `on_readings`. Payloads follow `pumpwatch.wire`; a malformed one is counted in
`rejected` and logged, never applied.

What arrives is believed only when a trusted collector signed it (`pumpwatch.signing`: a key in
`PUMPWATCH_SIGNING__TRUSTED_DIR`), it was not taken before, and it is about what the deployment has:
an alarm event's asset in its estate's room, a live reading's sensor in the topic's estate and room
(`SiteAssets`). Live readings are handed on under their sensor keys (`<estate>/<sensor>`), as a
collector in the same process hands them.
Anything else is refused, logged and counted in `pumpwatch_wire_refused_total{channel, reason}`
(`forged`, `replayed`, `unknown_key`, `unknown_asset`). Without trusted keys (development) messages
are taken as they come; a production start refuses a feed without keys.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from prometheus_client import CollectorRegistry, Counter

from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.mqtt_session import Message, MqttSession
from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Reading
from pumpwatch.signing import Verifier, WireRefusals
from pumpwatch.wire import (
    ALARM_STREAM,
    ALARM_TOPIC,
    LIVE_STREAM,
    LIVE_TOPIC,
    Refusal,
    Refused,
    SiteAssets,
    WireError,
    alarm_topic,
    decode_alarm_event,
    decode_live_readings,
    is_live_topic,
    live_place,
)

log = logging.getLogger(__name__)

Handler = Callable[[AlarmEvent], object]  # what a handler returns is not used
LIVE_PENDING_LIMIT = 100_000  # live readings waiting for the event loop at most


class AlarmFeed:
    """Subscribes to `pumpwatch/alarms/#` (and `pumpwatch/live/#`) and hands on what it believes."""

    def __init__(self, broker: BrokerAddress, client_id: str, handlers: Sequence[Handler],
                 on_readings: Callable[[list[Reading]], None] | None = None, *,
                 verifier: Verifier | None = None, assets: SiteAssets | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.broker = broker
        self.handlers = list(handlers)
        self.on_readings = on_readings
        self.verifier = verifier or Verifier({})
        self.assets = assets
        self.registry = registry or CollectorRegistry()
        self.refusals = WireRefusals(self.registry)
        self.rejected = 0
        self.live_dropped = Counter("pumpwatch_live_readings_dropped_total",
                                    "Live readings not handed to the event loop because it was behind "
                                    "(a view only)", registry=self.registry)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._live_lock = threading.Lock()
        self._live_pending: list[Reading] = []
        self._live_scheduled = False
        client = new_client(broker, client_id, persistent=True)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self.client = client
        # Live readings (some 1,400 room messages a second at 400 rooms) through the lean session: paho's
        # cost per message, on a thread that shares the event loop's interpreter lock, was the feed's
        # largest part. A clean QoS 0 session: live data missed while away is not worth keeping.
        self.live_session = (MqttSession(broker, f"{client_id}-live", [f"{LIVE_TOPIC}/#"],
                                         on_messages=self._live_messages, on_state=lambda _up: None,
                                         clean=True)
                             if on_readings is not None else None)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background; events are delivered on `loop`."""
        self._loop = loop
        start_client(self.client, self.broker)
        if self.live_session is not None:
            self.live_session.start()

    def stop(self) -> None:
        """Disconnect."""
        stop_client(self.client)
        if self.live_session is not None:
            self.live_session.stop()
        if self.verifier.guard is not None:
            self.verifier.guard.close()

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                    _properties: Any) -> None:
        if not reason.is_failure:
            client.subscribe(f"{ALARM_TOPIC}/#", qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._take(message.topic, message.payload)

    def _live_messages(self, messages: list[Message]) -> None:
        """The live session's thread: the room messages of one read from the socket."""
        for message in messages:
            self._take(message.topic, message.payload)

    def _take(self, topic: str, payload: bytes | bytearray) -> None:
        live = is_live_topic(topic)
        try:
            if live:
                self._live(topic, payload)
            else:
                self._alarm(topic, payload)
        except Refused as refused:
            self.refusals.count("live" if live else "alarms", refused)
            log.warning("refused %s on %s: %s", "live readings" if live else "an alarm event", topic, refused)
        except WireError as err:
            self.rejected += 1
            log.warning("ignored malformed %s on %s: %s", "live readings" if live else "an alarm event",
                        topic, err)

    def _alarm(self, topic: str, payload: bytes | bytearray) -> None:
        opened = self.verifier.open(topic, payload, ALARM_STREAM)
        event = decode_alarm_event(opened.body)
        if alarm_topic(event) != topic:  # signed for one topic, saying something else
            raise Refused(Refusal.FORGED, f"the event is about {alarm_topic(event)}")
        if self.assets is not None:
            self.assets.check_event(event)
        opened.record()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._deliver, event)

    def _live(self, topic: str, payload: bytes | bytearray) -> None:
        opened = self.verifier.open(topic, payload, LIVE_STREAM)
        estate, room = live_place(topic)
        batch = decode_live_readings(opened.body, estate)
        if self.assets is not None:
            self.assets.check_readings(estate, room, batch)
        opened.record()
        self._hand_on(batch)

    def _hand_on(self, batch: list[Reading]) -> None:
        """Queue a room's readings for the event loop: one wake-up carries all that came meanwhile.

        One per room message woke the loop, and every live stream, some 1,400 times a second for 400
        rooms. Bounded by `LIVE_PENDING_LIMIT` readings; beyond it a batch is dropped and counted (a
        live view only: the series store has the readings).
        """
        loop = self._loop
        if self.on_readings is None or loop is None or loop.is_closed():
            return
        with self._live_lock:
            if len(self._live_pending) + len(batch) > LIVE_PENDING_LIMIT:
                self.live_dropped.inc(len(batch))
                return
            self._live_pending += batch
            if self._live_scheduled:
                return
            self._live_scheduled = True
        try:
            loop.call_soon_threadsafe(self._deliver_readings)
        except RuntimeError:  # the loop closed meanwhile: nobody to hand them to
            with self._live_lock:
                self._live_scheduled = False

    def _deliver_readings(self) -> None:
        with self._live_lock:
            batch, self._live_pending = self._live_pending, []
            self._live_scheduled = False
        if batch and self.on_readings is not None:
            self.on_readings(batch)

    def _deliver(self, event: AlarmEvent) -> None:
        for handler in self.handlers:
            handler(event)
