"""Which roles run in this process: `collect`, `edge`, `serve`, `schedule`, `up` (all), `demo`.

The roles run over the deployment's estates (`pumpwatch.portfolio`); a `DeploymentWatcher`
(`pumpwatch.reload`) hands each estate's added, changed or removed site file to the roles of the process
while they run (every `COLLECTOR__RELOAD_INTERVAL` seconds, and on SIGHUP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pumpwatch.backoff import Backoff
from pumpwatch.broker import EmbeddedBroker, port_or_free
from pumpwatch.clock import Clock, ScaledClock
from pumpwatch.errors import StoreUnavailable
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.portfolio import Portfolio, sensor_key
from pumpwatch.reload import DeploymentWatcher, EstateChange
from pumpwatch.runtime import favour_event_loop, settle_heap
from pumpwatch.series import SeriesStore
from pumpwatch.settings import Settings
from pumpwatch.site import Site

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from api.service import ApiService
    from collector.metrics_server import MetricsServer
    from collector.service import CollectorService
    from inspection.scheduler import InspectionScheduler
    from maintenance.feed import AlarmFeed
    from maintenance.service import MaintenanceService
    from simulators.simulation import Simulation


@dataclass(frozen=True)
class StackOptions:
    """What to run and how."""

    simulate: bool = False
    collect: bool = True
    speed: float = 1.0
    seed: int = 1
    scenarios: tuple[str, ...] = ()
    modbus_port_base: int | None = None
    status_every: float = 10.0
    demo: bool = False
    serve: bool = False
    schedule: bool = False
    edge: bool = False  # the collector on a pump room's edge box, forwarding to the centre


@contextlib.asynccontextmanager
async def local_broker(settings: Settings, options: StackOptions
                       ) -> AsyncIterator[tuple[BrokerAddress | None, bool]]:
    """The process's broker; an edge without `mqtt.url` has none (its uplink is its own setting)."""
    if options.edge and not settings.mqtt.url:
        yield None, False
        return
    async with broker_for(settings, options.demo) as found:
        yield found


@contextlib.asynccontextmanager
async def broker_for(settings: Settings, demo: bool) -> AsyncIterator[tuple[BrokerAddress, bool]]:
    """The configured broker, or an in-process one (a free port if the default is busy in a demo)."""
    if settings.mqtt.url:
        yield BrokerAddress.parse(settings.mqtt.url, settings.mqtt.ca_file), False
        return
    port = settings.mqtt.embedded_port
    embedded = EmbeddedBroker(port=port_or_free(port) if demo else port)
    try:
        await embedded.start()
    except Exception as err:  # amqtt raises its own error types for a busy port
        raise RuntimeError(f"in-process MQTT broker on port {embedded.port}: {err}") from err
    try:
        yield embedded.address, True
    finally:
        await embedded.stop()


def migrate_state(settings: Settings, portfolio: Portfolio | None = None) -> None:
    """Bring the state database to the current schema (before any role's event loop starts).

    With the deployment given, records from before estates are given theirs (`maintenance.estates`);
    `UnassignedRecords` when that cannot be decided.
    """
    from maintenance.db import make_engine, state_url, upgrade
    from maintenance.estates import adopt_unassigned
    from maintenance.models import utc_from_epoch
    from pumpwatch.clock import SystemClock

    upgrade(state_url(settings))
    if portfolio is None:
        return
    engine = make_engine(state_url(settings))
    try:
        adopted = adopt_unassigned(engine, list(portfolio.estates), settings.adopt_estate,
                                   utc_from_epoch(SystemClock().now()))
    finally:
        engine.dispose()
    if adopted:
        print(f"Records from before estates given to their estate: "
              f"{', '.join(f'{n} {table}' for table, n in adopted.items())}", flush=True)


async def run_stack(portfolio: Site | Portfolio, settings: Settings, options: StackOptions) -> int:
    """Run the chosen roles together until cancelled (the state database already migrated)."""
    from simulators.run import start_simulation

    if isinstance(portfolio, Site):
        portfolio = Portfolio.of(portfolio)
    site = portfolio.first  # what the banner and the simulators of a single estate speak of
    clock: Clock = ScaledClock(options.speed)
    async with local_broker(settings, options) as (local, embedded), contextlib.AsyncExitStack() as stack:
        if local is None:  # an edge with no room broker: only the collector runs
            from collector.service import CollectorService

            edge_collector = CollectorService(portfolio, settings, clock, None)
            metrics = await _start_metrics(settings, edge_collector, stack)
            print(_banner(site, settings, None, False, options, (), edge_collector, metrics), flush=True)
            favour_event_loop()
            settle_heap()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(edge_collector.run(), name="collector")
                tasks.create_task(_print_status((), edge_collector, options.status_every), name="status")
            return 0
        broker = local
        sims: list[Simulation] = []
        if options.simulate:
            if len(portfolio) > 1 and not options.demo:  # `pumpwatch simulate` runs a fleet: run_fleet_stack
                raise RuntimeError(f"the simulators with the other roles run one estate's site file; the "
                                   f"deployment {portfolio.source} has {len(portfolio)} (give one site file)")
            base = options.modbus_port_base
            for estate_site in list(portfolio):  # a demo of several estates: the full model of each
                sim = await start_simulation(estate_site, clock, broker, seed=options.seed,
                                             scenarios=options.scenarios, modbus_port_base=base,
                                             free_ports_if_busy=options.demo,
                                             client_id=_sim_client_id(estate_site, len(portfolio)))
                stack.push_async_callback(sim.stop)
                sims.append(sim)
                if base:  # the next estate's devices on the ports after this one's
                    base += len(estate_site.modbus) + len(estate_site.buses)
                if options.modbus_port_base is not None or options.demo:
                    # the collector polls where the simulated PLCs listen
                    portfolio = portfolio.with_estate(sim.served_site())
            site = portfolio.first
        collector = None
        if options.collect:
            from collector.service import CollectorService

            collector = CollectorService(portfolio, settings, clock, broker, publish_live=not options.serve)
        state = api = feed = None
        if options.serve:
            state, api, feed = await _start_api(portfolio, settings, clock, broker, collector, options, stack)
        scheduler = None
        if options.schedule:
            scheduler = await _start_scheduler(portfolio, settings, clock, broker, collector, state, options,
                                               stack)
        metrics = await _start_metrics(settings, collector, stack) if not options.serve else None
        watcher = _watch(portfolio, settings, options, collector, state, api, feed, scheduler)
        print(_banner(site, settings, broker, embedded, options, sims, collector, metrics, portfolio),
              flush=True)
        if scheduler is not None:
            print(f"Inspection scheduler: {len(scheduler.plans)} plans, state in "
                  f"{scheduler.engine.url.render_as_string(hide_password=True)}", flush=True)
        favour_event_loop()
        settle_heap()  # every role's deployment is loaded: kept out of the collector's scans from now
        async with asyncio.TaskGroup() as tasks:
            if watcher is not None:
                tasks.create_task(watcher.run(), name="deployment-watcher")
            for n, each in enumerate(sims):
                tasks.create_task(each.run(), name=f"simulation-{n}")
            if collector is not None:
                tasks.create_task(collector.run(), name="collector")
            if state is not None and api is not None:
                tasks.create_task(state.run(), name="maintenance")
                tasks.create_task(api.run(), name="api")
                tasks.create_task(_announce_api(api, state, options, portfolio, scheduler), name="api-banner")
            if options.demo and collector is not None:
                for estate_site in portfolio if sims else ():
                    tasks.create_task(_backfill(estate_site, clock, collector.store, options.seed),
                                      name=f"demo-history-{estate_site.site.id}")
            if scheduler is not None:
                tasks.create_task(scheduler.run(), name="scheduler")
            tasks.create_task(_print_status(sims, collector, options.status_every), name="status")
    return 0


def _sim_client_id(site: Site, estates: int) -> str:
    """The simulator's MQTT client id: one per estate when several run in one process."""
    return "pumpwatch-sim" if estates == 1 else f"pumpwatch-sim-{site.site.id}"


async def run_fleet_stack(portfolio: Portfolio, settings: Settings, options: StackOptions, *,
                          processes: int = 1, edge_keys: Path | None = None,
                          faults_per_day: float = 0.0) -> int:
    """`pumpwatch simulate` of several estates: `simulators.fleet_run` into the broker until cancelled."""
    import threading

    from simulators.fleet_run import FleetReport, run_fleet

    stop = threading.Event()
    deployment: Path | Portfolio = portfolio
    if processes > 1:
        if portfolio.source is None:
            raise RuntimeError("several processes load the deployment from its file: none is known")
        deployment = Path(portfolio.source)
    async with broker_for(settings, demo=False) as (broker, embedded):
        print(f"PumpWatch fleet simulation: {portfolio.organisation.zh} / {portfolio.organisation.en}, "
              f"{len(portfolio)} estates, {sum(len(s.rooms) for s in portfolio)} rooms, seed {options.seed}, "
              f"x{options.speed:g}, {processes} process{'es' if processes > 1 else ''}\n"
              f"MQTT broker: {broker}{' (in-process)' if embedded else ''}\n"
              f"Press Ctrl+C to stop.", flush=True)

        def status(report: FleetReport) -> None:
            print(report.line(), flush=True)

        work = asyncio.create_task(asyncio.to_thread(
            run_fleet, deployment, broker, stop, seed=options.seed, processes=processes, speed=options.speed,
            edge_keys=edge_keys, status=status, status_every=options.status_every,
            faults_per_day=faults_per_day))
        try:
            report = await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()  # the workers send what waits and report
            report = await work
            print(report.line(), flush=True)
            raise
    print(report.line(), flush=True)
    return 0


async def _start_metrics(settings: Settings, collector: CollectorService | None,
                         stack: contextlib.AsyncExitStack) -> MetricsServer | None:
    """/metrics and /healthz of a collector that runs without the API (whose /metrics it would be)."""
    if collector is None or not settings.metrics.enabled:
        return None
    from collector.metrics_server import MetricsServer

    server = MetricsServer(collector.registry, collector.health, settings.metrics.host, settings.metrics.port)
    try:
        await server.start()
    except OSError as err:  # a second collector on the same machine: it still collects
        log.warning("no /metrics: %s:%d: %s (set PUMPWATCH_METRICS__PORT for each collector of a machine)",
                    settings.metrics.host, settings.metrics.port, err)
        return None
    stack.push_async_callback(server.stop)
    return server


async def _start_scheduler(portfolio: Portfolio, settings: Settings, clock: Clock, broker: BrokerAddress,
                           collector: CollectorService | None, state: MaintenanceService | None,
                           options: StackOptions, stack: contextlib.AsyncExitStack) -> InspectionScheduler:
    """The scheduler on the API's database (or its own), fed and commanding through the collector if here."""
    from collector.publishers.alarms import AlarmPublisher
    from collector.stores.factory import make_store
    from inspection.scheduler import InspectionScheduler, LatestReadings
    from maintenance.db import session_factory, state_engine
    from maintenance.task_flow import SlaPolicy
    from maintenance.tasks import TaskService
    from pumpwatch.alarm_events import AlarmEvent
    from pumpwatch.catalog import SensorCatalog

    if state is not None:
        engine, tasks = state.engine, state.tasks
    else:
        engine = state_engine(settings)
        stack.callback(engine.dispose)
        tasks = TaskService(session_factory(engine), clock, SlaPolicy.from_settings(portfolio.first.sla))
        tasks.estate_slas = {estate: SlaPolicy.from_settings(site.sla)
                             for estate, site in portfolio.estates.items()}
    # A failed rotation is an alarm event: the maintenance state makes the alarm and its task.
    listeners: list[Callable[[AlarmEvent], None]] = []
    if state is not None:
        listeners.append(state.accept_event)
        if collector is not None:
            listeners.append(collector.alarm_events.publish)
    elif collector is not None and collector.publishes_alarms:
        listeners.append(collector.announce)
    else:
        from pumpwatch.signing import signer_for

        publisher = AlarmPublisher(broker, f"{settings.collector.client_id}-scheduler", signer_for(settings))
        publisher.start()
        stack.callback(publisher.stop)
        listeners.append(publisher)
        if collector is not None:
            listeners.append(collector.alarm_events.publish)
    latest: LatestReadings | None = None
    if collector is None:  # no readings in this process: poll the series store the collector writes
        store = make_store(settings, SensorCatalog(portfolio))
        await store.start()
        stack.push_async_callback(store.close)
        latest = store.latest
    commands = None
    if collector is not None:
        here = collector

        def commands(estate: str) -> Callable[[str, float], Awaitable[None]]:
            """An estate's duty-select commands, through this process's collector (by sensor key)."""
            async def command(sensor: str, value: float) -> None:
                await here.send_command(sensor_key(estate, sensor), value)
            return command

    scheduler = InspectionScheduler(
        portfolio, session_factory(engine), tasks, clock, engine=engine, commands=commands,
        listeners=listeners, latest=latest, failure_tasks=False,
        timer="apscheduler" if options.speed == 1.0 else "clock")
    if collector is not None:
        collector.add_readings_hook(scheduler.on_readings)
    return scheduler


async def _start_api(portfolio: Portfolio, settings: Settings, clock: Clock, broker: BrokerAddress,
                     collector: CollectorService | None, options: StackOptions,
                     stack: contextlib.AsyncExitStack
                     ) -> tuple[MaintenanceService, ApiService, AlarmFeed | None]:
    """The maintenance state and the API over the collector's store and buses, or over their own."""
    from maintenance.db import state_engine
    from maintenance.service import MaintenanceService

    if options.demo:
        settings.api.port = port_or_free(settings.api.port)
    # A production start was checked by the command line before the event loop (`pumpwatch.production`).
    engine = state_engine(settings)
    stack.callback(engine.dispose)
    state = MaintenanceService(portfolio, settings, clock, engine)
    api, feed = await _build_api(portfolio, settings, broker, collector, state, stack)
    return state, api, feed


async def _build_api(portfolio: Portfolio, settings: Settings, broker: BrokerAddress,
                     collector: CollectorService | None, state: MaintenanceService,
                     stack: contextlib.AsyncExitStack) -> tuple[ApiService, AlarmFeed | None]:
    from api.service import ApiService
    from collector.stores.factory import make_store
    from maintenance.feed import AlarmFeed
    from pumpwatch.alarm_events import AlarmEvent
    from pumpwatch.bus import LiveBus
    from pumpwatch.catalog import SensorCatalog
    from pumpwatch.readings import Reading
    from pumpwatch.signing import feed_verifier
    from pumpwatch.wire import SiteAssets

    if collector is not None:
        collector.add_alarm_listener(state.accept_event)
        return ApiService(settings, state, collector.store, collector.live, collector.alarm_events,
                          [collector.registry]), None
    store = make_store(settings, SensorCatalog(portfolio))
    await store.start()
    stack.push_async_callback(store.close)
    alarm_bus: LiveBus[AlarmEvent] = LiveBus()
    readings_bus: LiveBus[Sequence[Reading]] = LiveBus()
    client_id = f"{settings.collector.client_id}-api-{socket.gethostname()}-{settings.api.port}"
    # Collectors' signatures checked; the replay marks of this session's alarm events kept on disk.
    verifier = feed_verifier(settings, portfolio, settings.collector.state_dir / f"wire-marks-{client_id}.db")
    feed = AlarmFeed(broker, client_id, [state.accept_event, alarm_bus.publish],
                     on_readings=readings_bus.publish, verifier=verifier, assets=SiteAssets(portfolio))
    api = ApiService(settings, state, store, readings_bus, alarm_bus, [feed.registry])
    feed.start(asyncio.get_running_loop())
    stack.callback(feed.stop)
    return api, feed


def _watch(portfolio: Portfolio, settings: Settings, options: StackOptions,
           collector: CollectorService | None, state: MaintenanceService | None, api: ApiService | None,
           feed: AlarmFeed | None, scheduler: InspectionScheduler | None) -> DeploymentWatcher | None:
    """The watcher of the deployment's files, handing each estate's change to this process's roles.

    Nothing is watched for a deployment not read from files, nor by the demo (its simulators run the
    estate as it started). SIGHUP asks for a look at once.
    """
    if portfolio.source is None or options.demo or options.simulate:
        return None
    watcher = DeploymentWatcher(portfolio, interval=settings.collector.reload_interval)

    async def apply(change: EstateChange) -> None:
        if collector is not None:
            if change.site is not None:
                await collector.update_estate(change.site)
            else:
                await collector.remove_estate(change.estate)
        if scheduler is not None:
            if change.site is not None:
                scheduler.update_estate(change.site)
            else:
                scheduler.remove_estate(change.estate)
        if state is not None:
            state.set_portfolio(change.portfolio)
        if api is not None:
            api.ctx.take_portfolio(change.portfolio)
        if feed is not None:
            from pumpwatch.wire import SiteAssets

            feed.assets = SiteAssets(change.portfolio)

    watcher.listeners.append(apply)
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, watcher.request)
    return watcher


async def _announce_api(api: ApiService, state: MaintenanceService, options: StackOptions,
                        portfolio: Portfolio, scheduler: InspectionScheduler | None) -> None:
    """Print the URL (and the demo logins, once the demo's work for every role is there) when it listens."""
    while api.server is None or not api.server.started:  # noqa: ASYNC110 (uvicorn offers no event)
        await asyncio.sleep(0.05)
    lines = [f"API and web UI: {api.url}  (OpenAPI: {api.url}/docs)"]
    if options.demo:
        from maintenance.accounts import ensure_demo_users
        from pumpwatch.demo_seed import seed_demo

        estates = list(portfolio.estates)
        for site in portfolio:
            seeded = await asyncio.to_thread(seed_demo, site, state, scheduler, estates)
            where = f"{site.site.id}: " if len(estates) > 1 else ""
            rounds = ", ".join(f"#{i}" for i in seeded.rounds) or "none"
            lines.append(f"Demo work: {where}today's rounds {rounds}, {len(seeded.tasks)} fault reports in "
                         "every state, an access request waiting for the director, a handover waiting for "
                         "the operator")
        logins = ensure_demo_users(state.auth, estates)
        lines.append("Demo logins (username / password / roles; <role>-<estate>: that estate only):"
                     if len(estates) > 1 else "Demo logins (username / password / roles):")
        width = max(len(user) for user, _p, _r in logins)
        words = max(len(password) for _u, password, _r in logins)
        lines += [f"  {user:<{width}} {password:<{words}} {', '.join(roles)}"
                  for user, password, roles in logins]
    print("\n".join(lines), flush=True)


async def _backfill(site: Site, clock: Clock, store: SeriesStore, seed: int) -> None:
    """A week of simulated history into the series store, in the background, so every chart has data.

    Computed in a worker thread batch by batch (about three seconds for the demo site) and written like
    the collector writes; the demo is usable meanwhile and the charts fill in as the batches land.
    """
    from simulators.backfill import past_readings

    await asyncio.sleep(1.0)  # the collector opens the store first
    started = clock.now()
    batches = iter(past_readings(site, started, seed=seed))
    written = 0
    backoff = Backoff(first=0.5, cap=5.0)
    estate = site.site.id
    while (found := await asyncio.to_thread(next, batches, None)) is not None:
        batch = [r._replace(sensor=sensor_key(estate, r.sensor)) for r in found]  # the store's keys
        while True:
            try:
                await store.write(batch)
                break
            except StoreUnavailable as err:
                if backoff.failures >= 10:
                    log.warning("demo history not written: %s", err)
                    return
                await asyncio.sleep(backoff.next())
        written += len(batch)
    print(f"Demo history: {written} readings of the past week written to the series store", flush=True)


def _banner(site: Site, settings: Settings, broker: BrokerAddress | None, embedded: bool,
            options: StackOptions, sims: Sequence[Simulation],
            collector: CollectorService | None, metrics: MetricsServer | None = None,
            portfolio: Portfolio | None = None) -> str:
    from simulators.run import banner_lines

    what = "PumpWatch demo" if options.demo else "PumpWatch"
    if portfolio is not None and len(portfolio) > 1:
        heading = (f"{what}: {portfolio.organisation.zh} / {portfolio.organisation.en}, "
                   f"{len(portfolio)} estates ({', '.join(portfolio.estates)})")
    else:
        heading = f"{what}: site {site.site.id} ({site.site.name.zh} / {site.site.name.en})"
    lines = [heading + (f", simulated at x{options.speed:g}, seed {options.seed}" if sims else ""),
             f"MQTT broker: {broker}{' (in-process)' if embedded else ''}" if broker is not None
             else "MQTT broker: none in the room (no wireless sensors)"]
    if broker is not None:  # several estates' simulators: their common lines once
        lines += list(dict.fromkeys(line for sim in sims for line in banner_lines(sim, broker)))
    if collector is not None and collector.parts.edge is not None and collector.parts.uplink is not None:
        edge, link = collector.parts.edge, collector.parts.uplink
        lines.append(f"Edge {edge.id}: rooms {', '.join(edge.rooms)}; {len(collector.parts.sources)} sources "
                     f"-> durable buffer {settings.collector.state_dir / 'buffer.db'} "
                     f"(when full: {settings.edge.when_full}) -> centre {link.broker} "
                     f"(pumpwatch/edge/{edge.id}/batch)")
    elif collector is not None:
        store = (f"InfluxDB {settings.influx.url} database {settings.influx.database}"
                 if settings.influx.url else
                 f"embedded store {settings.collector.state_dir / 'series.db'}")
        served = collector.portfolio
        devices = sum(len(s.modbus) for s in served)
        maps = sum(len(s.mqtt) for s in served)
        lines.append(f"Collector: {len(served)} estate{'s' if len(served) != 1 else ''}, {devices} Modbus "
                     f"devices, {maps} MQTT topic maps -> durable buffer "
                     f"{settings.collector.state_dir / 'buffer.db'} -> {store}")
    if metrics is not None:
        lines.append(f"Metrics: {metrics.url}/metrics  (health: {metrics.url}/healthz)")
    lines.append("Press Ctrl+C to stop.")
    return "\n".join(lines)


async def _print_status(sims: Sequence[Simulation], collector: CollectorService | None,
                        every: float) -> None:
    from simulators.run import status_lines

    while True:
        await asyncio.sleep(every)
        lines = [f"{sim.site.site.id}/{line}" if len(sims) > 1 else line
                 for sim in sims for line in status_lines(sim)]
        if collector is not None:
            lines.append(collector.status_line())
        for line in lines:
            print(line, flush=True)
