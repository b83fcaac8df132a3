"""MQTT intake: persistent session, QoS 1, acknowledgement after the durable commit.

The broker keeps every message this collector has not acknowledged, so a crash or a restart of
either side loses nothing that was published at QoS 1: a message is acknowledged only once its
readings are on disk (or once it proved undecodable, when redelivery would not help).

The session is `pumpwatch.mqtt_session.MqttSession`, not paho: it hands over every message of one read from
the socket at once, and this source decodes them, gives the pipeline their readings and delivery
keys in one call (one commit), and acknowledges them all with one write once that commit is done.

One source serves every estate of the collector: one client, one session, the topic maps of all of
them (no two estates claim one topic, `pumpwatch.portfolio.conflicts`), each resolving to its
estate's sensor keys. A reload swaps the decoder whole and changes only the subscriptions that differ.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence

from collector.estates import source_view
from collector.metrics import CollectorMetrics
from collector.pipeline.sink import MessageSink, PacedSink, ReadingSink
from collector.sources.base import SourceContext
from collector.sources.mqtt_decode import MqttDecoder, TimeLane
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import Clock
from pumpwatch.mqtt_session import Message, MqttSession
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.portfolio import Portfolio, as_portfolio
from pumpwatch.readings import Reading
from pumpwatch.site import MqttMapping, Site

log = logging.getLogger(__name__)

SOURCE = "mqtt"


class MqttSource:
    """Subscribes to every topic map of the estates and feeds the sink from the session's thread."""

    name = SOURCE

    def __init__(self, site: Site | Portfolio, broker: BrokerAddress, sink: ReadingSink,
                 metrics: CollectorMetrics, clock: Clock, *, client_id: str = "pumpwatch-collector",
                 share_group: str | None = None, keepalive: int = 30,
                 catalog: SensorCatalog | None = None, lane: TimeLane | None = None) -> None:
        portfolio = as_portfolio(site)
        self.broker = broker
        self.sink = sink
        self.metrics = metrics
        self.clock = clock
        self.keepalive = keepalive
        self.catalog = catalog or SensorCatalog(portfolio)
        self._prefix = f"$share/{share_group}/" if share_group else ""
        if share_group:
            log.info("MQTT topics taken through the shared subscription group %r: the broker hands each "
                     "message to one member; the members' rules see each other's readings "
                     "(collector.group)", share_group)
        self.lane = lane or TimeLane()  # the group's lanes: members never stamp one instant twice
        self.decoder = MqttDecoder(_maps(portfolio), self.catalog, lane=self.lane)
        self.subscriptions = self._subscriptions(portfolio)
        self.connected = False
        self._batches = sink if isinstance(sink, MessageSink) else None  # checked once: isinstance is slow
        paced = sink if isinstance(sink, PacedSink) else None
        self.session = MqttSession(broker, client_id, self.subscriptions, on_messages=self._on_messages,
                                   on_state=self._set_connected, keepalive=keepalive,
                                   can_take=paced.has_room if paced is not None else None)

    async def run(self) -> None:
        """Take messages until cancelled; then disconnect (unacknowledged messages stay at the broker)."""
        self.start()
        try:
            await asyncio.Event().wait()
        finally:
            self.stop()

    def start(self) -> None:
        """Connect in the background; the session reconnects by itself and subscribes again."""
        self.session.start()

    def stop(self) -> None:
        """Disconnect; messages not yet acknowledged stay queued at the broker for the next start.

        A member of a shared-subscription group leaves it first: while it is away the broker hands the
        group's messages to the other members instead of queueing this one's share for it.
        """
        self.session.stop(leave=bool(self._prefix))
        self._set_connected(False)

    def set_portfolio(self, portfolio: Portfolio) -> None:
        """Take the topic maps of these estates (a reload): a new decoder, changed subscriptions only.

        A message decoded meanwhile uses the decoder it started with; the last timestamp of each sensor
        carries over, so two messages in one instant still keep both points.
        """
        decoder = MqttDecoder(_maps(portfolio), self.catalog, lane=self.lane)
        decoder.carry_over(self.decoder)
        self.decoder = decoder
        self.subscriptions = self._subscriptions(portfolio)
        added, gone = self.session.subscribe_only(self.subscriptions)
        if added or gone:
            log.info("MQTT subscriptions changed: +%s -%s", ", ".join(added) or "none",
                     ", ".join(gone) or "none")

    def _subscriptions(self, portfolio: Portfolio) -> list[str]:
        return sorted({self._prefix + m.subscription for site in portfolio for m in site.mqtt})

    # --- the session's network thread -----------------------------------------------------------

    def _on_messages(self, messages: list[Message]) -> None:
        """Decode one read's messages; their readings go to the pipeline together, acked together."""
        self.metrics.mqtt_messages.inc(len(messages))
        sink = self.sink
        decoder = self.decoder
        clock = self.clock
        batch = self._batches is not None
        readings: list[Reading] = []
        keys: list[str] = []
        mids: list[int] = []  # acknowledged after the commit of `readings`
        at_once: list[int] = []  # nothing to keep: acknowledged now
        for message in messages:
            topic = message.topic
            key = None
            if message.qos:
                digest = hashlib.blake2b(topic.encode() + b"\0" + message.payload, digest_size=12)
                key = f"{message.mid}:{digest.hexdigest()}"
                if message.dup and sink.delivered(key):
                    sink.reject(SOURCE, "redelivered", topic)  # stored already: ack, skip
                    at_once.append(message.mid)
                    continue
            try:
                # each message its own receive time, as it came: one read can hold messages of
                # several milliseconds, and stores downstream (an edge's batches) keep milliseconds
                decoded = decoder.decode(topic, message.payload, clock.now())
            except Exception:  # a decoder bug must not stop the intake; redelivery would fail the same way
                log.exception("decoding a message on %s failed", topic)
                sink.reject(SOURCE, "decoder_error", topic)
                at_once.append(message.mid)
                continue
            for reason, detail in decoded.rejected:
                sink.reject(SOURCE, reason, detail)
            if not decoded.readings:
                at_once.append(message.mid)
            elif batch:
                readings += decoded.readings
                if key is not None:
                    keys.append(key)
                if message.qos:
                    mids.append(message.mid)
            else:  # a sink of single messages: each acknowledged after its own commit
                sink.accept(decoded.readings, SOURCE, on_durable=self._acknowledger(message, [message.mid]),
                            key=key)
        connection = messages[0].connection
        if at_once:
            self.session.ack(connection, [mid for mid in at_once if mid])
        if readings and self._batches is not None:
            self._batches.accept_messages(readings, SOURCE, self._acknowledger(messages[0], mids), keys)

    def _acknowledger(self, message: Message, mids: Sequence[int]) -> Callable[[], None]:
        """What acknowledges these messages of `message`'s connection (none at QoS 0)."""
        session, connection = self.session, message.connection
        wanted = [mid for mid in mids if mid]

        def acknowledge() -> None:
            session.ack(connection, wanted)

        return acknowledge

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
                       client_id=cfg.client_id, share_group=cfg.share_group, catalog=context.catalog,
                       lane=context.lane)]
