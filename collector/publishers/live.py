"""Live readings to MQTT (`pumpwatch/live/<estate>/<room>`), for API processes apart from the collector.

Live data is a view, not a record: QoS 0, one message per room per commit carrying the newest
reading of each sensor in it (under load a commit holds several readings of a sensor; screens show
the newest, history comes from the series store). The messages of one commit go out in one write of
the collector's own MQTT session (`pumpwatch.mqtt_session`): paho woke its network thread and
sent once per message, about a sixth of the collector's CPU at 20,000 readings/s. While the broker is
away, or while `OUTBOX_LIMIT` bytes already wait, a commit's messages are dropped and counted
(`pumpwatch_live_messages_dropped_total`): the readings themselves are safe in the series store, and a
late view is worth nothing. With a signer each message is signed (`pumpwatch.signing`), so the API
shows only readings from a collector whose key it trusts. The readings carry the sensor ids of the
topic's estate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from pumpwatch.catalog import SensorCatalog
from pumpwatch.mqtt_session import Message, MqttSession
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Reading
from pumpwatch.signing import Signer
from pumpwatch.wire import LIVE_STREAM, encode_live_readings, live_topic


def _no_messages(messages: list[Message]) -> None:
    """The live session subscribes to nothing."""


class LivePublisher:
    """A pipeline hook: each batch the intake hands over, grouped by room, published at QoS 0 in one write."""

    def __init__(self, broker: BrokerAddress, client_id: str, catalog: SensorCatalog,
                 signer: Signer | None = None, on_dropped: Callable[[int], None] | None = None) -> None:
        self.broker = broker
        self.catalog = catalog
        self.signer = signer
        self.dropped = 0  # messages not sent
        self.on_dropped = on_dropped
        self.session = MqttSession(broker, client_id, [], on_messages=_no_messages, on_state=self._state,
                                   clean=True)
        self.on_sent: Callable[[list[bytes]], None] | None = None  # the payloads of each commit, as sent
        self.connected = False

    def start(self) -> None:
        """Connect in the background (and again whenever the connection drops)."""
        self.session.start()

    def stop(self) -> None:
        """Disconnect."""
        self.session.stop()

    def _state(self, connected: bool) -> None:
        self.connected = connected

    def __call__(self, readings: Sequence[Reading]) -> None:
        """Publish one message per room with the newest reading of each sensor."""
        newest = {r.sensor: r for r in readings}  # later readings of a sensor replace earlier ones
        rooms: dict[tuple[str, str], list[Reading]] = defaultdict(list)
        for key, r in newest.items():
            info = self.catalog.get(key)
            if info is not None:
                rooms[(info.site, info.room)].append(Reading(info.id, r.ts, r.value, r.quality, r.state))
        messages = []
        for (estate, room), batch in rooms.items():
            topic, payload = live_topic(estate, room), encode_live_readings(batch)
            if self.signer is not None:
                payload = self.signer.seal(topic, payload, LIVE_STREAM)
            messages.append((topic, payload))
        if messages and self.on_sent is not None:
            self.on_sent([payload for _topic, payload in messages])
        if messages and not self.session.publish(messages):
            self.dropped += len(messages)
            if self.on_dropped is not None:
                self.on_dropped(len(messages))
