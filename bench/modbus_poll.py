"""Modbus polling benchmark: many simulated devices polled every interval by the collector.

    python -m bench.modbus_poll [--devices 50] [--registers 20] [--seconds 20] [--mode both]

The simulated devices (simulators.modbus_server.DeviceServer, one TCP server each, `--registers`
uint16 holding registers per device) run in a separate process, so the CPU measured here is the
collector's alone. Two modes, each run in turn:

- `sink`: collector.sources.modbus.ModbusCollector feeding a sink that only counts readings.
- `service`: the whole CollectorService (pipeline, durable buffer, writer, embedded store).

Per mode: readings/s, poll cycles completed per device vs expected, poll-cycle duration p50/p99/max,
how late cycles start against their schedule, and CPU % of one core used by this process over the
measured window (after every device has answered once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import logging
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import yaml

from bench.common import (
    machine,
    other_load_note,
    percentile,
    print_table,
    process_cpu,
    system_busy,
    thread_cpu,
    thread_cpu_delta,
    write_results,
)
from collector.metrics import CollectorMetrics
from collector.pipeline.sink import OnDurable, ReadingSink
from collector.service import CollectorService
from collector.sources.modbus import DevicePoller, ModbusCollector
from pumpwatch.clock import SystemClock
from pumpwatch.readings import Reading
from pumpwatch.runtime import favour_event_loop
from pumpwatch.settings import CollectorSettings, Settings
from pumpwatch.site import DataType, ModbusDevice, ModbusPoint, Site, Table
from pumpwatch.sitefile import parse_site
from simulators.modbus_server import DeviceImage, DeviceServer

HOST = "127.0.0.1"
TARGET_CPU_PCT = 25.0  # of one core, for 50 devices x 20 registers every second
WARMUP_TIMEOUT = 30.0

log = logging.getLogger("bench.modbus_poll")


# --- devices and site -----------------------------------------------------------------------------


def make_devices(count: int, registers: int, stride: int, interval: float,
                 ports: Sequence[int]) -> list[ModbusDevice]:
    """`count` devices, each with `registers` uint16 holding registers `stride` addresses apart."""
    timeout = min(0.5, interval / 2)
    return [
        ModbusDevice(
            id=f"plc{i:03d}", room="bench-room", host=HOST, port=ports[i], poll_interval=interval,
            timeout=timeout,
            points=tuple(ModbusPoint(sensor=f"plc{i:03d}-r{j:03d}", table=Table.HOLDING,
                                     address=j * stride, type=DataType.UINT16)
                         for j in range(registers)),
        )
        for i in range(count)
    ]


def bench_site(devices: Sequence[ModbusDevice]) -> Site:
    """A site whose sensors are exactly the devices' points."""
    data: dict[str, Any] = {
        "site": {"id": "bench", "name": {"zh": "基准", "en": "Bench"}},
        "rooms": [{
            "id": "bench-room",
            "name": {"zh": "基准泵房", "en": "Bench room"},
            "sensors": [{"id": p.sensor, "kind": "pressure", "range": [0, 65535], "source": "modbus"}
                        for d in devices for p in d.points],
        }],
        "modbus": [d.model_dump(mode="json", exclude_defaults=True) for d in devices],
    }
    return parse_site(yaml.safe_dump(data, allow_unicode=True), "bench-modbus-site.yaml")


# --- the server process ---------------------------------------------------------------------------


class _Values:
    """Register values that change on every read, so the collector decodes fresh numbers."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, _sensor: str) -> float:
        self.n = (self.n + 1) % 65536
        return float(self.n)


def server_main(conn: Connection, count: int, registers: int, stride: int, interval: float) -> None:
    """Serve `count` simulated devices until the parent sends "stop"; then report reads served."""
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_serve(conn, count, registers, stride, interval))


async def _serve(conn: Connection, count: int, registers: int, stride: int, interval: float) -> None:
    values = _Values()
    servers: list[DeviceServer] = []
    for device in make_devices(count, registers, stride, interval, [0] * count):
        image = DeviceImage(device, values, lambda _sensor, _value: False)
        server = DeviceServer(image, HOST, 0)
        await server.start()
        servers.append(server)
    conn.send([s.port for s in servers])
    loop = asyncio.get_running_loop()
    while True:
        if not await loop.run_in_executor(None, conn.poll, 5.0):
            parent = mp.parent_process()
            if parent is None or not parent.is_alive():
                break  # the benchmark went away: stop serving
            continue
        message = conn.recv()
        if message == "reads":
            conn.send(sum(s.reads for s in servers))
        elif message == "stop":
            break
    for server in servers:
        await server.stop()
    conn.send(sum(s.reads for s in servers))


def spawn_servers(args: argparse.Namespace) -> tuple[mp.process.BaseProcess, Connection, list[int]]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=server_main, name="bench-modbus-servers", daemon=True,
                       args=(child, args.devices, args.registers, args.stride, args.interval))
    proc.start()
    if not parent.poll(60):
        raise RuntimeError("the Modbus server process did not report its ports")
    ports: list[int] = parent.recv()
    return proc, parent, ports


# --- the collector side ---------------------------------------------------------------------------


class CountingSink:
    """A ReadingSink that counts what it is given and keeps nothing."""

    def __init__(self) -> None:
        self.readings = 0
        self.batches = 0
        self.rejected: Counter[str] = Counter()

    def accept(self, readings: Sequence[Reading], source: str, on_durable: OnDurable | None = None,
               key: str | None = None) -> None:
        self.readings += len(readings)
        self.batches += 1
        if on_durable is not None:
            on_durable()

    def delivered(self, key: str) -> bool:
        return False

    def reject(self, source: str, reason: str, detail: str) -> None:
        self.rejected[reason] += 1


PollOnce = Callable[[], Coroutine[Any, Any, None]]


class DeviceSink:
    """Stands between one poller and the real sink, counting the readings that device delivered."""

    def __init__(self, inner: ReadingSink) -> None:
        self.inner = inner
        self.readings = 0

    def accept(self, readings: Sequence[Reading], source: str, on_durable: OnDurable | None = None,
               key: str | None = None) -> None:
        self.readings += len(readings)
        self.inner.accept(readings, source, on_durable, key)

    def delivered(self, key: str) -> bool:
        return self.inner.delivered(key)

    def reject(self, source: str, reason: str, detail: str) -> None:
        self.inner.reject(source, reason, detail)


@dataclass(frozen=True)
class Cycle:
    """One poll cycle of one device: when it started (perf_counter), how long, readings delivered."""

    start: float
    duration: float
    readings: int


class CycleTimer:
    """Wraps each poller's `poll_once` (and its sink) to record every cycle of every device."""

    def __init__(self, pollers: dict[str, DevicePoller], interval: float) -> None:
        self.interval = interval
        self.cycles: dict[str, list[Cycle]] = {d: [] for d in pollers}
        for device_id, poller in pollers.items():
            counter = DeviceSink(poller.sink)
            poller.sink = counter
            poller.poll_once = self._wrap(self.cycles[device_id], counter,  # type: ignore[method-assign]
                                          poller.poll_once)

    @staticmethod
    def _wrap(cycles: list[Cycle], counter: DeviceSink, poll_once: PollOnce) -> PollOnce:
        async def timed() -> None:
            started, before = time.perf_counter(), counter.readings
            try:
                await poll_once()
            finally:
                cycles.append(Cycle(started, time.perf_counter() - started, counter.readings - before))

        return timed

    def latest_start(self) -> float | None:
        """The most recent cycle start of the device that came up last; None until all have polled."""
        if not all(self.cycles.values()):
            return None
        return max(c[-1].start for c in self.cycles.values())

    def window(self, t0: float, t1: float) -> dict[str, list[Cycle]]:
        """Each device's cycles that started in [t0, t1)."""
        return {d: [c for c in cycles if t0 <= c.start < t1] for d, cycles in self.cycles.items()}

    def lateness(self, picked: dict[str, list[Cycle]]) -> list[float]:
        """How late each start is against its device's grid (relative to its earliest start), s."""
        late: list[float] = []
        for cycles in picked.values():
            if cycles:
                first = cycles[0].start
                offsets = [c.start - first - round((c.start - first) / self.interval) * self.interval
                           for c in cycles]
                late += [o - min(offsets) for o in offsets]
        return late


async def run_mode(mode: str, args: argparse.Namespace, ports: list[int], server: psutil.Process,
                   conn: Connection, state_dir: Path) -> dict[str, Any]:
    devices = make_devices(args.devices, args.registers, args.stride, args.interval, ports)
    metrics = CollectorMetrics()
    sink = CountingSink()
    service: CollectorService | None = None
    if mode == "sink":
        collector = ModbusCollector(devices, sink, metrics, SystemClock())
        runner: Awaitable[None] = collector.run()
    else:
        settings = Settings(collector=CollectorSettings(state_dir=state_dir / mode))
        service = CollectorService(bench_site(devices), settings, SystemClock(), None, metrics=metrics)
        modbus = service.parts.modbus
        assert modbus is not None, "the bench site has Modbus devices"
        collector = modbus
        runner = service.run()
    timer = CycleTimer(collector.pollers, args.interval)
    task = asyncio.ensure_future(runner)

    deadline = time.monotonic() + WARMUP_TIMEOUT
    while (latest := timer.latest_start()) is None:
        if time.monotonic() > deadline or task.done():
            missing = [d for d, c in timer.cycles.items() if not c]
            raise RuntimeError(f"{mode}: devices never polled: {missing[:5]}")
        await asyncio.sleep(0.05)
    # Start the window half an interval after a burst of cycle starts, so no boundary cuts a burst.
    t0 = latest + 1.5 * args.interval
    await asyncio.sleep(t0 - time.perf_counter())

    reads0 = await asyncio.to_thread(requests_served, conn)
    cpu0, threads0, server_cpu0, busy0 = process_cpu(), thread_cpu(), process_cpu(server), system_busy()
    polls0, written0 = _poll_outcomes(metrics), metrics.total(metrics.written)
    await asyncio.sleep(t0 + args.seconds - time.perf_counter())
    t1 = time.perf_counter()
    elapsed = t1 - t0
    cpu, threads = process_cpu() - cpu0, thread_cpu_delta(threads0, thread_cpu())
    server_cpu = process_cpu(server) - server_cpu0
    foreign = system_busy() - busy0 - cpu - server_cpu
    polls = _poll_outcomes(metrics) - polls0
    reads = await asyncio.to_thread(requests_served, conn) - reads0
    await asyncio.sleep(min(args.interval, 5.0))  # let the cycles that started in the window finish
    written = metrics.total(metrics.written) - written0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    picked = timer.window(t0, t1)
    got = sum(c.readings for cycles in picked.values() for c in cycles)
    durations = [c.duration for cycles in picked.values() for c in cycles]
    late = timer.lateness(picked)
    per_device = sorted(len(cycles) for cycles in picked.values())
    expected_cycles = args.seconds / args.interval
    expected_readings = args.devices * args.registers / args.interval
    return {
        "mode": mode,
        "seconds": elapsed,
        "readings": got,
        "readings_per_s": got / elapsed,
        "readings_per_cycle_min": min((c.readings for cs in picked.values() for c in cs), default=0),
        "expected_readings_per_s": expected_readings,
        "requests_served": reads,
        "requests_per_s": reads / elapsed,
        "cycles_expected_per_device": expected_cycles,
        "cycles_min": per_device[0],
        "cycles_mean": sum(per_device) / len(per_device),
        "cycles_max": per_device[-1],
        "poll_outcomes": dict(polls),
        "poll_ms_p50": 1000 * percentile(durations, 50),
        "poll_ms_p99": 1000 * percentile(durations, 99),
        "poll_ms_max": 1000 * max(durations, default=float("nan")),
        "start_late_ms_p50": 1000 * percentile(late, 50),
        "start_late_ms_p99": 1000 * percentile(late, 99),
        "cpu_s": cpu,
        "cpu_pct_of_core": 100 * cpu / elapsed,
        "cpu_us_per_reading": 1e6 * cpu / got if got else float("nan"),
        "threads_cpu_s": threads,
        "servers_cpu_pct_of_core": 100 * server_cpu / elapsed,
        "foreign_cpu_pct_of_core": 100 * foreign / elapsed,
        "sink_rejected": dict(sink.rejected),
        "written_to_store": written if service is not None else None,
    }


def stop_servers(proc: mp.process.BaseProcess, conn: Connection) -> None:
    """Ask the simulated devices' process to stop; terminate it if it does not within 10 s."""
    with contextlib.suppress(OSError, EOFError):
        conn.send("stop")
        conn.poll(10)
    proc.join(10)
    if proc.is_alive():
        proc.terminate()


def requests_served(conn: Connection) -> int:
    """Requests the simulated devices have served so far."""
    conn.send("reads")
    if not conn.poll(30):
        raise RuntimeError("the Modbus server process did not answer")
    served: int = conn.recv()
    return served


def _poll_outcomes(metrics: CollectorMetrics) -> Counter[str]:
    out: Counter[str] = Counter()
    for family in metrics.polls.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[sample.labels["outcome"]] += int(sample.value)
    return out


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.modbus_poll", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=50, help="simulated Modbus devices (default 50)")
    parser.add_argument("--registers", type=int, default=20,
                        help="uint16 holding registers each (default 20)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per mode (default 20)")
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval, s (default 1)")
    parser.add_argument("--stride", type=int, default=1,
                        help="address step between registers; above 9 every register is its own read "
                             "(default 1: one read per device per cycle)")
    parser.add_argument("--mode", choices=["sink", "service", "both"], default="both")
    parser.add_argument("--name", default="modbus_poll", help="results file bench/results/<name>.json")
    args = parser.parse_args(argv)
    if min(args.devices, args.registers, args.stride) <= 0 or args.seconds <= 0 or args.interval <= 0:
        parser.error("--devices, --registers, --stride, --seconds and --interval must be positive")
    if (args.registers - 1) * args.stride > 65535:
        parser.error("registers x stride does not fit in 65536 addresses")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    modes = ["sink", "service"] if args.mode == "both" else [args.mode]
    favour_event_loop()  # the collector runs in this process, as every `pumpwatch` role runs
    # A benchmark stops by itself: dump every thread's stack and exit if a run hangs.
    faulthandler.dump_traceback_later(120 + len(modes) * (args.seconds + 60), exit=True)
    proc, conn, ports = spawn_servers(args)
    state_dir = Path(tempfile.mkdtemp(prefix="pumpwatch-bench-modbus-"))
    results: list[dict[str, Any]] = []
    try:
        server = psutil.Process(proc.pid)
        for mode in modes:
            results.append(asyncio.run(run_mode(mode, args, ports, server, conn, state_dir)))
    finally:
        stop_servers(proc, conn)
        shutil.rmtree(state_dir, ignore_errors=True)
    met = {r["mode"]: (r["cpu_pct_of_core"] < TARGET_CPU_PCT
                       and r["cycles_min"] >= r["cycles_expected_per_device"] - 1) for r in results}
    report(args, results, met)
    path = write_results(args.name, {
        "benchmark": "modbus_poll",
        "command": " ".join(["python -m bench.modbus_poll", *sys.argv[1:]]),
        "machine": machine(),
        "settings": {"devices": args.devices, "registers": args.registers, "interval": args.interval,
                     "stride": args.stride, "seconds": args.seconds},
        "target": {"cpu_pct_of_core_below": TARGET_CPU_PCT, "met": met},
        "modes": results,
    })
    print(f"\nresults: {path}")
    return 0


def report(args: argparse.Namespace, results: list[dict[str, Any]], met: dict[str, bool]) -> None:
    print_table(
        f"Modbus polling: {args.devices} devices x {args.registers} registers every {args.interval:g} s "
        f"(stride {args.stride}), {args.seconds:g} s measured",
        ["mode", "readings/s", "expected/s", "cycles/device min-mean-max", "expected", "poll p50 ms",
         "poll p99 ms", "late p99 ms", "CPU % core", "µs CPU/reading", "servers CPU %"],
        [[r["mode"], r["readings_per_s"], r["expected_readings_per_s"],
          f"{r['cycles_min']}-{r['cycles_mean']:.1f}-{r['cycles_max']}", r["cycles_expected_per_device"],
          r["poll_ms_p50"], r["poll_ms_p99"], r["start_late_ms_p99"], r["cpu_pct_of_core"],
          r["cpu_us_per_reading"], r["servers_cpu_pct_of_core"]] for r in results],
    )
    for r in results:
        threads = ", ".join(f"{k} {v:.2f}" for k, v in r["threads_cpu_s"].items() if v >= 0.01)
        print(f"{r['mode']}: poll outcomes {r['poll_outcomes']}; CPU s by thread: {threads}")
    for r in results:
        if note := other_load_note(r["foreign_cpu_pct_of_core"]):
            print(f"{r['mode']}: {note}")
    for mode, ok in met.items():
        print(f"target {args.devices} x {args.registers} every {args.interval:g} s under "
              f"{TARGET_CPU_PCT:.0f}% of one core, every cycle done ({mode}): {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    raise SystemExit(main())
