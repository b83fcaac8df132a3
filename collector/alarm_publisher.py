"""Alarm events to MQTT (`pumpwatch/alarms/<room>/<asset>/<type>`, QoS 1) for other processes."""

from __future__ import annotations

import json
import logging
import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.mqtturl import BrokerAddress

log = logging.getLogger(__name__)

ALARM_TOPIC = "pumpwatch/alarms"
QUEUE_LIMIT = 10_000  # events held while the broker is away; beyond that publish() reports a loss


def alarm_topic(event: AlarmEvent) -> str:
    """The topic an event goes to."""
    return f"{ALARM_TOPIC}/{event.room}/{event.key.asset}/{event.key.alarm_type}"


class AlarmPublisher:
    """Publishes each event at QoS 1; paho queues them (bounded) while the broker is unreachable."""

    def __init__(self, broker: BrokerAddress, client_id: str) -> None:
        self.broker = broker
        self.published = 0
        self.lost = 0
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.max_queued_messages_set(QUEUE_LIMIT)
        client.reconnect_delay_set(1, 10)
        self.client = client

    def start(self) -> None:
        """Connect in the background."""
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect after handing queued events to the network loop."""
        self.client.disconnect()
        self.client.loop_stop()

    def __call__(self, event: AlarmEvent) -> None:
        """Engine listener: publish one event."""
        payload = json.dumps(event.to_json(), ensure_ascii=False)
        info = self.client.publish(alarm_topic(event), payload, qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            self.lost += 1
            log.error("alarm event not published, %d queued already: %s", QUEUE_LIMIT, event.key)
        else:
            self.published += 1
