"""Ingest benchmark: MQTT JSON messages -> CollectorService -> InfluxDB, end to end, counted exactly.

    python -m bench.ingest [--seconds 20] [--sensors 100] [--values-per-message 50] [--rate R]

Starts a real Mosquitto and a real InfluxDB (tests.support.services), runs the whole collector in this
process (InfluxDB store, system clock) and a QoS 1 publisher in a separate process. Every message
is one JSON object with `--values-per-message` fields, each feeding its own sensor through one topic
map (`<prefix>/{dev}` -> sensors `{dev}-s0` ...). Field sJ of message number K carries the value
K.J (J as three digits), so each sensor's stored values are distinct and InfluxDB can be counted
exactly after the drain: stored distinct values vs readings published (lost), points vs distinct
values (duplicated).

`--collectors N` runs N collectors in one MQTT shared-subscription group (`collector.group`), as several
collector processes on one machine would: this process's and N - 1 more, each a process of its own with
its own durable buffer and writer; Mosquitto hands each message to one of them. CPU is summed over them.

Then two ceilings, each measured alone: a bare paho subscriber counting the same messages at QoS 1
on the same broker, and a bare line-protocol writer posting gzip batches of 5000 points to /write.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import gzip
import logging
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psutil  # type: ignore[import-untyped]
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import (
    machine,
    other_load_note,
    print_table,
    process_cpu,
    system_busy,
    thread_cpu,
    thread_cpu_delta,
    tool_version,
    write_results,
)
from bench.load import PUBLISHERS, Arrivals, Load, publisher_main, start_load
from collector.service import CollectorService
from collector.stores.lineprotocol import series_key
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import SystemClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.runtime import favour_event_loop
from pumpwatch.settings import CollectorSettings, InfluxSettings, MqttSettings, Settings
from pumpwatch.site import Site
from pumpwatch.sitefile import parse_site
from tests.support.mqtt import create_session
from tests.support.services import HOST, InfluxDB, Mosquitto

TARGET_RATE = 50_000.0  # readings/s end to end, with 0 lost
WRITE_BATCH = 5000  # points per POST of the bare InfluxDB writer

log = logging.getLogger("bench.ingest")


# --- the site ----------------------------------------------------------------------------------


def device_ids(sensors: int, values: int) -> list[str]:
    """One publishing device per `values` sensors."""
    if sensors % values:
        raise SystemExit(f"--sensors ({sensors}) must be a multiple of --values-per-message ({values})")
    return [f"d{i}" for i in range(sensors // values)]


def bench_site(prefix: str, devices: list[str], values: int) -> Site:
    """N MQTT flow sensors `{dev}-sJ`, fed by one JSON topic map `<prefix>/{dev}` with fields sJ."""
    data: dict[str, Any] = {
        "site": {"id": "bench", "name": {"zh": "基准", "en": "Bench"}},
        "rooms": [{
            "id": "bench-room",
            "name": {"zh": "基准泵房", "en": "Bench room"},
            # expected_period of an hour: the no-data alarms stay quiet while the benchmark drains
            "sensors": [{"id": f"{dev}-s{j}", "kind": "flow", "range": [0, 1e12], "source": "mqtt",
                         "expected_period": 3600} for dev in devices for j in range(values)],
        }],
        "mqtt": [{
            "topic": f"{prefix}/{{dev}}",
            "format": "json",
            "values": [{"sensor": f"{{dev}}-s{j}", "field": f"s{j}"} for j in range(values)],
        }],
    }
    return parse_site(yaml.safe_dump(data, allow_unicode=True), "bench-site.yaml")


def spawn_publisher(port: int, prefix: str, devices: list[str], values: int, seconds: float,
                    rate: float | None) -> tuple[mp.process.BaseProcess, Connection]:
    """Start one paho publisher process and wait until it is connected (see `load` for several)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=publisher_main, args=(child, port, prefix, devices, values, seconds, rate),
                       name="bench-publisher", daemon=True)
    proc.start()
    if not parent.poll(30):
        raise RuntimeError("the publisher process did not report ready")
    ready = parent.recv()
    if ready != "ready":
        raise RuntimeError(f"publisher: {ready}")
    return proc, parent


def load_for(args: argparse.Namespace, port: int, prefix: str, devices: list[str]) -> Load:
    """The publishers the options ask for (`--publisher`, `--publishers`), connected, not yet going."""
    return start_load(args.publisher, args.publishers, port, prefix, devices, args.values_per_message,
                      args.seconds, args.rate, getattr(args, "node_red_dir", None))


# --- more members of a shared-subscription group -------------------------------------------------

GROUP = "bench-ingest"  # the collectors' shared-subscription group when there are several
MEMBER_REPORT = 0.1  # s between two reports of a member's counts


def collector_settings(influx_url: str, database: str, state_dir: Path, client_id: str,
                       broker_url: str, batch_size: int | None, group: str | None) -> Settings:
    """A benchmark collector's settings: InfluxDB store, its own state directory and client id."""
    return Settings(
        influx=InfluxSettings(url=influx_url, database=database),
        collector=CollectorSettings(state_dir=state_dir, client_id=client_id, share_group=group,
                                    **({"batch_size": batch_size} if batch_size else {})),
        mqtt=MqttSettings(url=broker_url),
    )


@dataclass(frozen=True)
class MemberPlan:
    """What every collector of the group shares: the broker, the store, the site and the diagnostics."""

    broker_url: str
    influx_url: str
    database: str
    prefix: str
    devices: list[str]
    values: int
    batch_size: int | None
    commit_window: float | None


def member_main(conn: Connection, plan: MemberPlan, state_dir: Path, client_id: str) -> None:
    """One more collector of the group, in its own process: sends its counts through `conn` until "stop"."""
    favour_event_loop()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_member(conn, plan, state_dir, client_id))
    except Exception as exc:  # the parent reports it; a member that died must not look idle
        conn.send({"error": repr(exc)})


async def _member(conn: Connection, plan: MemberPlan, state_dir: Path, client_id: str) -> None:
    settings = collector_settings(plan.influx_url, plan.database, state_dir, client_id, plan.broker_url,
                                  plan.batch_size, GROUP)
    service = CollectorService(bench_site(plan.prefix, plan.devices, plan.values), settings, SystemClock(),
                               BrokerAddress.parse(plan.broker_url), publish_live=True)
    if plan.commit_window is not None:
        service.parts.pipeline.commit_window = plan.commit_window
    metrics = service.parts.metrics
    task = asyncio.create_task(service.run(), name="collector")
    try:
        while not (conn.poll() and conn.recv() == "stop"):
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("the collector stopped")
            conn.send({"connected": metrics.total(metrics.mqtt_connected),
                       "written": metrics.total(metrics.written), "depth": service.parts.buffer.depth,
                       "accepted": metrics.total(metrics.readings_in),
                       "mqtt_messages": metrics.total(metrics.mqtt_messages),
                       "rejected": metrics.total(metrics.rejected)})
            await asyncio.sleep(MEMBER_REPORT)
        conn.send({"status_line": service.status_line()})
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Members:
    """The group's other collectors, each in its own process, and the newest counts each reported."""

    def __init__(self, ids: list[str], plan: MemberPlan, state_dir: Path) -> None:
        ctx = mp.get_context("spawn")
        count = len(ids)
        self.ids = ids
        self.latest: list[dict[str, Any]] = [{} for _ in range(count)]
        self.status: list[str] = ["" for _ in range(count)]
        self.procs: list[mp.process.BaseProcess] = []
        self.conns: list[Connection] = []
        for n, client_id in enumerate(self.ids):
            parent, child = ctx.Pipe()
            member_dir = state_dir / f"member-{n + 2}"
            member_dir.mkdir(parents=True, exist_ok=True)
            proc = ctx.Process(target=member_main, name=f"bench-member-{n + 2}", daemon=True,
                               args=(child, plan, member_dir, client_id))
            proc.start()
            self.procs.append(proc)
            self.conns.append(parent)
        self.cpu0 = [0.0] * count
        self.stopped = False

    def poll(self) -> None:
        """Take every report waiting; a member's error, or its end before `stop`, stops the run."""
        for n, conn in enumerate(self.conns):
            while not self.status[n] and conn.poll():
                try:
                    report = conn.recv()
                except EOFError:
                    raise RuntimeError(f"collector member {n + 2} ended without a word") from None
                if "error" in report:
                    raise RuntimeError(f"collector member {n + 2}: {report['error']}")
                if "status_line" in report:
                    self.status[n] = report["status_line"]
                else:
                    self.latest[n] = report

    def total(self, key: str) -> float:
        """One count summed over the members (0 for a member that has not reported yet)."""
        return sum(float(report.get(key, 0.0)) for report in self.latest)

    def wait_connected(self, within: float) -> None:
        """Wait until every member's MQTT session is up."""
        deadline = time.monotonic() + within
        while not all(report.get("connected") for report in self.latest):
            if time.monotonic() > deadline:
                raise RuntimeError("a collector member did not connect to the broker")
            time.sleep(0.05)
            self.poll()
        self.cpu0 = [process_cpu(psutil.Process(proc.pid)) for proc in self.procs]

    def cpu_now(self) -> list[float]:
        """CPU seconds each member has used since it started (0 for one that has ended)."""
        used = []
        for proc in self.procs:
            try:
                used.append(process_cpu(psutil.Process(proc.pid)))
            except psutil.NoSuchProcess:
                used.append(0.0)
        return used

    def cpu(self) -> list[float]:
        """CPU seconds of each member since it connected."""
        return [process_cpu(psutil.Process(proc.pid)) - cpu0 for proc, cpu0 in zip(self.procs, self.cpu0,
                                                                                       strict=True)]

    def stop(self) -> None:
        """Ask each member to stop, take its status line and wait for it (again: nothing more)."""
        if self.stopped:
            return
        self.stopped = True
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send("stop")
        deadline = time.monotonic() + 30
        for n, proc in enumerate(self.procs):
            while proc.is_alive() and time.monotonic() < deadline and not self.status[n]:
                with contextlib.suppress(RuntimeError):
                    self.poll()
                time.sleep(0.05)
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)


# --- InfluxDB helpers ----------------------------------------------------------------------------


def influx_rows(url: str, database: str, query: str) -> list[list[Any]]:
    """Rows of every series of one InfluxQL query."""
    resp = httpx.get(f"{url}/query", params={"db": database, "q": query}, timeout=120)
    resp.raise_for_status()
    result = resp.json()["results"][0]
    if "error" in result:
        raise RuntimeError(f"InfluxDB: {result['error']}")
    return [row for series in result.get("series", []) for row in series["values"]]


def stored_counts(url: str, database: str) -> tuple[int, int]:
    """(points, distinct values summed over sensors) in the `reading` measurement."""
    points = sum(int(row[1]) for row in influx_rows(url, database, "SELECT count(value) FROM reading"))
    distinct = sum(int(row[1]) for row in influx_rows(
        url, database, "SELECT count(distinct(value)) FROM reading GROUP BY sensor"))
    return points, distinct


# --- collector run -------------------------------------------------------------------------------


def delivery(published: int, points: int, distinct: int) -> dict[str, int]:
    """Published against stored: points in the store, distinct values, lost and duplicated."""
    return {"readings_published": published, "readings_stored_points": points,
            "readings_stored_distinct": distinct, "lost": published - distinct,
            "duplicated": points - distinct}


async def run_collector(args: argparse.Namespace, broker: Mosquitto, influx: InfluxDB,
                        state_dir: Path) -> dict[str, Any]:
    """The end-to-end run: collector in this process, publisher in another; drained and counted."""
    values = args.values_per_message
    devices = device_ids(args.sensors, values)
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    site = bench_site(prefix, devices, values)
    database = "bench_ingest"
    client_id = f"bench-collector-{uuid.uuid4().hex[:6]}"
    grouped = args.collectors > 1
    settings = collector_settings(influx.url, database, state_dir, client_id, broker.url, args.batch_size,
                                  GROUP if grouped else None)
    topic = f"$share/{GROUP}/{prefix}/+" if grouped else f"{prefix}/+"
    me = psutil.Process()
    others = {p.pid: p for p in me.children()}  # mosquitto, influxd
    names = {pid: p.name() for pid, p in others.items()}
    members = None
    member_ids = [f"bench-collector-{uuid.uuid4().hex[:6]}" for _ in range(args.collectors - 1)]
    for session_id in [client_id, *member_ids]:  # sessions made before the first message
        await asyncio.to_thread(create_session, broker.port, session_id, topic)
    if member_ids:
        plan = MemberPlan(broker.url, influx.url, database, prefix, devices, values, args.batch_size,
                          args.commit_window)
        members = Members(member_ids, plan, state_dir)
    try:
        service = CollectorService(site, settings, SystemClock(), BrokerAddress(HOST, broker.port),
                                   publish_live=True)  # as `pumpwatch collect` runs it
        if args.commit_window is not None:  # diagnostic: the intake's group-commit window
            service.parts.pipeline.commit_window = args.commit_window
        metrics = service.parts.metrics
        other_cpu0 = {pid: process_cpu(p) for pid, p in others.items()}

        cpu0, threads0, busy0, wall0 = process_cpu(), thread_cpu(), system_busy(), time.time()
        members_busy0 = members.cpu_now() if members is not None else []  # they start up meanwhile
        task = asyncio.create_task(service.run(), name="collector")
        deadline = time.monotonic() + 15
        while not metrics.total(metrics.mqtt_connected):
            if time.monotonic() > deadline or task.done():
                raise RuntimeError("the collector did not connect to the broker")
            await asyncio.sleep(0.02)
        if members is not None:
            await asyncio.to_thread(members.wait_connected, 60)

        load = await asyncio.to_thread(load_for, args, broker.port, prefix, devices)
        load.go()
        t_go = time.time()
        result: dict[str, Any] | None = None
        target: int | None = None
        written = last_written = 0.0
        last_change = t_go
        timeline: list[dict[str, float]] = []
        next_sample = t_go
        peak_depth = 0
        stalled = False
        publisher_cpu = 0.0
        while True:
            await asyncio.sleep(0.02)
            now = time.time()
            if members is not None:
                members.poll()
            written = metrics.total(metrics.written) + (members.total("written") if members else 0)
            if written != last_written:
                last_written, last_change = written, now
            depth = service.parts.buffer.depth + int(members.total("depth") if members else 0)
            peak_depth = max(peak_depth, depth)
            if now >= next_sample:
                timeline.append({"t": round(now - t_go, 2), "written": written,
                                 "accepted": metrics.total(metrics.readings_in)
                                 + (members.total("accepted") if members else 0),
                                 "mqtt_messages": metrics.total(metrics.mqtt_messages)
                                 + (members.total("mqtt_messages") if members else 0),
                                 "buffer_depth": depth})
                next_sample += 1.0
            if result is None and (result := load.poll()) is not None:
                if "error" in result:
                    raise RuntimeError(f"publisher: {result['error']}")
                target = int(result["acked"]) * values
                publisher_cpu = float(result["cpu_s"])
            if target is not None and written >= target and depth == 0:
                break
            quiet = now - last_change > args.stall_timeout
            if quiet and (result is not None or now - t_go > args.seconds + 30):
                stalled = True
                log.warning("no reading stored for %.0f s: stopping the drain", args.stall_timeout)
                break
        t_drained = last_change
        cpu = process_cpu() - cpu0
        threads = thread_cpu_delta(threads0, thread_cpu())
        members_cpu = members.cpu() if members is not None else []
        cpu += sum(members_cpu)
        members_start_up = (sum(members.cpu_now()) - sum(members_busy0) - sum(members_cpu)
                            if members is not None else 0.0)  # theirs, not other people's work
        other_cpu = {f"{names[pid]} (pid {pid})": process_cpu(p) - other_cpu0[pid]
                     for pid, p in others.items() if p.is_running()}
        busy, wall = system_busy() - busy0, time.time() - wall0
        foreign_pct = 100 * (busy - cpu - members_start_up - publisher_cpu - sum(other_cpu.values())) / wall
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rss_mb = me.memory_info().rss / 2**20
        load.join(30)
        status = service.status_line()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if members is not None:
            await asyncio.to_thread(members.stop)
            status = "\n".join([status, *members.status])
        assert result is not None
        points, distinct = await asyncio.to_thread(stored_counts, influx.url, database)
        published = int(result["acked"]) * values
        first_publish = float(result["first_publish"])
        elapsed = t_drained - first_publish
        publish_elapsed = float(result["last_ack"]) - first_publish
        rejected = metrics.total(metrics.rejected) + (members.total("rejected") if members else 0)
        phases = intake_phases(timeline, published, distinct, t_drained - t_go)
        return {
            "sensors": args.sensors,
            "values_per_message": values,
            "collectors": args.collectors,
            "devices": len(devices),
            "requested_rate": args.rate,
            "switch_interval": sys.getswitchinterval(),
            "commit_window": service.parts.pipeline.commit_window,
            "writer_batch_size": settings.collector.batch_size,
            "publish_seconds": args.seconds,
            "messages_published": int(result["acked"]),
            **delivery(published, points, distinct),
            "rejected": rejected,
            "publish_rate": published / publish_elapsed if publish_elapsed > 0 else 0.0,
            "end_to_end_seconds": elapsed,
            "drain_after_publish_seconds": t_drained - float(result["last_publish"]),
            "sustained_rate": distinct / elapsed if elapsed > 0 else 0.0,
            **phases,
            "collector_cpu_s": cpu,
            "collector_cpu_pct_of_core": 100 * cpu / elapsed if elapsed > 0 else 0.0,
            "collector_cpu_us_per_reading": 1e6 * cpu / distinct if distinct else 0.0,
            "collector_peak_rss_mb": peak_rss_mb,
            "collector_rss_at_end_mb": rss_mb,
            "peak_buffer_depth": peak_depth,
            "publisher_cpu_s": publisher_cpu,
            "publisher": {"kind": result.get("publisher"), "processes": result.get("processes"),
                          "cpu_s_per_process": result.get("cpu_s_per_process")},
            "other_processes_cpu_s": other_cpu,
            "collector_threads_cpu_s": threads,
            "members_cpu_s": members_cpu,  # the group's other collectors, each in its own process
            "foreign_cpu_pct_of_core": foreign_pct,
            "stalled": stalled,
            "status_line": status,
            "timeline": timeline,
        }
    finally:
        if members is not None:  # however the run ended: no member outlives it
            await asyncio.to_thread(members.stop)


def intake_phases(timeline: list[dict[str, float]], published: int, stored: int,
                  drained_at: float) -> dict[str, float | None]:
    """Writer progress while MQTT messages still arrived, and after: shows whether intake starves it."""
    done = next((s for s in timeline if s["accepted"] >= published), None)
    if done is None or done["t"] <= 0:
        return {}
    after = drained_at - done["t"]
    return {
        "intake_seconds": done["t"],
        "intake_rate": done["accepted"] / done["t"],
        "writer_rate_during_intake": done["written"] / done["t"],
        "writer_rate_after_intake": (stored - done["written"]) / after if after > 0.5 else None,
    }


# --- ceilings ------------------------------------------------------------------------------------


def mqtt_ceiling(args: argparse.Namespace, broker: Mosquitto) -> dict[str, Any]:
    """A bare paho subscriber (QoS 1, auto-ack, counting only) against the same publisher."""
    values = args.values_per_message
    devices = device_ids(args.sensors, values)
    prefix = f"ceiling-{uuid.uuid4().hex[:6]}"
    messages = Arrivals()

    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{uuid.uuid4().hex[:6]}",
                         clean_session=True)
    client.on_message = messages.tick
    client.on_subscribe = lambda *_args: subscribed.set()
    client.on_connect = lambda c, *_args: c.subscribe(f"{prefix}/+", qos=1)
    client.connect(HOST, broker.port)
    client.loop_start()
    if not subscribed.wait(15):
        raise RuntimeError("ceiling subscriber: no SUBACK")
    load = load_for(args, broker.port, prefix, devices)
    cpu0 = process_cpu()
    load.go()
    result = load.poll(args.seconds + 180)
    if result is None or "error" in result:
        raise RuntimeError(f"ceiling publisher did not finish: {result}")
    deadline = time.monotonic() + 120
    while messages.count < result["acked"] and time.monotonic() < deadline:
        time.sleep(0.05)
    cpu = process_cpu() - cpu0
    client.disconnect()
    client.loop_stop()
    load.join(10)
    received, elapsed = messages.count, messages.last - float(result["first_publish"])
    return {
        "messages_published": int(result["acked"]),
        "messages_received": received,
        "readings_received": received * values,
        "seconds": elapsed,
        "rate": received * values / elapsed if elapsed > 0 else 0.0,
        "messages_per_s": received / elapsed if elapsed > 0 else 0.0,
        "subscriber_cpu_s": cpu,
        "publisher_cpu_s": float(result["cpu_s"]),
    }


def influx_ceiling(args: argparse.Namespace, influx: InfluxDB) -> dict[str, Any]:
    """A bare writer: gzip line-protocol batches of 5000 points to /write, one request at a time."""
    values = args.values_per_message
    devices = device_ids(args.sensors, values)
    site = bench_site("ceiling", devices, values)
    catalog = SensorCatalog(site)
    keys = [series_key(info.id, info) for info in catalog]
    database = "bench_ceiling"
    base_ns = time.time_ns() - 3600 * 10**9
    with httpx.Client(base_url=influx.url, timeout=60) as client:
        client.post("/query", params={"q": f'CREATE DATABASE "{database}"'}).raise_for_status()
        written = 0
        post_time = 0.0
        batches = 0
        started = time.perf_counter()
        deadline = started + args.seconds
        while time.perf_counter() < deadline:
            lines = []
            for i in range(written, written + WRITE_BATCH):
                n, k = divmod(i, len(keys))
                lines.append(f"{keys[k]} value={n}.{k:03d},quality=0i {base_ns + n * 1000}")
            body = gzip.compress("\n".join(lines).encode(), 1)
            t0 = time.perf_counter()
            resp = client.post("/write", params={"db": database, "precision": "n"}, content=body,
                               headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})
            post_time += time.perf_counter() - t0
            if resp.status_code != 204:
                raise RuntimeError(f"InfluxDB /write: {resp.status_code} {resp.text[:200]}")
            written += WRITE_BATCH
            batches += 1
        elapsed = time.perf_counter() - started
    points = sum(int(row[1]) for row in influx_rows(influx.url, database, "SELECT count(value) FROM reading"))
    return {
        "points_written": written,
        "points_stored": points,
        "batches": batches,
        "seconds": elapsed,
        "rate": written / elapsed if elapsed > 0 else 0.0,
        "rate_server_time_only": written / post_time if post_time > 0 else 0.0,
    }


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to publish (default 20)")
    parser.add_argument("--sensors", type=int, default=100, help="MQTT sensors (default 100)")
    parser.add_argument("--values-per-message", type=int, default=50,
                        help="JSON fields per message, one sensor each (default 50)")
    parser.add_argument("--rate", type=float, default=None,
                        help="readings/s to publish (default: as fast as the broker acknowledges)")
    parser.add_argument("--publisher", choices=PUBLISHERS, default="paho",
                        help="the load generator: paho (Python) or mqttjs (Node.js, MQTT.js from the "
                             "Node-RED install; several times cheaper per message); default paho")
    parser.add_argument("--publishers", type=int, default=1,
                        help="publisher processes, the devices split over them (default 1)")
    parser.add_argument("--stall-timeout", type=float, default=30.0,
                        help="stop draining after this many seconds without a stored reading")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="the collector's writer batch size (default: the setting's default, 5000)")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval for the collector process, s (diagnostic; "
                             "default the roles' 0.0005, pumpwatch.runtime; Python's is 0.005)")
    parser.add_argument("--commit-window", type=float, default=None,
                        help="the pipeline's group-commit window, s (diagnostic; default the pipeline's)")
    parser.add_argument("--watchdog", type=float, default=1800.0,
                        help="abort with every thread's stack after this many seconds (default 1800)")
    parser.add_argument("--collectors", type=int, default=1,
                        help="collectors in one shared-subscription group, each its own process (default 1)")
    parser.add_argument("--no-ceilings", action="store_true", help="skip the bare subscriber and writer")
    parser.add_argument("--name", default="ingest", help="results file bench/results/<name>.json")
    args = parser.parse_args(argv)
    if args.sensors <= 0 or args.values_per_message <= 0 or args.seconds <= 0:
        parser.error("--sensors, --values-per-message and --seconds must be positive")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")
    if args.publishers <= 0 or args.collectors <= 0:
        parser.error("--publishers and --collectors must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    else:
        favour_event_loop()  # as every `pumpwatch` role runs
    # A benchmark stops by itself: dump every thread's stack and exit if a run hangs.
    faulthandler.dump_traceback_later(args.watchdog, exit=True)
    state_dir = Path(tempfile.mkdtemp(prefix="pumpwatch-bench-ingest-"))
    try:
        with Mosquitto() as broker, InfluxDB() as influx:
            collector = asyncio.run(run_collector(args, broker, influx, state_dir))
            ceilings: dict[str, Any] = {}
            if not args.no_ceilings:
                ceilings["mqtt_subscriber"] = mqtt_ceiling(args, broker)
                ceilings["influx_writer"] = influx_ceiling(args, influx)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    c = collector
    # At a fixed --rate the end-to-end figure cannot exceed the offered rate: there the collector meets
    # the target when the offered rate is the target's and it kept up (stored all within 2 s).
    kept_up = c["drain_after_publish_seconds"] <= 2.0
    fast_enough = c["sustained_rate"] >= TARGET_RATE or (
        c["requested_rate"] is not None and c["publish_rate"] >= 0.999 * TARGET_RATE and kept_up)
    passed = fast_enough and c["lost"] == 0 and not c["stalled"]
    report(collector, ceilings, passed)
    path = write_results(args.name, {
        "benchmark": "ingest",
        "command": " ".join(["python -m bench.ingest", *sys.argv[1:]]),
        "machine": machine(),
        "versions": {"mosquitto": tool_version(["mosquitto", "-h"]),
                     "influxdb": tool_version(["influxd", "version"])},
        "target": {"readings_per_s": TARGET_RATE, "lost": 0, "met": passed},
        "collector": collector,
        "ceilings": ceilings,
    })
    print(f"\nresults: {path}")
    return 0


def report(c: dict[str, Any], ceilings: dict[str, Any], passed: bool) -> None:
    rate_note = f"{c['requested_rate']:,.0f}/s" if c["requested_rate"] else "max"
    print_table(
        f"Ingest: {c['sensors']} sensors, {c['values_per_message']} values/message, "
        + (f"{c['collectors']} collectors in one group, " if c.get("collectors", 1) > 1 else "") +
        f"{c['publish_seconds']:.0f} s publishing at {rate_note}",
        ["row", "published", "stored", "lost", "dup", "readings/s", "CPU s", "CPU % core", "peak RSS MB"],
        [["collector end to end", c["readings_published"], c["readings_stored_distinct"], c["lost"],
          c["duplicated"], c["sustained_rate"], c["collector_cpu_s"], c["collector_cpu_pct_of_core"],
          c["collector_peak_rss_mb"]],
         *([["ceiling: bare paho subscriber QoS 1", m["messages_published"] * c["values_per_message"],
             m["readings_received"], "", "", m["rate"], m["subscriber_cpu_s"], "", ""]]
           if (m := ceilings.get("mqtt_subscriber")) else []),
         *([["ceiling: bare /write, 5000/batch", w["points_written"], w["points_stored"],
             w["points_written"] - w["points_stored"], "", w["rate"], "", "", ""]]
           if (w := ceilings.get("influx_writer")) else []),
         ["target", "", "", 0, "", TARGET_RATE, "", "", ""]],
    )
    print(f"\npublish rate {c['publish_rate']:,.0f} readings/s; end to end {c['end_to_end_seconds']:.1f} s "
          f"(drain {c['drain_after_publish_seconds']:.1f} s after the last publish); peak buffer depth "
          f"{c['peak_buffer_depth']:,}; {c['collector_cpu_us_per_reading']:.1f} µs CPU per reading; "
          f"rejected {c['rejected']:.0f}")
    if "intake_seconds" in c:
        after = c["writer_rate_after_intake"]
        print(f"MQTT intake took {c['intake_seconds']:.1f} s ({c['intake_rate']:,.0f} readings/s accepted); "
              f"the writer stored {c['writer_rate_during_intake']:,.0f} readings/s meanwhile"
              + (f" and {after:,.0f} readings/s after it" if after is not None else ""))
    print_table("CPU seconds during the collector run", ["where", "CPU s"],
                [*[[f"collector: {k}", v] for k, v in c["collector_threads_cpu_s"].items() if v >= 0.01],
                 *[[f"collector {n + 2} of the group (own process)", v]
                   for n, v in enumerate(c.get("members_cpu_s", []))],
                 [f"publisher: {c['publisher']['kind']} x {c['publisher']['processes']} "
                  f"({1e6 * c['publisher_cpu_s'] / max(c['messages_published'], 1):.1f} µs / message)",
                  c["publisher_cpu_s"]],
                 *[[k, v] for k, v in c["other_processes_cpu_s"].items()]])
    verdict = "MET" if passed else "NOT MET"
    how = "kept up with the offered rate" if c["requested_rate"] else "stored / (last stored - first publish)"
    print(f"\ntarget >= {TARGET_RATE:,.0f} readings/s end to end with 0 lost ({how}): {verdict}")
    print(c["status_line"])
    if note := other_load_note(c["foreign_cpu_pct_of_core"]):
        print(note)


if __name__ == "__main__":
    raise SystemExit(main())
