"""Alarm events and live readings from the broker, for an API process apart from the collector.

A persistent QoS 1 session, so alarm events published while the API was down arrive when it returns.
Each event goes to every handler on the event loop (the alarm service applies it idempotently);
live readings (QoS 0) go to the live bus.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt

from collector.publishers.alarms import ALARM_TOPIC
from collector.publishers.live import LIVE_TOPIC
from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Quality, Reading

log = logging.getLogger(__name__)

Handler = Callable[[AlarmEvent], None]


class AlarmFeed:
    """Subscribes to `pumpwatch/alarms/#` and hands each event to the handlers."""

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
        if message.topic.startswith(LIVE_TOPIC + "/"):
            self._live(message.payload)
            return
        try:
            event = AlarmEvent.from_json(json.loads(message.payload))
        except (ValueError, KeyError, TypeError) as err:
            self.rejected += 1
            log.warning("ignored a malformed alarm event on %s: %s", message.topic, err)
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._deliver, event)

    def _live(self, payload: bytes | bytearray) -> None:
        try:
            batch = [Reading(str(r["sensor"]), float(r["ts"]), float(r["value"]), Quality(int(r["quality"])),
                             None if r.get("state") is None else str(r["state"]))
                     for r in json.loads(payload)]
        except (ValueError, KeyError, TypeError) as err:
            self.rejected += 1
            log.warning("ignored malformed live readings: %s", err)
            return
        if self.on_readings is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.on_readings, batch)

    def _deliver(self, event: AlarmEvent) -> None:
        for handler in self.handlers:
            handler(event)
