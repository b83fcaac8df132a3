"""Edge gateways side by side: PumpWatch's edge, ThingsBoard IoT Gateway and Node-RED on the same devices,
the same broker and the same link, which is cut for a while and whose gateway is SIGKILLed.

    python -m bench.edge_peers [--devices 50] [--registers 20] [--seconds 60] [--cut 60] [--repeat 1]

Each peer runs alone, in turn, on a fresh setup:

- Two network namespaces joined by a veth pair (tests.support.netns.Link, rate-limited like 4G): the
  edge box (the simulated devices and the gateway) and the centre (Mosquitto; for PumpWatch also
  `pumpwatch collect`, which answers the edge's clock requests and stores its batches).
- `--devices` simulated devices x `--registers` uint16 holding registers, each device its own Modbus
  RTU-over-TCP endpoint (as behind a serial-to-Ethernet gateway), one process. Every register counts
  the reads that returned it (1, 2, 3 ...), so each reading is named by (sensor, value) and every
  reading produced at the devices is known exactly, with the time it was served.
- The gateway polls every device every `--interval` (one request per device per cycle for all three)
  and forwards to the centre's broker at QoS 1: PumpWatch `pumpwatch edge` (durable buffer, compact
  batches on `pumpwatch/edge/gw/batch`); ThingsBoard IoT Gateway (Modbus connector, `--tb-storage`,
  `v1/gateway/telemetry`); Node-RED with node-red-contrib-modbus (`modbus-read` -> function -> `mqtt
  out`, `bench/edge/<device>`).
- What reached the centre is counted at its broker, the same way for all three: a subscriber inside
  the centre namespace (persistent session, QoS 1) decodes every message into (sensor, value).

The run: warm-up until every sensor has arrived; a steady window of `--seconds` (CPU per reading,
bytes on the link per reading, RSS); the link down for `--cut` seconds (`ip link set ... down` on
the edge's end) and up again; `--recover` seconds; `--kills` SIGKILLs of the gateway `--kill-every`
seconds apart, each restarted after `--restart-delay` seconds as a supervisor would (PumpWatch's
systemd unit waits 5 s); `--recover` seconds; the devices stop answering; the centre is drained
until nothing arrives for `--drain-quiet` seconds. Then produced vs arrived, per sensor and value:
lost, duplicated, and when the lost ones were served (around the cut, or within `KILL_WINDOW` s
before a kill). A reading a device served in the instant before a SIGKILL may still be on its way
to the gateway: no gateway can keep that one.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import faulthandler
import json
import logging
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple, Protocol, cast

import httpx
import paho.mqtt.client as mqtt
import psutil  # type: ignore[import-untyped]
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer

from bench import nodered, thingsboard
from bench.common import (
    TreeSampler,
    link_bytes,
    load_average,
    machine,
    print_table,
    system_busy,
    tool_version,
    write_results,
)
from bench.modbus_poll import make_devices
from bench.nodered_flows import modbus_mqtt_flow
from pumpwatch.edge_wire import decode_batch
from pumpwatch.readings import Quality
from pumpwatch.site import ModbusDevice
from pumpwatch.sitefile import parse_site
from pumpwatch.wire import WireError
from simulators.modbus_server import DeviceImage, sim_device
from tests.support.netns import Link, NamespacedMosquitto, NamespacedProcess, netns_problem, run_in_namespace
from tests.support.netns import start_in_namespace as start_thread_in_namespace

PEERS = ("pumpwatch", "thingsboard", "nodered")
HOST = "127.0.0.1"  # inside each namespace: the devices listen on the edge's loopback
EDGE_ID = "gw"
TB_TOKEN = "bench-gateway-token"  # the ThingsBoard access token: the MQTT username at the broker
TOPICS = {"pumpwatch": "pumpwatch/edge/+/batch", "thingsboard": thingsboard.TELEMETRY_TOPIC,
          "nodered": "bench/edge/#"}
NOT_READ = (Quality.STALE, Quality.DEVICE_ERROR)  # readings PumpWatch makes when a device does not answer
KILL_WINDOW = 10.0  # s: a reading served this close before a SIGKILL and lost is the kill's
METRICS_PORT = 9108  # pumpwatch's /metrics inside each namespace

log = logging.getLogger("bench.edge_peers")


# --- the devices ----------------------------------------------------------------------------------


def sensor_of(device: int, register: int) -> str:
    """The sensor id of one register (as bench.modbus_poll names them)."""
    return f"plc{device:03d}-r{register:03d}"


def device_index(name: str) -> int | None:
    """The index of a device named `plcNNN`, or None for another name."""
    return int(name[3:]) if name.startswith("plc") and name[3:].isdigit() else None


class CountingRegisters:
    """Every register of every device counts the reads that returned it: its value is its sequence
    number (1, 2, 3 ...); the time each value was served is kept."""

    def __init__(self, count: int, registers: int) -> None:
        self.counters = [[0] * registers for _ in range(count)]
        self.served = [[array.array("d") for _ in range(registers)] for _ in range(count)]

    def action(self, device: int) -> Callable[..., Any]:
        """The pymodbus simulator action of one device: holding-register reads only."""
        row, times = self.counters[device], self.served[device]

        async def on_access(function_code: int, start_address: int, address: int, count: int,
                            registers: list[int], set_values: list[int] | list[bool] | None,
                            ) -> ExcCodes | None:
            if set_values is not None or function_code != 3:
                return ExcCodes.ILLEGAL_FUNCTION
            if address < 0 or address + count > len(row):
                return ExcCodes.ILLEGAL_ADDRESS
            now = time.time()
            for a in range(address, address + count):
                row[a] += 1
                registers[a - start_address] = row[a] & 0xFFFF
                times[a].append(now)
            return None

        return on_access

    def produced(self) -> int:
        """Readings served so far."""
        return sum(sum(row) for row in self.counters)


def devices_main(conn: Connection, namespace: str, count: int, registers: int, interval: float) -> None:
    """Serve the devices inside `namespace` until the parent says "stop"; then send what was served."""
    logging.basicConfig(level=logging.ERROR)
    run_in_namespace(namespace, lambda: asyncio.run(_serve_devices(conn, count, registers, interval)))


async def _serve_devices(conn: Connection, count: int, registers: int, interval: float) -> None:
    counting = CountingRegisters(count, registers)
    servers: list[ModbusTcpServer] = []
    for i, device in enumerate(make_devices(count, registers, 1, interval, [0] * count)):
        image = DeviceImage(device, lambda _sensor: 0.0, lambda _sensor, _value: False)
        server = ModbusTcpServer([sim_device(image, counting.action(i))], framer=FramerType.RTU,
                                 address=(HOST, 0))
        await server.serve_forever(background=True)
        servers.append(server)
    conn.send([cast(asyncio.Server, s.transport).sockets[0].getsockname()[1] for s in servers])
    loop = asyncio.get_running_loop()
    while True:
        if not await loop.run_in_executor(None, conn.poll, 5.0):
            parent = mp.parent_process()
            if parent is None or not parent.is_alive():
                break
            continue
        message = conn.recv()
        if message == "produced":
            conn.send(counting.produced())
        elif message == "stop":
            break
    for server in servers:
        for handler in list(getattr(server, "active_connections", {}).values()):
            handler.close()
        await server.shutdown()  # type: ignore[no-untyped-call]
    conn.send((counting.counters, [[times.tobytes() for times in row] for row in counting.served]))


@dataclass
class Devices:
    """The devices' process, from the benchmark's side."""

    proc: mp.process.BaseProcess
    conn: Connection
    ports: list[int]

    @classmethod
    def start(cls, namespace: str, args: argparse.Namespace) -> Devices:
        """Spawn the devices' process inside `namespace`; returns once they listen."""
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=devices_main, name="bench-edge-devices", daemon=True,
                           args=(child, namespace, args.devices, args.registers, args.interval))
        proc.start()
        if not parent.poll(60):
            raise RuntimeError("the devices' process did not report its ports")
        return cls(proc, parent, parent.recv())

    def produced(self) -> int:
        """Readings served so far."""
        self.conn.send("produced")
        if not self.conn.poll(30):
            raise RuntimeError("the devices' process did not answer")
        produced: int = self.conn.recv()
        return produced

    def stop(self) -> tuple[list[list[int]], list[list[array.array[float]]]]:
        """Stop answering; (final counter of each register, serve times of each register's values)."""
        self.conn.send("stop")
        if not self.conn.poll(60):
            raise RuntimeError("the devices' process did not stop")
        counters, raw = self.conn.recv()
        served = [[array.array("d", data) for data in row] for row in raw]
        self.proc.join(10)
        return counters, served

    def close(self) -> None:
        """Make sure the process is gone."""
        if self.proc.is_alive():
            with contextlib.suppress(OSError, EOFError):
                self.conn.send("stop")
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()


# --- what reaches the centre ----------------------------------------------------------------------


Reading = tuple[int, int, int]  # device, register, value


class Decoded(NamedTuple):
    """One message as the centre counts it."""

    readings: list[Reading]
    other: int  # readings of other sensors, or not read from a device
    batch: int | None = None  # PumpWatch's batch number: the centre stores a number once


def decode_pumpwatch(_topic: str, payload: bytes) -> Decoded:
    """A PumpWatch edge batch: (the devices' readings, other readings: the edge's health, and a device's
    last values marked stale when it stopped answering)."""
    out: list[Reading] = []
    other = 0
    batch = decode_batch(payload)
    for reading in batch.readings:
        name, _, register = reading.sensor.partition("-r")
        device = device_index(name)
        if device is None or not register.isdigit() or reading.quality in NOT_READ:
            other += 1
            continue
        out.append((device, int(register), int(reading.value)))
    return Decoded(out, other, batch.seq)


def decode_thingsboard(_topic: str, payload: bytes) -> Decoded:
    """ThingsBoard's gateway telemetry: {"plc000": [{"ts": ms, "values": {"r0": 5, ...}}, ...], ...}."""
    out: list[Reading] = []
    other = 0
    for name, entries in json.loads(payload).items():
        device = device_index(name)
        for entry in entries if isinstance(entries, list) else [entries]:
            for key, value in entry.get("values", {}).items():
                if device is None or not key.startswith("r") or not key[1:].isdigit():
                    other += 1
                    continue
                out.append((device, int(key[1:]), int(value)))
    return Decoded(out, other)


def decode_nodered(topic: str, payload: bytes) -> Decoded:
    """The Node-RED flow's message: topic bench/edge/plc000, {"ts": ms, "values": [r0, r1, ...]}."""
    device = device_index(topic.rsplit("/", 1)[-1])
    values = json.loads(payload)["values"]
    if device is None:
        return Decoded([], len(values))
    return Decoded([(device, register, int(value)) for register, value in enumerate(values)], 0)


DECODERS: dict[str, Callable[[str, bytes], Decoded]] = {
    "pumpwatch": decode_pumpwatch, "thingsboard": decode_thingsboard, "nodered": decode_nodered}


@dataclass
class Arrivals:
    """Everything on one peer's topic at the centre's broker, decoded into readings, with when each
    (sensor, value) first arrived."""

    peer: str
    first: dict[tuple[int, int], dict[int, float]] = field(default_factory=dict)
    readings: int = 0  # device readings decoded, repeats included
    other: int = 0  # readings of other sensors (PumpWatch's edge health)
    messages: int = 0
    malformed: int = 0
    batches: set[int] = field(default_factory=set)  # PumpWatch batch numbers seen
    repeated_batch_readings: int = 0  # readings in a batch whose number came before (not stored again)
    per_second: Counter[int] = field(default_factory=Counter)
    times: Counter[Reading] = field(default_factory=Counter)  # how often each reading arrived
    connected: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, topic: str, payload: bytes, now: float) -> None:
        """Decode one message and count its readings."""
        try:
            found, other, batch = DECODERS[self.peer](topic, payload)
        except (WireError, ValueError, KeyError, TypeError, AttributeError):
            with self.lock:
                self.malformed += 1
            return
        with self.lock:
            self.messages += 1
            self.readings += len(found)
            self.other += other
            if batch is not None:
                if batch in self.batches:
                    self.repeated_batch_readings += len(found)
                self.batches.add(batch)
            self.per_second[int(now)] += len(found)
            for device, register, value in found:
                self.first.setdefault((device, register), {}).setdefault(value, now)
                self.times[(device, register, value)] += 1

    def distinct(self) -> int:
        """Distinct (sensor, value) pairs arrived so far."""
        with self.lock:
            return sum(len(values) for values in self.first.values())

    def sensors(self) -> int:
        """Sensors with at least one arrival."""
        with self.lock:
            return len(self.first)

    def run(self, port: int, topic: str) -> None:
        """Subscribe (persistent session, QoS 1) and count until `stop` (inside the centre namespace).

        For ThingsBoard IoT Gateway it also answers the gateway's session-limits request, as a
        ThingsBoard server does (`thingsboard.session_limits_reply`), much as PumpWatch's centre answers
        its edge's clock requests."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-centre-{uuid.uuid4().hex[:8]}",
                             clean_session=False)

        def connected(c: mqtt.Client, *_args: Any) -> None:
            c.subscribe(topic, qos=1)
            if self.peer == "thingsboard":
                c.subscribe(thingsboard.RPC_REQUEST_TOPIC + "+", qos=1)
            self.connected.set()

        def received(c: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
            if self.peer == "thingsboard" and msg.topic.startswith(thingsboard.RPC_REQUEST_TOPIC):
                reply = thingsboard.session_limits_reply(msg.topic, bytes(msg.payload))
                if reply is not None:
                    c.publish(reply[0], reply[1], qos=1)
                return
            self.take(msg.topic, bytes(msg.payload), time.time())

        client.on_connect = connected
        client.on_message = received
        client.connect(HOST, port)
        while not self.stop.is_set():
            client.loop(timeout=0.2)
        client.disconnect()


# --- the three gateways ---------------------------------------------------------------------------


class Gateway(Protocol):
    """One peer's gateway process (and whatever it needs at the centre)."""

    def start(self) -> None: ...
    def kill(self) -> None: ...
    def stop(self) -> None: ...
    def pid(self) -> int: ...
    def text(self) -> str: ...


def edge_site(devices: Sequence[ModbusDevice]) -> str:
    """The site file of PumpWatch's edge and centre: one room served by edge `gw`, one RTU-over-TCP bus
    per device (a serial-to-Ethernet gateway each), unit 1 on it."""
    data: dict[str, Any] = {
        "site": {"id": "edgebench", "name": {"zh": "边缘基准", "en": "Edge bench"}},
        "rooms": [{
            "id": "r1",
            "name": {"zh": "基准泵房", "en": "Bench room"},
            "sensors": [{"id": p.sensor, "kind": "pressure", "range": [0, 65535], "source": "modbus",
                         "alarms": {"no_data": False}} for d in devices for p in d.points],
        }],
        "edges": [{"id": EDGE_ID, "name": {"zh": "基准网关", "en": "Bench gateway"}, "rooms": ["r1"],
                   "username": f"edge-{EDGE_ID}", "heartbeat": 10, "offline_after": 90}],
        "buses": [{"id": f"bus-{d.id}", "transport": "tcp", "host": d.host, "port": d.port, "framer": "rtu",
                   "baudrate": 115200, "timeout": d.timeout} for d in devices],
        "modbus": [{"id": d.id, "room": "r1", "bus": f"bus-{d.id}", "unit": d.unit,
                    "poll_interval": d.poll_interval,
                    "points": [p.model_dump(mode="json", exclude_defaults=True) for p in d.points]}
                   for d in devices],
    }
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    parse_site(text, "edge-bench-site.yaml")  # refuse a broken site here, not in two processes' logs
    return text


@dataclass
class PumpWatchEdge:
    """`pumpwatch edge` in the edge namespace, and the centre's `pumpwatch collect` (embedded store)."""

    link: Link
    broker: NamespacedMosquitto
    devices: Sequence[ModbusDevice]
    work: Path
    edge: NamespacedProcess | None = None
    centre: NamespacedProcess | None = None

    def start(self) -> None:
        """Start the centre (once) and the edge."""
        if self.centre is None:
            site = self.work / "site.yaml"
            site.write_text(edge_site(self.devices), encoding="utf-8")
            base = {k: v for k, v in os.environ.items() if not k.startswith("PUMPWATCH_")}
            self.centre = NamespacedProcess("centre", ["collect", "--site", str(site)], dict(
                base, PUMPWATCH_MQTT__URL=f"mqtt://{HOST}:{self.broker.port}",
                PUMPWATCH_COLLECTOR__STATE_DIR=str(self.work / "centre"),
                PUMPWATCH_COLLECTOR__CLIENT_ID="centre", PUMPWATCH_METRICS__PORT=str(METRICS_PORT)),
                self.work / "centre.log", namespace=self.link.centre)
            self.edge = NamespacedProcess("edge", ["edge", "--site", str(site)], dict(
                base, PUMPWATCH_EDGE__ID=EDGE_ID,
                PUMPWATCH_EDGE__UPLINK_URL=f"mqtt://edge-{EDGE_ID}:x@{self.link.centre_ip}:{self.broker.link_port}",
                PUMPWATCH_COLLECTOR__STATE_DIR=str(self.work / "edge"),
                PUMPWATCH_COLLECTOR__CLIENT_ID=f"edge-{EDGE_ID}", PUMPWATCH_METRICS__PORT=str(METRICS_PORT)),
                self.work / "edge.log", namespace=self.link.edge)
            self.centre.start()
        assert self.edge is not None
        self.edge.start()

    def kill(self) -> None:
        """SIGKILL the edge."""
        assert self.edge is not None
        self.edge.kill()

    def stop(self) -> None:
        """Stop the edge and the centre."""
        for process in (self.edge, self.centre):
            if process is not None:
                process.stop()

    def pid(self) -> int:
        """The edge's process id."""
        assert self.edge is not None
        assert self.edge.proc is not None
        return self.edge.proc.pid

    def text(self) -> str:
        """The edge's log."""
        return self.edge.text() if self.edge is not None else ""

    def centre_counters(self) -> dict[str, float]:
        """The centre's edge batch counters by outcome (`pumpwatch_edge_batches_total`)."""
        def ask() -> str:
            return httpx.get(f"http://{HOST}:{METRICS_PORT}/metrics", timeout=10).text
        try:
            text = run_in_namespace(self.link.centre, ask)
        except httpx.HTTPError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("pumpwatch_edge_batches_total{") and 'outcome="' in line:
                outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
                out[outcome] = out.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
        return out


@dataclass
class ThingsBoardEdge:
    """ThingsBoard IoT Gateway in the edge namespace, its storage on disk."""

    link: Link
    broker: NamespacedMosquitto
    devices: Sequence[ModbusDevice]
    work: Path
    home: Path
    storage: str
    process: thingsboard.GatewayProcess | None = None

    def start(self) -> None:
        """Write the configuration (once) and start the gateway."""
        if self.process is None:
            config = self.work / "thingsboard"
            thingsboard.write_config(config, self.link.centre_ip, self.broker.link_port, TB_TOKEN,
                                     self.storage, self.devices)
            self.process = thingsboard.GatewayProcess(self.home, config, namespace=self.link.edge)
        self.process.start()

    def kill(self) -> None:
        """SIGKILL the gateway."""
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        """Stop the gateway."""
        if self.process is not None:
            self.process.stop()

    def pid(self) -> int:
        """The gateway's process id."""
        assert self.process is not None
        assert self.process.proc is not None
        return self.process.proc.pid

    def text(self) -> str:
        """The gateway's logs."""
        return self.process.text() if self.process is not None else ""


@dataclass
class NodeRedEdge:
    """Node-RED in the edge namespace with node-red-contrib-modbus and an `mqtt out` to the centre."""

    link: Link
    broker: NamespacedMosquitto
    devices: Sequence[ModbusDevice]
    work: Path
    home: Path
    process: nodered.NodeRedProcess | None = None

    def start(self) -> None:
        """Start Node-RED with the flow (it waits until Node-RED started its flows)."""
        if self.process is None:
            self.process = nodered.NodeRedProcess(self.home, self.work / "node-red", namespace=self.link.edge)
        flows, credentials = modbus_mqtt_flow(self.devices, self.link.centre_ip, self.broker.link_port)
        self.process.start(flows, credentials)

    def kill(self) -> None:
        """SIGKILL the node process."""
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        """Stop Node-RED."""
        if self.process is not None:
            self.process.stop()

    def pid(self) -> int:
        """The node process's id."""
        assert self.process is not None
        assert self.process.proc is not None
        return self.process.proc.pid

    def text(self) -> str:
        """Node-RED's log."""
        return self.process.text() if self.process is not None else ""


# --- one run --------------------------------------------------------------------------------------


@dataclass
class Marks:
    """When each phase of a run began (time.time())."""

    started: float = 0.0
    warm: float = 0.0
    steady_end: float = 0.0
    cut: float = 0.0
    mend: float = 0.0
    kills: list[float] = field(default_factory=list)
    restarts: list[float] = field(default_factory=list)
    devices_stop: float = 0.0
    drained: float = 0.0


def wait_until(check: Callable[[], bool], within: float, what: str, alive: Callable[[], None]) -> None:
    """Poll `check` every 0.5 s; RuntimeError after `within` seconds (`alive` raises if the gateway died)."""
    deadline = time.monotonic() + within
    while not check():
        alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {within:g} s: {what}")
        time.sleep(0.5)


def run_peer(peer: str, args: argparse.Namespace, homes: dict[str, Path], run: int) -> dict[str, Any]:
    """One peer through the whole run on a fresh link, broker and devices; its figures."""
    work = Path(tempfile.mkdtemp(prefix=f"pumpwatch-bench-edge-{peer}-"))
    work.chmod(0o755)
    marks = Marks(started=time.time())
    load_before = load_average()
    sampler = TreeSampler()
    arrivals = Arrivals(peer)
    threads: list[threading.Thread] = []
    gateway: Gateway | None = None
    devices_proc: Devices | None = None
    try:
        with Link(rate=args.link_rate) as link:
            broker = NamespacedMosquitto(link.centre, link.centre_ip)
            broker.start()
            try:
                devices_proc = Devices.start(link.edge, args)
                devices = make_devices(args.devices, args.registers, 1, args.interval, devices_proc.ports)
                threads.append(start_thread_in_namespace(
                    link.centre, lambda: arrivals.run(broker.port, TOPICS[peer])))
                if not arrivals.connected.wait(30):
                    raise RuntimeError("the centre's counting subscriber did not connect")
                gateway = make_gateway(peer, link, broker, devices, work, homes, args)
                sampler.start()
                busy0 = system_busy()
                gateway.start()
                sampler.watch("gateway", gateway.pid())
                result = measure(peer, args, link, gateway, devices_proc, arrivals, sampler, marks)
                sampler.stop()
                result["foreign_cpu_pct_of_core"] = 100 * (system_busy() - busy0 - sampler.cpu()) / (
                    time.time() - marks.started)
                if isinstance(gateway, PumpWatchEdge):
                    result["centre_batches"] = gateway.centre_counters()
                result["errors_logged"] = error_lines(gateway.text())
            finally:
                arrivals.stop.set()
                if gateway is not None:
                    gateway.stop()
                if devices_proc is not None:
                    devices_proc.close()
                broker.close()
                for thread in threads:
                    thread.join(10)
    finally:
        if args.keep:
            print(f"{peer}: work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result |= {"peer": peer, "run": run, "load_average_before": load_before,
               "load_average_after": load_average()}
    return result


def make_gateway(peer: str, link: Link, broker: NamespacedMosquitto, devices: Sequence[ModbusDevice],
                 work: Path, homes: dict[str, Path], args: argparse.Namespace) -> Gateway:
    """The peer's gateway, not started."""
    if peer == "pumpwatch":
        return PumpWatchEdge(link, broker, devices, work)
    if peer == "thingsboard":
        return ThingsBoardEdge(link, broker, devices, work, homes["thingsboard"], args.tb_storage)
    return NodeRedEdge(link, broker, devices, work, homes["nodered"])


def error_lines(text: str) -> int:
    """Lines of a log that report an error."""
    return sum(1 for line in text.splitlines() if "error" in line.lower() or "Traceback" in line)


def measure(peer: str, args: argparse.Namespace, link: Link, gateway: Gateway, devices: Devices,
            arrivals: Arrivals, sampler: TreeSampler, marks: Marks) -> dict[str, Any]:
    """Warm-up, steady window, cut, SIGKILL, drain; the figures of one peer."""
    sensors = args.devices * args.registers

    def alive() -> None:
        if not _running(gateway.pid()):
            raise RuntimeError(f"{peer}: the gateway died:\n{gateway.text()[-3000:]}")

    wait_until(lambda: arrivals.sensors() >= sensors, args.warmup_timeout,
               f"{peer}: every sensor arrived at the centre", alive)
    time.sleep(2 * args.interval)
    marks.warm = time.time()

    # Steady window: CPU and bytes per reading.
    sampler.sample()
    cpu0, bytes0, produced0, arrived0 = sampler.cpu("gateway"), link_bytes(link.edge), devices.produced(), \
        arrivals.distinct()
    time.sleep(args.seconds)
    sampler.sample()
    cpu1, bytes1, produced1, arrived1 = sampler.cpu("gateway"), link_bytes(link.edge), devices.produced(), \
        arrivals.distinct()
    marks.steady_end = time.time()
    steady_produced = produced1 - produced0
    steady_bytes = (bytes1["rx"] - bytes0["rx"]) + (bytes1["tx"] - bytes0["tx"])
    window = marks.steady_end - marks.warm

    # The cut.
    marks.cut = time.time()
    link.cut()
    time.sleep(args.cut)
    link.mend()
    marks.mend = time.time()
    time.sleep(args.recover)
    alive()

    # SIGKILLs, each followed by a restart as a supervisor does it.
    for n in range(args.kills):
        if n:
            time.sleep(args.kill_every)
        sampler.sample()
        marks.kills.append(time.time())
        gateway.kill()
        time.sleep(args.restart_delay)
        marks.restarts.append(time.time())
        gateway.start()
        sampler.watch("gateway", gateway.pid())
    time.sleep(args.recover)
    alive()

    # The devices stop; whatever the gateway still holds may reach the centre.
    marks.devices_stop = time.time()
    counters, served = devices.stop()
    quiet_since, last = time.monotonic(), arrivals.distinct()
    deadline = time.monotonic() + args.drain_timeout
    while time.monotonic() - quiet_since < args.drain_quiet and time.monotonic() < deadline:
        time.sleep(0.5)
        now = arrivals.distinct()
        if now != last:
            quiet_since, last = time.monotonic(), now
    marks.drained = time.time()
    sampler.sample()
    bytes_end = link_bytes(link.edge)
    return {
        "marks": {k: v for k, v in vars(marks).items()},
        "gateway_timeline": sampler.timeline.get("gateway", []),
        "steady_rss_mb": median_rss(sampler.timeline.get("gateway", []), marks.warm, marks.steady_end),
        "steady": {
            "seconds": window,
            "produced": steady_produced,
            "arrived": arrived1 - arrived0,
            "gateway_cpu_s": cpu1 - cpu0,
            "cpu_pct_of_core": 100 * (cpu1 - cpu0) / window,
            "cpu_us_per_reading": 1e6 * (cpu1 - cpu0) / steady_produced if steady_produced else float("nan"),
            "link_bytes": steady_bytes,
            "link_bytes_per_reading": steady_bytes / steady_produced if steady_produced else float("nan"),
        },
        "whole_run": {
            "gateway_cpu_s": sampler.cpu("gateway"),
            "link_bytes": bytes_end["rx"] + bytes_end["tx"],
            "link_bytes_rx_tx": bytes_end,
        },
        "peak_rss_mb": sampler.peak_rss_mb("gateway"),
        **account(counters, served, arrivals, marks, args),
    }


def median_rss(timeline: list[tuple[float, float, float]], start: float, end: float) -> float:
    """The median resident memory (MiB) of the samples taken in [start, end)."""
    values = sorted(rss for t, rss, _cpu in timeline if start <= t < end)
    return values[len(values) // 2] if values else float("nan")


def _running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def account(counters: list[list[int]], served: list[list[array.array[float]]], arrivals: Arrivals,
            marks: Marks, args: argparse.Namespace) -> dict[str, Any]:
    """Produced vs arrived, per sensor and value: lost (and when those were served), duplicated,
    unexpected values; how long after the link came back the readings of the cut arrived."""
    produced = sum(sum(row) for row in counters)
    lost_at: list[float] = []
    unexpected = 0
    late_after_mend = 0.0
    late_after_restart = 0.0
    with arrivals.lock:
        first = {key: dict(values) for key, values in arrivals.first.items()}
        repeats = [(key, n) for key, n in arrivals.times.items() if n > 1]
        readings, other, malformed, messages = arrivals.readings, arrivals.other, arrivals.malformed, \
            arrivals.messages
        repeated_batch_readings = arrivals.repeated_batch_readings
    distinct = 0
    for device, row in enumerate(counters):
        for register, final in enumerate(row):
            got = first.get((device, register), {})
            times = served[device][register]
            for value in range(1, final + 1):
                at = got.get(value & 0xFFFF)
                if at is None:
                    lost_at.append(times[value - 1])
                    continue
                distinct += 1
                t = times[value - 1]
                if marks.cut <= t < marks.mend:
                    late_after_mend = max(late_after_mend, at - marks.mend)
                if marks.kills[0] - KILL_WINDOW <= t < marks.kills[0]:
                    late_after_restart = max(late_after_restart, at - marks.restarts[0])
            unexpected += sum(1 for value in got if not 1 <= value <= final)
    def phase(t: float) -> str:
        """When a reading was served: lost then, it is the cut's or a kill's doing."""
        if t < marks.cut - 5:
            return "before the cut"
        if t < marks.kills[0] - KILL_WINDOW:
            return "around the cut"
        if any(k - KILL_WINDOW <= t < k + args.restart_delay + KILL_WINDOW for k in marks.kills):
            return "around a kill"
        return "after the kills"

    def before_kill_ms(t: float) -> float | None:
        """How long before the next SIGKILL a reading was served, ms (None: not within the window)."""
        gaps = [k - t for k in marks.kills if k - KILL_WINDOW <= t < k + args.restart_delay]
        return 1000 * min(gaps) if gaps else None

    kill_gaps = sorted(g for g in (before_kill_ms(t) for t in lost_at) if g is not None)
    repeated_at = [served[d][r][v - 1] for (d, r, v), _n in repeats if 1 <= v <= len(served[d][r])]
    return {
        "produced": produced,
        "arrived_distinct": distinct,
        "lost": produced - distinct,
        "lost_by_phase": dict(Counter(phase(t) for t in lost_at)),
        "duplicated_by_phase": dict(Counter(phase(t) for t in repeated_at)),
        "duplicated_served_at": sorted(round(t - marks.started, 2) for t in repeated_at)[:5000],
        "lost_ms_before_a_kill": {"count": len(kill_gaps), "max": max(kill_gaps, default=float("nan")),
                                  "min": min(kill_gaps, default=float("nan"))},
        "lost_served_at": sorted(round(t - marks.started, 2) for t in lost_at)[:5000],
        "duplicated": readings - distinct - unexpected,
        "duplicated_after_batch_numbers": readings - distinct - unexpected - repeated_batch_readings,
        "repeated_batch_readings": repeated_batch_readings,
        "unexpected_values": unexpected,
        "readings_on_the_wire": readings,
        "other_readings": other,
        "messages": messages,
        "malformed_messages": malformed,
        "cut_readings_arrived_s_after_mend": late_after_mend,
        "kill_readings_arrived_s_after_restart": late_after_restart,
        "arrivals_per_second": {str(round(t - marks.started)): n
                                for t, n in sorted(arrivals.per_second.items())},
    }


# --- main -----------------------------------------------------------------------------------------


def summarize(results: list[dict[str, Any]]) -> list[list[object]]:
    """One table row per peer: ranges over the runs."""
    rows: list[list[object]] = []
    for peer in PEERS:
        runs = [r for r in results if r["peer"] == peer and "error" not in r]
        failed = [r for r in results if r["peer"] == peer and "error" in r]
        if not runs:
            if failed:
                rows.append([peer, f"failed: {failed[0]['error'][:80]}", "", "", "", "", "", "", "", ""])
            continue

        def span(values: Sequence[float], fmt: str = "{:.1f}") -> str:
            low, high = min(values), max(values)
            return fmt.format(low) if fmt.format(low) == fmt.format(high) else \
                f"{fmt.format(low)}-{fmt.format(high)}"

        rows.append([
            peer,
            span([r["steady"]["cpu_pct_of_core"] for r in runs]),
            span([r["steady"]["cpu_us_per_reading"] for r in runs], "{:.0f}"),
            span([r["peak_rss_mb"] for r in runs], "{:.0f}"),
            span([r["steady"]["link_bytes_per_reading"] for r in runs]),
            span([r["lost_by_phase"].get("around the cut", 0) for r in runs], "{:.0f}"),
            span([r["lost_by_phase"].get("around a kill", 0) for r in runs], "{:.0f}"),
            span([r["lost"] for r in runs], "{:.0f}"),
            span([r["duplicated"] for r in runs], "{:.0f}"),
            span([r["duplicated_after_batch_numbers"] for r in runs], "{:.0f}"),
        ])
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.edge_peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=50, help="simulated RTU-over-TCP devices (50)")
    parser.add_argument("--registers", type=int, default=20, help="holding registers per device (20)")
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval, s (1)")
    parser.add_argument("--seconds", type=float, default=60.0, help="steady window for CPU and bytes, s (60)")
    parser.add_argument("--cut", type=float, default=60.0, help="seconds the link is down (60)")
    parser.add_argument("--recover", type=float, default=60.0,
                        help="seconds after the link returns, and after the restart (60)")
    parser.add_argument("--restart-delay", type=float, default=5.0,
                        help="seconds between the SIGKILL and the restart (5: RestartSec of the edge's unit)")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs of the gateway, each restarted (3)")
    parser.add_argument("--kill-every", type=float, default=20.0,
                        help="seconds between a restart and the next SIGKILL (20)")
    parser.add_argument("--drain-quiet", type=float, default=15.0,
                        help="the drain ends after this many seconds with nothing new at the centre (15)")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="longest drain, s (300)")
    parser.add_argument("--warmup-timeout", type=float, default=180.0,
                        help="seconds for every sensor to reach the centre (180)")
    parser.add_argument("--link-rate", default="1mbit", help="tc tbf rate of the link (1mbit: 4G-like)")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, of {', '.join(PEERS)}")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every peer (1)")
    parser.add_argument("--tb-storage", choices=["sqlite", "file"], default="sqlite",
                        help="ThingsBoard IoT Gateway's storage (sqlite)")
    parser.add_argument("--node-red-dir", type=Path, default=None,
                        help=f"npm cache of Node-RED (default {nodered.default_home()})")
    parser.add_argument("--tb-dir", type=Path, default=None,
                        help=f"venv cache of ThingsBoard IoT Gateway (default {thingsboard.default_home()})")
    parser.add_argument("--keep", action="store_true", help="keep each run's work directory (logs)")
    parser.add_argument("--name", default="edge_peers", help="results file bench/results/<name>.json")
    args = parser.parse_args(argv)
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if unknown := [p for p in args.peers if p not in PEERS]:
        parser.error(f"unknown peers {unknown}: of {', '.join(PEERS)}")
    if min(args.devices, args.registers, args.repeat, args.kills, args.interval, args.seconds) <= 0:
        parser.error("--devices, --registers, --repeat, --kills, --interval and --seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if (problem := netns_problem()) is not None:
        raise SystemExit(f"bench.edge_peers needs network namespaces: {problem}")
    per_run = (args.seconds + args.cut + 2 * args.recover + args.kills * (args.kill_every + 70)
               + args.drain_timeout + args.warmup_timeout + 120)
    faulthandler.dump_traceback_later(per_run * len(args.peers) * args.repeat + 600, exit=True)
    homes = {"nodered": args.node_red_dir or nodered.default_home(),
             "thingsboard": args.tb_dir or thingsboard.default_home()}
    versions: dict[str, Any] = {"mosquitto": tool_version(["mosquitto", "-h"])}
    if "nodered" in args.peers:
        versions |= nodered.install(homes["nodered"]) | {"node": tool_version(["node", "--version"])}
    if "thingsboard" in args.peers:
        versions |= thingsboard.install(homes["thingsboard"])
    results: list[dict[str, Any]] = []

    def save() -> Path:
        return write_results(args.name, {
            "benchmark": "edge_peers",
            "command": " ".join(["python -m bench.edge_peers", *sys.argv[1:]]),
            "machine": machine(),
            "versions": versions,
            "settings": {k: v for k, v in vars(args).items() if not isinstance(v, Path)},
            "runs": results,
        })

    for run in range(1, args.repeat + 1):
        for peer in args.peers:
            print(f"run {run}: {peer} (load average {load_average()[0]:.2f})", flush=True)
            try:
                result = run_peer(peer, args, homes, run)
            except Exception as err:  # a peer that cannot be made to work is reported, not hidden
                log.exception("%s failed", peer)
                result = {"peer": peer, "run": run, "error": f"{type(err).__name__}: {err}"}
            results.append(result)
            save()  # after every peer: a long run interrupted keeps what it measured
            if "error" not in result:
                print(f"  {peer}: CPU {result['steady']['cpu_pct_of_core']:.1f}% of a core, "
                      f"{result['steady']['cpu_us_per_reading']:.0f} µs/reading, peak RSS "
                      f"{result['peak_rss_mb']:.0f} MB, {result['steady']['link_bytes_per_reading']:.1f} "
                      f"B/reading on the link; produced {result['produced']}, lost {result['lost']} "
                      f"{result['lost_by_phase']}, duplicated {result['duplicated']}", flush=True)
    print_table(
        f"Edge gateways: {args.devices} RTU-over-TCP devices x {args.registers} registers every "
        f"{args.interval:g} s -> MQTT QoS 1 over a {args.link_rate} link; {args.seconds:g} s steady, "
        f"{args.cut:g} s cut, {args.kills} SIGKILLs; {args.repeat} run(s)",
        ["peer", "CPU % core", "µs CPU/reading", "peak RSS MB", "link B/reading", "lost (cut)",
         f"lost ({args.kills} kills)", "lost (all)", "dup on the wire", "dup stored"],
        summarize(results))
    path = save()
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
