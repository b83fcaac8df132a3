"""The floor of a durable MQTT intake in Python: what it costs before any work on a reading.

`bench.ingest` measures the whole collector. This measures what is left when every step that looks
at a reading is taken out: PumpWatch's own MQTT session (`pumpwatch.mqtt_session`) takes the
messages, and a committer thread stores each commit window's raw payloads as one row of an SQLite
file in WAL mode with `synchronous=FULL` (as `DurableBuffer` does), then acknowledges them. No
decoding, validation, delivery keys, rules, live view or InfluxDB writer.

`--mode ack` acknowledges each read from the socket at once and stores nothing: the session alone.

    python -m bench.intake_floor --values-per-message 1 --rate 5000
    python -m bench.intake_floor --values-per-message 50 --rate 20000 --commit-window 0.02

Any collector built this way costs at least this much CPU per reading at that rate, whatever is
compiled below it. Results in `bench/results/<name>.json`.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import machine, print_table, process_cpu, thread_cpu, thread_cpu_delta, write_results
from bench.ingest import device_ids
from bench.load import PUBLISHERS, start_load
from pumpwatch.mqtt_session import Message, MqttSession
from pumpwatch.mqtturl import BrokerAddress
from pumpwatch.runtime import favour_event_loop
from tests.support.services import HOST, Mosquitto

MODES = ("commit", "ack")
COMMIT_WINDOW = 0.005  # s, the collector's default (`collector.pipeline.intake.COMMIT_WINDOW`)


@dataclass
class FloorIntake:
    """MQTT session -> group commit of raw payloads (fsync) -> acknowledgements, and nothing else."""

    broker: BrokerAddress
    subscription: str
    path: Path
    mode: str = "commit"
    window: float = COMMIT_WINDOW
    received: int = 0
    committed: int = 0
    commits: int = 0
    _pending: list[list[Message]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _stopping: bool = False
    _connected: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: one of {', '.join(MODES)}")
        self.session = MqttSession(self.broker, f"bench-floor-{uuid.uuid4().hex[:6]}", [self.subscription],
                                   on_messages=self._on_messages, on_state=self._on_state, clean=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS payloads "
                         "(seq INTEGER PRIMARY KEY, count INTEGER, data BLOB)")
        self._committer = threading.Thread(target=self._commit_loop, name="floor-committer", daemon=True)

    def start(self, timeout: float = 15.0) -> None:
        """Connect and subscribe; returns once the session is up."""
        self._committer.start()
        self.session.start()
        if not self._connected.wait(timeout):
            raise RuntimeError("the floor's session did not connect")

    def stop(self) -> None:
        """Commit what waits, then disconnect."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._committer.join(10)
        self.session.stop()
        self._db.close()

    def _on_state(self, up: bool) -> None:
        if up:
            self._connected.set()

    def _on_messages(self, messages: list[Message]) -> None:
        self.received += len(messages)
        if self.mode == "ack":
            self.session.ack(messages[0].connection, [m.mid for m in messages])
            return
        with self._cond:
            if not self._pending:
                self._cond.notify()
            self._pending.append(messages)

    def _commit_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending:
                    return
                until = time.monotonic() + self.window
                while not self._stopping and (left := until - time.monotonic()) > 0:
                    self._cond.wait(left)
                reads, self._pending = self._pending, []
            count = sum(len(read) for read in reads)
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO payloads (count, data) VALUES (?, ?)",
                             (count, b"\n".join(m.payload for read in reads for m in read)))
            self._db.execute("COMMIT")
            self.commits += 1
            self.committed += count
            for read in reads:
                self.session.ack(read[0].connection, [m.mid for m in read])


def run(args: argparse.Namespace, broker: Mosquitto, state_dir: Path) -> dict[str, Any]:
    """One floor run against `broker`: the publishers' load in, every message committed (or acked)."""
    values = args.values_per_message
    devices = device_ids(args.sensors, values)
    prefix = f"floor-{uuid.uuid4().hex[:6]}"
    intake = FloorIntake(BrokerAddress(HOST, broker.port), f"{prefix}/+", state_dir / "floor.db",
                         mode=args.mode, window=args.commit_window)
    intake.start()
    load = start_load(args.publisher, args.publishers, broker.port, prefix, devices, values, args.seconds,
                      args.rate, None)
    threads0, cpu0 = thread_cpu(), process_cpu()
    load.go()
    result = load.poll(args.seconds + 180)
    if result is None or "error" in result:
        intake.stop()
        raise RuntimeError(f"the publishers did not finish: {result}")
    published = int(result["acked"])

    def done() -> int:
        return intake.received if args.mode == "ack" else intake.committed

    deadline = time.monotonic() + 60
    while done() < published and time.monotonic() < deadline:
        time.sleep(0.02)
    cpu = process_cpu() - cpu0
    threads = thread_cpu_delta(threads0, thread_cpu())
    intake.stop()
    load.join(10)
    taken = done()
    return {
        "mode": args.mode,
        "values_per_message": values,
        "requested_rate": args.rate,
        "commit_window_s": args.commit_window,
        "messages_published": published,
        "messages_taken": taken,
        "lost": published - taken,
        "commits": intake.commits,
        "intake_cpu_s": cpu,
        "cpu_us_per_message": cpu / taken * 1e6 if taken else 0.0,
        "cpu_us_per_reading": cpu / (taken * values) * 1e6 if taken else 0.0,
        "threads_cpu_s": threads,
        "publisher_cpu_s": float(result["cpu_s"]),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.intake_floor", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="commit",
                        help="commit: fsync'd group commit, then acknowledge (default); "
                             "ack: acknowledge at once")
    parser.add_argument("--values-per-message", type=int, default=1, help="values per message (default 1)")
    parser.add_argument("--rate", type=float, default=5000.0, help="readings/s offered (default 5000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to publish (default 20)")
    parser.add_argument("--sensors", type=int, default=100, help="devices publishing (default 100)")
    parser.add_argument("--commit-window", type=float, default=COMMIT_WINDOW,
                        help=f"s the first message of a commit waits for others (default {COMMIT_WINDOW})")
    parser.add_argument("--publisher", choices=PUBLISHERS, default="mqttjs",
                        help="load generator (default mqttjs)")
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes (default 2)")
    parser.add_argument("--name", default="intake_floor", help="results file bench/results/<name>.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    favour_event_loop()  # as every `pumpwatch` role runs
    with tempfile.TemporaryDirectory(prefix="pumpwatch-bench-floor-") as state, Mosquitto() as broker:
        result = run(args, broker, Path(state))
    print_table(f"Intake floor ({args.mode}): {args.values_per_message} values/message at {args.rate:,.0f} "
                f"readings/s, commit window {args.commit_window * 1000:g} ms",
                ["published", "taken", "lost", "commits", "CPU s", "µs / message", "µs / reading"],
                [[result["messages_published"], result["messages_taken"], result["lost"], result["commits"],
                  f"{result['intake_cpu_s']:.2f}", f"{result['cpu_us_per_message']:.1f}",
                  f"{result['cpu_us_per_reading']:.2f}"]])
    print_table("CPU seconds per thread", ["thread", "CPU s"],
                [[name, f"{cpu:.2f}"] for name, cpu in sorted(result["threads_cpu_s"].items(),
                                                               key=lambda item: -item[1])])
    path = write_results(args.name, {"benchmark": "intake_floor",
                                     "command": " ".join(["python -m bench.intake_floor", *sys.argv[1:]]),
                                     "machine": machine(), "floor": result})
    print(f"\nresults: {path}")
    return 0 if result["lost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
