"""Alarm events and live readings from the broker, for a process apart from the collector.

A persistent QoS 1 session, so alarm events published while the process was down arrive when it
returns. Each event goes to every handler on the event loop (the alarm service applies it
idempotently); live readings (QoS 0) go to `on_readings`. Payloads follow `pumpwatch.wire`; a
malformed one is counted in `rejected` and logged, never applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt

from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Reading
from pumpwatch.wire import (
    ALARM_TOPIC,
    LIVE_TOPIC,
    WireError,
    decode_alarm_event,
    decode_live_readings,
    is_live_topic,
)

log = logging.getLogger(__name__)

Handler = Callable[[AlarmEvent], None]


class AlarmFeed:
    """Subscribes to `pumpwatch/alarms/#` (and `pumpwatch/live/#`) and hands what arrives on."""

    def __init__(self, broker: BrokerAddress, client_id: str, handlers: Sequence[Handler],
                 on_readings: Callable[[list[Reading]], None] | None = None) -> None:
        self.broker = broker
        self.handlers = list(handlers)
        self.on_readings = on_readings
        self.rejected = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        client = new_client(broker, client_id, persistent=True)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self.client = client

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background; events are delivered on `loop`."""
        self._loop = loop
        start_client(self.client, self.broker)

    def stop(self) -> None:
        """Disconnect."""
        stop_client(self.client)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                    _properties: Any) -> None:
        if not reason.is_failure:
            client.subscribe(f"{ALARM_TOPIC}/#", qos=1)
            if self.on_readings is not None:
                client.subscribe(f"{LIVE_TOPIC}/#", qos=0)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if is_live_topic(message.topic):
            self._live(message.payload)
            return
        try:
            event = decode_alarm_event(message.payload)
        except WireError as err:
            self.rejected += 1
            log.warning("ignored a malformed alarm event on %s: %s", message.topic, err)
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._deliver, event)

    def _live(self, payload: bytes | bytearray) -> None:
        try:
            batch = decode_live_readings(payload)
        except WireError as err:
            self.rejected += 1
            log.warning("ignored malformed live readings: %s", err)
            return
        if self.on_readings is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.on_readings, batch)

    def _deliver(self, event: AlarmEvent) -> None:
        for handler in self.handlers:
            handler(event)
