"""The collector's speed goals in one run: every shape side by side with Node-RED, then the goal table.

    python -m bench.peers --goals [--seconds 20] [--max-seconds 10] [--name peers_goals]

Runs, one after another on this machine (each in its own process, with its own Mosquitto and InfluxDB,
so no phase counts another's points):

1. steady ingest, PumpWatch and Node-RED at the same load: 1 value per message at 5,000 messages/s,
   5 and 50 values at 20,000 readings/s (`bench.peers --phases ingest`);
2. max rate of each shape, durable, with the bare subscriber and bare writer ceilings of the same run;
3. Modbus 50 devices x 20 registers at 1 Hz beside Node-RED (`bench.peers --phases modbus`), and 500
   devices through the collector service (`bench.modbus_poll --devices 500 --mode service`);
4. alarm latency at 20,000 readings/s with the collector and the API apart, as deployed
   (`bench.alarm_latency --load 20000 --roles split`);
5. API `latest` and `tasks` p99 with 50 dashboards polling every second (`bench.api_latency`);
6. the load generators' own CPU per message, and whether at max rate they offered more than was taken.

Prints one table with the goals as rows (measured, Node-RED, ratio, target, met) and writes it, with
every phase's results, to `bench/results/<name>.json`. How quiet the machine was: the CPU used by
processes outside the benchmark during each phase ("others", % of one core) and the load average.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, load_average, machine, print_table, write_results

STEADY = ((1, 5_000.0), (5, 20_000.0), (50, 20_000.0))  # values per message, readings/s
SHAPES = (1, 5, 50)
CPU_RATIO_TARGET = 1 / 3  # goal 1: at most a third of Node-RED's CPU per reading
CEILING_SHARE_TARGET = 0.7  # goal 2: at least 70 % of the lower ceiling
MODBUS_RATIO_TARGET = 0.5  # goal 3: at most half of Node-RED's CPU
MODBUS_500_CPU_PCT = 100.0  # goal 3: 500 devices in under one core
ALARM_P99_MS = 50.0  # goal 4
API_P99_MS = 50.0  # goal 5


@dataclass
class Phase:
    """One benchmark process of the run: its command and the results file it writes."""

    name: str
    module: str
    arguments: list[str]

    def run(self, prefix: str) -> dict[str, Any]:
        """Run it; its results (or the error it ended with), with the machine's load before and after."""
        results = f"{prefix}_{self.name}"
        command = [sys.executable, "-m", self.module, *self.arguments, "--name", results]
        print(f"\n=== {self.name}: {' '.join(command[1:])}", flush=True)
        before, started = load_average(), time.time()
        done = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], check=False)
        path = RESULTS_DIR / f"{results}.json"
        out: dict[str, Any] = {"command": " ".join(["python", *command[1:]]), "returncode": done.returncode,
                               "seconds": time.time() - started, "load_before": before,
                               "load_after": load_average()}
        if done.returncode == 0 and path.is_file():
            out["results"] = json.loads(path.read_text(encoding="utf-8"))
        return out


def phases(seconds: float, max_seconds: float, max_collectors: int = 2) -> list[Phase]:
    """Every phase of the goals run, in order; the max-rate phases with `max_collectors` collectors."""
    ingest = ["--phases", "ingest", "--sensors", "100"]
    out = [Phase(f"steady_v{v}", "bench.peers",
                 [*ingest, "--values-per-message", str(v), "--rate", f"{rate:g}",
                  "--seconds", f"{seconds:g}"])
           for v, rate in STEADY]
    out += [Phase(f"max_v{v}", "bench.peers", [*ingest, "--values-per-message", str(v), "--rate", "max",
                                                "--seconds", f"{max_seconds:g}",
                                                "--collectors", str(max_collectors)])
            for v in SHAPES]
    out += [Phase("modbus_50", "bench.peers", ["--phases", "modbus"]),
            Phase("modbus_500", "bench.modbus_poll", ["--devices", "500", "--mode", "service"]),
            Phase("alarm_latency", "bench.alarm_latency", ["--load", "20000", "--roles", "split"]),
            Phase("api_latency", "bench.api_latency", [])]
    return out


def run_goals(seconds: float, max_seconds: float, name: str, max_collectors: int = 2) -> int:
    """Run every phase, print the goal table, write the results; 0 even when a goal is not met."""
    done: dict[str, dict[str, Any]] = {}
    for phase in phases(seconds, max_seconds, max_collectors):
        done[phase.name] = phase.run(name)
    rows = goal_rows(done)
    print_table("Issue 18's goals, one run (PumpWatch / Node-RED; others = CPU of processes outside the "
                "benchmark, % of one core)",
                ["goal", "run", "PumpWatch", "Node-RED", "ratio", "target", "met", "others %"],
                [[r["goal"], r["run"], r["pumpwatch"], r["nodered"], _fmt(r["ratio"]), r["target"],
                  {True: "yes", False: "no", None: "-"}[r["met"]], _fmt(r["others"])] for r in rows])
    failed = [n for n, p in done.items() if "results" not in p]
    if failed:
        print(f"phases that did not finish: {', '.join(failed)}")
    path = write_results(name, {"benchmark": "peers --goals", "machine": machine(), "goals": rows,
                                "phases": done})
    print(f"\nresults: {path}")
    return 0


def goal_rows(done: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The goal table from the phases' results; a phase that failed gives a row saying so."""
    rows: list[dict[str, Any]] = []

    def row(goal: str, phase: str, make: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        results = done.get(phase, {}).get("results")
        if results is None:
            rows.append({"goal": goal, "run": phase, "pumpwatch": "phase failed", "nodered": "",
                         "ratio": math.nan, "target": "", "met": None, "others": math.nan})
            return
        rows.append({"goal": goal, "run": phase, **make(results)})

    for v, rate in STEADY:
        row("1. CPU per reading, steady", f"steady_v{v}", functools.partial(_steady, values=v, rate=rate))
    for v in SHAPES:
        row("2. max rate, durable", f"max_v{v}", _max_rate)
    row("3. Modbus 50 x 20 at 1 Hz", "modbus_50", _modbus_50)
    row("3. Modbus 500 x 20 at 1 Hz", "modbus_500", _modbus_500)
    row("4. alarm latency at 20,000 readings/s", "alarm_latency", _alarm)
    row("5. API p99, 50 dashboards", "api_latency", _api)
    generators = [_generator(done[n]["results"], n) for n in done
                  if n.startswith(("steady_", "max_")) and "results" in done[n]]
    if generators:
        at_max = [g for g in generators if g["max"]]
        per_message = max((g["us_per_message"] for g in at_max), default=math.nan)
        busiest = max(g["busiest_process_pct_of_core"] for g in generators)
        rows.append({"goal": "6. load generators not the bottleneck", "run": "every ingest phase",
                     "pumpwatch": f"at max rate {per_message:.1f} µs CPU per message; the busiest publisher "
                                  f"process of any phase {busiest:.0f} % of a core",
                     "nodered": "", "ratio": math.nan,
                     "target": "at max rate they offer more than PumpWatch stores",
                     "met": all(g["offered_more"] for g in at_max), "others": math.nan,
                     "detail": generators})
    return rows


def _steady(r: dict[str, Any], values: int, rate: float) -> dict[str, Any]:
    p, n = r["ingest"]["pumpwatch"], r["ingest"]["nodered"]
    ratio = r["ratios"]["ingest_cpu_per_reading_pumpwatch_over_nodered"]
    load = f"{rate / values:,.0f} msg/s" if values == 1 else f"{rate:,.0f} readings/s"
    cpu = _us(p["collector_cpu_us_per_reading"])
    return {"pumpwatch": f"{values} value(s), {load}: {cpu}, {p['lost']} lost",
            "nodered": f"{_us(n['cpu_us_per_reading'])}, {n['lost']} lost", "ratio": _num(ratio),
            "target": f"<= {CPU_RATIO_TARGET:.2f}", "met": _le(ratio, CPU_RATIO_TARGET),
            "others": max(p["foreign_cpu_pct_of_core"], n["foreign_cpu_pct_of_core"])}


def _max_rate(r: dict[str, Any]) -> dict[str, Any]:
    flows = r["ingest"]
    p, n = flows["pumpwatch"], flows["nodered"]
    subscriber, writer = flows["mqtt_subscriber"]["rate"], flows["influx_writer"]["rate"]
    ceiling = min(subscriber, writer)
    ratio = r["ratios"]["ingest_rate_pumpwatch_over_nodered"]
    share = p["sustained_rate"] / ceiling if ceiling else math.nan
    met = p["lost"] == 0 and _ge(ratio, 1.0) is True and _ge(share, CEILING_SHARE_TARGET) is True
    values = r["settings"]["values_per_message"]
    collectors = r["settings"].get("collectors", 1)
    cores = p["collector_cpu_pct_of_core"] / 100
    per_core = f", {p['sustained_rate'] / cores:,.0f}/s per core used" if cores > 0 else ""
    how = f"{collectors} collector processes, " if collectors > 1 else ""
    return {"pumpwatch": f"{values} value(s), {how}{p['sustained_rate']:,.0f}/s{per_core}, "
                         f"{_us(p['collector_cpu_us_per_reading'])}, {p['lost']} lost",
            "nodered": f"{n['sustained_rate']:,.0f}/s, {n['lost']:,} lost",
            "ratio": _num(ratio),
            "target": f">= 1 and >= {CEILING_SHARE_TARGET:.0%} of the lower ceiling "
                      f"(subscriber {subscriber:,.0f}/s, writer {writer:,.0f}/s): {share:.2f}",
            "met": met, "others": max(p["foreign_cpu_pct_of_core"], n["foreign_cpu_pct_of_core"])}


def _modbus_50(r: dict[str, Any]) -> dict[str, Any]:
    p, n = r["modbus"]["pumpwatch"], r["modbus"]["nodered"]
    ratio = r["ratios"]["modbus_cpu_per_reading_pumpwatch_over_nodered"]
    return {"pumpwatch": f"{_us(p['cpu_us_per_reading'])} ({p['cpu_pct_of_core']:.1f} % of a core), "
                         f"{p['readings_per_s']:,.0f} readings/s",
            "nodered": f"{_us(n['cpu_us_per_reading'])}, {n['readings_per_s']:,.0f} readings/s",
            "ratio": _num(ratio), "target": f"<= {MODBUS_RATIO_TARGET:.2f}",
            "met": _le(ratio, MODBUS_RATIO_TARGET),
            "others": max(p["foreign_cpu_pct_of_core"], n["foreign_cpu_pct_of_core"])}


def _modbus_500(r: dict[str, Any]) -> dict[str, Any]:
    mode = next(m for m in r["modes"] if m["mode"] == "service")
    every_cycle = mode["cycles_min"] >= mode["cycles_expected_per_device"] - 1
    cycles = "yes" if every_cycle else "no"
    return {"pumpwatch": f"{mode['readings_per_s']:,.0f} readings/s, "
                         f"{mode['cpu_pct_of_core']:.1f} % of a core, every cycle done: {cycles}",
            "nodered": "", "ratio": math.nan, "target": f"< {MODBUS_500_CPU_PCT:.0f} % of a core",
            "met": mode["cpu_pct_of_core"] < MODBUS_500_CPU_PCT and every_cycle,
            "others": mode.get("foreign_cpu_pct_of_core", math.nan)}


def _alarm(r: dict[str, Any]) -> dict[str, Any]:
    lat = r["latency_ms"]
    p99 = lat["all"]["p99"]
    broker = lat.get("all, at the broker")
    at_broker = f"; at the broker p50 {broker['p50']:.1f}, p99 {broker['p99']:.1f} ms" if broker else ""
    return {"pumpwatch": f"p50 {lat['all']['p50']:.1f} ms, p99 {p99:.1f} ms ({lat['all']['samples']} probes, "
                         f"roles {r.get('roles', 'up')}){at_broker}",
            "nodered": "", "ratio": math.nan, "target": f"p99 <= {ALARM_P99_MS:.0f} ms",
            "met": p99 <= ALARM_P99_MS, "others": math.nan}


def _api(r: dict[str, Any]) -> dict[str, Any]:
    found = {k: v["p99_ms"] for k, v in r["results"].items() if ":open:" in k and "p99_ms" in v}
    worst = max(found.values(), default=math.nan)
    text = ", ".join(f"{k.replace(':open:', ' ')} {v:.0f}" for k, v in sorted(found.items()))
    return {"pumpwatch": f"open loop p99 ms: {text}", "nodered": "", "ratio": math.nan,
            "target": f"p99 <= {API_P99_MS:.0f} ms", "met": worst <= API_P99_MS, "others": math.nan}


def _generator(r: dict[str, Any], phase: str) -> dict[str, Any]:
    """The publishers of one ingest phase: CPU per message and per process, and whether they offered
    more than PumpWatch stored (at max rate: the collector, not the load, set the rate)."""
    p = r["ingest"]["pumpwatch"]
    messages = p["messages_published"] or 1
    seconds = p["readings_published"] / p["publish_rate"] if p["publish_rate"] else math.nan
    per_process = (p.get("publisher") or {}).get("cpu_s_per_process") or [p["publisher_cpu_s"]]
    return {"phase": phase, "max": phase.startswith("max_"),
            "us_per_message": 1e6 * p["publisher_cpu_s"] / messages,
            "busiest_process_pct_of_core": 100 * max(per_process) / seconds if seconds else math.nan,
            "offered_readings_per_s": p["publish_rate"], "stored_readings_per_s": p["sustained_rate"],
            "offered_more": p["publish_rate"] > p["sustained_rate"]}


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} µs"


def _num(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None or math.isnan(value) else value <= limit


def _ge(value: float | None, limit: float) -> bool | None:
    return None if value is None or math.isnan(value) else value >= limit


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.2f}"
