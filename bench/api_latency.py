"""API latency: live and task-list routes under concurrent clients, and a 30-day history query.

    python -m bench.api_latency [--clients 50] [--seconds 20] [--days 30]

`pumpwatch serve` runs as its own process on PostgreSQL (state) with, in turn, the embedded series
store and InfluxDB, each first filled with `--days` of 1 Hz readings of one sensor. `--clients`
concurrent clients then loop over `GET /api/rooms/dom/latest` and `GET /api/tasks?limit=50` (200 tasks
in the database); afterwards the history of the whole period at a 1 h step is asked 50 times.
Targets: p99 <= 50 ms for the live and task-list routes at 50 concurrent clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.common import machine, percentile, print_table, write_results

SENSOR = "dom-header-pressure"
TARGET_P99_MS = 50.0


async def fill(store: Any, days: int, now: float) -> int:
    """`days` of 1 Hz readings of SENSOR, written in batches."""
    from pumpwatch.readings import Reading

    start = now - days * 86_400
    total = days * 86_400
    batch = 50_000
    for first in range(0, total, batch):
        await store.write([Reading(SENSOR, start + i, 0.4 + (i % 600) / 6000) for i in
                           range(first, min(first + batch, total))])
    return total


async def measure(url: str, token: str, clients: int, seconds: float) -> dict[str, list[float]]:
    """Each client alternates the two routes until time is up; latencies in ms."""
    headers = {"Authorization": f"Bearer {token}"}
    out: dict[str, list[float]] = {"latest": [], "tasks": []}
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as http:
        async def client() -> None:
            while time.monotonic() < stop:
                for name, path in (("latest", "/api/rooms/dom/latest"), ("tasks", "/api/tasks?limit=50")):
                    started = time.perf_counter()
                    resp = await http.get(path)
                    out[name].append((time.perf_counter() - started) * 1000)
                    resp.raise_for_status()

        await asyncio.gather(*(client() for _ in range(clients)))
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


async def run(clients: int, seconds: float, days: int) -> dict[str, Any]:
    """Both stores in turn; returns the figures."""
    from api.auth import AuthService
    from api.db import make_engine, session_factory, upgrade
    from api.tasks import TaskService
    from collector.embedded_store import EmbeddedStore
    from collector.influx import InfluxStore
    from pumpwatch.clock import SystemClock
    from pumpwatch.site import Text
    from tests.services import InfluxDB, Mosquitto, Postgres

    site = Path(__file__).parents[1] / "examples" / "site.yaml"
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
        now = time.time()
        for store_name in ("embedded", "influxdb"):
            work = Path(tempfile.mkdtemp(prefix=f"pumpwatch-api-bench-{store_name}-"))
            env = dict(os.environ, PUMPWATCH_API__DATABASE_URL=pg.dsn,
                       PUMPWATCH_COLLECTOR__STATE_DIR=str(work),
                       PUMPWATCH_COLLECTOR__CLIENT_ID=f"bench-{uuid.uuid4().hex[:6]}",
                       PUMPWATCH_LOG_LEVEL="WARNING")
            if store_name == "influxdb":
                env.update(PUMPWATCH_INFLUX__URL=influx.url, PUMPWATCH_INFLUX__DATABASE="apibench")
                store: Any = InfluxStore(influx.url, "apibench", timeout=60)
            else:
                store = EmbeddedStore(work / "series.db")
            await store.start()
            filled_at = time.monotonic()
            points = await fill(store, days, now)
            fill_s = time.monotonic() - filled_at
            await store.close()
            log = (work / "serve.log").open("wb")
            command = [sys.executable, "-m", "pumpwatch", "serve", "--site", str(site), "--mqtt", broker.url,
                       "--port", "0"]
            proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220
            try:
                url = _wait_url(work / "serve.log", proc)
                async with httpx.AsyncClient(base_url=url) as http:
                    token = (await http.post("/api/auth/token", data={"username": "bench",
                                                                      "password": "bench-password-1"})).json()
                live = await measure(url, token["access_token"], clients, seconds)
                hist = await history(url, token["access_token"], days, now)
            finally:
                proc.terminate()
                proc.wait(30)
                log.close()
            results[store_name] = {"points": points, "fill_s": round(fill_s, 1), "live": live,
                                   "history": hist}
    return results


def _wait_url(log: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"API and web UI: (http://\S+)", log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-2000:])
        time.sleep(0.2)
    raise RuntimeError("serve did not start")


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.api_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.clients, args.seconds, args.days))
    rows = []
    summary: dict[str, Any] = {}
    for store, r in results.items():
        for name, values in (("latest", r["live"]["latest"]), ("tasks", r["live"]["tasks"]),
                             (f"history {args.days} d @1 h", r["history"])):
            rows.append([store, name, len(values), percentile(values, 50), percentile(values, 99)])
            summary[f"{store}:{name}"] = {"requests": len(values), "p50_ms": percentile(values, 50),
                                          "p99_ms": percentile(values, 99)}
        summary[f"{store}:fill"] = {"points": r["points"], "seconds": r["fill_s"]}
    print_table(f"API latency, {args.clients} concurrent clients (ms)", ["store", "route", "requests", "p50",
                                                                          "p99"], rows)
    worst = max(v["p99_ms"] for k, v in summary.items() if k.endswith((":latest", ":tasks")))
    verdict = "MET" if worst <= TARGET_P99_MS else "NOT MET"
    print(f"target p99 <= {TARGET_P99_MS:.0f} ms on latest and tasks: {verdict} (worst {worst:.1f} ms)")
    path = write_results("api_latency", {"benchmark": "api_latency", "command": "python -m bench.api_latency",
                                         "machine": machine(), "clients": args.clients, "days": args.days,
                                         "results": summary, "target_p99_ms": TARGET_P99_MS,
                                         "met": worst <= TARGET_P99_MS})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
