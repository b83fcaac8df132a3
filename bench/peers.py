"""Peers benchmark: PumpWatch, the ceilings and Node-RED side by side on the same servers and load.

    python -m bench.peers [--seconds 20] [--rate 20000|max] [--devices 50] [--modbus-seconds 20]

One Mosquitto and one InfluxDB (tests.support.services) serve every phase; each phase writes its own
database, and only one phase runs at a time:

1. Modbus: `--devices` simulated devices x `--registers` holding registers every `--interval`
   (bench.modbus_poll's servers, in their own process), polled first by PumpWatch's CollectorService
   writing to InfluxDB (in its own process), then by Node-RED (one modbus-read per device -> influxdb out).
2. MQTT ingest at the same offered load (bench.ingest's publisher and payloads): PumpWatch's collector
   (bench.ingest.run_collector), then Node-RED (mqtt in -> function -> join -> influxdb batch), then the
   ceilings: a bare paho subscriber and a bare line-protocol writer (bench.ingest).

Node-RED is installed with npm into a cache directory on the first run (bench.nodered).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import logging
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psutil  # type: ignore[import-untyped]
from paho.mqtt.enums import CallbackAPIVersion

from bench import ingest, modbus_poll
from bench.common import (
    machine,
    other_load_note,
    print_table,
    process_cpu,
    system_busy,
    tool_version,
    write_results,
)
from bench.goals import run_goals
from bench.load import PUBLISHERS
from bench.nodered import NodeRedProcess, default_home, install, peak_rss_mb, reset_peak_rss
from bench.nodered_flows import JOIN_MESSAGES, modbus_flow, mqtt_flow
from collector.service import CollectorService
from pumpwatch.clock import SystemClock
from pumpwatch.runtime import favour_event_loop
from pumpwatch.settings import CollectorSettings, InfluxSettings, Settings
from pumpwatch.site import ModbusDevice
from tests.support.services import HOST, InfluxDB, Mosquitto

DEFAULT_RATE = 20_000.0  # readings/s offered to every ingest phase: within what Node-RED can take here
POLL = 0.5  # s between InfluxDB counts while Node-RED takes messages (a fifth of it once publishing ended)

log = logging.getLogger("bench.peers")


# --- shared measuring -----------------------------------------------------------------------------


class LoadMeter:
    """CPU over a window: the servers (Mosquitto, InfluxDB), and the load from outside this process tree."""

    def __init__(self) -> None:
        me = psutil.Process()
        self.cpu0 = {p.pid: process_cpu(p) for p in [me, *me.children(recursive=True)]}
        self.busy0, self.t0 = system_busy(), time.time()

    def read(self, exited_cpu_s: float = 0.0) -> dict[str, float]:
        """CPU s of Mosquitto and InfluxDB, and % of one core used outside this process tree, since
        the start (`exited_cpu_s`: CPU of children that have already gone, such as the publisher)."""
        me = psutil.Process()
        ours = 0.0
        servers = {"mosquitto": 0.0, "influxd": 0.0}
        for p in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                used = process_cpu(p) - self.cpu0.get(p.pid, 0.0)
                ours += used
                if (name := p.name()) in servers:
                    servers[name] += used
        busy, wall = system_busy() - self.busy0, time.time() - self.t0
        return {"mosquitto_cpu_s": servers["mosquitto"], "influxdb_cpu_s": servers["influxd"],
                "foreign_cpu_pct_of_core": 100 * (busy - ours - exited_cpu_s) / wall if wall > 0 else 0.0}


def create_database(url: str, database: str) -> None:
    """CREATE DATABASE (idempotent)."""
    httpx.post(f"{url}/query", params={"q": f'CREATE DATABASE "{database}"'}, timeout=30).raise_for_status()


def points_per_sensor(url: str, database: str, where: str) -> list[int]:
    """Points of each sensor in `reading` that match an InfluxQL condition (sensors with none are absent)."""
    return [int(row[1]) for row in ingest.influx_rows(
        url, database, f"SELECT count(value) FROM reading WHERE {where} GROUP BY sensor")]


# --- Modbus phases --------------------------------------------------------------------------------


def measure_modbus(args: argparse.Namespace, devices: Sequence[ModbusDevice], url: str, database: str,
                   poller: psutil.Process, servers: Connection) -> dict[str, Any]:
    """Wait until every sensor has points, then measure a window of `--modbus-seconds`: points stored
    in it (by timestamp), per-sensor cycles, requests served, CPU of the polling process."""
    sensors = sum(len(d.points) for d in devices)
    deadline = time.monotonic() + 60
    while len(points_per_sensor(url, database, "time > now() - 3s")) < sensors:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{database}: not every sensor reached InfluxDB within 60 s")
        time.sleep(0.5)
    meter = LoadMeter()
    reads0 = modbus_poll.requests_served(servers)
    t0, cpu0 = time.time(), process_cpu(poller)
    time.sleep(args.modbus_seconds)
    t1, cpu = time.time(), process_cpu(poller) - cpu0
    reads = modbus_poll.requests_served(servers) - reads0
    load = meter.read()
    time.sleep(args.interval + 3)  # the last polls of the window reach InfluxDB
    counts = points_per_sensor(url, database, f"time >= {int(t0 * 1e9)} AND time < {int(t1 * 1e9)}")
    counts += [0] * (sensors - len(counts))
    stored, elapsed = sum(counts), t1 - t0
    return {
        "database": database,
        "seconds": elapsed,
        "readings_stored": stored,
        "readings_per_s": stored / elapsed,
        "expected_readings_per_s": sensors / args.interval,
        "cycles_expected": args.modbus_seconds / args.interval,
        "cycles_min": min(counts),
        "cycles_mean": stored / sensors,
        "cycles_max": max(counts),
        "requests_per_s": reads / elapsed,
        "cpu_s": cpu,
        "cpu_pct_of_core": 100 * cpu / elapsed,
        "cpu_us_per_reading": 1e6 * cpu / stored if stored else float("nan"),
        **load,
    }


def collector_main(devices: list[ModbusDevice], url: str, database: str, state_dir: Path) -> None:
    """PumpWatch's CollectorService polling the devices into InfluxDB until interrupted (own process)."""
    logging.basicConfig(level=logging.WARNING)
    favour_event_loop()  # as every `pumpwatch` role runs
    settings = Settings(influx=InfluxSettings(url=url, database=database),
                        collector=CollectorSettings(state_dir=state_dir))
    service = CollectorService(modbus_poll.bench_site(devices), settings, SystemClock(), None)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(service.run())


def pumpwatch_modbus(args: argparse.Namespace, devices: list[ModbusDevice], influx: InfluxDB,
                     state_dir: Path, servers: Connection) -> dict[str, Any]:
    """PumpWatch's collector in its own process (so CPU and memory are its own), measured from here."""
    database = "pumpwatch_modbus"
    create_database(influx.url, database)
    proc = mp.get_context("spawn").Process(target=collector_main, name="pumpwatch-collector", daemon=True,
                                           args=(devices, influx.url, database, state_dir))
    proc.start()
    assert proc.pid is not None
    try:
        result = measure_modbus(args, devices, influx.url, database, psutil.Process(proc.pid), servers)
        result["peak_rss_mb"] = peak_rss_mb(proc.pid)
    finally:
        # SIGINT: the collector is cancelled as on Ctrl-C; it must stop by itself within 10 s
        if proc.pid is not None and proc.is_alive():
            os.kill(proc.pid, signal.SIGINT)
        proc.join(10)
        stopped = not proc.is_alive()
        if not stopped:
            log.warning("the collector did not stop within 10 s of SIGINT: killed")
            proc.kill()
            proc.join(5)
    return {**result, "stopped_on_sigint": stopped}


def nodered_modbus(args: argparse.Namespace, devices: list[ModbusDevice], influx: InfluxDB, home: Path,
                   work: Path, servers: Connection) -> dict[str, Any]:
    """Node-RED polling the same devices into its own database."""
    database = "nodered_modbus"
    create_database(influx.url, database)
    red = NodeRedProcess(home, work / "nodered-modbus")
    red.start(*modbus_flow(devices, influx.port, database))
    try:
        result = measure_modbus(args, devices, influx.url, database, red.process, servers)
        result["peak_rss_mb"] = red.peak_rss_mb()
    finally:
        red.stop()
    result["errors_logged"] = red.text().count("[error]")
    result["flow"] = "modbus-read per device (own modbus-client) -> function -> influxdb out"
    return result


def modbus_phases(args: argparse.Namespace, influx: InfluxDB, home: Path, work: Path) -> dict[str, Any]:
    """Both pollers in turn against one process of simulated devices."""
    proc, servers, ports = modbus_poll.spawn_servers(args)
    try:
        devices = modbus_poll.make_devices(args.devices, args.registers, args.stride, args.interval, ports)
        (work / "modbus-state").mkdir(parents=True, exist_ok=True)
        pumpwatch = pumpwatch_modbus(args, devices, influx, work / "modbus-state", servers)
        nodered = nodered_modbus(args, devices, influx, home, work, servers)
    finally:
        modbus_poll.stop_servers(proc, servers)
    return {"pumpwatch": pumpwatch, "nodered": nodered}


# --- MQTT ingest phases ---------------------------------------------------------------------------


def probe(port: int, prefix: str, url: str, database: str) -> None:
    """Publish probe messages until Node-RED stored one (its subscription and flow work); then wait
    out the join's timeout, so a probe still on its way lands before the counting starts."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-probe-{uuid.uuid4().hex[:6]}")
    client.connect(HOST, port)
    client.loop_start()
    deadline = time.monotonic() + 30
    attempt = 0
    try:
        while not ingest.influx_rows(url, database, "SELECT count(value) FROM reading"):
            if time.monotonic() > deadline:
                raise RuntimeError("Node-RED did not store the probe message within 30 s")
            attempt += 1
            client.publish(f"{prefix}/probe", f'{{"s0": -{attempt}}}', qos=1).wait_for_publish(5)
            time.sleep(1.5)
    finally:
        client.disconnect()
        client.loop_stop()
    time.sleep(1.5)


def nodered_ingest(args: argparse.Namespace, broker: Mosquitto, influx: InfluxDB, home: Path,
                   work: Path) -> dict[str, Any]:
    """Node-RED taking the publisher's messages into its own database; counted like the collector."""
    values = args.values_per_message
    devices = ingest.device_ids(args.sensors, values)
    prefix = f"nodered-{uuid.uuid4().hex[:6]}"
    database = "nodered_ingest"
    create_database(influx.url, database)
    red = NodeRedProcess(home, work / "nodered-ingest")
    red.start(*mqtt_flow(broker.port, f"{prefix}/+", influx.port, database))
    try:
        red.wait_for("Connected to broker", within=30)
        probe(broker.port, prefix, influx.url, database)
        probe_points, probe_values = ingest.stored_counts(influx.url, database)
        node = red.process
        meter = LoadMeter()
        cpu0 = process_cpu(node)
        publishers = ingest.load_for(args, broker.port, prefix, devices)
        publishers.go()
        result: dict[str, Any] | None = None
        stored = last = 0
        last_change = time.time()
        stalled = False
        timeline: list[dict[str, float]] = []
        t_go = time.time()
        while True:
            time.sleep(POLL if result is None else POLL / 5)
            now = time.time()
            stored = sum(int(row[1]) for row in ingest.influx_rows(
                influx.url, database, "SELECT count(value) FROM reading")) - probe_points
            timeline.append({"t": round(now - t_go, 2), "stored": stored,
                             "rss_mb": node.memory_info().rss / 2**20})
            if stored != last:
                last, last_change = stored, now
            if result is None and (result := publishers.poll()) is not None and "error" in result:
                raise RuntimeError(f"publisher: {result['error']}")
            if result is not None and stored >= int(result["acked"]) * values:
                break
            quiet = now - last_change > args.stall_timeout
            if quiet and (result is not None or now - t_go > args.seconds + 60):
                stalled = True
                break
        cpu = process_cpu(node) - cpu0
        assert result is not None
        load = meter.read(float(result["cpu_s"]))
        peak_rss = red.peak_rss_mb()
        publishers.join(30)
    finally:
        red.stop()
    points, distinct = ingest.stored_counts(influx.url, database)
    points, distinct = points - probe_points, distinct - probe_values
    published = int(result["acked"]) * values
    elapsed = last_change - float(result["first_publish"])
    return {
        "database": database,
        "flow": f"mqtt in (QoS 1, JSON) -> function -> join ({JOIN_MESSAGES} messages or 1 s) -> "
                "function (flatten) -> influxdb batch",
        "messages_published": int(result["acked"]),
        **ingest.delivery(published, points, distinct),
        "publish_rate": published / (float(result["last_ack"]) - float(result["first_publish"])),
        "end_to_end_seconds": elapsed,
        "drain_after_publish_seconds": last_change - float(result["last_publish"]),
        "sustained_rate": distinct / elapsed if elapsed > 0 else 0.0,
        "cpu_s": cpu,
        "cpu_pct_of_core": 100 * cpu / elapsed if elapsed > 0 else 0.0,
        "cpu_us_per_reading": 1e6 * cpu / distinct if distinct else float("nan"),
        "peak_rss_mb": peak_rss,
        "publisher_cpu_s": float(result["cpu_s"]),
        **load,
        "stalled": stalled,
        "errors_logged": red.text().count("[error]"),
        "timeline": timeline,
    }


def ingest_phases(args: argparse.Namespace, broker: Mosquitto, influx: InfluxDB, home: Path,
                  work: Path) -> dict[str, Any]:
    """PumpWatch, Node-RED and the two ceilings in turn, at the same offered load."""
    (work / "ingest-state").mkdir(parents=True, exist_ok=True)
    reset_peak_rss(os.getpid())
    pumpwatch = asyncio.run(ingest.run_collector(args, broker, influx, work / "ingest-state"))
    pumpwatch["peak_rss_mb"] = peak_rss_mb(os.getpid())  # this phase only (run_collector's is the process's)
    for key, name in (("mosquitto_cpu_s", "mosquitto "), ("influxdb_cpu_s", "influxd ")):
        pumpwatch[key] = sum(v for k, v in pumpwatch["other_processes_cpu_s"].items() if k.startswith(name))
    nodered = nodered_ingest(args, broker, influx, home, work)
    subscriber = ingest.mqtt_ceiling(args, broker)
    subscriber["cpu_us_per_reading"] = (1e6 * subscriber["subscriber_cpu_s"] / subscriber["readings_received"]
                                        if subscriber["readings_received"] else float("nan"))
    writer = ingest.influx_ceiling(args, influx)
    return {"pumpwatch": pumpwatch, "nodered": nodered, "mqtt_subscriber": subscriber,
            "influx_writer": writer}


# --- ratios and report ----------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float:
    """a / b, NaN when either is missing or b is zero."""
    return a / b if a is not None and b else float("nan")


def ratios(modbus: dict[str, Any] | None, flows: dict[str, Any] | None) -> dict[str, float]:
    """PumpWatch / ceiling and PumpWatch / Node-RED: readings/s and CPU per reading."""
    out: dict[str, float] = {}
    if flows:
        p, n, s, w = flows["pumpwatch"], flows["nodered"], flows["mqtt_subscriber"], flows["influx_writer"]
        out |= {
            "ingest_rate_pumpwatch_over_mqtt_ceiling": ratio(p["sustained_rate"], s["rate"]),
            "ingest_rate_pumpwatch_over_influx_ceiling": ratio(p["sustained_rate"], w["rate"]),
            "ingest_rate_pumpwatch_over_nodered": ratio(p["sustained_rate"], n["sustained_rate"]),
            "ingest_cpu_per_reading_pumpwatch_over_nodered": ratio(p["collector_cpu_us_per_reading"],
                                                                   n["cpu_us_per_reading"]),
            "ingest_cpu_per_reading_pumpwatch_over_bare_subscriber": ratio(
                p["collector_cpu_us_per_reading"], s["cpu_us_per_reading"]),
        }
    if modbus:
        p, n = modbus["pumpwatch"], modbus["nodered"]
        out |= {
            "modbus_rate_pumpwatch_over_expected": ratio(p["readings_per_s"], p["expected_readings_per_s"]),
            "modbus_rate_pumpwatch_over_nodered": ratio(p["readings_per_s"], n["readings_per_s"]),
            "modbus_cpu_per_reading_pumpwatch_over_nodered": ratio(p["cpu_us_per_reading"],
                                                                   n["cpu_us_per_reading"]),
        }
    return out


def report(args: argparse.Namespace, modbus: dict[str, Any] | None, flows: dict[str, Any] | None,
           quotients: dict[str, float]) -> None:
    if modbus:
        print_table(
            f"Modbus: {args.devices} devices x {args.registers} holding registers every {args.interval:g} s, "
            f"{args.modbus_seconds:g} s measured, into InfluxDB",
            ["poller", "readings/s stored", "expected/s", "cycles/sensor min-mean-max", "expected",
             "requests/s", "CPU % core", "µs CPU/reading", "peak RSS MB", "InfluxDB CPU %",
             "foreign CPU %"],
            [[name, r["readings_per_s"], r["expected_readings_per_s"],
              f"{r['cycles_min']}-{r['cycles_mean']:.1f}-{r['cycles_max']}", r["cycles_expected"],
              r["requests_per_s"], r["cpu_pct_of_core"], r["cpu_us_per_reading"], r["peak_rss_mb"],
              100 * r["influxdb_cpu_s"] / r["seconds"], r["foreign_cpu_pct_of_core"]]
             for name, r in (("PumpWatch collector", modbus["pumpwatch"]), ("Node-RED", modbus["nodered"]))])
    if flows:
        p, n, s, w = flows["pumpwatch"], flows["nodered"], flows["mqtt_subscriber"], flows["influx_writer"]
        rate = f"{args.rate:,.0f}/s" if args.rate else "max rate"
        print_table(
            f"MQTT ingest: {args.sensors} sensors, {args.values_per_message} values/message, QoS 1, "
            f"{args.seconds:g} s publishing at {rate}",
            ["row", "published", "stored", "lost", "dup", "readings/s", "drain s", "CPU s", "CPU % core",
             "µs CPU/reading", "peak RSS MB", "InfluxDB CPU s", "Mosquitto CPU s", "foreign CPU %"],
            [["PumpWatch collector" if args.collectors == 1 else f"PumpWatch, {args.collectors} collectors",
              p["readings_published"], p["readings_stored_distinct"], p["lost"],
              p["duplicated"], p["sustained_rate"], p["drain_after_publish_seconds"], p["collector_cpu_s"],
              p["collector_cpu_pct_of_core"], p["collector_cpu_us_per_reading"], p["peak_rss_mb"],
              p["influxdb_cpu_s"], p["mosquitto_cpu_s"], p["foreign_cpu_pct_of_core"]],
             ["Node-RED", n["readings_published"], n["readings_stored_distinct"], n["lost"], n["duplicated"],
              n["sustained_rate"], n["drain_after_publish_seconds"], n["cpu_s"], n["cpu_pct_of_core"],
              n["cpu_us_per_reading"], n["peak_rss_mb"], n["influxdb_cpu_s"], n["mosquitto_cpu_s"],
              n["foreign_cpu_pct_of_core"]],
             ["ceiling: bare paho subscriber", s["messages_published"] * args.values_per_message,
              s["readings_received"], "", "", s["rate"], "", s["subscriber_cpu_s"], "",
              s["cpu_us_per_reading"], "", "", "", ""],
             ["ceiling: bare /write, 5000/batch", w["points_written"], w["points_stored"],
              w["points_written"] - w["points_stored"], "", w["rate"], "", "", "", "", "", "", "", ""]])
        if n["errors_logged"] or n["stalled"]:
            print(f"Node-RED logged {n['errors_logged']} errors; stalled: {n['stalled']}")
    print_table("PumpWatch relative to the ceilings and to Node-RED", ["ratio", "value"],
                [[k, v] for k, v in quotients.items()])
    for phase, rows in (("modbus", modbus or {}), ("ingest", flows or {})):
        for name, r in rows.items():
            if isinstance(r, dict) and (note := other_load_note(r.get("foreign_cpu_pct_of_core", 0.0))):
                print(f"{phase} {name}: {note}")


def parse_rate(text: str) -> float | None:
    """`--rate`: readings/s, or `max` for as fast as the broker acknowledges."""
    if text == "max":
        return None
    rate = float(text)
    if rate <= 0:
        raise argparse.ArgumentTypeError("--rate must be positive or 'max'")
    return rate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="publishing time per ingest phase (20)")
    parser.add_argument("--rate", type=parse_rate, default=DEFAULT_RATE,
                        help=f"readings/s offered to each ingest phase, or 'max' (default {DEFAULT_RATE:g})")
    parser.add_argument("--sensors", type=int, default=100, help="MQTT sensors (default 100)")
    parser.add_argument("--values-per-message", type=int, default=50, help="JSON fields per message (50)")
    parser.add_argument("--devices", type=int, default=50, help="simulated Modbus devices (default 50)")
    parser.add_argument("--registers", type=int, default=20, help="holding registers per device (20)")
    parser.add_argument("--interval", type=float, default=1.0, help="Modbus poll interval, s (default 1)")
    parser.add_argument("--modbus-seconds", type=float, default=20.0, help="Modbus window per poller (20)")
    parser.add_argument("--stall-timeout", type=float, default=30.0,
                        help="stop draining after this many seconds without a stored reading")
    parser.add_argument("--publisher", choices=PUBLISHERS, default="mqttjs",
                        help="the load generator: mqttjs (Node.js, MQTT.js; default) or paho (Python)")
    parser.add_argument("--publishers", type=int, default=2,
                        help="publisher processes, the devices split over them (default 2)")
    parser.add_argument("--phases", choices=["both", "modbus", "ingest"], default="both")
    parser.add_argument("--node-red-dir", type=Path, default=None,
                        help=f"npm cache of Node-RED and its nodes (default {default_home()})")
    parser.add_argument("--name", default=None,
                        help="results file bench/results/<name>.json (default peers, or peers_goals)")
    parser.add_argument("--goals", action="store_true",
                        help="the collector's speed goals in one run: every shape, Modbus, alarm latency, "
                             "API (bench.goals)")
    parser.add_argument("--max-seconds", type=float, default=10.0,
                        help="--goals: publishing time of each max-rate phase (10)")
    parser.add_argument("--collectors", type=int, default=1,
                        help="PumpWatch collectors in one shared-subscription group, each its own process "
                             "(bench.ingest --collectors; default 1)")
    parser.add_argument("--max-collectors", type=int, default=2,
                        help="--goals: PumpWatch collectors of each max-rate phase (default 2: one per core)")
    args = parser.parse_args(argv)
    args.name = args.name or ("peers_goals" if args.goals else "peers")
    if min(args.seconds, args.modbus_seconds, args.interval) <= 0 or min(args.devices, args.registers) <= 0:
        parser.error("--seconds, --modbus-seconds, --interval, --devices and --registers must be positive")
    if min(args.publishers, args.collectors, args.max_collectors) <= 0:
        parser.error("--publishers, --collectors and --max-collectors must be positive")
    # What bench.ingest and bench.modbus_poll read from their own arguments:
    args.batch_size, args.stride, args.commit_window = None, 1, None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.goals:
        return run_goals(args.seconds, args.max_seconds, args.name, args.max_collectors)
    favour_event_loop()  # the ingest phases' collector runs in this process, as every `pumpwatch` role runs
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    faulthandler.dump_traceback_later(1800 + 4 * args.seconds, exit=True)
    home = args.node_red_dir or default_home()
    versions = install(home)
    work = Path(tempfile.mkdtemp(prefix="pumpwatch-bench-peers-"))
    modbus: dict[str, Any] | None = None
    flows: dict[str, Any] | None = None
    try:
        with Mosquitto() as broker, InfluxDB() as influx:
            if args.phases in ("both", "modbus"):
                modbus = modbus_phases(args, influx, home, work)
            if args.phases in ("both", "ingest"):
                flows = ingest_phases(args, broker, influx, home, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    quotients = ratios(modbus, flows)
    report(args, modbus, flows, quotients)
    path = write_results(args.name, {
        "benchmark": "peers",
        "command": " ".join(["python -m bench.peers", *sys.argv[1:]]),
        "machine": machine(),
        "versions": {"mosquitto": tool_version(["mosquitto", "-h"]),
                     "influxdb": tool_version(["influxd", "version"]),
                     "node": tool_version(["node", "--version"]), **versions},
        "settings": {k: v for k, v in vars(args).items() if not isinstance(v, Path)},
        "ratios": quotients,
        "modbus": modbus,
        "ingest": flows,
    })
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
