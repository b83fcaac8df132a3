"""The centre's side of its edges: their batches in, their alarm events on, their clock requests answered.

Subscribed (persistent session, QoS 1, manual acknowledgement; shared across collectors with
`collector.share_group`) to `pumpwatch/edge/+/batch` and `.../alarm`, and to `.../time` (QoS 0).

Each edge belongs to one estate (edge ids are unique across the deployment): its readings are keyed
with that estate as they are decoded, and an alarm event it forwards must be of that estate.

- A batch is decoded (`pumpwatch.edge_wire`) and its readings go to the pipeline with the delivery
  key (edge, batch number): the PUBACK goes back only once they are in the durable buffer, and a
  batch seen before (sent again after a lost PUBACK, a restart) is acknowledged and not stored twice.
  Readings of a sensor outside the edge's rooms are refused (`not_this_edge`): an edge speaks for its
  own rooms only.
- An alarm event goes where the collector's own events go (the broker's alarm topics, in-process
  listeners) and is acknowledged once the broker has it; a repeat (same outbox number) is dropped.
- A clock request is answered on the edge's reply topic with this collector's receive and send times.

Batches and alarm events must be signed by the edge's own key (`pumpwatch.signing`, key id = edge id,
from `PUMPWATCH_SIGNING__TRUSTED_DIR`; without trusted keys, in development, they are taken as they
come). What fails is refused, acknowledged (sending it again would not help) and counted in
`pumpwatch_wire_refused_total{channel="edge-batch" or "edge-alarm", reason}`: unsigned or signed by
another key (`forged`), an alarm event sent before (`replayed`, marks kept on disk), an alarm about
an asset that is not in the event's room (`unknown_asset`).

The centre does not run the alarm rules of rooms an edge serves (the edge runs them, and its events
arrive here); it watches each edge's heartbeat instead: `edge_offline_rules`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from collector.metrics import CollectorMetrics
from collector.pipeline.buffer import edge_batch_key
from collector.pipeline.sink import ReadingSink
from collector.rules.conditions import Silent
from collector.rules.engine import AlarmRule, Level
from collector.sources.base import SourceContext
from pumpwatch.alarm_events import AlarmEvent, AlarmKey
from pumpwatch.catalog import SensorCatalog
from pumpwatch.edge_wire import (
    BATCH_STREAM,
    EDGE_ALARM_STREAM,
    EDGE_TOPIC,
    alarm_topic,
    batch_topic,
    decode_batch,
    decode_edge_alarm,
    decode_time_request,
    edge_of,
    encode_time_reply,
    time_reply_topic,
)
from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.portfolio import Portfolio, as_portfolio
from pumpwatch.signing import Verifier, WireRefusals, edge_verifier, load_keyring
from pumpwatch.site import Edge, Site, Text
from pumpwatch.wire import Refused, SiteAssets, WireError

log = logging.getLogger(__name__)

SOURCE = "edge"
ALARMS_REMEMBERED = 10_000  # (edge, outbox number) pairs kept to drop repeated alarm events

AlarmRelay = Callable[[AlarmEvent, Callable[[], None]], None]


class EdgeSource:
    """Takes every edge's batches, alarm events and clock requests from the centre's broker."""

    name = SOURCE

    def __init__(self, site: Site | Portfolio, broker: BrokerAddress, sink: ReadingSink,
                 metrics: CollectorMetrics, *, client_id: str, share_group: str | None = None,
                 catalog: SensorCatalog | None = None, keepalive: int = 30,
                 verifier: Verifier | None = None) -> None:
        portfolio = as_portfolio(site)
        self.broker = broker
        self.verifier = verifier or Verifier({})
        self.refusals = WireRefusals(metrics.registry)
        # What an alarm event may be about; the service sets the whole deployment's (this one may lack
        # the devices of edge rooms, which the centre does not poll).
        self.assets = SiteAssets(portfolio)
        self.sink = sink
        self.metrics = metrics
        self.keepalive = keepalive
        self.catalog = catalog or SensorCatalog(portfolio)
        self.edges: dict[str, Edge] = {}
        self.estates: dict[str, str] = {}
        self.rooms: dict[str, frozenset[str]] = {}
        self.set_portfolio(portfolio)
        # Set by the collector service: where a forwarded alarm event goes, and `done` once it is safe.
        self.relay: AlarmRelay | None = None
        prefix = f"$share/{share_group}/" if share_group else ""
        self.subscriptions = [(f"{prefix}{EDGE_TOPIC}/+/batch", 1), (f"{prefix}{EDGE_TOPIC}/+/alarm", 1),
                              (f"{prefix}{EDGE_TOPIC}/+/time", 0)]
        self.connected = False
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()  # batch keys accepted but not yet committed
        self._alarms_seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        client = new_client(broker, f"{client_id}-edges", persistent=True, manual_ack=True)
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    def set_portfolio(self, portfolio: Portfolio) -> None:
        """Take the edges of these estates (a reload swaps the tables whole; messages in flight finish)."""
        edges = {edge.id: edge for _estate, edge in portfolio.edges()}
        self.estates = portfolio.edge_estates()
        self.rooms = {edge.id: frozenset(edge.rooms) for edge in edges.values()}
        self.edges = edges

    async def run(self) -> None:
        """Take messages until cancelled; then disconnect (unacknowledged batches stay at the broker)."""
        self._loop = asyncio.get_running_loop()
        start_client(self.client, self.broker, self.keepalive)
        try:
            await asyncio.Event().wait()
        finally:
            stop_client(self.client)
            self.connected = False

    # --- paho callbacks (network thread) --------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                    _properties: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s refused the edge intake: %s", self.broker, reason)
            return
        client.subscribe(self.subscriptions)
        self.connected = True
        log.info("edge intake subscribed on %s for %d edges", self.broker, len(self.edges))

    def _on_disconnect(self, *_args: Any) -> None:
        self.connected = False

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        received = time.time()
        mid, qos = message.mid, message.qos

        def acknowledge() -> None:
            if qos > 0:
                client.ack(mid, qos)

        try:
            edge_id, kind = edge_of(message.topic)
        except WireError as err:
            self.sink.reject(SOURCE, "unknown_topic", str(err))
            acknowledge()
            return
        edge = self.edges.get(edge_id)
        if edge is None:
            self.sink.reject(SOURCE, "unknown_edge", message.topic)
            acknowledge()
            return
        try:
            if kind == "batch":
                self._batch(edge, message.payload, acknowledge)
            elif kind == "alarm":
                self._alarm(edge, message.payload, acknowledge)
            elif kind == "time":
                t0 = decode_time_request(message.payload)
                client.publish(time_reply_topic(edge.id), encode_time_reply(t0, received, time.time()), qos=0)
                acknowledge()
            else:
                acknowledge()  # our own replies, if a subscription ever matches them
        except Refused as refused:
            log.warning("refused a %s from edge %s: %s", kind, edge.id, refused)
            self.refusals.count(f"edge-{kind}", refused)
            if kind == "alarm":
                self.metrics.edge_alarms.labels(edge=edge.id, outcome="refused").inc()
            else:
                self.metrics.edge_batches.labels(edge=edge.id, outcome="refused").inc()
            acknowledge()  # sending it again would not help
        except WireError as err:
            log.warning("edge %s sent a malformed %s: %s", edge.id, kind, err)
            self.sink.reject(SOURCE, "malformed", f"{message.topic}: {err}")
            self.metrics.edge_batches.labels(edge=edge.id, outcome="refused").inc()
            acknowledge()  # sending it again would not help
        except Exception:  # a bug here must not stop the intake; redelivery would fail the same way
            log.exception("handling %s failed", message.topic)
            self.sink.reject(SOURCE, "decoder_error", message.topic)
            acknowledge()

    def _batch(self, edge: Edge, payload: bytes | bytearray, acknowledge: Callable[[], None]) -> None:
        opened = self.verifier.open(batch_topic(edge.id), payload, BATCH_STREAM, sender=edge.id, replay=False)
        batch = decode_batch(opened.body, self.estates[edge.id])
        key = edge_batch_key(edge.id, batch.seq)
        with self._lock:
            repeated = key in self._in_flight
            if not repeated:
                self._in_flight.add(key)
        if repeated or self.sink.delivered(key):
            if not repeated:
                with self._lock:
                    self._in_flight.discard(key)
            self.metrics.edge_batches.labels(edge=edge.id, outcome="repeated").inc()
            self.sink.reject(SOURCE, "redelivered", key)
            acknowledge()
            return
        rooms = self.rooms[edge.id]
        readings = []
        for r in batch.readings:
            info = self.catalog.get(r.sensor)
            if info is not None and info.room not in rooms:
                self.sink.reject(SOURCE, "not_this_edge", f"{edge.id}: {r.sensor}")
                continue
            readings.append(r)  # unknown sensors are counted by the pipeline's validation

        def stored() -> None:
            with self._lock:
                self._in_flight.discard(key)
            acknowledge()

        self.metrics.edge_batches.labels(edge=edge.id, outcome="stored").inc()
        self.metrics.edge_readings.labels(edge=edge.id).inc(len(batch.readings))
        self.sink.accept(readings, f"{SOURCE}:{edge.id}", on_durable=stored, key=key)

    def _alarm(self, edge: Edge, payload: bytes | bytearray, ack: Callable[[], None]) -> None:
        opened = self.verifier.open(alarm_topic(edge.id), payload, EDGE_ALARM_STREAM, sender=edge.id)

        def acknowledge() -> None:
            opened.record()  # once taken: the same message again is a replay
            ack()

        number, event = decode_edge_alarm(opened.body)
        estate = self.estates[edge.id]
        if not event.key.estate:  # an edge from before estates: its events are of its own estate
            event = event.in_estate(estate)
        if event.key.estate != estate:
            self.metrics.edge_alarms.labels(edge=edge.id, outcome="refused").inc()
            self.sink.reject(SOURCE, "not_this_edge", f"{edge.id}: alarm of estate {event.key.estate}")
            acknowledge()
            return
        if event.room not in self.rooms[edge.id]:
            self.metrics.edge_alarms.labels(edge=edge.id, outcome="refused").inc()
            self.sink.reject(SOURCE, "not_this_edge", f"{edge.id}: alarm in room {event.room}")
            acknowledge()
            return
        self.assets.check_event(event)  # an edge speaks for the assets of its own rooms only
        seen = (edge.id, number)
        with self._lock:
            repeated = seen in self._alarms_seen
            if not repeated:
                self._alarms_seen[seen] = None
                if len(self._alarms_seen) > ALARMS_REMEMBERED:
                    self._alarms_seen.popitem(last=False)
        if repeated:
            self.metrics.edge_alarms.labels(edge=edge.id, outcome="repeated").inc()
            acknowledge()
            return
        self.metrics.edge_alarms.labels(edge=edge.id, outcome="relayed").inc()
        relay, loop = self.relay, self._loop
        if relay is None or loop is None or loop.is_closed():
            acknowledge()
            return
        loop.call_soon_threadsafe(relay, event, acknowledge)  # listeners run on the event loop


def edge_offline_rules(site: Site) -> list[AlarmRule]:
    """One rule per edge: `edge_offline` on the edge when its heartbeat has been silent too long."""
    rules = []
    for edge in site.edges:
        label = edge.name or Text(zh=edge.id, en=edge.id)
        heartbeat = edge.sensor_id("heartbeat")
        rules.append(AlarmRule(
            AlarmKey(edge.id, "edge_offline", site.site.id), edge.rooms[0],
            Text(zh=f"边缘网关 {label.zh} 离线(超过 {edge.offline_after:g} 秒无心跳)",
                 en=f"Edge gateway {label.en} offline (no heartbeat for {edge.offline_after:g} s)"),
            (Level(edge.offline_severity, Silent(frozenset({heartbeat}), edge.offline_after)),),
            heartbeat))
    return rules


def sources_from_site(context: SourceContext) -> list[EdgeSource]:
    """The edge intake of the centre, when the site has edges (never on an edge itself)."""
    if context.broker is None or not context.site.edges or context.settings.edge.id is not None:
        return []
    return [edge_source(context.portfolio or context.site, context)]


def edge_source(sites: Site | Portfolio, context: SourceContext) -> EdgeSource:
    """The centre's edge intake for the edges of these estates."""
    assert context.broker is not None
    cfg = context.settings.collector
    verifier = edge_verifier(context.settings, sites, cfg.state_dir / "wire-marks-edges.db")
    return EdgeSource(sites, context.broker, context.sink, context.metrics,
                      client_id=cfg.client_id, share_group=cfg.share_group, catalog=context.catalog,
                      verifier=verifier)


def trusted_edge_keys(source: EdgeSource, context: SourceContext, portfolio: Portfolio) -> None:
    """Reload the keys the intake trusts (a reload added or removed an edge)."""
    if source.verifier.required or context.settings.signing.trusted_dir is not None:
        source.verifier.keys = load_keyring(context.settings.signing.trusted_dir,
                                            only=list(portfolio.edge_estates()))

