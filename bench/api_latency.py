"""API latency: live and task-list routes at saturation and at a dashboard's polling rate; 30-day history.

    python -m bench.api_latency [--clients 50] [--seconds 20] [--interval 1.0] [--jitter 0.1]
                                [--replicas 1] [--days 30] [--stores embedded,influxdb] [--name NAME]

`pumpwatch serve` runs as `--replicas` OS processes on PostgreSQL (state) with, in turn, the embedded
series store and InfluxDB, each first filled with `--days` of 1 Hz readings of one sensor. This
process is the load generator (never the server; a lean HTTP client, `bench.http_client`); the
clients are spread over the replicas:

- closed loop (saturation): `--clients` clients alternate `GET /api/rooms/dom/latest` and
  `GET /api/tasks?limit=50` (200 tasks in the database) with no pause, for `--seconds`;
- open loop (what operators see): each client polls both routes together every `--interval` seconds
  (+- `--jitter` of it), on a fixed schedule whatever the answers do; latency runs from the scheduled
  send time, so a slow answer also counts against the requests queued behind it;
- history: the whole period at a 1 h step, 50 times one after another.

CPU of the server processes, of this process (the clients) and of the database servers is reported
for each phase. Target: p99 <= 50 ms for the live and task-list routes at 50 concurrent clients.
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

from bench.common import (
    machine,
    percentile,
    print_table,
    process_cpu,
    source_digest,
    system_busy,
    write_results,
)
from bench.http_client import Browser
from tests.support.processes import PumpwatchProcess

SENSOR = "dom-header-pressure"
TARGET_P99_MS = 50.0
ROUTES = (("latest", "/api/rooms/dom/latest"), ("tasks", "/api/tasks?limit=50"))
SITE = Path(__file__).resolve().parents[1] / "examples" / "site.yaml"


async def fill(store: Any, days: int, now: float) -> int:
    """`days` of 1 Hz readings of SENSOR, written in batches under its key in the store (`<estate>/<sensor>`,
    the estate being SITE's)."""
    from pumpwatch.portfolio import sensor_key
    from pumpwatch.readings import Reading
    from pumpwatch.sitefile import load_site

    key = sensor_key(load_site(SITE).site.id, SENSOR)
    start = now - days * 86_400
    total = days * 86_400
    batch = 50_000
    for first in range(0, total, batch):
        await store.write([Reading(key, start + i, 0.4 + (i % 600) / 6000) for i in
                           range(first, min(first + batch, total))])
    return total


class CpuMeter:
    """CPU seconds of the servers, the clients (this process) and the database servers over one phase."""

    def __init__(self, servers: list[psutil.Process], databases: Callable[[], float]) -> None:
        self.servers = servers
        self.databases = databases

    def snapshot(self) -> dict[str, float]:
        """Cumulative CPU seconds by group, and the wall clock."""
        return {"server": sum(_cpu(p) for p in self.servers), "clients": process_cpu(),
                "databases": self.databases(), "machine": system_busy(),
                "wall": time.monotonic()}

    @staticmethod
    def percent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """% of one core per group between two snapshots; `others` is everything else on the machine."""
        wall = after["wall"] - before["wall"]
        used = {k: (after[k] - before[k]) / wall * 100 for k in ("server", "clients", "databases", "machine")}
        used["others"] = used["machine"] - used["server"] - used["clients"] - used["databases"]
        return {k: round(v, 1) for k, v in used.items()}


def _cpu(proc: psutil.Process) -> float:
    try:
        return process_cpu(proc)
    except psutil.NoSuchProcess:
        return 0.0


def database_cpu(*directories: Path) -> Callable[[], float]:
    """CPU seconds so far of the servers started from these directories and of their children
    (PostgreSQL backends come and go: one that has exited counts with its last figure)."""
    roots = [proc for proc in psutil.process_iter(["cmdline"])
             if any(str(d) in " ".join(proc.info.get("cmdline") or ()) for d in directories)]
    last: dict[int, float] = {}

    def cpu_seconds() -> float:
        for root in roots:
            with contextlib.suppress(psutil.NoSuchProcess):
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        last[proc.pid] = process_cpu(proc)
        return sum(last.values())

    return cpu_seconds


async def closed_loop(urls: list[str], token: str, clients: int, seconds: float) -> dict[str, list[float]]:
    """Each client alternates the two routes with no pause until time is up; latencies in ms."""
    out: dict[str, list[float]] = {name: [] for name, _ in ROUTES}
    stop = time.monotonic() + seconds

    async def client(browser: Browser) -> None:
        while time.monotonic() < stop:
            for name, path in ROUTES:
                started = time.perf_counter()
                await browser.get(path)
                out[name].append((time.perf_counter() - started) * 1000)

    browsers = [Browser(urls[i % len(urls)], token) for i in range(clients)]
    try:
        await asyncio.gather(*(client(browser) for browser in browsers))
    finally:
        for browser in browsers:
            browser.close()
    return out


async def open_loop(urls: list[str], token: str, clients: int, seconds: float, interval: float,
                    jitter: float, seed: int = 1) -> dict[str, list[float]]:
    """Each client polls both routes every `interval` (+- jitter) on a fixed schedule; latencies in ms.

    Every poll is its own task, started at its scheduled time whether or not the previous answer
    came back, and timed from that scheduled time (no coordinated omission). `lag` is how late this
    process actually sent (its own scheduling delay, included in the latencies).
    """
    out: dict[str, list[float]] = {name: [] for name, _ in ROUTES}
    out["lag"] = []
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    polls: list[asyncio.Task[None]] = []

    async def request(browser: Browser, name: str, path: str, scheduled: float) -> None:
        out["lag"].append((loop.time() - scheduled) * 1000)
        await browser.get(path)
        out[name].append((loop.time() - scheduled) * 1000)

    async def poll(browser: Browser, scheduled: float) -> None:
        await asyncio.gather(*(request(browser, name, path, scheduled) for name, path in ROUTES))

    async def client(browser: Browser, start: float) -> None:
        tick = 0
        while (scheduled := start + tick * interval + rng.uniform(-jitter, jitter) * interval) < end:
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            polls.append(asyncio.create_task(poll(browser, scheduled)))
            tick += 1

    browsers = [Browser(urls[i % len(urls)], token) for i in range(clients)]
    begin = loop.time() + interval
    end = begin + seconds
    try:
        await asyncio.gather(*(client(browser, begin + rng.uniform(0, interval)) for browser in browsers))
        await asyncio.gather(*polls)
    finally:
        for browser in browsers:
            browser.close()
    return out


async def history(url: str, token: str, days: int, now: float, times: int = 50) -> list[float]:
    """Latency of the whole-period history at a 1 h step."""
    headers = {"Authorization": f"Bearer {token}"}
    params = {"start": now - days * 86_400, "end": now, "step": 3600}
    latencies = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        for _ in range(times):
            started = time.perf_counter()
            resp = await http.get(f"/api/sensors/{SENSOR}/history", params=params)
            latencies.append((time.perf_counter() - started) * 1000)
            resp.raise_for_status()
            assert resp.json()["count"] >= days * 24 - 1
    return latencies


async def measured(meter: CpuMeter, phase: Callable[[], Awaitable[dict[str, list[float]]]]) -> dict[str, Any]:
    """Run one load phase; its latencies, requests/s and CPU."""
    before = meter.snapshot()
    latencies = await phase()
    after = meter.snapshot()
    wall = after["wall"] - before["wall"]
    requests = sum(len(latencies[name]) for name, _ in ROUTES)
    return {"latencies": latencies, "seconds": round(wall, 2), "requests_per_s": round(requests / wall, 1),
            "cpu_pct": CpuMeter.percent(before, after)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Each store in turn; returns the figures."""
    from maintenance.auth import AuthService
    from maintenance.db import make_engine, session_factory, upgrade
    from maintenance.tasks import TaskService
    from pumpwatch.clock import SystemClock
    from pumpwatch.site import Text
    from tests.support.services import InfluxDB, Mosquitto, Postgres

    results: dict[str, Any] = {}
    with Mosquitto() as broker, InfluxDB() as influx, Postgres() as pg:
        engine = make_engine(pg.dsn)
        upgrade(engine)
        sessions = session_factory(engine)
        auth = AuthService(sessions, SystemClock())
        user = auth.create_user("bench", "bench-password-1", ["operator", "supervisor"])
        tasks = TaskService(sessions, SystemClock())
        for i in range(200):
            tasks.create_task(user, Text(zh=f"故障 {i}", en=f"fault {i}"), room="dom", asset="dom-p1")
        engine.dispose()
        databases = database_cpu(pg.directory, influx.directory)
        now = time.time()
        for store_name in args.stores:
            work = Path(tempfile.mkdtemp(prefix=f"pumpwatch-api-bench-{store_name}-"))
            env = dict(os.environ, PUMPWATCH_API__DATABASE_URL=pg.dsn,
                       PUMPWATCH_COLLECTOR__STATE_DIR=str(work), PUMPWATCH_LOG_LEVEL="WARNING")
            if store_name == "influxdb":
                env.update(PUMPWATCH_INFLUX__URL=influx.url, PUMPWATCH_INFLUX__DATABASE="apibench")
            points, fill_s = await fill_store(store_name, work, influx.url, args.days, now)
            servers = [PumpwatchProcess(f"serve-{n}", ["serve", "--site", str(SITE), "--mqtt", broker.url,
                                                      "--port", "0"],
                                        env | {"PUMPWATCH_COLLECTOR__CLIENT_ID": f"bench-{uuid.uuid4().hex}"},
                                        work / f"serve-{n}.log")
                       for n in range(args.replicas)]
            try:
                for server in servers:
                    server.start()
                figures = await load_phases([server.wait_url() for server in servers], args, now,
                                            CpuMeter([psutil.Process(s.proc.pid) for s in servers if s.proc],
                                                     databases))
            finally:
                for server in servers:
                    server.stop()
            results[store_name] = {"points": points, "fill_s": fill_s, **figures}
    return results


async def fill_store(name: str, work: Path, influx_url: str, days: int, now: float) -> tuple[int, float]:
    """Fill the embedded store in `work` or the `apibench` database; points and seconds taken."""
    from collector.stores.embedded import EmbeddedStore
    from collector.stores.influx import InfluxStore

    store: Any = (InfluxStore(influx_url, "apibench", timeout=60) if name == "influxdb"
                  else EmbeddedStore(work / "series.db"))
    await store.start()
    started = time.monotonic()
    points = await fill(store, days, now)
    seconds = round(time.monotonic() - started, 1)
    await store.close()
    return points, seconds


async def load_phases(urls: list[str], args: argparse.Namespace, now: float,
                      meter: CpuMeter) -> dict[str, Any]:
    """Sign in, warm up, then the closed loop, the open loop and the history."""
    async with httpx.AsyncClient(base_url=urls[0]) as http:
        token = str((await http.post("/api/auth/token", data={
            "username": "bench", "password": "bench-password-1"})).json()["access_token"])
    await open_loop(urls, token, args.clients, 2 * args.interval, args.interval, args.jitter)  # warm-up
    closed = await measured(meter, lambda: closed_loop(urls, token, args.clients, args.seconds))
    opened = await measured(meter, lambda: open_loop(urls, token, args.clients, args.seconds, args.interval,
                                                     args.jitter))
    return {"closed": closed, "open": opened, "history": await history(urls[0], token, args.days, now)}


def main(argv: list[str] | None = None) -> int:
    """Run, print the tables, write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.api_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each load phase")
    parser.add_argument("--interval", type=float, default=1.0, help="open loop: seconds between polls")
    parser.add_argument("--jitter", type=float, default=0.1, help="open loop: +- fraction of the interval")
    parser.add_argument("--replicas", type=int, default=1, help="`pumpwatch serve` processes")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--stores", type=lambda s: s.split(","), default=["embedded", "influxdb"])
    parser.add_argument("--name", default="api_latency", help="results file name")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    summary: dict[str, Any] = {}
    rows, cpu_rows = [], []
    for store, r in results.items():
        for mode in ("closed", "open"):
            phase = r[mode]
            for name, _ in ROUTES:
                values = phase["latencies"][name]
                summary[f"{store}:{mode}:{name}"] = {"requests": len(values),
                                                     "p50_ms": percentile(values, 50),
                                                     "p99_ms": percentile(values, 99)}
                rows.append([store, mode, name, len(values), phase["requests_per_s"], percentile(values, 50),
                             percentile(values, 99), max(values, default=float("nan"))])
            cpu = phase["cpu_pct"]
            summary[f"{store}:{mode}"] = {"requests_per_s": phase["requests_per_s"],
                                          "seconds": phase["seconds"], "cpu_pct": cpu}
            if mode == "open":
                summary[f"{store}:open"]["client_lag_p99_ms"] = percentile(phase["latencies"]["lag"], 99)
            cpu_rows.append([store, mode, phase["requests_per_s"], cpu["server"], cpu["clients"],
                             cpu["databases"], cpu["others"]])
        values = r["history"]
        summary[f"{store}:history"] = {"requests": len(values), "p50_ms": percentile(values, 50),
                                       "p99_ms": percentile(values, 99)}
        rows.append([store, "one client", f"history {args.days} d @1 h", len(values), float("nan"),
                     percentile(values, 50), percentile(values, 99), max(values)])
        summary[f"{store}:fill"] = {"points": r["points"], "seconds": r["fill_s"]}
    print_table(f"API latency (ms), {args.clients} clients, {args.replicas} server process(es); open loop: "
                f"every {args.interval:g} s +- {args.jitter:.0%}",
                ["store", "mode", "route", "requests", "req/s", "p50", "p99", "max"], rows)
    print_table("CPU, % of one core (2 cores = 200 %)",
                ["store", "mode", "req/s", "server", "clients", "databases", "others"], cpu_rows)
    verdicts = {}
    for mode in ("closed", "open"):
        worst = max(v["p99_ms"] for k, v in summary.items() if k.split(":")[1:2] == [mode] and "p99_ms" in v)
        verdicts[mode] = {"worst_p99_ms": worst, "met": worst <= TARGET_P99_MS}
        print(f"target p99 <= {TARGET_P99_MS:.0f} ms on latest and tasks, {mode} loop: "
              f"{'MET' if worst <= TARGET_P99_MS else 'NOT MET'} (worst {worst:.1f} ms)")
    command = "python -m bench.api_latency " + " ".join(argv if argv is not None else sys.argv[1:])
    path = write_results(args.name, {
        "benchmark": "api_latency", "command": command.strip(), "machine": machine(),
        "api_source_digest": source_digest(packages=("api",)),
        "clients": args.clients, "seconds": args.seconds, "interval": args.interval, "jitter": args.jitter,
        "replicas": args.replicas, "days": args.days, "results": summary, "target_p99_ms": TARGET_P99_MS,
        "verdicts": verdicts})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
