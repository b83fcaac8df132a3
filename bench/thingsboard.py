"""ThingsBoard IoT Gateway as a peer to benchmark against: installed with pip into its own venv, run
with its own configuration directory.

The gateway (`thingsboard-gateway` on PyPI) is pinned, and so is the pymodbus its Modbus connector
asks for (it would otherwise pip-install it when the connector loads). Everything goes into a venv
under a cache directory, never the project's venv; later runs find it there and skip pip.

The configuration is what a user writes for this job (`gateway_config`, `modbus_config`): the
Modbus connector with one slave per device, `type: tcp` with `method: rtu` (RTU framing over TCP,
as behind a serial-to-Ethernet gateway), each device's registers read in one request as a wide
range (`"address": "0-19"`, one telemetry key per register: `r0` ... `r19`); a persistent storage
(`sqlite` or `file`); the uplink at QoS 1 to an MQTT broker, where the gateway speaks ThingsBoard's
gateway API (`v1/gateway/telemetry`: `{"<device>": [{"ts": ms, "values": {"r0": 5, ...}}]}`).
ThingsBoard's own services (remote configuration, remote shell, statistics, device filtering) are
off, and so are the client's rate limits, which a ThingsBoard server would hand out and Mosquitto
does not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pumpwatch.site import ModbusDevice

VERSION = "3.8.5"
PACKAGES = {"thingsboard-gateway": VERSION, "pymodbus": "3.9.2", "pyserial": "3.5",
            "pyserial-asyncio": "0.6"}
TELEMETRY_TOPIC = "v1/gateway/telemetry"
RPC_REQUEST_TOPIC = "v1/devices/me/rpc/request/"  # + the request id; the reply goes to .../response/<id>
RPC_RESPONSE_TOPIC = "v1/devices/me/rpc/response/"
STORAGES = ("sqlite", "file", "memory")
NO_RATE_LIMIT = "0:0,"


def default_home() -> Path:
    """Where the gateway's venv is cached between runs."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pumpwatch-bench" / "thingsboard-gateway"


def venv_python(home: Path) -> Path:
    """The interpreter of the gateway's venv."""
    return home / "venv" / "bin" / "python"


def installed_versions(home: Path) -> dict[str, str | None]:
    """The version of each pinned package in the venv under `home`, None where it is missing."""
    python = venv_python(home)
    if not python.exists():
        return dict.fromkeys(PACKAGES)
    script = ("import json, importlib.metadata as m\n"
              "out = {}\n"
              f"for name in {list(PACKAGES)!r}:\n"
              "    try: out[name] = m.version(name)\n"
              "    except m.PackageNotFoundError: out[name] = None\n"
              "print(json.dumps(out))\n")
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=60,
                          check=False)
    if done.returncode != 0:
        return dict.fromkeys(PACKAGES)
    found: dict[str, str | None] = json.loads(done.stdout)
    return found


def install(home: Path) -> dict[str, str]:
    """Make the venv and pip-install the pinned packages unless they are there; their versions."""
    if installed_versions(home) != PACKAGES:
        home.mkdir(parents=True, exist_ok=True)
        if not venv_python(home).exists():
            subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True, timeout=300)
        command = [str(venv_python(home)), "-m", "pip", "install", "--disable-pip-version-check",
                   *[f"{name}=={version}" for name, version in PACKAGES.items()]]
        print(f"installing ThingsBoard IoT Gateway: {' '.join(command)}", flush=True)
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        if done.returncode != 0:
            raise SystemExit(f"pip install failed ({done.returncode}):\n{done.stderr[-3000:]}")
    found = installed_versions(home)
    if found != PACKAGES:
        raise SystemExit(f"pip installed {found}, expected {PACKAGES}")
    return dict(PACKAGES)


def session_limits_reply(topic: str, payload: bytes) -> tuple[str, bytes] | None:
    """What a ThingsBoard server answers to the gateway's `getSessionLimits` RPC, as (topic, payload);
    None for another message.

    The gateway sends nothing until its session limits arrive (`TBClient.is_connected`), and Mosquitto
    has no ThingsBoard behind it: the centre answers in the server's stead, with no rate limits, the
    client's own default of 100 messages in flight and ThingsBoard's default largest payload (64 KiB).
    """
    if not topic.startswith(RPC_REQUEST_TOPIC):
        return None
    try:
        request = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(request, dict) or request.get("method") != "getSessionLimits":
        return None
    unlimited = {"messages": NO_RATE_LIMIT, "telemetryMessages": NO_RATE_LIMIT,
                 "telemetryDataPoints": NO_RATE_LIMIT}
    reply = {"maxPayloadSize": 65536, "maxInflightMessages": 100, "rateLimits": unlimited,
             "gatewayRateLimits": unlimited}
    return RPC_RESPONSE_TOPIC + topic[len(RPC_REQUEST_TOPIC):], json.dumps(reply).encode()


def register_key(register: int) -> str:
    """The telemetry key the gateway sends register `register` under (its wide-range key `r${address}`)."""
    return f"r{register}"


def gateway_config(broker_host: str, broker_port: int, token: str, storage: str,
                   data_dir: Path) -> dict[str, Any]:
    """`tb_gateway.json`: the uplink to `broker_host:broker_port` at QoS 1, a persistent storage, and
    the Modbus connector (`modbus.json`)."""
    if storage not in STORAGES:
        raise ValueError(f"storage {storage!r}: one of {', '.join(STORAGES)}")
    storages: dict[str, dict[str, Any]] = {
        # The documented settings, with the data under `data_dir` (the path must end with a slash).
        "sqlite": {"type": "sqlite", "data_file_path": f"{data_dir}/", "messages_ttl_check_in_hours": 1,
                   "messages_ttl_in_days": 7, "max_read_records_count": 1000, "writing_batch_size": 1000},
        "file": {"type": "file", "data_folder_path": f"{data_dir}/", "max_file_count": 100,
                 "max_read_records_count": 1000, "max_records_per_file": 10000},
        "memory": {"type": "memory", "read_records_count": 100, "max_records_count": 1_000_000},
    }
    return {
        "thingsboard": {
            "host": broker_host,
            "port": broker_port,
            "remoteShell": False,
            "remoteConfiguration": False,
            "latencyDebugMode": False,
            "statistics": {"enable": False, "statsSendPeriodInSeconds": 3600,
                           "customStatsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": False, "filterFile": "list.json"},
            "maxPayloadSizeBytes": 8196,
            "minPackSendDelayMS": 50,
            "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 3600,
            "handleDeviceRenaming": False,
            "security": {"type": "accessToken", "accessToken": token},
            "qos": 1,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False, "inactivityTimeoutSeconds": 300,
                                       "inactivityCheckPeriodSeconds": 10},
            "rateLimits": NO_RATE_LIMIT,
            "dpRateLimits": NO_RATE_LIMIT,
            "messagesRateLimits": NO_RATE_LIMIT,
            "deviceMessagesRateLimits": NO_RATE_LIMIT,
            "deviceRateLimits": NO_RATE_LIMIT,
            "deviceDpRateLimits": NO_RATE_LIMIT,
        },
        "storage": storages[storage],
        "grpc": {"enabled": False},
        "connectors": [{"type": "modbus", "name": "Modbus", "configuration": "modbus.json"}],
    }


def modbus_config(devices: Sequence[ModbusDevice]) -> dict[str, Any]:
    """`modbus.json`: one slave per device, RTU framing over TCP, every register of a device in one read.

    Expects each device's points to be adjacent uint16 holding registers from address 0.
    """
    slaves: list[dict[str, Any]] = []
    for device in devices:
        addresses = [p.address for p in device.points]
        if addresses != list(range(len(addresses))):
            raise ValueError(f"{device.id}: the wide-range read covers adjacent registers from 0 only")
        slaves.append({
            "host": device.host,
            "port": device.port,
            "type": "tcp",
            "method": "rtu",
            "unitId": device.unit,
            "deviceName": device.id,
            "deviceType": "default",
            "timeout": device.timeout,
            "byteOrder": "BIG",
            "wordOrder": "BIG",
            "retries": 1,
            "retryOnEmpty": False,
            "retryOnInvalid": False,
            "pollPeriod": round(device.poll_interval * 1000),
            "connectAttemptTimeMs": 500,
            "connectAttemptCount": 5,
            "waitAfterFailedAttemptsMs": 30000,
            "attributes": [],
            "timeseries": [{
                "tag": "r${address}",
                "type": "16uint",
                "functionCode": 3,
                "objectsCount": 1,
                "address": f"0-{len(addresses) - 1}",
                "maxRegistersPerRequest": len(addresses),
            }],
            "attributeUpdates": [],
            "rpc": [],
        })
    return {"master": {"slaves": slaves}}


LOGS = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"file": {"class": "logging.FileHandler", "formatter": "plain", "level": "WARNING",
                          "filename": "gateway.log"}},
    "root": {"level": "WARNING", "handlers": ["file"]},
    "loggers": {
        **{name: {"level": "WARNING", "handlers": ["file"], "propagate": False}
           for name in ("service", "connector", "converter", "tb_connection", "storage", "extension")},
        # pymodbus 3.9 warns that the converter's BinaryPayloadDecoder is deprecated on every decode
        "pymodbus": {"level": "ERROR", "handlers": ["file"], "propagate": False},
    },
}


def write_config(config_dir: Path, broker_host: str, broker_port: int, token: str, storage: str,
                 devices: Sequence[ModbusDevice]) -> None:
    """Write a configuration directory: tb_gateway.json, modbus.json, logs.json (warnings and up)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    data = config_dir / "data"
    data.mkdir(exist_ok=True)
    logs = json.loads(json.dumps(LOGS))
    logs["handlers"]["file"]["filename"] = str(config_dir / "gateway.log")
    files = {"tb_gateway.json": gateway_config(broker_host, broker_port, token, storage, data),
             "modbus.json": modbus_config(devices), "logs.json": logs}
    for name, content in files.items():
        (config_dir / name).write_text(json.dumps(content, indent=1))


@dataclass
class GatewayProcess:
    """One gateway process (`python -m thingsboard_gateway.tb_gateway`) on a configuration directory."""

    home: Path
    config_dir: Path
    namespace: str | None = None  # a network namespace to run in (`ip netns exec`, which execs python)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        """The gateway's console output (its own log is `gateway.log` in the configuration directory)."""
        return self.config_dir / "console.log"

    def start(self) -> None:
        """Start (again) on the configuration directory, appending to the console log."""
        prefix = ["ip", "netns", "exec", self.namespace] if self.namespace else []
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["TB_GW_CONFIG_DIR"] = str(self.config_dir)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*prefix, str(venv_python(self.home)), "-m", "thingsboard_gateway.tb_gateway"],
                env=env, cwd=self.config_dir, stdout=out, stderr=subprocess.STDOUT)

    def text(self) -> str:
        """Console output and the gateway's own log so far."""
        parts = [path.read_text(errors="replace") for path in (self.log, self.config_dir / "gateway.log")
                 if path.exists()]
        return "\n".join(parts)

    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
