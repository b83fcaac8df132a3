"""MQTT intake (paho-mqtt): persistent session, QoS 1, manual acknowledgement after the durable commit.

The broker keeps every message this collector has not acknowledged, so a crash or a restart of
either side loses nothing that was published at QoS 1: a message is acknowledged only once its
readings are on disk (or once it proved undecodable, when redelivery would not help).

One source serves every estate of the collector: one client, one session, the topic maps of all of
them (no two estates claim one topic, `pumpwatch.portfolio.conflicts`), each resolving to its
estate's sensor keys. A reload swaps the decoder whole and changes only the subscriptions that differ.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import paho.mqtt.client as mqtt

from collector.estates import source_view
from collector.metrics import CollectorMetrics
from collector.pipeline.sink import ReadingSink
from collector.sources.base import SourceContext
from collector.sources.mqtt_decode import MqttDecoder
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import Clock
from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.portfolio import Portfolio, as_portfolio
from pumpwatch.site import MqttMapping, Site

log = logging.getLogger(__name__)

SOURCE = "mqtt"


class MqttSource:
    """Subscribes to every topic map of the estates and feeds the sink from paho's network thread."""

    name = SOURCE

    def __init__(self, site: Site | Portfolio, broker: BrokerAddress, sink: ReadingSink,
                 metrics: CollectorMetrics, clock: Clock, *, client_id: str = "pumpwatch-collector",
                 share_group: str | None = None, keepalive: int = 30,
                 catalog: SensorCatalog | None = None) -> None:
        portfolio = as_portfolio(site)
        self.broker = broker
        self.sink = sink
        self.metrics = metrics
        self.clock = clock
        self.keepalive = keepalive
        self.catalog = catalog or SensorCatalog(portfolio)
        self._prefix = f"$share/{share_group}/" if share_group else ""
        self.decoder = MqttDecoder(_maps(portfolio), self.catalog)
        self.subscriptions = self._subscriptions(portfolio)
        self.connected = False
        self._stopping = False
        client = new_client(broker, client_id, persistent=True, manual_ack=True)
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    async def run(self) -> None:
        """Take messages until cancelled; then disconnect (unacknowledged messages stay at the broker)."""
        self.start()
        try:
            await asyncio.Event().wait()
        finally:
            self.stop()

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself and `_on_connect` resubscribes."""
        start_client(self.client, self.broker, self.keepalive)

    def stop(self) -> None:
        """Disconnect; messages not yet acknowledged stay queued at the broker for the next start."""
        self._stopping = True
        stop_client(self.client)
        self._set_connected(False)

    def set_portfolio(self, portfolio: Portfolio) -> None:
        """Take the topic maps of these estates (a reload): a new decoder, changed subscriptions only.

        A message decoded meanwhile uses the decoder it started with; the last timestamp of each sensor
        carries over, so two messages in one instant still keep both points.
        """
        decoder = MqttDecoder(_maps(portfolio), self.catalog)
        decoder.carry_over(self.decoder)
        self.decoder = decoder
        wanted = self._subscriptions(portfolio)
        added = sorted(set(wanted) - set(self.subscriptions))
        gone = sorted(set(self.subscriptions) - set(wanted))
        self.subscriptions = wanted
        if self.connected:
            if added:
                self.client.subscribe([(topic, 1) for topic in added])
            if gone:
                self.client.unsubscribe(gone)
        if added or gone:
            log.info("MQTT subscriptions changed: +%s -%s", ", ".join(added) or "none",
                     ", ".join(gone) or "none")

    def _subscriptions(self, portfolio: Portfolio) -> list[str]:
        return sorted({self._prefix + m.subscription for site in portfolio for m in site.mqtt})

    # --- paho callbacks (network thread) --------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                    _properties: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s refused the connection: %s", self.broker, reason)
            return
        client.subscribe([(topic, 1) for topic in self.subscriptions])
        self._set_connected(True)
        log.info("MQTT connected to %s; subscribed to %s", self.broker, ", ".join(self.subscriptions))

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                       _properties: Any) -> None:
        if self.connected and not self._stopping:
            log.warning("MQTT disconnected from %s (%s); reconnecting", self.broker, reason)
        self._set_connected(False)

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.metrics.mqtt_messages.inc()
        mid, qos = message.mid, message.qos

        def acknowledge() -> None:
            if qos > 0:
                client.ack(mid, qos)

        key = None
        if qos > 0:
            digest = hashlib.blake2b(message.topic.encode() + b"\0" + message.payload, digest_size=12)
            key = f"{mid}:{digest.hexdigest()}"
            if message.dup and self.sink.delivered(key):
                self.sink.reject(SOURCE, "redelivered", message.topic)  # stored already: ack, skip
                acknowledge()
                return

        try:
            decoded = self.decoder.decode(message.topic, message.payload, self.clock.now())
        except Exception:  # a decoder bug must not stop the intake; redelivery would fail the same way
            log.exception("decoding a message on %s failed", message.topic)
            self.sink.reject(SOURCE, "decoder_error", message.topic)
            acknowledge()
            return
        for reason, detail in decoded.rejected:
            self.sink.reject(SOURCE, reason, detail)
        if decoded.readings:
            self.sink.accept(decoded.readings, SOURCE, on_durable=acknowledge, key=key)
        else:
            acknowledge()

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self.metrics.mqtt_connected.set(1 if connected else 0)


def _maps(portfolio: Portfolio) -> tuple[MqttMapping, ...]:
    """Every estate's topic maps, their sensor templates resolving to sensor keys."""
    return tuple(mapping for site in portfolio for mapping in source_view(site).mqtt)


def sources_from_site(context: SourceContext) -> list[MqttSource]:
    """The MQTT source for the estates' topic maps, when there are some and a broker."""
    sites = context.portfolio or as_portfolio(context.site)
    if context.broker is None or not any(site.mqtt for site in sites):
        return []
    cfg = context.settings.collector
    return [MqttSource(sites, context.broker, context.sink, context.metrics, context.clock,
                       client_id=cfg.client_id, share_group=cfg.share_group, catalog=context.catalog)]
