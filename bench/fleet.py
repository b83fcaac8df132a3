"""Many estates: a generated fleet's ingest through two collectors, 50 monitoring-centre clients, the
scheduler's year.

    python -m bench.fleet [--estates 200] [--seconds 60] [--collectors 2] [--split estates|share]
                          [--publishers 3] [--clients 50] [--overview-every 1] [--alarms-every 5]
                          [--open-alarms 400] [--tasks 2000] [--year-estates 10] [--year-days 365]
                          [--fleet-days 30] [--phases ingest,year] [--name fleet]

Ingest and API, at the same time (phase `ingest`):

- `simulators.fleet.write_fleet(estates, seed 15, rooms=(2, 2), feed="mqtt")`: every room's PLC readings
  reach the centre through a 4G data terminal publishing one JSON document a second on
  `dtu/<estate>/<room>`, and the wireless sensors publish Zigbee2MQTT documents (`bench.fleet_load`);
- real Mosquitto, InfluxDB and PostgreSQL (`tests.support.services`);
- `--collectors` `pumpwatch collect` processes on the deployment file, their sessions made before the
  first message; `--split share` (default, as issue 15 asks): each takes every estate through one MQTT
  shared-subscription group (`PUMPWATCH_COLLECTOR__SHARE_GROUP`); Mosquitto hands a topic's messages to
  the members in turn, and each estate's rules run at one member fed the group's live readings
  (`collector.group`). `--split estates`: each takes a contiguous part of the estates
  (`PUMPWATCH_COLLECTOR__ESTATES`);
- `pumpwatch serve` (the API) on PostgreSQL and InfluxDB with the deployment, its state seeded with
  `--open-alarms` active alarms (and their tasks) and `--tasks` open fault tasks across the estates;
- `--publishers` paho processes publishing every topic once a second for `--seconds`;
- `--clients` monitoring-centre operators (whole organisation), open loop (`bench.http_client`): each
  polls `GET /api/overview` every `--overview-every` s and `GET /api/alarms?state=active` every
  `--alarms-every` s (+-10 %, random phase), latency from the scheduled send time;
- three more clients follow the live stream (`/api/live`) of one room, one estate and the overview,
  counting the bytes they receive.

Reported: readings published (acknowledged by the broker) vs stored (`count(value)` in InfluxDB after the
drain) and how long after the last publish the last was stored; CPU (% of one core) and peak RSS of each
collector, the publishers, Mosquitto, InfluxDB, PostgreSQL, the API, this process (the HTTP clients) and
everything else on the machine; p50/p95/p99 and errors of both routes; the live streams' bytes per
second (after the first event) and first event's size.

The scheduler (phase `year`, `bench.fleet_year`): a year (`--year-days`) of `--year-estates` estates (the
task counts of a room-year) and `--fleet-days` of the whole fleet (the cost at full size: wall time,
CPU, peak memory per task and per tick).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psutil  # type: ignore[import-untyped]
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import (
    TreeSampler,
    load_average,
    machine,
    percentile,
    print_table,
    system_busy,
    write_results,
)
from bench.fleet_load import FleetLoad, messages
from bench.fleet_year import run_year
from bench.http_client import Browser, HttpError
from bench.live_bytes import count_bytes
from tests.support.influx import influx_query
from tests.support.processes import PumpwatchProcess
from tests.support.services import HOST, InfluxDB, Mosquitto, Postgres

SEED = 15
GROUP = "fleet"
DATABASE = "fleet"
USER, PASSWORD = "centre", "centre-password-1"
ROUTES = {"overview": "/api/overview", "alarms": "/api/alarms?state=active&limit=100"}
# One client of each live stream, counting bytes (`bench.live_bytes.count_bytes`).
LIVE = {"room": "/api/live?estate=%(estate)s&room=dom", "estate": "/api/live?estate=%(estate)s",
        "overview": "/api/live?view=overview"}


# --- the state the API serves -------------------------------------------------------------------


def state_database(pg: Postgres, name: str) -> str:
    """A new database on the server; its URL."""
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return pg.dsn.rsplit("/", 1)[0] + "/" + name


def seed_state(url: str, deployment: Path, open_alarms: int, tasks: int) -> dict[str, int]:
    """Migrate; a whole-organisation operator and supervisor; alarms raised and tasks across estates."""
    from maintenance.alarms import AlarmService
    from maintenance.auth import AuthService
    from maintenance.db import make_engine, session_factory, upgrade
    from maintenance.tasks import TaskService
    from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
    from pumpwatch.clock import SystemClock
    from pumpwatch.portfolio import load_portfolio
    from pumpwatch.site import Severity, Text

    engine = make_engine(url)
    upgrade(engine)
    sessions = session_factory(engine)
    clock = SystemClock()
    auth = AuthService(sessions, clock)
    user = auth.create_user(USER, PASSWORD, ["operator", "supervisor"])
    task_service = TaskService(sessions, clock)
    alarm_service = AlarmService(sessions, clock, task_service)
    portfolio = load_portfolio(deployment)
    places = [(site.site.id, room.id, eq.id) for site in portfolio for room in site.rooms
              for eq in room.equipment]
    rng = random.Random(SEED)
    severities = (Severity.WARNING, Severity.MINOR, Severity.MAJOR, Severity.CRITICAL)
    raised = 0
    for n, (estate, room, asset) in enumerate(rng.sample(places, min(open_alarms, len(places)))):
        event = AlarmEvent(AlarmAction.RAISED, AlarmKey(asset, "bench_fault", estate), severities[n % 4],
                           clock.now() - rng.uniform(0, 86_400), room,
                           Text(zh="基准测试故障", en="benchmark fault"))
        raised += alarm_service.apply(event) is not None
    for n in range(tasks):
        estate, room, asset = places[rng.randrange(len(places))]
        task_service.create_task(user, Text(zh=f"故障 {n}", en=f"fault {n}"), room=room, asset=asset,
                                 estate=estate)
    engine.dispose()
    return {"open_alarms": raised, "tasks": tasks}


# --- the collectors' sessions ---------------------------------------------------------------------


SPLITS = {"estates": "each a part of the estates", "share": "one shared subscription"}


def collector_parts(deployment: Path, collectors: int,
                    split: str) -> list[tuple[list[str] | None, list[str]]]:
    """Each collector's estates (None: all) and what it subscribes to (`collector.sources.mqtt.MqttSource`).

    `share`: every collector all estates, one shared-subscription group. `estates`: the estates in
    `collectors` contiguous parts, each collector its own part's topics.
    """
    from pumpwatch.portfolio import load_portfolio

    portfolio = load_portfolio(deployment)
    if split == "share":
        topics = sorted({f"$share/{GROUP}/{m.subscription}" for site in portfolio for m in site.mqtt})
        return [(None, topics) for _ in range(collectors)]
    ids = list(portfolio.estates)
    size = -(-len(ids) // collectors)
    parts = [ids[n * size:(n + 1) * size] for n in range(collectors)]
    return [(part, sorted({m.subscription for e in part for m in portfolio.estate(e).mqtt}))
            for part in parts]


def make_session(port: int, client_id: str, topics: list[str]) -> None:
    """A persistent session subscribed to `topics` (QoS 1), so the group holds messages from the first."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    acked: list[int] = []
    client.on_subscribe = lambda *args: acked.append(1)
    client.connect(HOST, port)
    client.loop_start()
    try:
        for start in range(0, len(topics), 100):
            client.subscribe([(topic, 1) for topic in topics[start:start + 100]])
        deadline = time.monotonic() + 30
        while len(acked) < (len(topics) + 99) // 100:
            if time.monotonic() > deadline:
                raise RuntimeError("no SUBACK from the broker")
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()


class AlarmTally:
    """Alarm events the collectors publish during the run, counted by alarm type (the topic's last level).

    A plain QoS 0 subscriber to `pumpwatch/alarms/#`; its payloads are not opened (the counts are of
    messages: an alarm announced by two collectors, as for a moment when one takes an estate over,
    counts twice).
    """

    def __init__(self, port: int) -> None:
        self.by_type: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}  # the first topics and payloads of each type
        self.counting = False
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-tally-{uuid.uuid4().hex[:6]}")
        client.on_connect = lambda c, *_: c.subscribe("pumpwatch/alarms/#", qos=0)
        client.on_message = self._count
        client.connect(HOST, port)
        client.loop_start()
        self.client = client

    def _count(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self.counting:
            kind = message.topic.rsplit("/", 1)[-1]
            self.by_type[kind] = self.by_type.get(kind, 0) + 1
            if len(seen := self.examples.setdefault(kind, [])) < 3:
                seen.append(f"{message.topic} {bytes(message.payload[:300]).decode(errors='replace')}")

    def close(self) -> dict[str, int]:
        """Stop; the counts, most frequent first."""
        self.client.disconnect()
        self.client.loop_stop()
        return dict(sorted(self.by_type.items(), key=lambda item: -item[1]))


# --- the monitoring centre's clients -----------------------------------------------------------------


@dataclass
class Polls:
    """Latencies (ms, from the scheduled time), errors and GETs sent again of each route."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in ROUTES})
    errors: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in ROUTES})
    resent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROUTES, 0))
    timeline: dict[str, list[tuple[float, float]]] = field(  # (scheduled s from start, latency ms)
        default_factory=lambda: {name: [] for name in ROUTES})
    lag: list[float] = field(default_factory=list)


async def centre_clients(url: str, token: str, clients: int, seconds: float, every: dict[str, float],
                         seed: int = SEED) -> Polls:
    """Each client polls each route every `every[route]` s (+-10 %) on a fixed schedule (open loop)."""
    polls = Polls()
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Task[None]] = []
    begin = loop.time()
    end = begin + seconds

    async def request(browser: Browser, name: str, scheduled: float) -> None:
        polls.lag.append((loop.time() - scheduled) * 1000)
        for attempt in range(3):
            try:
                await browser.get(ROUTES[name])
                break
            except (asyncio.IncompleteReadError, ConnectionResetError) as err:
                # The server closed a keep-alive connection that sat idle (uvicorn: after 5 s); a browser
                # sends the GET again on a new one, and so does this client (the time counts).
                polls.resent[name] += 1
                if attempt == 2:
                    polls.errors[name].append(str(err)[:200])
                    return
            except (HttpError, OSError) as err:
                polls.errors[name].append(str(err)[:200])
                return
        polls.latencies[name].append((loop.time() - scheduled) * 1000)
        polls.timeline[name].append((round(scheduled - begin, 3), round(polls.latencies[name][-1], 1)))

    async def client(browser: Browser, name: str, start: float) -> None:
        interval = every[name]
        tick = 0
        while (scheduled := start + tick * interval + rng.uniform(-0.1, 0.1) * interval) < end:
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            pending.append(asyncio.create_task(request(browser, name, scheduled)))
            tick += 1

    browsers = [Browser(url, token) for _ in range(clients)]
    try:
        await asyncio.gather(*(client(browser, name, begin + rng.uniform(0, every[name]))
                               for browser in browsers for name in ROUTES))
        await asyncio.gather(*pending)
    finally:
        for browser in browsers:
            browser.close()
    return polls


# --- the run -------------------------------------------------------------------------------------------


def wait_connected(role: PumpwatchProcess, within: float) -> None:
    """Until the collector's status line says its MQTT session is up (RuntimeError if it dies first)."""
    deadline = time.monotonic() + within
    while "| MQTT connected" not in role.text():
        if role.proc is None or role.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{role.name} did not connect:\n{role.text()[-2000:]}")
        time.sleep(0.5)


def deployment_scan_cpu(deployment: Path) -> float:
    """CPU seconds of one look at the deployment's files (`pumpwatch.portfolio.scan`), as each role's
    `DeploymentWatcher` does every `COLLECTOR__RELOAD_INTERVAL` seconds."""
    from pumpwatch.portfolio import scan

    before = time.process_time()
    scan(deployment)
    return round(time.process_time() - before, 3)


def server_pids(*directories: Path) -> list[int]:
    """Processes started from these directories (the database servers and the broker)."""
    return [proc.pid for proc in psutil.process_iter(["cmdline"])
            if any(str(d) in " ".join(proc.info.get("cmdline") or ()) for d in directories)]


async def stored_readings(influx_url: str) -> int:
    """Points in the fleet's database (every reading is one point: distinct timestamps per sensor)."""
    rows = await influx_query(influx_url, DATABASE, "SELECT count(value) FROM reading")
    return int(rows[0][1]) if rows else 0


class StoredCount:
    """The stored count polled every `every` s from `start_at` (epoch s): when did it reach a target?

    Polling starts just before the last publish (a count over all the points costs InfluxDB CPU, so not
    during the whole run) and goes on until `until_reached` has its answer.
    """

    def __init__(self, influx_url: str, start_at: float, every: float = 0.5) -> None:
        self.influx_url = influx_url
        self.start_at = start_at
        self.every = every
        self.timeline: list[tuple[float, int]] = []
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        await asyncio.sleep(max(0.0, self.start_at - time.time()))
        while True:
            count = await stored_readings(self.influx_url)
            self.timeline.append((time.time(), count))
            await asyncio.sleep(self.every)

    async def until_reached(self, target: int, stall: float) -> tuple[int, float | None]:
        """(the count, when it first reached `target`; None if it stopped growing for `stall` s first)."""
        try:
            while True:
                await asyncio.sleep(self.every)
                if not self.timeline:
                    continue
                count = self.timeline[-1][1]
                if count >= target:
                    return count, next(t for t, c in self.timeline if c >= target)
                grew = [t for (t, c), (_, before) in zip(self.timeline[1:], self.timeline, strict=False)
                        if c != before]
                if time.time() - max(grew, default=self.timeline[0][0]) > stall:
                    return count, None
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def ingest_phase(args: argparse.Namespace, work: Path, deployment: Path) -> dict[str, Any]:
    """Collectors, API and publishers on real servers; the clients from this process."""
    load_messages = messages(deployment)
    parts = collector_parts(deployment, args.collectors, args.split)
    scan_cpu = deployment_scan_cpu(deployment)
    with Mosquitto() as broker, InfluxDB() as influx, Postgres() as pg:
        state_url = state_database(pg, f"fleet_{uuid.uuid4().hex[:8]}")
        seeded = seed_state(state_url, deployment, args.open_alarms, args.tasks)
        base = dict(os.environ, PUMPWATCH_INFLUX__URL=influx.url, PUMPWATCH_INFLUX__DATABASE=DATABASE,
                    PUMPWATCH_API__DATABASE_URL=state_url, PUMPWATCH_LOG_LEVEL="WARNING",
                    PUMPWATCH_COLLECTOR__RELOAD_INTERVAL=str(args.reload_interval))
        where = ["--site", str(deployment), "--mqtt", broker.url]
        collectors: list[PumpwatchProcess] = []
        for n, (estates, topics) in enumerate(parts):
            client_id = f"fleet-collector-{n}-{uuid.uuid4().hex[:6]}"
            await asyncio.to_thread(make_session, broker.port, client_id, topics)
            env = dict(base, PUMPWATCH_COLLECTOR__STATE_DIR=str(work / f"collector-{n}"),
                       PUMPWATCH_COLLECTOR__CLIENT_ID=client_id)
            if estates is None:
                env["PUMPWATCH_COLLECTOR__SHARE_GROUP"] = GROUP
            else:
                env["PUMPWATCH_COLLECTOR__ESTATES"] = ",".join(estates)
            collectors.append(PumpwatchProcess(f"collector-{n}", ["collect", *where, "--metrics-port", "0",
                                                                  "--status-every", "1"],
                                               env, work / f"collector-{n}.log"))
        api = PumpwatchProcess("api", ["serve", *where, "--port", "0"],
                               dict(base, PUMPWATCH_COLLECTOR__STATE_DIR=str(work / "api"),
                                    PUMPWATCH_COLLECTOR__CLIENT_ID=f"fleet-api-{uuid.uuid4().hex[:6]}"),
                               work / "api.log")
        load: FleetLoad | None = None
        tally = AlarmTally(broker.port)
        try:
            for role in (*collectors, api):
                role.start()
            url = await asyncio.to_thread(api.wait_url, 180)
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                token = str((await http.post("/api/auth/token", data={
                    "username": USER, "password": PASSWORD})).json()["access_token"])
            for role in collectors:  # start-up: every estate's site file, rules and topic maps
                await asyncio.to_thread(wait_connected, role, 300)
            load = await asyncio.to_thread(FleetLoad, broker.port, load_messages, args.publishers,
                                           args.seconds)
            # Made now: a process it first sees counts from its CPU at that moment, so the start-up of
            # every role (site files, rules) and of the publishers is left out of the figures.
            sampler = TreeSampler(interval=1.0)
            for role in collectors:
                assert role.proc is not None
                sampler.watch(role.name, role.proc.pid)
            assert api.proc is not None
            sampler.watch("api", api.proc.pid)
            for n, pid in enumerate(load.pids):
                sampler.watch(f"publisher-{n}", pid)
            for label, directory in (("mosquitto", broker.directory), ("influxdb", influx.directory),
                                     ("postgresql", pg.directory)):
                for pid in server_pids(directory):
                    sampler.watch(label, pid)
            await centre_clients(url, token, args.clients, 3, {"overview": 1.0, "alarms": 3.0})  # warm-up
            stop_streams = asyncio.Event()
            streams: dict[str, dict[str, Any]] = {name: {} for name in LIVE}
            estate = load_messages[0].topic.split("/")[1]
            async with httpx.AsyncClient(base_url=url, timeout=None) as http:
                streaming = [asyncio.create_task(count_bytes(
                    http, path % {"estate": estate}, {"Authorization": f"Bearer {token}"}, stop_streams,
                    streams[name])) for name, path in LIVE.items()]
                sampler.start()
                busy0, wall0, load0 = system_busy(), time.monotonic(), load_average()
                load.go()
                tally.counting = True
                counting = StoredCount(influx.url, time.time() + args.seconds - 1)
                polls = await centre_clients(url, token, args.clients, args.seconds,
                                             {"overview": args.overview_every, "alarms": args.alarms_every})
                stop_streams.set()
                tally.counting = False
                await asyncio.gather(*streaming)
            for values in streams.values():
                span = (values.get("until") or 0) - (values.get("since") or 0)
                values["bytes_per_second"] = round(values["bytes"] / span) if span > 0 else None
            published = await asyncio.to_thread(load.result, 180)
            if "error" in published:
                raise RuntimeError(published["error"])
            busy1, wall1 = system_busy(), time.monotonic()
            sampler.stop()
            stored, stored_at = await counting.until_reached(int(published["readings"]), args.stall)
            labels = [*(role.name for role in collectors), "api", *(f"publisher-{n}" for n in
                                                                     range(len(load.pids))),
                      "mosquitto", "influxdb", "postgresql"]
            window = wall1 - wall0
            cpu = {label: round(sampler.cpu(label) / window * 100, 1) for label in labels}
            measured_cpu = sum(sampler.cpu(label) for label in labels)
            clients_cpu = sampler.cpu() - measured_cpu  # this process and its children not watched
            cpu["clients (this process)"] = round(clients_cpu / window * 100, 1)
            cpu["others on the machine"] = round(((busy1 - busy0) - sampler.cpu()) / window * 100, 1)
            peak = {label: round(sampler.peak_rss_mb(label), 1) for label in labels}
            logs = {role.name: role.text()[-1500:] for role in (*collectors, api)}
        finally:
            alarm_events = tally.close()
            for role in (*collectors, api):
                role.stop()
    return {"seeded": seeded, "alarm_events": alarm_events, "alarm_event_examples": tally.examples,
            "messages_per_second": len(load_messages),
            "deployment_scan_cpu_s": scan_cpu,
            "readings_per_second_offered": sum(m.readings for m in load_messages),
            "published": published, "stored": stored,
            "stored_all_s_after_last_publish": (round(stored_at - float(published["last_publish"]), 2)
                                                if stored_at is not None else None),
            "stored_timeline": [(round(t - float(published["last_publish"]), 2), c)
                                for t, c in counting.timeline],
            "window_s": round(window, 1), "cpu_pct_of_core": cpu, "peak_rss_mb": peak,
            "load_average_before": load0, "load_average_after": load_average(),
            "routes": {name: {"requests": len(polls.latencies[name]), "errors": len(polls.errors[name]),
                              "resent_after_idle_close": polls.resent[name],
                              "first_errors": polls.errors[name][:3],
                              "p50_ms": percentile(polls.latencies[name], 50),
                              "p95_ms": percentile(polls.latencies[name], 95),
                              "p99_ms": percentile(polls.latencies[name], 99),
                              "max_ms": max(polls.latencies[name], default=float("nan"))}
                       for name in ROUTES},
            "client_lag_p99_ms": percentile(polls.lag, 99), "live_streams": streams,
            "latency_timeline": polls.timeline, "log_tails": logs}


def year_phase(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The scheduler's year for a few estates (counts) and some days of the whole fleet (cost)."""
    out: dict[str, Any] = {}
    with Postgres() as pg:
        runs = [("room_year", args.year_estates, args.year_days), ("fleet", args.estates, args.fleet_days)]
        for name, estates, days in runs:
            if estates <= 0 or days <= 0:
                continue
            deployment = write_fleet_here(work / f"year-{name}", estates)
            url = state_database(pg, f"year_{uuid.uuid4().hex[:8]}")
            out[name] = run_year(deployment, url, days, args.tick, timeout=args.year_timeout)
    return out


def write_fleet_here(directory: Path, estates: int) -> Path:
    """The benchmark's fleet: `estates` estates of two rooms, MQTT feed, seed SEED."""
    from simulators.fleet import write_fleet

    return write_fleet(directory, estates, SEED, rooms=(2, 2), feed="mqtt")


def report(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Print the tables."""
    ingest = results.get("ingest")
    if ingest is not None:
        pub = ingest["published"]
        lost = int(pub["readings"]) - int(ingest["stored"])
        print_table(f"Ingest: {args.estates} estates, {ingest['messages_per_second']:,} messages/s, "
                    f"{args.collectors} collectors ({SPLITS[args.split]}), {args.seconds:g} s",
                    ["offered readings/s", "published", "stored", "lost", "stored after last publish (s)",
                     "publishers late > 1 s"],
                    [[ingest["readings_per_second_offered"], pub["readings"], ingest["stored"], lost,
                      ingest["stored_all_s_after_last_publish"], pub["late_over_1s"]]])
        print(f"\none look at the deployment's files (reload polling, per role process): "
              f"{ingest['deployment_scan_cpu_s']:.2f} CPU s; roles ran with reload interval "
              f"{args.reload_interval:g} s")
        print_table("CPU (% of one core; 2 cores = 200 %) and peak RSS (MiB) over the publishing window",
                    ["process", "CPU %", "peak RSS"],
                    [[k, v, ingest["peak_rss_mb"].get(k, float("nan"))]
                     for k, v in ingest["cpu_pct_of_core"].items()])
        print_table(f"API under {args.clients} clients (overview every {args.overview_every:g} s, alarm list "
                    f"every {args.alarms_every:g} s), ms from the scheduled send",
                    ["route", "requests", "errors", "p50", "p95", "p99", "max"],
                    [[name, r["requests"], r["errors"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["max_ms"]]
                     for name, r in ingest["routes"].items()])
        print_table("Live stream, one client each (whole-organisation operator)",
                    ["subscription", "first event (bytes)", "then bytes/s"],
                    [[name, c.get("first"), c.get("bytes_per_second")]
                     for name, c in ingest["live_streams"].items()])
        events = ingest["alarm_events"]
        print(f"\nalarm events published while the load ran: {sum(events.values()):,}"
              + "".join(f"; {kind} {count:,}" for kind, count in list(events.items())[:8]))
    for name, year in results.get("year", {}).items():
        if "error" in year:
            print(f"\nscheduler {name}: {year['error']}")
            continue
        print_table(f"Scheduler ({name}): {year['estates']} estates, {year['rooms']} rooms, {year['days']:g} "
                    f"days", ["ticks", "tasks", "by kind", "wall s", "CPU s", "peak RSS MiB"],
                    [[year["ticks"], year["tasks_created"],
                      ", ".join(f"{k} {v}" for k, v in year["tasks_by_kind"].items()), year["wall_s"],
                      year["cpu_s"], year["peak_rss_mb"]]])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The phases asked for."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pumpwatch-fleet-") as tmp:
        work = Path(tmp)
        if "ingest" in args.phases:
            deployment = write_fleet_here(work / "fleet", args.estates)
            results["ingest"] = await ingest_phase(args, work, deployment)
        if "year" in args.phases:
            results["year"] = await asyncio.to_thread(year_phase, args, work)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run, print the tables, write `bench/results/<name>.json`."""
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--estates", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0, help="publishing (and polling) time")
    parser.add_argument("--collectors", type=int, default=2)
    parser.add_argument("--split", choices=["estates", "share"], default="share",
                        help="collectors take a part of the estates each, or all of them through one "
                             "MQTT shared subscription")
    parser.add_argument("--publishers", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--overview-every", type=float, default=1.0)
    parser.add_argument("--alarms-every", type=float, default=5.0)
    parser.add_argument("--open-alarms", type=int, default=400)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--stall", type=float, default=30.0,
                        help="give up when nothing is stored for this long")
    parser.add_argument("--year-estates", type=int, default=10, help="estates run over --year-days")
    parser.add_argument("--year-days", type=float, default=365.0)
    parser.add_argument("--fleet-days", type=float, default=30.0,
                        help="days the whole fleet's scheduler runs")
    parser.add_argument("--tick", type=float, default=86_400.0,
                        help="longest sleep between wake-ups (the scheduler also wakes at each opening)")
    parser.add_argument("--year-timeout", type=float, default=1800.0)
    parser.add_argument("--reload-interval", type=float, default=0.0,
                        help="the roles' COLLECTOR__RELOAD_INTERVAL (default 0: reload on SIGHUP only; "
                             "see the deployment scan's CPU in the results)")
    parser.add_argument("--phases", type=lambda s: s.split(","), default=["ingest", "year"])
    parser.add_argument("--name", default="fleet", help="results file name")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    report(args, results)
    command = "python -m bench.fleet " + " ".join(argv if argv is not None else sys.argv[1:])
    path = write_results(args.name, {"benchmark": "fleet", "command": command.strip(), "machine": machine(),
                                     "settings": vars(args), "results": results})
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
