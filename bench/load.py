"""The MQTT load of the ingest benchmarks: QoS 1 publishers in one or several processes.

Two kinds of publisher, both publishing message K as `{"s0": K.000, "s1": K.001, ...}` to
`<prefix>/<device>`, one message per device per round, at most `PUBLISH_WINDOW` unacknowledged:

- `paho`: Python and paho-mqtt in a `multiprocessing` (spawn) process; about 70 µs of CPU per message,
  so one process offers at most some 5,000-10,000 messages/s on this machine.
- `mqttjs`: Node.js and MQTT.js (`bench/mqttjs_publisher.js`; MQTT.js comes with the Node-RED install
  of `bench.nodered`), several times cheaper per message.

`--publishers N` splits the devices over N processes, each taking its share of the rate; the result
sums them, and each process reports its own CPU, so a run shows whether the load was the bottleneck.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import process_cpu
from tests.support.services import HOST

PUBLISH_WINDOW = 1000  # QoS 1 messages a publisher keeps unacknowledged at most
PUBLISHERS = ("paho", "mqttjs")
NODE_SCRIPT = Path(__file__).with_name("mqttjs_publisher.js")


def payload(seq: int, values: int) -> bytes:
    """Message number `seq`: {"s0": seq.000, "s1": seq.001, ...}."""
    return ("{" + ",".join(f'"s{j}":{seq}.{j:03d}' for j in range(values)) + "}").encode()


# --- paho publisher (a spawned Python process) ---------------------------------------------------


class Arrivals:
    """Counts callbacks (acknowledgements, messages) with the times of the first and the last."""

    def __init__(self) -> None:
        self.count = 0
        self.first = self.last = 0.0
        self.cond = threading.Condition()

    def tick(self, *_args: Any) -> None:
        """A paho callback: one more arrival."""
        with self.cond:
            self.count += 1
            self.last = time.time()
            if self.count == 1:
                self.first = self.last
            self.cond.notify_all()


def publisher_main(conn: Connection, port: int, prefix: str, devices: list[str], values: int,
                   seconds: float, rate: float | None) -> None:
    """Publish at QoS 1 for `seconds` (at `rate` readings/s, or as fast as the broker acknowledges).

    Talks to the parent through `conn`: sends "ready", waits for "go", sends a result dict at the end.
    """
    logging.basicConfig(level=logging.WARNING)
    acks = Arrivals()

    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}",
                         clean_session=True)
    client.max_inflight_messages_set(PUBLISH_WINDOW)
    client.max_queued_messages_set(0)
    client.on_publish = acks.tick
    client.on_connect = lambda *_args: connected.set()
    client.connect(HOST, port, keepalive=60)
    client.loop_start()
    if not connected.wait(15):
        conn.send({"error": "publisher could not connect"})
        return
    topics = [f"{prefix}/{dev}" for dev in devices]
    conn.send("ready")
    if conn.recv() != "go":
        return
    cpu0 = process_cpu()
    sent = 0
    period = len(topics) * values / rate if rate else 0.0  # seconds per round of one message per device
    started = time.time()
    next_round = time.monotonic()
    deadline = next_round + seconds
    seq = 0
    while time.monotonic() < deadline:
        body = payload(seq, values)
        for topic in topics:
            with acks.cond:
                while sent - acks.count >= PUBLISH_WINDOW:
                    acks.cond.wait(1.0)
            client.publish(topic, body, qos=1)
            sent += 1
        seq += 1
        if period:
            next_round += period
            delay = next_round - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    last_publish = time.time()
    with acks.cond:
        acks.cond.wait_for(lambda: acks.count >= sent, timeout=120)
    cpu = process_cpu() - cpu0
    client.disconnect()
    client.loop_stop()
    conn.send({"messages": sent, "acked": acks.count, "rounds": seq, "first_publish": started,
               "last_publish": last_publish, "first_ack": acks.first, "last_ack": acks.last, "cpu_s": cpu})


class _PahoProcess:
    """One paho publisher process behind a pipe."""

    def __init__(self, port: int, prefix: str, devices: list[str], values: int, seconds: float,
                 rate: float | None) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=publisher_main,
                                args=(child, port, prefix, devices, values, seconds, rate),
                                name="bench-publisher", daemon=True)
        self.proc.start()

    def ready(self, within: float) -> None:
        if not self.conn.poll(within):
            raise RuntimeError("the publisher process did not report ready")
        ready = self.conn.recv()
        if ready != "ready":
            raise RuntimeError(f"publisher: {ready}")

    def go(self) -> None:
        self.conn.send("go")

    def poll(self) -> dict[str, Any] | None:
        return self.conn.recv() if self.conn.poll() else None

    def join(self, timeout: float) -> None:
        self.proc.join(timeout)


# --- MQTT.js publisher (a Node.js process) -------------------------------------------------------


def node_modules(node_red_home: Path | None = None) -> Path:
    """Where MQTT.js is: the Node-RED install of bench.nodered (installed there when missing)."""
    from bench import nodered  # only the MQTT.js publisher needs it

    home = node_red_home or nodered.default_home()
    if not (home / "node_modules" / "mqtt" / "package.json").is_file():
        nodered.install(home)
    return home / "node_modules"


class _NodeProcess:
    """One MQTT.js publisher process; stdio lines are its protocol (see bench/mqttjs_publisher.js)."""

    def __init__(self, port: int, prefix: str, devices: list[str], values: int, seconds: float,
                 rate: float | None, modules: Path) -> None:
        node = shutil.which("node")
        if node is None:
            raise SystemExit("the MQTT.js publisher needs Node.js: apt-get install nodejs npm")
        settings = {"port": port, "prefix": prefix, "devices": devices, "values": values,
                    "seconds": seconds, "rate": rate, "window": PUBLISH_WINDOW,
                    "client_id": f"bench-pubjs-{uuid.uuid4().hex[:8]}"}
        self.proc = subprocess.Popen([node, str(NODE_SCRIPT), json.dumps(settings)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "NODE_PATH": str(modules)})
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True, name="bench-pubjs-reader")
        self._got = threading.Condition()
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._got:
                self._lines.append(line.strip())
                self._got.notify_all()
        with self._got:
            self._lines.append(json.dumps({"error": f"publisher exited ({self.proc.wait()})"}))
            self._got.notify_all()

    def _next(self, within: float | None) -> str | None:
        with self._got:
            if not self._got.wait_for(lambda: bool(self._lines), timeout=within):
                return None
            return self._lines.pop(0)

    def ready(self, within: float) -> None:
        line = self._next(within)
        if line != "ready":
            raise RuntimeError(f"MQTT.js publisher: {line or f'no ready within {within:.0f} s'}")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def poll(self) -> dict[str, Any] | None:
        line = self._next(0)
        return json.loads(line) if line else None

    def join(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- the load ------------------------------------------------------------------------------------


@dataclass
class Load:
    """Publisher processes started and connected; `go` starts them, `poll` gives the summed result."""

    kind: str
    workers: list[_PahoProcess | _NodeProcess]
    results: list[dict[str, Any]] = field(default_factory=list)

    def go(self) -> None:
        """Start publishing in every process."""
        for worker in self.workers:
            worker.go()

    def poll(self, within: float = 0.0) -> dict[str, Any] | None:
        """The summed result once every process has reported (None before); waits up to `within` s."""
        deadline = time.monotonic() + within
        while True:
            for worker in self.workers[len(self.results):]:
                result = worker.poll()
                if result is None:
                    break
                self.results.append(result)
            if len(self.results) == len(self.workers):
                return merge(self.kind, self.results)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def join(self, timeout: float = 30.0) -> None:
        """Wait for every process to exit."""
        for worker in self.workers:
            worker.join(timeout)


def merge(kind: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result for the processes: counts and CPU summed, the first and last times over all."""
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        return {"error": "; ".join(errors)}
    return {
        "publisher": kind,
        "processes": len(results),
        "messages": sum(int(r["messages"]) for r in results),
        "acked": sum(int(r["acked"]) for r in results),
        "rounds": max(int(r["rounds"]) for r in results),
        "first_publish": min(float(r["first_publish"]) for r in results),
        "last_publish": max(float(r["last_publish"]) for r in results),
        "first_ack": min(float(r["first_ack"]) for r in results if r["first_ack"]) if any(
            r["first_ack"] for r in results) else 0.0,
        "last_ack": max(float(r["last_ack"]) for r in results),
        "cpu_s": sum(float(r["cpu_s"]) for r in results),
        "cpu_s_per_process": [float(r["cpu_s"]) for r in results],
    }


def start_load(kind: str, processes: int, port: int, prefix: str, devices: list[str], values: int,
               seconds: float, rate: float | None, node_red_home: Path | None = None) -> Load:
    """Start `processes` publishers of `kind` over the devices (each its share of the rate), connected."""
    if kind not in PUBLISHERS:
        raise ValueError(f"publisher {kind!r} is not one of {', '.join(PUBLISHERS)}")
    processes = max(1, min(processes, len(devices)))
    shares = [devices[i::processes] for i in range(processes)]
    modules = node_modules(node_red_home) if kind == "mqttjs" else None
    workers: list[_PahoProcess | _NodeProcess] = []
    for share in shares:
        part = rate * len(share) / len(devices) if rate else None
        if modules is not None:
            workers.append(_NodeProcess(port, prefix, share, values, seconds, part, modules))
        else:
            workers.append(_PahoProcess(port, prefix, share, values, seconds, part))
    for worker in workers:
        worker.ready(30)
    return Load(kind, workers)
