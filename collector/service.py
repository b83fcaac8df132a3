"""The collector as one service: sources -> pipeline -> durable buffer -> writer -> series store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from collector.metrics import CollectorMetrics
from collector.pipeline.buffer import DurableBuffer
from collector.pipeline.intake import Pipeline
from collector.pipeline.writer import BufferWriter
from collector.publishers.alarms import AlarmPublisher
from collector.publishers.live import LivePublisher
from collector.rules.engine import AlarmEngine
from collector.rules.memory import AlarmMemory
from collector.rules.rulebook import Rulebook
from collector.sources.modbus import ModbusCollector
from collector.sources.mqtt import MqttSource
from collector.stores.embedded import EmbeddedStore
from collector.stores.influx import InfluxStore
from pumpwatch.alarm_events import AlarmEvent
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import Clock, SystemClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.readings import Reading
from pumpwatch.series import SeriesStore
from pumpwatch.settings import Settings
from pumpwatch.site import Site

log = logging.getLogger(__name__)


def make_store(settings: Settings, catalog: SensorCatalog) -> SeriesStore:
    """InfluxDB when a URL is set, else the embedded store in the state directory."""
    influx = settings.influx
    if influx.url:
        return InfluxStore(
            influx.url, influx.database, catalog,
            retention_policy=influx.retention_policy,
            username=influx.username,
            password=influx.password.get_secret_value() if influx.password else None,
            token=influx.token.get_secret_value() if influx.token else None,
            create_database=influx.create_database,
            timeout=influx.timeout,
        )
    return EmbeddedStore(settings.collector.state_dir / "series.db", catalog)


@dataclass
class CollectorParts:
    """The assembled collector, exposed so the API and tests can look inside."""

    catalog: SensorCatalog
    store: SeriesStore
    buffer: DurableBuffer
    pipeline: Pipeline
    writer: BufferWriter
    modbus: ModbusCollector
    mqtt: MqttSource | None
    metrics: CollectorMetrics
    live: LiveBus[Sequence[Reading]]
    alarms: AlarmEngine
    alarm_bus: LiveBus[AlarmEvent]
    alarm_publisher: AlarmPublisher | None


class CollectorService:
    """Builds the collector from the site and settings and runs it until cancelled."""

    def __init__(self, site: Site, settings: Settings, clock: Clock, broker: BrokerAddress | None,
                 *, metrics: CollectorMetrics | None = None, store: SeriesStore | None = None,
                 live: LiveBus[Sequence[Reading]] | None = None, publish_live: bool = False) -> None:
        cfg = settings.collector
        metrics = metrics or CollectorMetrics()
        catalog = SensorCatalog(site)
        live = live or LiveBus(on_drop=lambda name: metrics.live_dropped.labels(subscriber=name).inc())
        buffer = DurableBuffer(cfg.state_dir / "buffer.db", capacity=cfg.buffer_capacity)
        pipeline = Pipeline(catalog, buffer, metrics, clock, intake_limit=cfg.intake_limit,
                            catch_up_depth=cfg.catch_up_depth, live=live)
        store = store or make_store(settings, catalog)
        devices = [d for d in site.modbus if cfg.shard is None or d.shard == cfg.shard]
        alarm_bus: LiveBus[AlarmEvent] = LiveBus(
            on_drop=lambda name: metrics.live_dropped.labels(subscriber=name).inc())
        rulebook = Rulebook(site)
        engine = AlarmEngine(rulebook.rules, clock, transport=SystemClock(), history=rulebook.history,
                             bus=alarm_bus, memory=AlarmMemory(cfg.state_dir / "alarms.json"))
        pipeline.hooks.append(engine.on_readings)
        publisher = (AlarmPublisher(broker, f"{cfg.client_id}-alarms") if broker is not None else None)
        if publisher is not None:
            engine.listeners.append(publisher)
        self.live_publisher = (LivePublisher(broker, f"{cfg.client_id}-live", catalog)
                               if broker is not None and publish_live else None)
        if self.live_publisher is not None:
            pipeline.hooks.append(self.live_publisher)
        self.parts = CollectorParts(
            catalog=catalog,
            store=store,
            buffer=buffer,
            pipeline=pipeline,
            writer=BufferWriter(buffer, store, metrics, batch_size=cfg.batch_size,
                                wake=pipeline.committed, linger=cfg.write_linger),
            modbus=ModbusCollector(devices, pipeline, metrics, clock),
            mqtt=(MqttSource(site, broker, pipeline, metrics, clock, client_id=cfg.client_id,
                             share_group=cfg.share_group, catalog=catalog)
                  if broker is not None and site.mqtt else None),
            metrics=metrics,
            live=live,
            alarms=engine,
            alarm_bus=alarm_bus,
            alarm_publisher=publisher,
        )
        writer = self.parts.writer
        pipeline.store_up = lambda: writer.healthy

    def status_line(self) -> str:
        """One line for a terminal: stored, buffered, rejected, device and broker state."""
        m = self.parts.metrics
        states = {2.0: "online", 1.0: "degraded", 0.0: "offline"}
        devices = ", ".join(f"{device} {states.get(value, '?')}"
                            for device, value in sorted(m.by_label(m.device_state, "device").items()))
        broker = "connected" if m.total(m.mqtt_connected) else "not connected"
        return (f"collector: {m.total(m.written):.0f} readings stored, "
                f"{self.parts.buffer.depth} buffered, {m.total(m.rejected):.0f} rejected, "
                f"{m.total(m.flagged):.0f} flagged | Modbus: {devices or 'none'} | MQTT {broker}")

    async def run(self) -> None:
        """Start everything, run until cancelled, then stop in order without losing readings."""
        p = self.parts
        await p.store.start()
        p.pipeline.start()
        if p.alarm_publisher is not None:
            p.alarm_publisher.start()
        if self.live_publisher is not None:
            self.live_publisher.start()
        if p.mqtt is not None:
            p.mqtt.start()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(p.writer.run(), name="collector-writer")
                tasks.create_task(p.modbus.run(), name="collector-modbus")
                tasks.create_task(p.alarms.run(), name="collector-alarm-timer")
        finally:
            if p.mqtt is not None:
                p.mqtt.stop()  # stop intake first: unacknowledged messages stay with the broker
            if p.alarm_publisher is not None:
                p.alarm_publisher.stop()
            if self.live_publisher is not None:
                self.live_publisher.stop()
            await asyncio.to_thread(p.pipeline.stop)
            await p.store.close()
            p.buffer.close()
            log.info("collector stopped; %d readings wait in the buffer for the next start",
                     p.buffer.depth)
