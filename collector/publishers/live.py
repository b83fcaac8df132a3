"""Live readings to MQTT (`pumpwatch/live/<estate>/<room>`), for API processes apart from the collector.

Live data is a view, not a record: QoS 0, one message per room per commit carrying the newest
reading of each sensor in it (under load a commit holds several readings of a sensor; screens show
the newest, history comes from the series store), and when the broker is away paho's bounded queue
drops (the readings themselves are safe in the series store). With a signer each message is signed
(`pumpwatch.signing`), so the API shows only readings from a collector whose key it trusts. The
readings carry the sensor ids of the topic's estate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import paho.mqtt.client as mqtt

from pumpwatch.catalog import SensorCatalog
from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Reading
from pumpwatch.signing import Signer
from pumpwatch.wire import LIVE_STREAM, encode_live_readings, live_topic

QUEUE_LIMIT = 1000  # messages held while disconnected


class LivePublisher:
    """A pipeline hook: each committed batch, grouped by room, published at QoS 0."""

    def __init__(self, broker: BrokerAddress, client_id: str, catalog: SensorCatalog,
                 signer: Signer | None = None) -> None:
        self.broker = broker
        self.catalog = catalog
        self.signer = signer
        self.dropped = 0
        self.client = new_client(broker, client_id, queue_limit=QUEUE_LIMIT)

    def start(self) -> None:
        """Connect in the background."""
        start_client(self.client, self.broker)

    def stop(self) -> None:
        """Disconnect."""
        stop_client(self.client)

    def __call__(self, readings: Sequence[Reading]) -> None:
        """Publish one message per room with the newest reading of each sensor."""
        newest = {r.sensor: r for r in readings}  # later readings of a sensor replace earlier ones
        rooms: dict[tuple[str, str], list[Reading]] = defaultdict(list)
        for key, r in newest.items():
            info = self.catalog.get(key)
            if info is not None:
                rooms[(info.site, info.room)].append(Reading(info.id, r.ts, r.value, r.quality, r.state))
        for (estate, room), batch in rooms.items():
            topic, payload = live_topic(estate, room), encode_live_readings(batch)
            if self.signer is not None:
                payload = self.signer.seal(topic, payload, LIVE_STREAM)
            sent = self.client.publish(topic, payload, qos=0)
            if sent.rc != mqtt.MQTT_ERR_SUCCESS:
                self.dropped += len(batch)
