"""The alarm engine's own cost: per reading and per timer tick, on the default rules of a Modbus site.

No broker, no store: the engine of `bench.modbus_poll`'s site (`--devices` x `--registers` points, each
a pressure sensor with the rulebook's defaults: a flatline rule per sensor, a no-data rule per device)
is fed `--seconds` of 1 Hz history, then measured in this process. `--values varying` draws every reading
at random; `steady` holds each sensor's value and moves it once in a thousand readings, as a level, a
switch or a stopped pump's current reads (the flatline rule then has a whole window to judge):

- a reading batch (every sensor once, as one poll cycle of the whole site delivers it): CPU per reading;
- a timer tick (`AlarmEngine.evaluate_all`, once a second in a collector): CPU per tick and the rules it
  evaluated, against the rules there are.

    python -m bench.rules [--devices 50] [--registers 20] [--values varying|steady]
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from bench.common import machine, print_table, write_results
from bench.modbus_poll import bench_site, make_devices
from collector.rules.engine import AlarmEngine
from collector.rules.rulebook import Rulebook
from pumpwatch.clock import FakeClock
from pumpwatch.readings import Reading


def measure(devices: int, registers: int, seconds: int, repeats: int, values: str = "varying",
            ) -> dict[str, Any]:
    """Build the site's engine, fill its history, and time reading batches and timer ticks."""
    site = bench_site(make_devices(devices, registers, 1, 1.0, [10_000 + i for i in range(devices)]))
    rulebook = Rulebook(site)
    clock = FakeClock()
    engine = AlarmEngine(rulebook.rules, clock, history=dict(rulebook.history))
    sensors = [s.id for room in site.rooms for s in room.sensors]
    draw = random.Random(1)
    t0 = clock.now()
    held = dict.fromkeys(sensors, 7.0)

    def value(sensor: str) -> float:
        if values == "varying":
            return float(draw.randint(0, 1000))
        if draw.random() < 0.001:
            held[sensor] += 1.0
        return held[sensor]

    def batch(second: int) -> list[Reading]:
        return [Reading(s, t0 + second, value(s)) for s in sensors]

    for second in range(seconds):  # history as deep as the rules keep
        engine.on_readings(batch(second))
    engine.evaluate_all()  # the first tick evaluates every rule
    batches = [batch(seconds + k) for k in range(repeats)]
    started = time.process_time()
    for readings in batches:
        engine.on_readings(readings)
    per_batch = (time.process_time() - started) / repeats
    before = engine.evaluations
    started = time.process_time()
    for _ in range(repeats):
        engine.evaluate_all()
    per_tick = (time.process_time() - started) / repeats
    return {
        "devices": devices, "registers": registers, "sensors": len(sensors), "rules": len(engine.rules),
        "history_s": seconds, "repeats": repeats, "values": values,
        "batch_us_per_reading": 1e6 * per_batch / len(sensors),
        "tick_ms": 1e3 * per_tick,
        "tick_rules_evaluated": (engine.evaluations - before) / repeats,
        "tick_us_per_reading_at_1_hz": 1e6 * per_tick / len(sensors),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run, print the table, write bench/results/<name>.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--registers", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=960, help="history fed first, s at 1 Hz (960)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--values", choices=["varying", "steady"], default="varying")
    parser.add_argument("--name", default="rules")
    args = parser.parse_args(argv)
    result = measure(args.devices, args.registers, args.seconds, args.repeats, args.values)
    print_table(f"Alarm engine, {result['sensors']:,} sensors, {result['rules']:,} rules, {args.values} "
                "values (CPU time)",
                ["reading batch µs/reading", "timer tick ms", "rules per tick", "tick µs/reading at 1 Hz"],
                [[round(result["batch_us_per_reading"], 2), round(result["tick_ms"], 3),
                  round(result["tick_rules_evaluated"]), round(result["tick_us_per_reading_at_1_hz"], 2)]])
    path = write_results(args.name, {"benchmark": "rules", "machine": machine(), "result": result})
    print(f"results: {path}")
    return result


if __name__ == "__main__":
    main()
