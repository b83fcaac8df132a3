"""The collector as one service: sources -> pipeline -> durable buffer -> writer -> series store.

What other roles of the same process may use is a method here (add a readings hook, add an alarm
listener, send a command, the store and the buses); `parts` is for tests and benchmarks to look inside.

On an edge (`settings.edge.id` set: `pumpwatch edge`) the same collector reads only the edge's rooms
(`collector.edge_scope`), its series store is the centre (`UplinkStore`, fresh readings first after an
outage), its buffer drops the oldest readings when full instead of waiting (a PLC cannot wait), its
alarm events also go to the centre through a durable outbox, and it reports its own health. At the
centre, a site with `edges:` adds the edge intake and leaves the rules of edge rooms to the edges.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from collector.edge_scope import centre_devices, centre_rules, edge_rules, scope_to_edge
from collector.metrics import CollectorMetrics
from collector.pipeline.buffer import DurableBuffer
from collector.pipeline.intake import Pipeline, ReadingsHook
from collector.pipeline.writer import BufferWriter
from collector.publishers.alarms import AlarmPublisher
from collector.publishers.forward import AlarmForwarder, AlarmOutbox
from collector.publishers.live import LivePublisher
from collector.rules.engine import AlarmEngine
from collector.rules.memory import AlarmMemory
from collector.rules.rulebook import Rulebook
from collector.sources import build_sources
from collector.sources.base import CommandTarget, Source, SourceContext
from collector.sources.edge import EdgeSource
from collector.sources.edge_health import EdgeHealth
from collector.sources.modbus import ModbusCollector
from collector.sources.mqtt import MqttSource
from collector.stores.centre_link import CentreLink
from collector.stores.factory import make_store
from collector.stores.uplink import UplinkStore
from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.backoff import Backoff
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import Clock, SystemClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Reading
from pumpwatch.series import SeriesStore
from pumpwatch.settings import Settings
from pumpwatch.signing import Signer, signer_for
from pumpwatch.site import Edge, Site
from pumpwatch.wire import SiteAssets

log = logging.getLogger(__name__)

AlarmListener = Callable[[AlarmEvent], None]


@dataclass
class CollectorParts:
    """The assembled collector, exposed so tests and benchmarks can look inside."""

    catalog: SensorCatalog
    store: SeriesStore
    buffer: DurableBuffer
    pipeline: Pipeline
    writer: BufferWriter
    sources: list[Source]
    metrics: CollectorMetrics
    live: LiveBus[Sequence[Reading]]
    alarms: AlarmEngine
    alarm_bus: LiveBus[AlarmEvent]
    alarm_publisher: AlarmPublisher | None
    edge: Edge | None = None  # on an edge: which one
    uplink: CentreLink | None = None  # on an edge: its connection to the centre
    forwarder: AlarmForwarder | None = None  # on an edge: its alarm events to the centre

    @property
    def modbus(self) -> ModbusCollector | None:
        """The Modbus source, when the site (or this shard) has devices."""
        return next((s for s in self.sources if isinstance(s, ModbusCollector)), None)

    @property
    def mqtt(self) -> MqttSource | None:
        """The MQTT source, when the site has topic maps and there is a broker."""
        return next((s for s in self.sources if isinstance(s, MqttSource)), None)

    @property
    def edges(self) -> EdgeSource | None:
        """The centre's edge intake, when the site has edges."""
        return next((s for s in self.sources if isinstance(s, EdgeSource)), None)


class CollectorService:
    """Builds the collector from the site and settings and runs it until cancelled."""

    def __init__(self, site: Site, settings: Settings, clock: Clock, broker: BrokerAddress | None,
                 *, metrics: CollectorMetrics | None = None, store: SeriesStore | None = None,
                 live: LiveBus[Sequence[Reading]] | None = None, publish_live: bool = False) -> None:
        cfg = settings.collector
        metrics = metrics or CollectorMetrics()
        edge = site.edge(settings.edge.id) if settings.edge.id is not None else None
        whole_site = site
        # What this process publishes for other processes is signed with its own key, if it has one.
        signer = signer_for(settings, edge.id if edge is not None else None)
        if edge is not None:
            site = scope_to_edge(site, edge.id)
        catalog = SensorCatalog(site)
        live = live or LiveBus(on_drop=lambda name: metrics.live_dropped.labels(subscriber=name).inc())
        buffer = DurableBuffer(cfg.state_dir / "buffer.db", capacity=cfg.buffer_capacity,
                               when_full=settings.edge.when_full if edge is not None else "wait",
                               on_dropped=lambda n: metrics.dropped.labels(reason="buffer_full").inc(n))
        # An edge never holds its intake back for the writer: fresh readings must keep coming.
        pipeline = Pipeline(catalog, buffer, metrics, clock, intake_limit=cfg.intake_limit,
                            catch_up_depth=0 if edge is not None else cfg.catch_up_depth, live=live)
        link = forwarder = None
        if edge is not None and store is None:
            link, store, forwarder = _uplink(edge, settings, metrics, signer)
        store = store or make_store(settings, catalog)
        alarm_bus: LiveBus[AlarmEvent] = LiveBus(
            on_drop=lambda name: metrics.live_dropped.labels(subscriber=name).inc())
        rulebook = Rulebook(site)
        rules = edge_rules(rulebook.rules, site) if edge is not None else centre_rules(rulebook.rules, site)
        engine = AlarmEngine(rules, clock, transport=SystemClock(), history=rulebook.history,
                             bus=alarm_bus, memory=AlarmMemory(cfg.state_dir / "alarms.json"))
        pipeline.hooks.append(engine.on_readings)
        publisher = (AlarmPublisher(broker, f"{cfg.client_id}-alarms", signer)
                     if broker is not None else None)
        if publisher is not None:
            engine.listeners.append(publisher)
        if forwarder is not None:
            engine.listeners.append(forwarder)
        self.live_publisher = (LivePublisher(broker, f"{cfg.client_id}-live", catalog, signer)
                               if broker is not None and publish_live else None)
        if self.live_publisher is not None:
            pipeline.hooks.append(self.live_publisher)
        sources = build_sources(SourceContext(site=centre_devices(site) if edge is None else site,
                                              settings=settings, sink=pipeline, metrics=metrics,
                                              clock=clock, catalog=catalog, broker=broker))
        if edge is not None and link is not None:
            sources.append(EdgeHealth(edge, pipeline, buffer, link, clock, metrics))
        self.parts = CollectorParts(
            catalog=catalog,
            store=store,
            buffer=buffer,
            pipeline=pipeline,
            writer=BufferWriter(buffer, store, metrics, batch_size=cfg.batch_size,
                                wake=pipeline.committed,
                                linger=settings.edge.linger if edge is not None else cfg.write_linger,
                                backoff=Backoff(cap=cfg.retry_cap), probe_interval=cfg.probe_interval,
                                fresh_first=edge is not None),
            sources=sources,
            metrics=metrics,
            live=live,
            alarms=engine,
            alarm_bus=alarm_bus,
            alarm_publisher=publisher,
            edge=edge,
            uplink=link,
            forwarder=forwarder,
        )
        writer = self.parts.writer
        pipeline.store_up = lambda: writer.healthy
        if self.parts.edges is not None:
            self.parts.edges.relay = self._relay_edge_alarm
            self.parts.edges.assets = SiteAssets(whole_site)

    # --- what the other roles of this process use ----------------------------------------------

    @property
    def store(self) -> SeriesStore:
        """The series store this collector writes (others in the process read it)."""
        return self.parts.store

    @property
    def live(self) -> LiveBus[Sequence[Reading]]:
        """Committed readings, as they are committed."""
        return self.parts.live

    @property
    def alarm_events(self) -> LiveBus[AlarmEvent]:
        """Alarm events of this process, for live screens."""
        return self.parts.alarm_bus

    @property
    def registry(self) -> CollectorRegistry:
        """The collector's metrics, for `/metrics`."""
        return self.parts.metrics.registry

    def add_readings_hook(self, hook: ReadingsHook) -> None:
        """Call `hook` on the event loop with every committed batch of readings."""
        self.parts.pipeline.hooks.append(hook)

    def add_alarm_listener(self, listener: AlarmListener) -> None:
        """Call `listener` on the event loop with every alarm event the rules announce."""
        self.parts.alarms.listeners.append(listener)

    def announce(self, event: AlarmEvent) -> None:
        """An alarm event raised elsewhere in this process (the scheduler's rotation check).

        It goes where the rules' own events go: to the broker when this collector publishes there,
        and to this process's alarm bus.
        """
        if self.parts.alarm_publisher is not None:
            self.parts.alarm_publisher(event)
        self.parts.alarm_bus.publish(event)

    def _relay_edge_alarm(self, event: AlarmEvent, done: Callable[[], None]) -> None:
        """An edge's alarm event (at the centre): where this collector's own events go; then `done`.

        `done` (the edge's acknowledgement) runs once the broker has the event, or at once when this
        collector publishes no alarms.
        """
        p = self.parts
        for listener in list(p.alarms.listeners):
            if listener is p.alarm_publisher:
                continue
            try:
                listener(event)
            except Exception:  # one failing listener must not keep the event from the others
                log.exception("alarm listener %r failed on an edge's event", listener)
        p.alarm_bus.publish(event)
        if p.alarm_publisher is None:
            done()
        else:
            p.alarm_publisher.publish(event, on_sent=done)  # a full queue: unacknowledged, sent again

    @property
    def publishes_alarms(self) -> bool:
        """Whether alarm events go out on the broker."""
        return self.parts.alarm_publisher is not None

    async def send_command(self, sensor: str, value: float) -> None:
        """Write a command point through the source that owns it; ValueError when none does."""
        for source in self.parts.sources:
            if isinstance(source, CommandTarget) and source.can_write(sensor):
                await source.write(sensor, value)
                return
        raise ValueError(f"no source of this collector can write {sensor!r}")

    def health(self) -> dict[str, object]:
        """What /healthz shows: the writer, the buffer, and on an edge the uplink and the clock."""
        p = self.parts
        report: dict[str, object] = {
            "status": "ok" if p.writer.healthy else "degraded",
            "store": "ok" if p.writer.healthy else "unavailable",
            "last_error": p.writer.last_error,
            "buffer_depth": p.buffer.depth,
            "buffer_capacity": p.buffer.capacity,
            "dropped": p.buffer.dropped,
        }
        if p.edge is not None and p.uplink is not None:
            report.update(edge=p.edge.id, uplink="up" if p.uplink.ready else "down",
                          clock_offset=p.uplink.offset, backlog_age=p.metrics.total(p.metrics.backlog_age),
                          alarm_outbox=p.metrics.total(p.metrics.alarm_outbox))
        return report

    def status_line(self) -> str:
        """One line for a terminal: stored, buffered, rejected, device and broker state."""
        m = self.parts.metrics
        states = {2.0: "online", 1.0: "degraded", 0.0: "offline"}
        devices = ", ".join(f"{device} {states.get(value, '?')}"
                            for device, value in sorted(m.by_label(m.device_state, "device").items()))
        broker = "connected" if m.total(m.mqtt_connected) else "not connected"
        line = (f"collector: {m.total(m.written):.0f} readings stored, "
                f"{self.parts.buffer.depth} buffered, {m.total(m.rejected):.0f} rejected, "
                f"{m.total(m.flagged):.0f} flagged | Modbus: {devices or 'none'} | MQTT {broker}")
        link = self.parts.uplink
        if link is not None:
            offset = f", clock offset {link.offset:+.3f} s" if link.offset is not None else ""
            line += (f" | uplink {'up' if link.ready else 'down'}, {self.parts.buffer.dropped} dropped"
                     f"{offset}")
        return line

    async def run(self) -> None:
        """Start everything, run until cancelled, then stop in order without losing readings.

        The sources stop first (cancelled with the task group: intake ends, unacknowledged messages
        stay with the broker), then the pipeline commits what it holds, then the store closes.
        """
        p = self.parts
        await p.store.start()
        p.pipeline.start()
        if p.alarm_publisher is not None:
            p.alarm_publisher.start()
        if self.live_publisher is not None:
            self.live_publisher.start()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(p.writer.run(), name="collector-writer")
                tasks.create_task(p.alarms.run(), name="collector-alarm-timer")
                if p.forwarder is not None:
                    tasks.create_task(p.forwarder.run(), name="collector-alarm-forwarder")
                for source in p.sources:
                    tasks.create_task(source.run(), name=f"collector-{source.name}")
        finally:
            if p.alarm_publisher is not None:
                p.alarm_publisher.stop()
            if self.live_publisher is not None:
                self.live_publisher.stop()
            await asyncio.to_thread(p.pipeline.stop)
            await p.store.close()
            if p.forwarder is not None:
                p.forwarder.outbox.close()
            p.buffer.close()
            log.info("collector stopped; %d readings wait in the buffer for the next start",
                     p.buffer.depth)


def _uplink(edge: Edge, settings: Settings, metrics: CollectorMetrics, signer: Signer | None
            ) -> tuple[CentreLink, UplinkStore, AlarmForwarder]:
    """An edge's connection to the centre, its uplink store and its alarm forwarder."""
    cfg = settings.edge
    if cfg.uplink is None:
        raise ValueError("an edge needs the centre's broker: set PUMPWATCH_EDGE__UPLINK_URL")
    broker = BrokerAddress.parse(cfg.uplink, cfg.uplink_ca_file)
    link = CentreLink(broker, edge.id, f"pumpwatch-edge-{edge.id}", metrics, keepalive=cfg.keepalive,
                      clock_interval=cfg.clock_interval)
    state = settings.collector.state_dir
    store = UplinkStore(link, state, metrics, ack_timeout=cfg.ack_timeout, compression=cfg.compression,
                        signer=signer)
    forwarder = AlarmForwarder(AlarmOutbox(state / "alarm-outbox.db"), link, metrics,
                               ack_timeout=cfg.ack_timeout, signer=signer)
    return link, store, forwarder
