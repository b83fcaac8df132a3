"""Faults under steady load: each dependency and role is killed and restarted in turn, counting exactly.

    python -m bench.faults [--outage 30] [--rate 300]      (the long form; tests run a short one)

The collector (`pumpwatch collect`) and the API (`pumpwatch serve`) run as their own OS processes
against real Mosquitto, InfluxDB and PostgreSQL, plus one simulated Modbus device. A publisher sends
0, 1, 2, ... at QoS 1 all along. In turn: InfluxDB, Mosquitto, PostgreSQL and the Modbus device are
stopped and started again; the collector and the API are killed with SIGKILL and restarted. During
each outage a leak detector of its own goes wet, so each phase expects one alarm and one task.
For each phase: readings published, stored, lost and duplicated, alarms and tasks expected and
present, and the time from the restart until the system had caught up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.publish as publish

from tests.support.processes import PumpwatchProcess

PHASES = ("influxdb", "mosquitto", "postgresql", "modbus", "collector", "api")


def site_yaml(prefix: str) -> str:
    """A counting sensor, a Modbus device, and one leak detector per phase on its own cabinet."""
    cabinets = "\n".join(
        f"      - {{id: cab-{p}, type: cabinet, sensors: [{{id: leak-{p}, kind: leak, source: mqtt,"
        f" alarms: {{no_data: false}}}}]}}" for p in PHASES)
    return f"""
site: {{id: faults, name: {{zh: 故障演练, en: Fault drill}}}}
rooms:
  - id: r1
    name: {{zh: 一号泵房, en: Room 1}}
    sensors:
      - {{id: seq, kind: flow, range: [0, 100000000], source: mqtt, alarms: {{no_data: false}}}}
      - {{id: mb1, kind: flow, range: [0, 1000], source: modbus, alarms: {{no_data: false}}}}
    equipment:
{cabinets}
modbus:
  - id: plc1
    port: 1
    poll_interval: 0.5
    timeout: 0.3
    points: [{{sensor: mb1, table: holding, address: 0, type: uint16}}]
mqtt:
  - topic: "{prefix}/n/{{sensor}}"
    format: number
    values: [{{sensor: "{{sensor}}"}}]
  - topic: "{prefix}/b/{{sensor}}"
    format: boolean
    values: [{{sensor: "{{sensor}}"}}]
"""


@dataclass
class Phase:
    """What one fault did."""

    name: str
    first: int = 0  # first sequence number published in the phase
    end: int = 0  # one past the last
    stored: int = 0
    distinct: int = 0
    recovery_s: float = 0.0
    alarm: bool = False
    task: bool = False

    @property
    def published(self) -> int:
        """Readings published during the phase."""
        return self.end - self.first


async def wait_for(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Seconds until `check` holds; RuntimeError naming `what` after `within`."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise RuntimeError(f"not recovered within {within:.0f} s: {what}")


async def run_faults(outage: float = 5.0, rate: float = 200.0, work: Path | None = None) -> dict[str, Any]:
    """Run every phase; returns the per-phase figures and the totals."""
    from maintenance.auth import AuthService
    from maintenance.db import make_engine, session_factory, upgrade
    from pumpwatch.clock import SystemClock
    from pumpwatch.sitefile import parse_site
    from simulators.modbus_server import DeviceImage, DeviceServer
    from tests.support.mqtt import CountingPublisher, create_session
    from tests.support.services import InfluxDB, Mosquitto, Postgres

    work = work or Path(tempfile.mkdtemp(prefix="pumpwatch-faults-"))
    prefix = f"faults{uuid.uuid4().hex[:6]}"
    site_text = site_yaml(prefix)
    device = parse_site(site_text, "faults.yaml").modbus[0]
    server = DeviceServer(DeviceImage(device, lambda _s: 7.0, lambda _s, _v: False), "127.0.0.1", 0)
    await server.start()
    (work / "site.yaml").write_text(site_text.replace("port: 1", f"port: {server.port}"), encoding="utf-8")
    phases: list[Phase] = []
    with Mosquitto() as broker, InfluxDB() as influx, Postgres() as pg:
        engine = make_engine(pg.dsn)
        upgrade(engine)
        auth = AuthService(session_factory(engine), SystemClock())
        auth.create_user("drill", "drill-password-1", ["operator"])
        engine.dispose()
        collector_id = f"faults-collector-{uuid.uuid4().hex[:6]}"
        await asyncio.to_thread(create_session, broker.port, collector_id, f"{prefix}/+/+")
        base = dict(os.environ, PUMPWATCH_INFLUX__URL=influx.url, PUMPWATCH_INFLUX__DATABASE="faults",
                    PUMPWATCH_INFLUX__TIMEOUT="2", PUMPWATCH_API__DATABASE_URL=pg.dsn)
        site = ["--site", str(work / "site.yaml"), "--mqtt", broker.url]
        collector_env = dict(base, PUMPWATCH_COLLECTOR__STATE_DIR=str(work / "collector"),
                             PUMPWATCH_COLLECTOR__CLIENT_ID=collector_id)
        collector = PumpwatchProcess("collector", ["collect", *site, "--status-every", "1"], collector_env,
                                     work / "collector.log")
        api_env = dict(base, PUMPWATCH_COLLECTOR__STATE_DIR=str(work / "api"),
                       PUMPWATCH_COLLECTOR__CLIENT_ID=f"faults-api-{uuid.uuid4().hex[:6]}")
        api = PumpwatchProcess("api", ["serve", *site, "--port", "0"], api_env, work / "api.log")
        publisher = CountingPublisher(broker.port, f"{prefix}/n/seq", rate=rate)
        try:
            collector.start()
            api.start()
            await wait_for(lambda: _has(collector, "MQTT connected"), 60, "collector start")
            await wait_for(lambda: _has(api, "API and web UI"), 60, "API start")
            publisher.start()
            await asyncio.sleep(2)

            mark = {"target": 0}  # readings published up to the restart: caught up once all are stored

            async def stored_all() -> bool:
                target = mark["target"] or publisher.sent
                counts = await _counts(influx.url, 0, target)
                return publisher.acked >= target and counts[1] >= target

            async def device_online() -> bool:
                return "plc1 online" in _last_status(collector)

            async def api_ok() -> bool:
                url = api.current_url()
                if url is None:
                    return False
                try:
                    async with httpx.AsyncClient(timeout=2) as http:
                        return (await http.get(f"{url}/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            def threaded(fn: Callable[[], None]) -> Callable[[], Awaitable[None]]:
                return lambda: asyncio.to_thread(fn)

            async def device_offline() -> bool:
                return "plc1 offline" in _last_status(collector)

            actions: dict[str, tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]],
                                     Callable[[], Awaitable[bool]]]] = {
                "influxdb": (threaded(influx.stop), threaded(influx.start), stored_all),
                "mosquitto": (threaded(broker.stop), threaded(broker.start), stored_all),
                "postgresql": (threaded(pg.stop), threaded(pg.start), api_ok),
                "modbus": (server.stop, server.start, device_online),
                "collector": (threaded(collector.kill), threaded(collector.start), stored_all),
                "api": (threaded(api.kill), threaded(api.start), api_ok),
            }
            for name in PHASES:
                stop, start, recovered = actions[name]
                phase = Phase(name, first=publisher.sent)
                await stop()
                await asyncio.sleep(0.5)
                if name != "mosquitto":  # the leak detector talks to the broker: not while it is down
                    await asyncio.to_thread(_wet, broker.port, prefix, name)
                await asyncio.sleep(outage)
                if name == "modbus":
                    await wait_for(device_offline, 30, "modbus: device seen offline")
                mark["target"] = publisher.sent
                await start()
                if name == "mosquitto":
                    await asyncio.to_thread(_wet, broker.port, prefix, name)
                phase.recovery_s = await wait_for(recovered, 120, name)
                if name in ("modbus", "postgresql", "api"):  # the readings must have caught up too
                    await wait_for(stored_all, 120, f"{name}: readings")
                phase.end = publisher.sent
                phases.append(phase)
            publisher.stop()
            mark["target"] = publisher.sent
            await wait_for(stored_all, 120, "final drain")
            for phase in phases:
                phase.stored, phase.distinct = await _counts(influx.url, phase.first, phase.end)
            alarms, tasks = await _alarms_and_tasks(api)
            for phase in phases:
                phase.alarm = f"cab-{phase.name}" in alarms
                phase.task = tasks.get(f"cab-{phase.name}", 0) == 1
            published = publisher.sent
            stored, distinct = await _counts(influx.url, 0, published)
        finally:
            publisher.close()
            collector.stop()
            api.stop()
            await server.stop()
    return {
        "outage_s": outage, "rate": rate,
        "phases": [{"fault": p.name, "published": p.published, "stored": p.stored,
                    "lost": p.published - p.distinct, "duplicated": p.stored - p.distinct,
                    "alarm_present": p.alarm, "task_present": p.task, "recovery_s": round(p.recovery_s, 2)}
                   for p in phases],
        "total": {"published": published, "stored": stored, "lost": published - distinct,
                  "duplicated": stored - distinct},
    }


async def _has(process: PumpwatchProcess, text: str) -> bool:
    return text in process.text()


def _last_status(process: PumpwatchProcess) -> str:
    lines = [line for line in process.text().splitlines() if line.startswith("collector:")]
    return lines[-1] if lines else ""


def _wet(port: int, prefix: str, phase: str) -> None:
    publish.single(f"{prefix}/b/leak-{phase}", "true", qos=1, hostname="127.0.0.1", port=port)


async def _counts(url: str, first: int, end: int) -> tuple[int, int]:
    query = (f"SELECT count(value), count(distinct(value)) FROM reading WHERE sensor = 'seq' "
             f"AND value >= {first} AND value < {end}")
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            resp = await http.get(f"{url}/query", params={"db": "faults", "q": query})
        series = resp.json()["results"][0].get("series", [])
    except (httpx.HTTPError, ValueError, KeyError):
        return 0, 0
    if not series:
        return 0, 0
    _ts, points, distinct = series[0]["values"][0]
    return int(points), int(distinct)


async def _alarms_and_tasks(api: PumpwatchProcess) -> tuple[set[str], dict[str, int]]:
    url = api.current_url()
    assert url is not None
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        token = (await http.post("/api/auth/token", data={"username": "drill", "password": "drill-password-1"}
                                 )).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        async def all_present() -> bool:
            alarms = (await http.get("/api/alarms", params={"limit": 100}, headers=headers)).json()["data"]
            return len({a["asset"] for a in alarms}) >= len(PHASES)

        with contextlib.suppress(RuntimeError):  # what is missing shows in the figures
            await wait_for(all_present, 60, "alarms")
        alarms = (await http.get("/api/alarms", params={"limit": 100}, headers=headers)).json()["data"]
        tasks = (await http.get("/api/tasks", params={"limit": 100}, headers=headers)).json()["data"]
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task["asset"]] = counts.get(task["asset"], 0) + 1
    return {a["asset"] for a in alarms}, counts


def main(argv: list[str] | None = None) -> int:
    """The long form, with a table and JSON results."""
    from bench.common import machine, print_table, write_results

    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=30.0, help="seconds each fault lasts (default 30)")
    parser.add_argument("--rate", type=float, default=300.0, help="readings/s published (default 300)")
    args = parser.parse_args(argv)
    result = asyncio.run(run_faults(args.outage, args.rate))
    print_table(f"Faults under {args.rate:.0f} readings/s, {args.outage:.0f} s each",
                ["fault", "published", "stored", "lost", "duplicated", "alarm", "task", "recovery s"],
                [[p["fault"], p["published"], p["stored"], p["lost"], p["duplicated"], p["alarm_present"],
                  p["task_present"], p["recovery_s"]] for p in result["phases"]])
    total = result["total"]
    print(f"total: {total['published']} published, {total['stored']} stored, {total['lost']} lost, "
          f"{total['duplicated']} duplicated")
    print(f"results: {write_results('faults', {'benchmark': 'faults', 'machine': machine(), **result})}")
    return 0 if total["lost"] == 0 and total["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
