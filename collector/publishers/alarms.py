"""Alarm events to MQTT (`pumpwatch/alarms/<estate>/<room>/<asset>/<type>`, QoS 1) for other processes.

With a signer (this process's key, `PUMPWATCH_SIGNING__KEY_FILE`) every event is signed, so the API
takes it only from a collector or scheduler whose key it trusts (`pumpwatch.signing`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.signing import Signer
from pumpwatch.wire import ALARM_STREAM, alarm_topic, encode_alarm_event

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000  # events held while the broker is away; beyond that publish() reports a loss
EARLY_ACKS = 100


class AlarmPublisher:
    """Publishes each event at QoS 1; paho queues them (bounded) while the broker is unreachable.

    `publish(event, on_sent)` tells when the broker acknowledged the event (the centre relays an
    edge's events this way and acknowledges the edge only then).
    """

    def __init__(self, broker: BrokerAddress, client_id: str, signer: Signer | None = None) -> None:
        self.broker = broker
        self.signer = signer
        self.published = 0
        self.lost = 0
        self.client = new_client(broker, client_id, queue_limit=QUEUE_LIMIT)
        self.client.on_publish = self._on_publish
        self._lock = threading.Lock()
        self._on_sent: dict[int, Callable[[], None]] = {}
        # PUBACKs that came before their callback was registered (or of events nobody waits for):
        # the newest EARLY_ACKS only, so a packet id used again much later is never taken for acked.
        self._acked: dict[int, None] = {}

    def start(self) -> None:
        """Connect in the background."""
        start_client(self.client, self.broker)

    def stop(self) -> None:
        """Disconnect after handing queued events to the network loop."""
        stop_client(self.client)

    def __call__(self, event: AlarmEvent) -> None:
        """Engine listener: publish one event."""
        self.publish(event)

    def publish(self, event: AlarmEvent, on_sent: Callable[[], None] | None = None) -> bool:
        """Publish one event; `on_sent` runs (on paho's thread) once the broker acknowledged it.

        False when paho's queue is full (the event is lost and counted; `on_sent` never runs).
        """
        topic, payload = alarm_topic(event), encode_alarm_event(event)
        if self.signer is not None:
            payload = self.signer.seal(topic, payload, ALARM_STREAM)
        info = self.client.publish(topic, payload, qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            self.lost += 1
            log.error("alarm event not published, %d queued already: %s", QUEUE_LIMIT, event.key)
            return False
        self.published += 1
        if on_sent is not None:
            with self._lock:
                early = self._acked.pop(info.mid, 0) is None
                if not early:
                    self._on_sent[info.mid] = on_sent
            if early:
                on_sent()
        return True

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any,
                    _properties: Any) -> None:
        with self._lock:
            callback = self._on_sent.pop(mid, None)
            if callback is None:
                self._acked[mid] = None
                if len(self._acked) > EARLY_ACKS:
                    del self._acked[next(iter(self._acked))]
                return
        try:
            callback()
        except Exception:  # a failing callback must not stop paho's network thread
            log.exception("alarm publish callback failed")
