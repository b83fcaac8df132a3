"""The fleet's MQTT load: every topic of a generated deployment once a second, from several processes.

`bench.load` publishes `{"s0": ..., "s1": ...}` to `<prefix>/<device>`; a generated fleet
(`simulators.fleet.write_fleet`, feed `mqtt`) wants its own topics and fields instead: each room's 4G data
terminal (DTU) publishes one JSON document a second on `dtu/<estate>/<room>` with one field per wired
sensor, and the rooms' wireless sensors publish Zigbee2MQTT documents on `z2m/<estate>/leak/<device>`
(`water_leak`, `battery`) and `z2m/<estate>/climate/<device>` (`temperature`). `messages` reads the site
files and gives every topic, its payload's fields and a value for each that stays clear of the thresholds
in force on the sensor (`pumpwatch.thresholds`: its own, the site's defaults, and built-in limits such as a
pump's motor current against its rated current), so the load is readings, not an alarm storm. The
publishers are paho in spawned processes, as `bench.load`'s, each spreading its topics over the second in
`SLOTS` bursts (QoS 1, at most `PUBLISH_WINDOW` unacknowledged), and each reports its own CPU.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import threading
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import process_cpu
from bench.load import PUBLISH_WINDOW, Arrivals, merge
from tests.support.services import HOST

# What a healthy room reports for kinds without a range: closed, dry, stopped, switched to AUTO.
_BOOLEAN_KINDS = frozenset({"run_status", "run_command", "leak", "door", "smoke"})
CYCLE = 5  # seconds after which the values repeat
SLOTS = 20  # a publisher sends its messages of a second in this many bursts (a sleep per message costs)
_CODES = {"switch_position": 2, "duty_select": 1}  # state codes: integers, never moved


@dataclass(frozen=True)
class Message:
    """One topic's message each second: its fields and their values (a number, or a boolean)."""

    topic: str
    fields: dict[str, float | int | bool]

    @property
    def readings(self) -> int:
        """Readings the message carries (one per field)."""
        return len(self.fields)


def healthy_value(sensor: dict[str, Any]) -> float | int | bool:
    """A value inside the sensor's range and clear of every threshold (mid-way between the nearest)."""
    kind = str(sensor.get("kind"))
    if kind in _BOOLEAN_KINDS:
        return False
    if kind in _CODES:
        return _CODES[kind]
    low, high = (float(v) for v in sensor.get("range", (0.0, 100.0)))
    for threshold in sensor.get("thresholds", ()):
        if threshold["when"] == "below":
            low = max(low, float(threshold["value"]))
        elif threshold["when"] == "above":
            high = min(high, float(threshold["value"]))
    return round((low + high) / 2, 3)


def _sensors(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every sensor of a site document by id (rooms' own and their equipment's), each with the thresholds in
    force on it (`pumpwatch.thresholds.thresholds_in_force`) in place of those the document gives."""
    from pumpwatch.site import Site
    from pumpwatch.thresholds import thresholds_in_force

    site = Site.model_validate(doc)
    out: dict[str, dict[str, Any]] = {}
    for room, equipment, sensor in site.iter_sensors():
        in_force = thresholds_in_force(site, room, equipment, sensor).thresholds
        out[sensor.id] = {"id": sensor.id, "kind": sensor.kind.value, "source": sensor.source,
                          "range": sensor.valid_range or (0.0, 100.0),
                          "thresholds": [{"when": t.when.value, "value": t.value} for t in in_force]}
    return out


def estate_messages(doc: dict[str, Any]) -> list[Message]:
    """The messages of one estate's site document (feed `mqtt`): its DTUs' and its wireless sensors'."""
    sensors = _sensors(doc)
    estate = doc["site"]["id"]
    out: list[Message] = []
    wired: set[str] = set()
    for entry in doc.get("mqtt", ()):
        if "{" in entry["topic"]:
            continue  # the wireless maps, below
        fields = {v["field"]: healthy_value(sensors[v["sensor"]]) for v in entry["values"]}
        wired.update(v["sensor"] for v in entry["values"])
        out.append(Message(entry["topic"], fields))
    for sid, sensor in sensors.items():
        if sid in wired or sensor.get("source") != "mqtt" or sid.endswith("-battery"):
            continue
        if sensor["kind"] == "leak":
            out.append(Message(f"z2m/{estate}/leak/{sid}", {"water_leak": False, "battery": 87.0}))
        elif sensor["kind"] == "temperature":
            out.append(Message(f"z2m/{estate}/climate/{sid}", {"temperature": healthy_value(sensor)}))
    return out


def messages(deployment: Path) -> list[Message]:
    """Every message of the deployment's estates, estate by estate."""
    listing = yaml.safe_load(deployment.read_text(encoding="utf-8"))
    out: list[Message] = []
    for name in listing["estates"]:
        out += estate_messages(yaml.safe_load((deployment.parent / name).read_text(encoding="utf-8")))
    return out


def body(message: Message, second: int) -> bytes:
    """The message of second `second`: measured values move by a few thousandths (codes stay)."""
    step = (second % CYCLE) * 0.001
    return json.dumps({k: v if isinstance(v, int) else round(v + step, 3)
                       for k, v in message.fields.items()}).encode()


def publisher_main(conn: Connection, port: int, share: list[Message], seconds: float) -> None:
    """Publish every message of `share` once a second for `seconds`, spread evenly over each second.

    Talks to the parent through `conn`: "ready", then waits for "go", then sends a result dict.
    """
    logging.basicConfig(level=logging.WARNING)
    acks = Arrivals()
    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-fleet-{uuid.uuid4().hex[:8]}",
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
    conn.send("ready")
    if conn.recv() != "go":
        return
    # Every second's body made before the clock starts (the values repeat every CYCLE seconds): the
    # publisher's CPU is then paho's, not JSON encoding's.
    bodies = [[body(message, second) for second in range(CYCLE)] for message in share]
    cpu0 = process_cpu()
    sent = readings = behind = 0
    per_slot = max(1, -(-len(share) // SLOTS))  # messages per slot, rounded up
    started = time.time()
    begin = time.monotonic()
    second = 0
    while second < seconds:
        for n, message in enumerate(share):
            due = begin + second + (n // per_slot) / SLOTS
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                behind += 1  # over a second late: this publisher cannot hold 1 Hz
            with acks.cond:
                while sent - acks.count >= PUBLISH_WINDOW:
                    acks.cond.wait(1.0)
            client.publish(message.topic, bodies[n][second % CYCLE], qos=1)
            sent += 1
            readings += message.readings
        second += 1
    last_publish = time.time()
    with acks.cond:
        acks.cond.wait_for(lambda: acks.count >= sent, timeout=120)
    cpu = process_cpu() - cpu0
    client.disconnect()
    client.loop_stop()
    conn.send({"messages": sent, "acked": acks.count, "rounds": second, "first_publish": started,
               "last_publish": last_publish, "first_ack": acks.first, "last_ack": acks.last, "cpu_s": cpu,
               "readings": readings if acks.count >= sent else -1, "late_over_1s": behind})


class FleetLoad:
    """Publisher processes, connected; `go` starts them all, `result` waits for the summed figures."""

    def __init__(self, port: int, all_messages: list[Message], processes: int, seconds: float) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for share in (all_messages[i::processes] for i in range(processes)):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=publisher_main, args=(child, port, share, seconds),
                               name="bench-fleet-publisher", daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        for pipe in self.pipes:
            if not pipe.poll(60):
                raise RuntimeError("a fleet publisher did not report ready")
            ready = pipe.recv()
            if ready != "ready":
                raise RuntimeError(f"fleet publisher: {ready}")

    @property
    def pids(self) -> list[int]:
        """The publisher processes' ids (for CPU sampling)."""
        return [int(proc.pid) for proc in self.procs]

    def go(self) -> None:
        """Start publishing everywhere."""
        for pipe in self.pipes:
            pipe.send("go")

    def result(self, within: float) -> dict[str, Any]:
        """The summed result of every process (counts, readings, CPU), waiting up to `within` s."""
        results = []
        for pipe in self.pipes:
            if not pipe.poll(within):
                raise RuntimeError("a fleet publisher did not report its result")
            results.append(pipe.recv())
        for proc in self.procs:
            proc.join(10)
        merged = merge("paho", results)
        if "error" not in merged:
            merged["readings"] = sum(int(r["readings"]) for r in results)
            merged["late_over_1s"] = sum(int(r["late_over_1s"]) for r in results)
        return merged
