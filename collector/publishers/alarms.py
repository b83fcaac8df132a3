"""Alarm events to MQTT (`pumpwatch/alarms/<room>/<asset>/<type>`, QoS 1) for other processes."""

from __future__ import annotations

import logging

import paho.mqtt.client as mqtt

from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.wire import alarm_topic, encode_alarm_event

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000  # events held while the broker is away; beyond that publish() reports a loss


class AlarmPublisher:
    """Publishes each event at QoS 1; paho queues them (bounded) while the broker is unreachable."""

    def __init__(self, broker: BrokerAddress, client_id: str) -> None:
        self.broker = broker
        self.published = 0
        self.lost = 0
        self.client = new_client(broker, client_id, queue_limit=QUEUE_LIMIT)

    def start(self) -> None:
        """Connect in the background."""
        start_client(self.client, self.broker)

    def stop(self) -> None:
        """Disconnect after handing queued events to the network loop."""
        stop_client(self.client)

    def __call__(self, event: AlarmEvent) -> None:
        """Engine listener: publish one event."""
        info = self.client.publish(alarm_topic(event), encode_alarm_event(event), qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            self.lost += 1
            log.error("alarm event not published, %d queued already: %s", QUEUE_LIMIT, event.key)
        else:
            self.published += 1
