"""A paho client set up for a broker address: credentials, TLS, reconnect backoff, background start."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pumpwatch.mqtturl import BrokerAddress


def new_client(broker: BrokerAddress, client_id: str, *, persistent: bool = False, manual_ack: bool = False,
               queue_limit: int | None = None) -> mqtt.Client:
    """A paho 2 client (MQTT 3.1.1); `persistent` keeps the session, `queue_limit` bounds what it queues."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent,
                         manual_ack=manual_ack, protocol=mqtt.MQTTv311)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set(ca_certs=broker.ca_file, cert_reqs=ssl.CERT_REQUIRED)  # host name checked too
    if queue_limit is not None:
        client.max_queued_messages_set(queue_limit)
    client.reconnect_delay_set(1, 10)
    return client


def start_client(client: mqtt.Client, broker: BrokerAddress, keepalive: int = 30) -> None:
    """Connect in the background; paho reconnects by itself."""
    client.connect_async(broker.host, broker.port, keepalive=keepalive)
    client.loop_start()


def stop_client(client: mqtt.Client) -> None:
    """Disconnect (queued messages go first) and stop the network thread."""
    client.disconnect()
    client.loop_stop()
