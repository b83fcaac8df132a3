"""Where the collector's memory grows: the soak's load on a collector in this process, under tracemalloc.

    python -m bench.collector_trace [--minutes 6] [--rate 5000] [--warmup 60] [--frames 8]

Real Mosquitto and InfluxDB, the simulator as its own process, the whole `CollectorService` here
(site and load as in bench.soak). Tracing starts after `--warmup` s; a snapshot 30 s later and one
when the publisher is done are compared, so one-off start-up allocations stay out of the figures:
what is left is what the steady state keeps allocating and holding. Prints the top differences by
file, by line and by traceback. Tracing slows the collector several times over: use a lower
`--rate` when it falls behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

from bench.ingest import device_ids, spawn_publisher
from bench.soak import soak_site
from collector.service import CollectorService
from pumpwatch.clock import SystemClock
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.settings import CollectorSettings, InfluxSettings, MqttSettings, Settings
from pumpwatch.sitefile import parse_site
from tests.support.mqtt import create_session
from tests.support.processes import PumpwatchProcess
from tests.support.services import HOST, InfluxDB, Mosquitto, free_ports

VALUES = 50
SENSORS = 100
MB = 1024 * 1024


def print_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, frames: int) -> None:
    """The biggest differences between two snapshots, by file, by line and by traceback."""
    for key, top in (("filename", 12), ("lineno", 15), ("traceback", 5)):
        print(f"\nGrowth by {key}:")
        for stat in after.compare_to(before, key)[:top]:
            where = ("\n      " + "\n      ".join(stat.traceback.format()[-2 * frames:])
                     if key == "traceback" else str(stat.traceback[0]))
            print(f"  {stat.size_diff / MB:+7.2f} MB {stat.count_diff:+8d} blocks  {where}")


async def trace(args: argparse.Namespace, work: Path) -> None:
    """Run the collector under load and print the growth between the two snapshots."""
    devices = device_ids(SENSORS, VALUES)
    prefix = f"trace-{uuid.uuid4().hex[:6]}"
    ports = free_ports(2)
    (work / "simulated-site.yaml").write_text(soak_site(prefix, devices, VALUES, ports, load=False),
                                              encoding="utf-8")
    site = parse_site(soak_site(prefix, devices, VALUES, ports), "site.yaml")
    with Mosquitto() as broker, InfluxDB() as influx:
        simulator = PumpwatchProcess("simulator", ["simulate", "--site", str(work / "simulated-site.yaml"),
                                                   "--mqtt", broker.url], dict(os.environ),
                                     work / "simulator.log")
        simulator.start()
        client_id = f"trace-{uuid.uuid4().hex[:6]}"
        await asyncio.to_thread(create_session, broker.port, client_id, f"{prefix}/+")
        settings = Settings(influx=InfluxSettings(url=influx.url, database="trace"),
                            collector=CollectorSettings(state_dir=work / "state", client_id=client_id),
                            mqtt=MqttSettings(url=broker.url))
        service = CollectorService(site, settings, SystemClock(), BrokerAddress(HOST, broker.port),
                                   publish_live=True)  # as `pumpwatch collect` runs it
        running = asyncio.create_task(service.run(), name="collector")
        publisher = None
        try:
            publisher, conn = await asyncio.to_thread(spawn_publisher, broker.port, prefix, devices, VALUES,
                                                      args.minutes * 60, args.rate)
            conn.send("go")
            await asyncio.sleep(args.warmup)
            tracemalloc.start(args.frames)
            await asyncio.sleep(30)
            before = tracemalloc.take_snapshot()
            started = time.monotonic()
            await asyncio.to_thread(conn.poll, args.minutes * 60 + 120)  # the publisher reports when done
            after = tracemalloc.take_snapshot()
            print(f"steady window {time.monotonic() - started:.0f} s; memory traced since the warm-up: "
                  f"{tracemalloc.get_traced_memory()[0] / MB:.1f} MB; {service.status_line()}")
            print_growth(before, after, args.frames)
        finally:
            tracemalloc.stop()
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            simulator.stop()
            if publisher is not None:
                publisher.join(10)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, trace, clean up."""
    parser = argparse.ArgumentParser(prog="python -m bench.collector_trace",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="length of the load (default 6)")
    parser.add_argument("--rate", type=float, default=5000.0, help="MQTT readings/s (default 5000)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before tracing starts")
    parser.add_argument("--frames", type=int, default=8, help="frames kept per allocation (default 8)")
    args = parser.parse_args(argv)
    if args.warmup + 60 >= args.minutes * 60:
        parser.error("--minutes must leave at least a minute after the warm-up")
    work = Path(tempfile.mkdtemp(prefix="pumpwatch-trace-"))
    try:
        asyncio.run(trace(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
