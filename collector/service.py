"""The collector as one service: sources -> pipeline -> durable buffer -> writer -> series store.

What other roles of the same process may use is a method here (add a readings hook, add an alarm
listener, send a command, the store and the buses); `parts` is for tests and benchmarks to look inside.

One collector serves many estates (`collector.estates`: why sensor keys, not a collector per
estate): all of the deployment, or those `COLLECTOR__ESTATES` names. The pipeline, buffer, writer,
store, MQTT intake and edge intake are shared; each estate has its own Modbus pollers and alarm
engine. `update_estate` and `remove_estate` take a changed, added or removed site file while the
collector runs: that estate's pollers and rules are swapped, the shared sources get its new topic
maps and edges, and nothing the pipeline holds is touched (its buffered readings are still written).

On an edge (`settings.edge.id` set: `pumpwatch edge`) the same collector reads only the edge's rooms
(`collector.edge_scope`), its series store is the centre (`UplinkStore`, fresh readings first after an
outage), its buffer drops the oldest readings when full instead of waiting (a PLC cannot wait), its
alarm events also go to the centre through a durable outbox, and it reports its own health. At the
centre, an estate with `edges:` adds the edge intake and leaves the rules of edge rooms to the edges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from prometheus_client import CollectorRegistry

from collector.edge_scope import (
    centre_devices,
    centre_rules,
    edge_estate,
    edge_rules,
    scope_portfolio_to_edge,
    scope_to_edge,
)
from collector.estates import EstateRules, adopt_memory, memory_path
from collector.group import ShareGroup
from collector.metrics import CollectorMetrics
from collector.pipeline.buffer import DurableBuffer
from collector.pipeline.intake import Pipeline, ReadingsHook
from collector.pipeline.writer import BufferWriter
from collector.publishers.alarms import AlarmPublisher
from collector.publishers.forward import AlarmForwarder, AlarmOutbox
from collector.publishers.live import LivePublisher
from collector.rules.engine import AlarmEngine
from collector.rules.memory import AlarmMemory, MemorySaver
from collector.rules.rulebook import Rulebook
from collector.sources import ESTATE_BUILDERS, SHARED_BUILDERS
from collector.sources.base import CommandTarget, Source, SourceBuilder, SourceContext
from collector.sources.edge import EdgeSource, trusted_edge_keys
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
from pumpwatch.portfolio import Portfolio, as_portfolio
from pumpwatch.readings import Reading
from pumpwatch.series import SeriesStore
from pumpwatch.settings import Settings
from pumpwatch.signing import Signer, feed_verifier, signer_for
from pumpwatch.site import Edge, Site
from pumpwatch.wire import SiteAssets

log = logging.getLogger(__name__)

AlarmListener = Callable[[AlarmEvent], None]


@dataclass
class EstateParts:
    """What one estate has of its own in the collector: its site, its alarm engine, its sources."""

    site: Site
    engine: AlarmEngine
    sources: list[Source]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


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
    alarms: EstateRules
    alarm_bus: LiveBus[AlarmEvent]
    alarm_publisher: AlarmPublisher | None
    edge: Edge | None = None  # on an edge: which one
    uplink: CentreLink | None = None  # on an edge: its connection to the centre
    forwarder: AlarmForwarder | None = None  # on an edge: its alarm events to the centre
    estates: dict[str, EstateParts] = field(default_factory=dict)

    @property
    def modbus(self) -> ModbusCollector | None:
        """The Modbus source of the first estate that has one (the only one, of a single estate)."""
        return next((s for s in self.sources if isinstance(s, ModbusCollector)), None)

    @property
    def mqtt(self) -> MqttSource | None:
        """The MQTT source, when the estates have topic maps and there is a broker."""
        return next((s for s in self.sources if isinstance(s, MqttSource)), None)

    @property
    def edges(self) -> EdgeSource | None:
        """The centre's edge intake, when the estates have edges."""
        return next((s for s in self.sources if isinstance(s, EdgeSource)), None)


class CollectorService:
    """Builds the collector from the estates and settings and runs it until cancelled."""

    def __init__(self, site: Site | Portfolio, settings: Settings, clock: Clock, broker: BrokerAddress | None,
                 *, metrics: CollectorMetrics | None = None, store: SeriesStore | None = None,
                 live: LiveBus[Sequence[Reading]] | None = None, publish_live: bool = False) -> None:
        cfg = settings.collector
        metrics = metrics or CollectorMetrics()
        portfolio = as_portfolio(site)
        edge: Edge | None = None
        self.edge_estate: str | None = None
        if settings.edge.id is not None:
            self.edge_estate = edge_estate(portfolio, settings.edge.id)
            edge = portfolio.estate(self.edge_estate).edge(settings.edge.id)
            portfolio = scope_portfolio_to_edge(portfolio, edge.id)
        else:
            unknown = sorted(set(cfg.estates or ()) - set(portfolio.estates))
            if unknown:
                raise ValueError(f"PUMPWATCH_COLLECTOR__ESTATES names {', '.join(unknown)}, which the "
                                 f"deployment does not have (estates: {', '.join(portfolio.estates)})")
            portfolio = portfolio.restricted(cfg.estates)
        if not len(portfolio):
            raise ValueError("a collector serves at least one estate (PUMPWATCH_COLLECTOR__ESTATES is empty)")
        self.settings = settings
        self.clock = clock
        self.broker = broker
        self.portfolio = portfolio
        # What this process publishes for other processes is signed with its own key, if it has one.
        signer = signer_for(settings, edge.id if edge is not None else None)
        catalog = SensorCatalog(portfolio)
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
        rules = EstateRules(clock)
        pipeline.hooks.append(rules.on_readings)
        publisher = (AlarmPublisher(broker, f"{cfg.client_id}-alarms", signer)
                     if broker is not None else None)
        if publisher is not None:
            rules.listeners.append(publisher)
        if forwarder is not None:
            rules.listeners.append(forwarder)
        # A shared-subscription group's members read each other's live readings (`collector.group`).
        grouped = broker is not None and cfg.share_group is not None and edge is None
        self.live_publisher = (LivePublisher(broker, f"{cfg.client_id}-live", catalog, signer,
                                             on_dropped=metrics.live_messages_dropped.inc)
                               if broker is not None and (publish_live or grouped) else None)
        if self.live_publisher is not None:
            pipeline.hooks.append(self.live_publisher)
        if len(portfolio) == 1:
            adopt_memory(cfg.state_dir, next(iter(portfolio.estates)))
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
            sources=[],
            metrics=metrics,
            live=live,
            alarms=rules,
            alarm_bus=alarm_bus,
            alarm_publisher=publisher,
            edge=edge,
            uplink=link,
            forwarder=forwarder,
        )
        self.memory_saver = MemorySaver()  # every estate's alarm memory, written off the event loop
        self.group: ShareGroup | None = None
        if grouped and broker is not None and cfg.share_group is not None:
            self.group = ShareGroup(broker, cfg.share_group, cfg.client_id, rules,
                                    feed_verifier(settings, portfolio, None), metrics)
        self._context = SourceContext(site=portfolio.first, settings=settings, sink=pipeline, metrics=metrics,
                                      clock=clock, catalog=catalog, broker=broker, portfolio=portfolio,
                                      lane=self.group.lane if self.group is not None else None)
        for estate_site in portfolio:
            parts = self._estate_parts(estate_site)
            rules.put(estate_site.site.id, parts.engine)
            self.parts.estates[estate_site.site.id] = parts
        if self.group is not None:
            if self.live_publisher is not None:
                self.live_publisher.on_sent = self.group.peers.sent
            self.group.estates_changed()
        # The sources one builder made for every estate (an empty list: none needed yet).
        self._shared_by: dict[SourceBuilder, list[Source]] = {build: list(build(self._context))
                                                              for build in SHARED_BUILDERS}
        self._health: list[Source] = []
        if edge is not None and link is not None:
            assert self.edge_estate is not None
            self._health.append(EdgeHealth(edge, pipeline, buffer, link, clock, metrics, self.edge_estate))
        self._list_sources()
        writer = self.parts.writer
        pipeline.store_up = lambda: writer.healthy
        self._wire_edges()
        self._tasks: asyncio.TaskGroup | None = None
        self._reloading = asyncio.Lock()

    def _estate_parts(self, site: Site) -> EstateParts:
        """An estate's own alarm engine and sources (its Modbus pollers)."""
        estate = site.site.id
        edge = self.parts.edge
        rulebook = Rulebook(site)
        rules = edge_rules(rulebook.rules, site) if edge is not None else centre_rules(rulebook.rules, site)
        engine = AlarmEngine(rules, self.clock, transport=SystemClock(), history=rulebook.history,
                             bus=self.parts.alarm_bus,
                             memory=AlarmMemory(memory_path(self.settings.collector.state_dir, estate),
                                                estate, self.memory_saver))
        context = replace(self._context, site=site if edge is not None else centre_devices(site))
        sources = [source for build in ESTATE_BUILDERS for source in build(context)]
        return EstateParts(site, engine, sources)

    def _list_sources(self) -> None:
        """`parts.sources`: every estate's own, the shared ones, then the edge's health."""
        own = [source for parts in self.parts.estates.values() for source in parts.sources]
        self.parts.sources[:] = [*own, *self._shared, *self._health]

    @property
    def _shared(self) -> list[Source]:
        return [source for made in self._shared_by.values() for source in made]

    def _wire_edges(self) -> None:
        edges = self.parts.edges
        if edges is not None:
            edges.relay = self._relay_edge_alarm
            edges.assets = SiteAssets(self.portfolio)  # every estate's whole site, edge rooms' devices too

    # --- what the other roles of this process use ----------------------------------------------

    @property
    def store(self) -> SeriesStore:
        """The series store this collector writes (others in the process read it)."""
        return self.parts.store

    @property
    def live(self) -> LiveBus[Sequence[Reading]]:
        """Readings as the intake takes them in (every few milliseconds, before their commit)."""
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
        """Call `hook` on the event loop with every batch of readings the intake hands over."""
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
        if self.group is not None:
            self.group.start()
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                tasks.create_task(p.writer.run(), name="collector-writer")
                tasks.create_task(p.alarms.run(), name="collector-alarm-timer")
                if p.forwarder is not None:
                    tasks.create_task(p.forwarder.run(), name="collector-alarm-forwarder")
                for source in [*self._shared, *self._health]:
                    tasks.create_task(source.run(), name=f"collector-{source.name}")
                for estate, parts in p.estates.items():
                    self._start(estate, parts)
        finally:
            self._tasks = None
            if self.group is not None:
                self.group.stop()
            if p.alarm_publisher is not None:
                p.alarm_publisher.stop()
            if self.live_publisher is not None:
                self.live_publisher.stop()
            await asyncio.to_thread(p.pipeline.stop)
            await asyncio.to_thread(self.memory_saver.close)
            await p.store.close()
            if p.forwarder is not None:
                p.forwarder.outbox.close()
            p.buffer.close()
            log.info("collector stopped; %d readings wait in the buffer for the next start",
                     p.buffer.depth)

    # --- reload ------------------------------------------------------------------------------------

    @property
    def estates(self) -> list[str]:
        """The estates this collector serves now."""
        return list(self.parts.estates)

    def serves(self, estate: str) -> bool:
        """Whether this collector takes an estate (`COLLECTOR__ESTATES`; an edge: its own)."""
        if self.edge_estate is not None:
            return estate == self.edge_estate
        wanted = self.settings.collector.estates
        return wanted is None or estate in wanted

    async def update_estate(self, site: Site) -> None:
        """Take an added estate or an estate's changed site file, while running; the others are untouched.

        Its sensors, rules, Modbus pollers, topic maps and edges are swapped: its old pollers stop, its new
        ones start, its alarm engine is replaced (raised alarms and recent readings carry over) and the
        shared sources get its new topic maps and edges. What the pipeline holds is not touched.
        """
        estate = site.site.id
        if not self.serves(estate):
            return
        edge = self.parts.edge
        if edge is not None:
            site = scope_to_edge(site, edge.id)
        async with self._reloading:
            p = self.parts
            p.catalog.replace_estate(site)  # first: readings of its new sensors pass validation
            self.portfolio = self.portfolio.with_estate(site)
            parts = self._estate_parts(site)
            old = p.estates.get(estate)
            if old is not None:
                await _stop(old)
            p.alarms.put(estate, parts.engine)
            p.estates[estate] = parts
            self._start(estate, parts)
            self._share()
            log.info("estate %s %s: %d rules, %d sources of its own", estate,
                     "reloaded" if old is not None else "added", len(parts.engine.rules), len(parts.sources))

    async def remove_estate(self, estate: str) -> None:
        """Stop serving an estate (its file was removed): its pollers and rules stop, its topics go.

        Its readings already in the pipeline and the buffer are still written.
        """
        async with self._reloading:
            p = self.parts
            old = p.estates.pop(estate, None)
            if old is None:
                return
            await _stop(old)
            p.alarms.remove(estate)
            self.portfolio = self.portfolio.without(estate)
            p.catalog.remove_estate(estate)
            self._share()
            log.info("estate %s removed", estate)

    def _start(self, estate: str, parts: EstateParts) -> None:
        if self._tasks is None:
            return  # not running yet: `run` starts it
        for source in parts.sources:
            name = f"collector-{estate}-{source.name}"
            parts.tasks.append(self._tasks.create_task(source.run(), name=name))

    def _share(self) -> None:
        """The shared sources take the estates as they now are; one is started if an estate now needs it."""
        context = replace(self._context, portfolio=self.portfolio)
        self._context = context
        for source in self._shared:
            if isinstance(source, MqttSource):
                source.set_portfolio(self.portfolio)
            elif isinstance(source, EdgeSource):
                source.set_portfolio(self.portfolio)
                trusted_edge_keys(source, context, self.portfolio)
        for build, made in self._shared_by.items():
            if made or not len(self.portfolio):
                continue  # it exists already and took the new estates above
            made += build(context)
            for source in made:
                if self._tasks is not None:
                    self._tasks.create_task(source.run(), name=f"collector-{source.name}")
        self._list_sources()
        self._wire_edges()
        if self.group is not None:
            self.group.estates_changed()


async def _stop(parts: EstateParts) -> None:
    """Cancel an estate's own sources and wait until they have let go of their devices."""
    for task in parts.tasks:
        task.cancel()
    for task in parts.tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    parts.tasks.clear()


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
