"""Node-RED as a peer to benchmark against: installed with npm, run with its own user dir and flows.

The packages are pinned to versions that run on Node.js 20 and install from the npm registry alone
(node-red-contrib-modbus 5.45 and later fetch a dependency from another host). They are installed
once into a cache directory; later runs find them there and skip npm.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

PACKAGES = {
    "node-red": "4.1.15",
    "node-red-contrib-influxdb": "0.7.0",
    "node-red-contrib-modbus": "5.23.3",
}
HOST = "127.0.0.1"


def default_home() -> Path:
    """Where the npm packages are cached between runs."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pumpwatch-bench" / "node-red"


def installed_versions(home: Path) -> dict[str, str | None]:
    """The version of each pinned package found under `home`, None where it is missing."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        manifest = home / "node_modules" / name / "package.json"
        out[name] = json.loads(manifest.read_text())["version"] if manifest.is_file() else None
    return out


def install(home: Path) -> dict[str, str]:
    """Install the pinned packages into `home` with npm unless they are already there; their versions."""
    if installed_versions(home) != PACKAGES:
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise SystemExit("Node-RED needs Node.js and npm: apt-get install nodejs npm")
        home.mkdir(parents=True, exist_ok=True)
        command = [npm, "install", "--prefix", str(home), "--no-audit", "--no-fund", "--omit=dev",
                   *[f"{name}@{version}" for name, version in PACKAGES.items()]]
        print(f"installing Node-RED: {' '.join(command)}", flush=True)
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise SystemExit(f"npm install failed ({done.returncode}):\n{done.stderr[-3000:]}")
    found = installed_versions(home)
    if found != PACKAGES:
        raise SystemExit(f"npm installed {found}, expected {PACKAGES}")
    return PACKAGES


def free_port() -> int:
    """A free TCP port on the loopback address."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


SETTINGS_JS = """\
// Written by bench.nodered: one Node-RED instance for one benchmark phase.
module.exports = {{
    uiHost: "{host}",
    uiPort: {port},
    userDir: {user_dir},
    flowFile: "flows.json",
    credentialSecret: false,
    flowFilePretty: false,
    functionExternalModules: false,
    diagnostics: {{ enabled: false }},
    telemetry: {{ enabled: false }},
    editorTheme: {{ projects: {{ enabled: false }}, tours: false }},
    logging: {{ console: {{ level: "info", metrics: false, audit: false }} }}
}};
"""


@dataclass
class NodeRedProcess:
    """One Node-RED process: its user dir holds settings.js, flows.json and flows_cred.json."""

    home: Path
    user_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    namespace: str | None = None  # a network namespace to run in (`ip netns exec`, which execs node)

    @property
    def log(self) -> Path:
        """Node-RED's console output."""
        return self.user_dir / "node-red.log"

    def start(self, flows: list[dict[str, Any]], credentials: dict[str, dict[str, str]]) -> None:
        """Write the user dir and start Node-RED; returns once it has started its flows."""
        self.user_dir.mkdir(parents=True, exist_ok=True)
        modules = self.user_dir / "node_modules"
        if not modules.exists():
            modules.symlink_to(self.home / "node_modules", target_is_directory=True)
        (self.user_dir / "settings.js").write_text(SETTINGS_JS.format(
            host=HOST, port=self.port, user_dir=json.dumps(str(self.user_dir))))
        (self.user_dir / "flows.json").write_text(json.dumps(flows, indent=1))
        (self.user_dir / "flows_cred.json").write_text(json.dumps(credentials, indent=1))
        node = shutil.which("node") or "node"
        red = self.home / "node_modules" / "node-red" / "red.js"
        prefix = ["ip", "netns", "exec", self.namespace] if self.namespace else []
        offset = len(self.text())  # a restart appends to the log: wait for this start's lines
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*prefix, node, str(red), "--settings", str(self.user_dir / "settings.js"),
                 "--userDir", str(self.user_dir)],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.user_dir)
        self.wait_for("Started flows", within=60, after=offset)
        if "missing types" in self.text()[offset:]:
            raise RuntimeError(f"Node-RED lacks node types:\n{self.text()[-2000:]}")

    def text(self) -> str:
        """Node-RED's output so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, line: str, within: float, after: int = 0) -> None:
        """Wait until Node-RED printed `line` (past character `after` of its log); RuntimeError with its
        log if it dies or takes too long."""
        deadline = time.monotonic() + within
        while line not in self.text()[after:]:
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Node-RED: no {line!r}:\n{self.text()[-3000:]}")
            time.sleep(0.1)

    @property
    def process(self) -> psutil.Process:
        """The node process, for CPU and memory figures."""
        assert self.proc is not None
        return psutil.Process(self.proc.pid)

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the node process so far (VmHWM), MiB."""
        assert self.proc is not None
        return peak_rss_mb(self.proc.pid)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer ends it, and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process (VmHWM from /proc), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss(pid: int) -> None:
    """Start a process's VmHWM again from its current resident memory (Linux `clear_refs` 5)."""
    with contextlib.suppress(OSError):  # not allowed: the peak then covers the process's whole life
        Path(f"/proc/{pid}/clear_refs").write_text("5")
