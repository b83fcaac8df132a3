"""Alarm latency: MQTT publish of a leak -> the alarm event on the API's live stream, under load.

    python -m bench.alarm_latency [--probes 200] [--load 10000] [--roles up|split]

Starts real Mosquitto and InfluxDB, then `pumpwatch up` (collector + API in one process) as its own
OS process, or with `--roles split` `pumpwatch collect` and `pumpwatch serve` as two processes, as the
compose file runs them (the alarm event then goes collector -> broker -> API). A separate process
publishes the background load (`--load` readings/s as JSON messages of 50 values at QoS 1). This
process holds one SSE connection to `/api/live?room=probe` and toggles a leak detector WET / DRY: each
toggle's latency is from just before the MQTT publish to the moment the `raised` (or `cleared`) event
arrives on the stream, and when the collector's event reached the broker. Target: p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import machine, percentile, print_table, write_results

VALUES = 50
TARGET_P99_MS = 50.0


def site_yaml(prefix: str, devices: int) -> str:
    """Background sensors in room `bg` (plain JSON map), one leak detector in room `probe`."""
    sensors = "\n".join(f"      - {{id: d{d}-s{v}, kind: flow, range: [0, 1000000], source: mqtt,"
                        f" alarms: {{no_data: false}}}}" for d in range(devices) for v in range(VALUES))
    values = "\n".join(f"      - {{field: s{v}, sensor: \"{{dev}}-s{v}\"}}" for v in range(VALUES))
    return f"""
site: {{id: bench, name: {{zh: 基准, en: Bench}}}}
rooms:
  - id: bg
    name: {{zh: 负载, en: Load}}
    sensors:
{sensors}
  - id: probe
    name: {{zh: 探测, en: Probe}}
    sensors:
      - {{id: probe-leak, kind: leak, source: mqtt, alarms: {{no_data: false}}}}
mqtt:
  - topic: "{prefix}/load/{{dev}}"
    values:
{values}
  - topic: "{prefix}/probe/{{sensor}}"
    format: boolean
    values: [{{sensor: "{{sensor}}"}}]
"""


def load_main(port: int, prefix: str, devices: int, rate: float, stop: Any) -> None:
    """Publish `rate` readings/s as JSON messages of VALUES fields, round robin over devices."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"load-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    period = VALUES / rate
    n = 0
    next_at = time.monotonic()
    while not stop.is_set():
        payload = json.dumps({f"s{v}": n % 1000 + v for v in range(VALUES)})
        client.publish(f"{prefix}/load/d{n % devices}", payload, qos=1)
        n += 1
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    client.disconnect()
    client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.alarm_latency",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=200, help="leak toggles measured (default 200)")
    parser.add_argument("--load", type=float, default=10_000, help="background readings/s (default 10000)")
    parser.add_argument("--devices", type=int, default=20, help="background devices (default 20)")
    parser.add_argument("--roles", choices=("up", "split"), default="up",
                        help="one `pumpwatch up` process, or `collect` and `serve` apart (default up)")
    parser.add_argument("--name", default="alarm_latency", help="results file bench/results/<name>.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from maintenance.auth import AuthService
    from maintenance.db import make_engine, session_factory, upgrade
    from pumpwatch.clock import SystemClock
    from tests.support.services import InfluxDB, Mosquitto

    work = Path(tempfile.mkdtemp(prefix="pumpwatch-alarm-bench-"))
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    (work / "site.yaml").write_text(site_yaml(prefix, args.devices), encoding="utf-8")
    state = work / "state"
    engine = make_engine(f"sqlite:///{state / 'pumpwatch.db'}")
    upgrade(engine)
    AuthService(session_factory(engine), SystemClock()).create_user("bench", "bench-password-1", ["operator"])
    engine.dispose()
    latencies: dict[str, list[float]] = {"raised": [], "cleared": []}
    at_broker: list[float] = []  # publish -> the collector's alarm event on the broker
    with Mosquitto() as broker, InfluxDB() as influx:
        env = dict(os.environ, PUMPWATCH_COLLECTOR__STATE_DIR=str(state),
                   PUMPWATCH_INFLUX__URL=influx.url, PUMPWATCH_INFLUX__DATABASE="bench",
                   PUMPWATCH_COLLECTOR__CLIENT_ID=f"bench-{uuid.uuid4().hex[:6]}",
                   PUMPWATCH_LOG_LEVEL="WARNING")
        where = ["--site", str(work / "site.yaml"), "--mqtt", broker.url]
        roles = {"up": ["up", *where, "--port", "0", "--status-every", "5"]}
        if args.roles == "split":
            roles = {"serve": ["serve", *where, "--port", "0"],
                     "collect": ["collect", *where, "--status-every", "5"]}
        logs = {name: (work / f"{name}.log").open("wb") for name in roles}
        procs = {name: subprocess.Popen(
            [sys.executable, "-m", "pumpwatch", *command],
            env=dict(env, PUMPWATCH_COLLECTOR__STATE_DIR=str(work / "collector"))
            if name == "collect" else env, stdout=logs[name], stderr=subprocess.STDOUT)
            for name, command in roles.items()}
        api_role = "serve" if args.roles == "split" else "up"
        status_role = "collect" if args.roles == "split" else "up"
        stop = mp.Event()
        loader = mp.Process(target=load_main, args=(broker.port, prefix, args.devices, args.load, stop))
        try:
            url = _wait_for_url(work / f"{api_role}.log", procs[api_role])
            with httpx.Client(base_url=url, timeout=10) as http:
                login = {"username": "bench", "password": "bench-password-1"}
                token = http.post("/api/auth/token", data=login).json()["access_token"]
            events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
            reader = threading.Thread(target=_read_stream, args=(url, token, events), daemon=True)
            reader.start()
            loader.start()
            time.sleep(5)  # let the load settle
            probe = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:6]}")
            probe.connect("127.0.0.1", broker.port)
            probe.loop_start()
            heard: queue.Queue[float] = queue.Queue()  # the collector's alarm events, as the broker has them
            probe.on_message = lambda _c, _u, _m: heard.put(time.perf_counter())
            probe.subscribe("pumpwatch/alarms/bench/probe/#", qos=0)
            time.sleep(0.5)
            wet = False
            for _ in range(args.probes):
                wet = not wet
                want = "raised" if wet else "cleared"
                started = time.perf_counter()
                probe.publish(f"{prefix}/probe/probe-leak", "true" if wet else "false", qos=1)
                deadline = started + 10
                while True:
                    at, event = events.get(timeout=max(0.01, deadline - time.perf_counter()))
                    if event.get("asset") == "probe" and event.get("action") == want:
                        latencies[want].append((at - started) * 1000)
                        break
                while not heard.empty():
                    seen = heard.get_nowait()
                    if seen >= started:
                        at_broker.append((seen - started) * 1000)
                        break
                time.sleep(0.1)
            probe.disconnect()
            probe.loop_stop()
            status = [line for line in (work / f"{status_role}.log").read_text().splitlines()
                      if "collector:" in line]
        finally:
            stop.set()
            if loader.is_alive():
                loader.join(10)
            for name, proc in procs.items():
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    print(f"pumpwatch {name} did not stop within 30 s of SIGTERM", file=sys.stderr)
                logs[name].close()
                print((work / f"{name}.log").read_text(errors="replace")[-1500:], file=sys.stderr)
    both = latencies["raised"] + latencies["cleared"]
    series = [("raised", latencies["raised"]), ("cleared", latencies["cleared"]), ("all", both)]
    if at_broker:  # where the time goes: the collector's part ends when its event is on the broker
        series.append(("all, at the broker", at_broker))
    rows = [[name, len(v), percentile(v, 50), percentile(v, 99), max(v)] for name, v in series]
    print_table(f"Alarm latency, MQTT publish -> SSE event, under {args.load:,.0f} readings/s, roles "
                f"{args.roles} (ms)",
                ["event", "samples", "p50", "p99", "max"], rows)
    p99 = percentile(both, 99)
    print(f"target p99 <= {TARGET_P99_MS:.0f} ms: {'MET' if p99 <= TARGET_P99_MS else 'NOT MET'}")
    if status:
        print(status[-1])
    path = write_results(args.name, {
        "benchmark": "alarm_latency", "command": "python -m bench.alarm_latency", "machine": machine(),
        "load_readings_per_s": args.load, "probes": args.probes, "roles": args.roles,
        "latency_ms": {name: {"samples": len(v), "p50": percentile(v, 50), "p99": percentile(v, 99),
                              "max": max(v)}
                       for name, v in series},
        "target_p99_ms": TARGET_P99_MS, "met": p99 <= TARGET_P99_MS, "collector_status": status[-1:]})
    print(f"results: {path}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _wait_for_url(log: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"API and web UI: (http://\S+)", log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"pumpwatch {log.stem} exited:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"pumpwatch {log.stem} did not start in 60 s")


def _read_stream(url: str, token: str, events: queue.Queue[tuple[float, dict[str, Any]]]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=None) as http, http.stream(
            "GET", "/api/live", params={"room": "probe"}, headers=headers) as resp:
        kind = None
        for line in resp.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "alarm":
                events.put((time.perf_counter(), json.loads(line[6:])))


if __name__ == "__main__":
    raise SystemExit(main())
