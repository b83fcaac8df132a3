"""MQTT clients for tests and benchmarks: a counting QoS 1 publisher, a session made ahead, one message."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import paho.mqtt.publish as publish
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.services import HOST


class CountingPublisher:
    """Publishes 0, 1, 2, ... at QoS 1 from its own thread at a steady rate; counts broker acks."""

    def __init__(self, port: int, topic: str, rate: float) -> None:
        self.topic = topic
        self.rate = rate
        self.sent = 0
        self.acked = 0
        self._stop = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}",
                                   clean_session=False)
        self._client.max_queued_messages_set(0)  # queue everything while the broker is away
        self._client.on_publish = self._on_publish
        self._client.reconnect_delay_set(1, 2)
        self._client.connect(HOST, port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._publish, daemon=True)

    def _on_publish(self, *_args: Any) -> None:
        self.acked += 1

    def _publish(self) -> None:
        period = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._client.publish(self.topic, str(self.sent), qos=1)
            self.sent += 1
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def start(self) -> None:
        """Start publishing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing (`sent` is final afterwards); acknowledgements still count."""
        self._stop.set()
        self._thread.join(5)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()


def create_session(port: int, client_id: str, topic: str) -> None:
    """Open a persistent session subscribed at QoS 1 and leave: the broker queues for it from now on."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_args: subscribed.set()
    client.on_connect = lambda c, *_args: c.subscribe(topic, qos=1)
    client.connect(HOST, port)
    client.loop_start()
    try:
        if not subscribed.wait(15):
            raise RuntimeError("no SUBACK from the broker")
    finally:
        client.disconnect()
        client.loop_stop()


def publish_one(port: int, topic: str, payload: str) -> None:
    """Publish one message at QoS 1 and wait for the broker's acknowledgement."""
    publish.single(topic, payload, qos=1, hostname=HOST, port=port)
