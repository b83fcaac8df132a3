"""Memory soak: every production role as its own OS process under steady load, sampled all along.

    python -m bench.soak [--minutes 10] [--rate 5000] [--warmup 60] [--interval 5] [--clients 3] [--name N]

On real Mosquitto, InfluxDB and PostgreSQL (tests.support.services), `pumpwatch simulate` (the demo site's two
pump rooms: Modbus PLCs and wireless sensors), `pumpwatch collect`, `pumpwatch serve` and
`pumpwatch schedule` each run as their own process. The site is examples/site.yaml on free Modbus
ports plus a room `soak` of MQTT flow sensors; a publisher process (bench.ingest's) sends `--rate`
readings/s to it at QoS 1 for the whole run. `--clients` API clients each hold a live stream
(`/api/live?room=dom`) and poll `/api/rooms/dom/latest` and `/api/tasks` every second.

Every `--interval` seconds each pumpwatch process's RSS, USS, CPU, open fds and threads are sampled.
Per process: RSS at start (the first sample after `--warmup`), at the end, the maximum, and the growth
slope (MB/hour, least squares over the samples after the warm-up). After the publisher stops, the
`soak` room's readings in InfluxDB are counted exactly against those published.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import yaml

from bench.common import machine, print_table, system_busy, write_results
from bench.ingest import device_ids, influx_rows, spawn_publisher
from bench.memory import ProcessSample, as_rows, sample, summarise
from tests.support.mqtt import create_session
from tests.support.processes import PumpwatchProcess

EXAMPLE_SITE = Path(__file__).resolve().parents[1] / "examples" / "site.yaml"
DATABASE = "soak"
ROLES = ("simulator", "collector", "api", "scheduler")


def soak_site(prefix: str, devices: list[str], values: int, modbus_ports: tuple[int, ...], *,
              load: bool = True) -> str:
    """The demo site on the given Modbus ports; with `load`, room `soak` fed by a JSON map `<prefix>/{dev}`.

    The simulator gets the site without the load room: it would publish simulated values for its sensors.
    """
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_SITE.read_text(encoding="utf-8"))
    for device, port in zip(data["modbus"], modbus_ports, strict=True):
        device["port"] = port
    if not load:
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    data["rooms"].append({
        "id": "soak", "name": {"zh": "负载", "en": "Load"},
        "sensors": [{"id": f"{dev}-s{j}", "kind": "flow", "range": [0, 1e12], "source": "mqtt",
                     "expected_period": 3600} for dev in devices for j in range(values)],
    })
    data["mqtt"].append({"topic": f"{prefix}/{{dev}}", "format": "json",
                         "values": [{"sensor": f"{{dev}}-s{j}", "field": f"s{j}"} for j in range(values)]})
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@dataclass
class ClientCounts:
    """What the API clients saw."""

    requests: int = 0
    errors: int = 0
    stream_events: int = 0
    stream_reconnects: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


async def api_client(url: str, username: str, password: str, counts: ClientCounts,
                     stop: asyncio.Event) -> None:
    """One user: a live stream of room `dom`, and `latest` + `tasks` every second, until `stop`."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        resp = await http.post("/api/auth/token", data={"username": username, "password": password})
        resp.raise_for_status()
        headers = {"Authorization": f"Bearer {resp.json()['access_token']}"}

        async def stream() -> None:
            while not stop.is_set():
                try:
                    async with http.stream("GET", "/api/live", params={"room": "dom"}, headers=headers,
                                           timeout=httpx.Timeout(10, read=60)) as live:
                        async for line in live.aiter_lines():
                            if line.startswith("event:"):
                                counts.stream_events += 1
                except httpx.HTTPError:
                    counts.stream_reconnects += 1
                    await asyncio.sleep(1)

        async def poll() -> None:
            while not stop.is_set():
                for path, params in (("/api/rooms/dom/latest", {}), ("/api/tasks", {"limit": 50})):
                    try:
                        got = await http.get(path, params=params, headers=headers)
                        key = str(got.status_code)
                    except httpx.HTTPError as err:
                        key = type(err).__name__
                    counts.requests += 1
                    counts.statuses[key] = counts.statuses.get(key, 0) + 1
                    counts.errors += key != "200"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

        streaming = asyncio.create_task(stream(), name=f"live-{username}")
        try:
            await poll()
        finally:
            streaming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await streaming


def soak_counts(influx_url: str) -> tuple[int, int]:
    """(points, distinct values summed over sensors) of room `soak`."""
    where = "FROM reading WHERE room = 'soak'"
    points = sum(int(row[1]) for row in influx_rows(influx_url, DATABASE, f"SELECT count(value) {where}"))
    distinct = sum(int(row[1]) for row in influx_rows(
        influx_url, DATABASE, f"SELECT count(distinct(value)) {where} GROUP BY sensor"))
    return points, distinct


async def wait_for_text(role: PumpwatchProcess, text: str, within: float = 60.0) -> None:
    """Until `text` is in the role's log; RuntimeError with the log tail if it dies or takes too long."""
    deadline = time.monotonic() + within
    while text not in role.text():
        if role.proc is not None and role.proc.poll() is not None:
            raise RuntimeError(f"{role.name} exited:\n{role.text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{role.name}: no {text!r} within {within:.0f} s:\n{role.text()[-2000:]}")
        await asyncio.sleep(0.2)


async def run_soak(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Start everything, sample for the whole run, drain and count; the raw figures."""
    from maintenance.auth import AuthService
    from maintenance.db import make_engine, session_factory, upgrade
    from pumpwatch.clock import SystemClock
    from tests.support.services import InfluxDB, Mosquitto, Postgres, free_ports

    values = args.values_per_message
    devices = device_ids(args.sensors, values)
    prefix = f"soak-{uuid.uuid4().hex[:6]}"
    site, simulated = work / "site.yaml", work / "simulated-site.yaml"
    ports = free_ports(2)
    site.write_text(soak_site(prefix, devices, values, ports), encoding="utf-8")
    simulated.write_text(soak_site(prefix, devices, values, ports, load=False), encoding="utf-8")
    users = [(f"soak{i}", f"soak-password-{i}") for i in range(args.clients)]
    seconds = args.minutes * 60
    with Mosquitto() as broker, InfluxDB() as influx, Postgres() as pg:
        engine = make_engine(pg.dsn)
        upgrade(engine)
        auth = AuthService(session_factory(engine), SystemClock())
        for username, password in users:
            auth.create_user(username, password, ["operator"])
        engine.dispose()
        collector_id = f"soak-collector-{uuid.uuid4().hex[:6]}"
        await asyncio.to_thread(create_session, broker.port, collector_id, f"{prefix}/+")
        base = dict(os.environ, PUMPWATCH_INFLUX__URL=influx.url, PUMPWATCH_INFLUX__DATABASE=DATABASE,
                    PUMPWATCH_API__DATABASE_URL=pg.dsn)
        where = ["--site", str(site), "--mqtt", broker.url]

        def role(name: str, args_: list[str], client_id: str | None = None) -> PumpwatchProcess:
            full = dict(base, PUMPWATCH_COLLECTOR__STATE_DIR=str(work / name),
                        PUMPWATCH_COLLECTOR__CLIENT_ID=client_id or f"soak-{name}-{uuid.uuid4().hex[:6]}")
            return PumpwatchProcess(name, args_, full, work / f"{name}.log")

        roles = {
            "simulator": role("simulator", ["simulate", "--site", str(simulated), "--mqtt", broker.url]),
            "collector": role("collector", ["collect", *where, "--status-every", "10"], collector_id),
            "api": role("api", ["serve", *where, "--port", "0"]),
            "scheduler": role("scheduler", ["schedule", *where]),
        }
        stop = asyncio.Event()
        counts = ClientCounts()
        samples: dict[str, list[ProcessSample]] = {name: [] for name in roles}
        publisher = None
        try:
            for r in roles.values():
                r.start()
            await wait_for_text(roles["simulator"], "Modbus TCP:")
            await wait_for_text(roles["collector"], "MQTT connected")
            await wait_for_text(roles["scheduler"], "Inspection scheduler:")
            url = await asyncio.to_thread(roles["api"].wait_url)
            procs = {name: psutil.Process(r.proc.pid) for name, r in roles.items() if r.proc is not None}
            publisher, conn = await asyncio.to_thread(spawn_publisher, broker.port, prefix, devices, values,
                                                      seconds, args.rate)
            clients = [asyncio.create_task(api_client(url, u, p, counts, stop), name=f"client-{u}")
                       for u, p in users]
            started = time.monotonic()
            busy0 = system_busy()
            conn.send("go")
            print(f"soak: {args.minutes:g} min at {args.rate:,.0f} readings/s, sampling every "
                  f"{args.interval:g} s; role logs in {work} (kept with --keep)", flush=True)
            next_report = started + 60
            while not conn.poll():
                t = time.monotonic() - started
                for name, proc in procs.items():
                    samples[name].append(sample(proc, t))
                if time.monotonic() >= next_report:
                    next_report += 60
                    print(f"  {t / 60:4.1f} min: " + ", ".join(
                        f"{name} {s[-1].rss_mb:.0f} MB" for name, s in samples.items()), flush=True)
                for r in roles.values():
                    if r.proc is not None and r.proc.poll() is not None:
                        raise RuntimeError(f"{r.name} exited:\n{r.text()[-2000:]}")
                await asyncio.sleep(max(0.0, started + len(samples["collector"]) * args.interval
                                        - time.monotonic()))
            published_info: dict[str, Any] = conn.recv()
            elapsed = time.monotonic() - started
            foreign = system_busy() - busy0 - sum(s[-1].cpu_s - s[0].cpu_s for s in samples.values())
            stop.set()
            await asyncio.gather(*clients, return_exceptions=True)
            published = int(published_info["acked"]) * values
            deadline = time.monotonic() + 180
            stored = await asyncio.to_thread(soak_counts, influx.url)
            while stored[1] < published and time.monotonic() < deadline:
                await asyncio.sleep(2)
                stored = await asyncio.to_thread(soak_counts, influx.url)
            status = [line for line in roles["collector"].text().splitlines()
                      if line.startswith("collector:")]
        finally:
            stop.set()
            if publisher is not None and publisher.is_alive():
                publisher.terminate()
            for r in roles.values():
                r.stop()
        tracebacks = [name for name, r in roles.items() if "Traceback" in r.text()]
    return {
        "elapsed_s": round(elapsed, 1),
        "published": published, "stored_points": stored[0], "stored_distinct": stored[1],
        "lost": published - stored[1], "duplicated": stored[0] - stored[1],
        "publisher": published_info,
        "api_clients": {"clients": args.clients, "requests": counts.requests, "errors": counts.errors,
                        "statuses": counts.statuses, "stream_events": counts.stream_events,
                        "stream_reconnects": counts.stream_reconnects},
        "outside_roles_cpu_pct_of_core": foreign / elapsed * 100,
        "collector_status": status[-1:], "roles_with_tracebacks": tracebacks,
        "processes": {name: summarise(s, args.warmup) for name, s in samples.items()},
        "samples": {name: as_rows(s) for name, s in samples.items()},
    }


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    """The tables."""
    rows = []
    for name, p in result["processes"].items():
        rows.append([name, p["rss_start_mb"], p["rss_end_mb"], p["rss_max_mb"], p["rss_growth_mb_per_h"],
                     p["rss_growth_late_mb_per_h"],
                     p.get("uss_start_mb", float("nan")), p.get("uss_end_mb", float("nan")),
                     p.get("uss_growth_mb_per_h", float("nan")), p["cpu_pct_of_core"],
                     f"{p['fds_start']}->{p['fds_end']}", f"{p['threads_start']}->{p['threads_end']}"])
    print_table(f"Memory over {args.minutes:g} min at {args.rate:,.0f} readings/s "
                f"(start = first sample after {args.warmup:g} s warm-up; MB)",
                ["process", "RSS start", "RSS end", "RSS max", "RSS MB/h", "2nd half MB/h", "USS start",
                 "USS end", "USS MB/h", "CPU % core", "fds", "threads"], rows)
    c = result["api_clients"]
    print_table("Readings and API clients",
                ["published", "stored", "lost", "duplicated", "API requests", "API errors", "stream events",
                 "stream reconnects"],
                [[result["published"], result["stored_distinct"], result["lost"], result["duplicated"],
                  c["requests"], c["errors"], c["stream_events"], c["stream_reconnects"]]])
    print(f"CPU outside the pumpwatch roles (servers, publisher, clients, other users of the machine): "
          f"{result['outside_roles_cpu_pct_of_core']:.0f}% of a core")
    if result["roles_with_tracebacks"]:
        print(f"WARNING: tracebacks in the logs of {', '.join(result['roles_with_tracebacks'])}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load (default 10)")
    parser.add_argument("--rate", type=float, default=5000.0, help="MQTT readings/s (default 5000)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the start figures")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples (default 5)")
    parser.add_argument("--clients", type=int, default=3, help="API clients (default 3)")
    parser.add_argument("--sensors", type=int, default=100, help="MQTT load sensors (default 100)")
    parser.add_argument("--values-per-message", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--name", default="soak", help="results file name (default soak)")
    args = parser.parse_args(argv)
    if args.warmup >= args.minutes * 60:
        parser.error("--warmup must be shorter than the run")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the soak, print the tables, write bench/results/soak.json."""
    args = parse_args(argv)
    faulthandler.dump_traceback_later(args.minutes * 60 + 600, exit=True)  # a hung run still ends
    work = Path(tempfile.mkdtemp(prefix="pumpwatch-soak-"))
    result = asyncio.run(run_soak(args, work))
    report(result, args)
    path = write_results(args.name, {"benchmark": "soak", "command": "python -m bench.soak " + " ".join(
        sys.argv[1:] if argv is None else argv), "machine": machine(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("keep", "name")}, **result})
    print(f"results: {path}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
