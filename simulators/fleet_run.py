"""A fleet of estates simulated at once, each fed to the centre the way its site file says.

`pumpwatch simulate --estates N` (and `--site` a deployment of several estates) runs this; so may the
scale benchmark, through `run_fleet`. Every estate gets the full physical model of `simulators.model`
(the same `Simulation` as one site's `pumpwatch simulate`): measured on this machine, 200 estates (302
rooms, about 40 sensors each) cost 0.15 ms of CPU per room per simulated second, about 6 % of a core
for 400 rooms, so no lighter model is needed. What an estate's file says decides how its readings leave:

- **edge** (the file has `edges:`): what `pumpwatch edge` would publish, one compact batch
  (`pumpwatch.edge_wire`) a second per edge on `pumpwatch/edge/<edge>/batch` at QoS 1, carrying every
  sensor of its rooms (wired and wireless) and the edge's health readings every `heartbeat` seconds;
  signed with the edge's key when `edge_keys` holds `<edge>.key` (`pumpwatch.signing`);
- **modbus** (Modbus devices, no edges): each room's PLC served on Modbus TCP where the file says;
  the collector polls it;
- **mqtt** (neither): each room's data terminal (DTU) publishes its JSON document every period.

Outside the edge feed, the wireless sensors (leaks, room temperature) publish their Zigbee2MQTT payloads
every `wireless_every` seconds and whenever their payload changes. With `faults_per_day`, each estate has
occasional faults from a schedule drawn from the seed and its id (`FAULTS`, each on for 5 to 30 minutes of
simulated time), so a fleet's overview has something to show. One MQTT client per process carries
everything; `processes` > 1 splits the estates between worker processes (each loads only its files).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import queue
import random
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml

from pumpwatch.clock import Clock, ScaledClock
from pumpwatch.edge_wire import BATCH_STREAM, batch_topic, encode_batch
from pumpwatch.mqttclient import new_client, start_client, stop_client
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.portfolio import Portfolio, load_portfolio
from pumpwatch.readings import Quality, Reading
from pumpwatch.signing import Sequences, Signer, load_key
from pumpwatch.site import Edge, Sensor, Site
from pumpwatch.sitefile import load_site
from pumpwatch.wireless import Device, plan_devices
from simulators.mqtt_sensors import encode_payload
from simulators.scenarios import ScenarioError
from simulators.simulation import Simulation

log = logging.getLogger(__name__)

__all__ = ["FAULTS", "FleetReport", "FleetSimulation", "estate_files", "feed_of", "run_fleet"]

# Faults a fleet's schedule switches on: each acts on the model alone, so it works behind any feed.
FAULTS = ("flange_leak", "cabinet_overheat", "switch_manual", "bearing_wear", "sump_blocked", "failed_start")
FAULT_MINUTES = (5.0, 30.0)


def feed_of(site: Site) -> str:
    """How an estate's readings reach the centre: `edge`, `modbus` or `mqtt` (see the module)."""
    if site.edges:
        return "edge"
    return "modbus" if site.modbus else "mqtt"


@dataclass
class FleetReport:
    """What a fleet published: readings per estate, MQTT messages, and the CPU it cost."""

    published: Counter[str] = field(default_factory=Counter)  # estate -> readings sent (edge and MQTT)
    messages: int = 0
    cpu_seconds: float = 0.0  # user + system time of the simulating process(es)
    wall_seconds: float = 0.0
    estates: int = 0
    rooms: int = 0

    def add(self, other: FleetReport) -> None:
        """Take in a worker's report."""
        self.published.update(other.published)
        self.messages += other.messages
        self.cpu_seconds += other.cpu_seconds
        self.wall_seconds = max(self.wall_seconds, other.wall_seconds)
        self.estates += other.estates
        self.rooms += other.rooms

    def line(self) -> str:
        """One status line: readings, rate, messages and CPU."""
        total = sum(self.published.values())
        wall = self.wall_seconds or 1.0
        return (f"Fleet: {self.estates} estates, {self.rooms} rooms: {total} readings published "
                f"({total / wall:.0f}/s), {self.messages} MQTT messages, CPU {self.cpu_seconds:.1f} s "
                f"in {wall:.1f} s ({100 * self.cpu_seconds / wall:.0f} % of a core)")


@dataclass
class _EdgeFeed:
    """One edge's batches: its sensors, its batch numbers, its signer, what waits to go."""

    edge: Edge
    sensors: list[Sensor]
    states: dict[str, dict[int, str]]
    signer: Signer | None
    seq: int
    next_heartbeat: float = 0.0
    pending: list[Reading] = field(default_factory=list)


class FleetSimulation:
    """Every estate of `sites` simulated in this process and fed as its file says (see the module)."""

    def __init__(self, sites: Sequence[Site], broker: BrokerAddress, clock: Clock, *, seed: int = 1,
                 period: float = 1.0, wireless_every: float = 10.0, edge_keys: Path | None = None,
                 client_id: str = "pumpwatch-fleet", faults_per_day: float = 0.0) -> None:
        self.clock = clock
        self.faults_per_day = faults_per_day
        self._faults: dict[str, tuple[random.Random, float]] = {}  # estate -> its stream, next fault's start
        self.faults_on: dict[str, tuple[str, float]] = {}  # estate -> the fault on now, when it ends
        self.period = period
        self.wireless_every = wireless_every
        self.report = FleetReport(estates=len(sites), rooms=sum(len(s.rooms) for s in sites))
        self.sims: dict[str, Simulation] = {}
        self.feeds: dict[str, str] = {}
        self._edges: dict[str, list[_EdgeFeed]] = {}
        self._dtus: dict[str, list[Device]] = {}
        self._wireless: dict[str, list[Device]] = {}
        self._last: dict[str, bytes] = {}
        self._started = time.monotonic()
        self._cpu_before = _cpu()  # loading the site files is not the simulation's cost
        first_seq = time.time_ns() // 1_000_000  # grows across restarts: the centre keeps batch numbers
        for site in sites:
            estate = site.site.id
            feed = feed_of(site)
            self.feeds[estate] = feed
            # An edge's PLCs sit on its room's network: the batches carry their readings, nothing listens.
            simulated = site.model_copy(update={"modbus": ()}) if feed == "edge" else site
            self.sims[estate] = Simulation(simulated, clock, seed=seed, broker=None)
            devices = plan_devices(site)
            dtu = {f"dtu/{estate}/{room.id}" for room in site.rooms}
            self._dtus[estate] = [d for d in devices if d.topic in dtu] if feed == "mqtt" else []
            self._wireless[estate] = [d for d in devices if d.topic not in dtu] if feed != "edge" else []
            if feed == "edge":
                self._edges[estate] = [self._edge_feed(site, edge, edge_keys, first_seq)
                                       for edge in site.edges]
            if faults_per_day > 0:
                stream = random.Random(f"pumpwatch-fleet-faults:{seed}:{estate}")
                self._faults[estate] = (stream, clock.now() + stream.expovariate(faults_per_day / 86400))
        self.client = new_client(broker, client_id)
        self.client.max_inflight_messages_set(1000)
        self.broker = broker
        self._next_wireless = 0.0

    @staticmethod
    def _edge_feed(site: Site, edge: Edge, keys: Path | None, seq: int) -> _EdgeFeed:
        rooms = set(edge.rooms)
        sensors = [s for room, _e, s in site.iter_sensors() if room.id in rooms and s.source != "edge"]
        states = {s.id: {code: name for name, code in s.state_codes.items()}
                  for s in sensors if s.state_codes}
        signer = None
        key_file = keys / f"{edge.id}.key" if keys is not None else None
        if key_file is not None and key_file.exists():
            signer = Signer(edge.id, load_key(key_file), Sequences(None))
        return _EdgeFeed(edge, sensors, states, signer, seq)

    async def start(self) -> None:
        """Open the Modbus servers of the modbus-fed estates and connect the MQTT client."""
        for sim in self.sims.values():
            await sim.start()
        start_client(self.client, self.broker)

    async def stop(self) -> None:
        """Send what waits, then close everything that start opened."""
        self._flush_edges(self.clock.now())
        for sim in self.sims.values():
            await sim.stop()
        await asyncio.to_thread(stop_client, self.client)

    def step(self) -> None:
        """Catch every model up with the clock and publish what is due."""
        now = self.clock.now()
        wireless_due = now >= self._next_wireless
        if wireless_due:
            self._next_wireless = now + self.wireless_every
        self.collect_edges(now)
        for estate, sim in self.sims.items():
            value = sim.signals.value
            for device in self._dtus[estate]:
                self._publish_device(estate, device, value, now, always=True)
            for device in self._wireless[estate]:
                self._publish_device(estate, device, value, now, always=wireless_due)
        self._flush_edges(now)
        self.report.wall_seconds = time.monotonic() - self._started
        self.report.cpu_seconds = _cpu() - self._cpu_before

    async def schedule_faults(self, now: float) -> list[tuple[str, str, bool]]:
        """Switch the schedule's faults on and off as `now` passes them; (estate, fault, on) per change."""
        changes = []
        for estate, (name, ends) in list(self.faults_on.items()):
            if now >= ends:
                await self.sims[estate].disable(name)
                del self.faults_on[estate]
                changes.append((estate, name, False))
        for estate, (stream, starts) in self._faults.items():
            if now < starts or estate in self.faults_on:
                continue
            name = stream.choice(FAULTS)
            minutes = stream.uniform(*FAULT_MINUTES)
            gap = stream.expovariate(self.faults_per_day / 86400)
            self._faults[estate] = (stream, now + minutes * 60 + gap)
            try:
                await self.sims[estate].enable(name)
            except ScenarioError as err:  # the estate has nothing it acts on (no sump, no duty group)
                log.debug("fleet fault %s skipped in %s: %s", name, estate, err)
                continue
            self.faults_on[estate] = (name, now + minutes * 60)
            changes.append((estate, name, True))
        return changes

    def collect_edges(self, now: float) -> None:
        """Catch every model up with `now`; the edges' readings of this instant join their next batch."""
        for estate, sim in self.sims.items():
            if now > sim.model.time:
                sim.model.advance(now - sim.model.time)
            for feed in self._edges.get(estate, ()):
                self._edge_readings(estate, feed, sim.signals.value, now)

    def _edge_readings(self, estate: str, feed: _EdgeFeed, value: Callable[[str], float], now: float) -> None:
        for sensor in feed.sensors:
            x = float(value(sensor.id))
            states = feed.states.get(sensor.id)
            feed.pending.append(Reading(sensor.id, now, x, Quality.GOOD,
                                        states.get(round(x)) if states else None))
        if now >= feed.next_heartbeat:  # the edge's own health, as `collector.sources.edge_health` sends it
            feed.next_heartbeat = now + feed.edge.heartbeat
            uptime = time.monotonic() - self._started
            health = {"heartbeat": uptime, "buffer_depth": 0.0, "backlog_age": 0.0, "clock_offset": 0.0,
                      "dropped": 0.0, "version": _version_number()}
            feed.pending += [Reading(feed.edge.sensor_id(name), now, x) for name, x in health.items()]

    def edge_batches(self, now: float) -> list[tuple[str, str, bytes, int]]:
        """The batches waiting to go, as (estate, topic, payload, readings); each edge's next number taken."""
        out = []
        for estate, feeds in self._edges.items():
            for feed in feeds:
                if not feed.pending:
                    continue
                payload = encode_batch(feed.seq, now, feed.pending)
                topic = batch_topic(feed.edge.id)
                if feed.signer is not None:
                    payload = feed.signer.seal(topic, payload, BATCH_STREAM)
                out.append((estate, topic, payload, len(feed.pending)))
                feed.seq += 1
                feed.pending = []
        return out

    def _flush_edges(self, now: float) -> None:
        for estate, topic, payload, count in self.edge_batches(now):
            if self._publish(topic, payload):
                self.report.published[estate] += count

    def _publish_device(self, estate: str, device: Device, value: Callable[[str], float], now: float, *,
                        always: bool) -> None:
        payload = encode_payload(device, {s.id: float(value(s.id)) for _v, s in device.values}, now)
        if not always and self._last.get(device.topic) == payload:
            return
        self._last[device.topic] = payload
        if self._publish(device.topic, payload):
            self.report.published[estate] += len(device.values)

    def _publish(self, topic: str, payload: bytes) -> bool:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # queued: paho sends it once connected
            self.report.messages += 1
            return True
        log.warning("publish to %s failed: %s", topic, mqtt.error_string(info.rc))
        return False

    def banner_lines(self) -> list[str]:
        """What runs where, per feed."""
        feeds = Counter(self.feeds.values())
        lines = [f"Fleet simulation: {self.report.estates} estates, {self.report.rooms} rooms "
                 f"({', '.join(f'{n} {feed}' for feed, n in sorted(feeds.items()))}) -> {self.broker}"]
        signed = sum(1 for feeds_ in self._edges.values() for f in feeds_ if f.signer is not None)
        if feeds["edge"]:
            lines.append(f"  edge batches on pumpwatch/edge/<edge>/batch, {signed} of "
                         f"{sum(len(f) for f in self._edges.values())} edges signed")
        servers = [s for sim in self.sims.values() for s in sim.servers.values()]
        if servers:
            lines.append(f"  {len(servers)} Modbus TCP PLCs, ports {min(s.port for s in servers)}"
                         f"-{max(s.port for s in servers)}")
        return lines


def _cpu() -> float:
    """User and system CPU seconds of this process (every thread: the MQTT client's too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _version_number() -> float:
    """The installed version as `collector.sources.edge_health.version_number` reports it."""
    try:
        version = metadata.version("pumpwatch")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    parts = [int(p) if p.isdigit() else 0 for p in version.split(".")[:3]] + [0, 0, 0]
    return float(parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2])


def estate_files(deployment: Path) -> list[Path]:
    """The site files of a deployment (a deployment file, a folder of site files, or one site file)."""
    if deployment.is_dir():
        return sorted(p for p in deployment.iterdir() if p.suffix in (".yaml", ".yml"))
    doc = yaml.safe_load(deployment.read_text(encoding="utf-8"))
    if isinstance(doc, dict) and doc.get("kind") == "deployment":
        return [deployment.parent / name for name in doc.get("estates", [])]
    return [deployment]


async def _simulate(sites: Sequence[Site], broker: BrokerAddress, stopped: Callable[[], bool], *, seed: int,
                    speed: float, period: float, edge_keys: Path | None, client_id: str,
                    faults_per_day: float, status: Callable[[FleetReport], None] | None,
                    status_every: float) -> FleetReport:
    fleet = FleetSimulation(sites, broker, ScaledClock(speed), seed=seed, period=period, edge_keys=edge_keys,
                            client_id=client_id, faults_per_day=faults_per_day)
    await fleet.start()
    print("\n".join(f"[{client_id}] {line}" for line in fleet.banner_lines()), flush=True)
    try:
        next_status = time.monotonic() + status_every
        next_step = fleet.clock.now()
        while not stopped():
            for estate, name, on in await fleet.schedule_faults(fleet.clock.now()):
                log.info("fleet fault %s %s in %s", name, "on" if on else "off", estate)
            fleet.step()
            if status is not None and time.monotonic() >= next_status:
                next_status += status_every
                status(fleet.report)
            # A fixed cadence: the time a step takes does not slow the readings down.
            next_step = max(next_step + period, fleet.clock.now())
            await fleet.clock.sleep(next_step - fleet.clock.now())
    finally:
        await fleet.stop()
    return fleet.report


def _worker(files: list[str], broker: BrokerAddress, stop: Any, reports: Any,
            options: dict[str, Any]) -> None:
    """A worker process: load its estates' files, simulate them, report now and then and at the end."""
    sites = [load_site(Path(f)) for f in files]

    def status(report: FleetReport) -> None:
        reports.put(("status", options["client_id"], report))

    report = asyncio.run(_simulate(sites, broker, stop.is_set, status=status, **options))
    reports.put(("done", options["client_id"], report))


def run_fleet(deployment: Path | Portfolio, broker: BrokerAddress, stop: threading.Event, *, seed: int = 1,
              processes: int = 1, speed: float = 1.0, period: float = 1.0, edge_keys: Path | None = None,
              client_id: str = "pumpwatch-fleet", status: Callable[[FleetReport], None] | None = None,
              status_every: float = 10.0, faults_per_day: float = 0.0) -> FleetReport:
    """Simulate every estate of `deployment` into `broker` until `stop` is set; the totals at the end.

    The entry point for scripts and benchmarks (blocking: call it in a thread of its own, or in a
    process's main thread with no event loop running). `deployment` is a deployment file, a folder of
    site files, a site file, or a loaded `Portfolio` (then `processes` must be 1). With `processes` > 1
    the estates are dealt out to that many worker processes (spawned; each loads only its files and
    has its own MQTT client `<client_id>-<n>`); `status` gets the sum of their reports every
    `status_every` seconds, and the result adds up their readings and CPU (RuntimeError when a worker
    ended without its report). Workers are spawned, so a script that asks for several runs this under
    `if __name__ == "__main__":`. `edge_keys`: a folder of `<edge id>.key` files to sign edge batches with;
    `faults_per_day`: how many faults an estate has a simulated day on average (0: none).
    """
    if processes < 1:
        raise ValueError(f"processes must be at least 1, not {processes}")
    options: dict[str, Any] = {"seed": seed, "speed": speed, "period": period, "edge_keys": edge_keys,
                               "status_every": status_every, "faults_per_day": faults_per_day}
    if isinstance(deployment, Portfolio) or processes == 1:
        sites = deployment.sites if isinstance(deployment, Portfolio) else load_portfolio(deployment).sites
        if isinstance(deployment, Portfolio) and processes != 1:
            raise ValueError("a loaded portfolio runs in one process: give its file for several")
        return asyncio.run(_simulate(sites, broker, stop.is_set, client_id=client_id, status=status,
                                     **options))
    files = estate_files(deployment)
    shares: list[list[str]] = [[] for _ in range(min(processes, len(files)))]
    for n, file in enumerate(files):
        shares[n % len(shares)].append(str(file))
    context = multiprocessing.get_context("spawn")
    halt = context.Event()
    reports: Any = context.Queue()
    workers = [context.Process(target=_worker, name=f"{client_id}-{n}", daemon=True,
                               args=(share, broker, halt, reports,
                                     {**options, "client_id": f"{client_id}-{n}"}))
               for n, share in enumerate(shares)]
    for worker in workers:
        worker.start()
    latest: dict[str, FleetReport] = {}
    final: dict[str, FleetReport] = {}
    try:
        while len(final) < len(workers):
            if stop.is_set():
                halt.set()
            try:
                kind, name, report = reports.get(timeout=0.2)
            except queue.Empty:
                if not any(w.is_alive() for w in workers) and reports.empty():
                    break  # a worker died without its report: what the others sent is the result
                continue
            (final if kind == "done" else latest)[name] = report
            if kind == "status" and status is not None:
                status(_sum(latest.values()))
    finally:
        halt.set()
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.terminate()
    failed = [w.name for w in workers if w.name not in final]
    if failed:
        raise RuntimeError(f"fleet worker process(es) {', '.join(failed)} stopped without their report "
                           "(see their output above)")
    return _sum(final.values())


def _sum(reports: Any) -> FleetReport:
    total = FleetReport()
    for report in reports:
        total.add(report)
    return total

