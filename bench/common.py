"""Shared helpers of the benchmarks: tables, JSON results, CPU per process and per thread, percentiles."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

RESULTS_DIR = Path(__file__).parent / "results"


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write `bench/results/<name>.json` and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(_finite(data), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def _finite(value: Any) -> Any:
    """NaN and infinities become null, so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source_digest": source_digest(),
    }


def source_digest(root: Path = Path(__file__).parents[1],
                  packages: Sequence[str] = ("collector", "pumpwatch", "simulators")) -> str:
    """A short digest of the measured source, so figures can be tied to the code they came from."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).glob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def tool_version(command: Sequence[str]) -> str:
    """The first line a tool prints about its version, or 'unknown'."""
    try:
        out = subprocess.run(list(command), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned table on stdout."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if n and _numeric(c) else c.ljust(w)
                        for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.2f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "").replace("-", "").replace("%", "").isdigit()


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def process_cpu(proc: psutil.Process | None = None) -> float:
    """User + system CPU seconds of a process's own threads (children not included)."""
    times = (proc or psutil.Process()).cpu_times()
    return float(times.user + times.system)


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of every thread of this process by native id, with the thread's name."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    return {t.id: (names.get(t.id, f"thread-{t.id}"), float(t.user_time + t.system_time))
            for t in psutil.Process().threads()}


def thread_cpu_delta(before: dict[int, tuple[str, float]],
                     after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds used between two `thread_cpu` snapshots, summed by thread role."""
    out: dict[str, float] = {}
    for tid, (name, cpu) in after.items():
        used = cpu - before.get(tid, (name, 0.0))[1]
        role = thread_role(name)
        out[role] = out.get(role, 0.0) + used
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def thread_role(name: str) -> str:
    """Group thread names: the executor threads of asyncio.to_thread share one role, and so on."""
    if name.startswith("asyncio_"):
        return "asyncio.to_thread workers"
    if name.startswith("paho-mqtt-client-"):  # one per MQTT client; random parts of client ids dropped
        return "paho thread " + re.sub(r"-?[0-9a-f]{6,}", "", name.removeprefix("paho-mqtt-client-"))
    if name == "MainThread":
        return "main thread (event loop)"
    return name


def system_busy() -> float:
    """CPU seconds all cores have spent busy since boot (every process, the kernel included)."""
    t = psutil.cpu_times()
    return float(sum(getattr(t, f) for f in ("user", "nice", "system", "irq", "softirq", "steal")
                     if hasattr(t, f)))


def other_load_note(other_cpu_pct: float, limit: float = 10.0) -> str | None:
    """A warning when processes outside the benchmark used more than `limit` % of a core."""
    if other_cpu_pct <= limit:
        return None
    return (f"WARNING: other processes on this machine used {other_cpu_pct:.0f}% of a core during the "
            "run; the figures are disturbed: run again on a quiet machine")


def load_average() -> tuple[float, float, float]:
    """The machine's 1, 5 and 15 minute load averages (other people's work on a shared machine shows here)."""
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


def link_bytes(namespace: str) -> dict[str, int]:
    """Bytes received and sent so far on the network interfaces of a namespace other than loopback
    (`ip -s -j link show`: the kernel's counters, every frame the interface passed, headers included)."""
    out = subprocess.run(["ip", "-n", namespace, "-s", "-j", "link", "show"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    rx = tx = 0
    for interface in json.loads(out):
        if interface.get("ifname") == "lo":
            continue
        stats = interface.get("stats64") or interface.get("stats") or {}
        rx += int(stats.get("rx", {}).get("bytes", 0))
        tx += int(stats.get("tx", {}).get("bytes", 0))
    return {"rx": rx, "tx": tx}


def peak_rss_of(pid: int) -> float:
    """Peak resident memory of a process (VmHWM from /proc), MiB; NaN once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class TreeSampler:
    """CPU seconds and peak memory of processes, sampled on a thread: what a process used survives its
    death (a SIGKILL) up to its last sample, and processes started after `start` count from zero."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.started = time.time()
        self.first: dict[int, float] = {}  # pid -> CPU s when first seen (0 for processes born later)
        self.last: dict[int, float] = {}
        self.peak_mb: dict[int, float] = {}
        self.roots: dict[str, list[int]] = {}  # a label -> pids sampled with their children under it
        self.label_of: dict[int, str] = {}
        self.timeline: dict[str, list[tuple[float, float, float]]] = {}  # label -> (time, RSS MiB, CPU s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, label: str, pid: int) -> None:
        """Count `pid` and its children under `label` from now on (e.g. each life of a gateway)."""
        with self._lock:
            self.roots.setdefault(label, []).append(pid)
        self.sample()

    def sample(self) -> None:
        """Take one sample of this process's tree and every watched process's tree."""
        me = psutil.Process()
        procs: dict[int, tuple[psutil.Process, str | None]] = {}
        with self._lock:
            roots = [(label, pid) for label, pids in self.roots.items() for pid in pids]
        for label, parent in [*((label, _process(pid)) for label, pid in roots), (None, me)]:
            if parent is None:
                continue
            procs.setdefault(parent.pid, (parent, label))
            with contextlib.suppress(psutil.Error):
                for child in parent.children(recursive=True):
                    procs.setdefault(child.pid, (child, label))  # a watched tree keeps its label
        now = time.time()
        rss: dict[str, float] = {}
        for pid, (proc, label) in procs.items():
            try:
                cpu = process_cpu(proc)
                born = proc.create_time()
                if label is not None:
                    rss[label] = rss.get(label, 0.0) + proc.memory_info().rss / 2**20
            except psutil.Error:
                continue
            peak = peak_rss_of(pid)
            with self._lock:
                if pid not in self.first:
                    self.first[pid] = 0.0 if born >= self.started else cpu
                self.last[pid] = cpu
                if label is not None:
                    self.label_of[pid] = label
                if peak == peak:  # not NaN
                    self.peak_mb[pid] = max(peak, self.peak_mb.get(pid, 0.0))
        with self._lock:
            for label, mb in rss.items():
                self.timeline.setdefault(label, []).append((now, mb, self.cpu_unlocked(label)))

    def cpu_unlocked(self, label: str) -> float:
        """`cpu(label)` for a caller that holds the lock."""
        pids = self._under(label)
        return sum(self.last[pid] - self.first[pid] for pid in pids if pid in self.last)

    def cpu(self, label: str | None = None) -> float:
        """CPU seconds used since `start` by every process seen, or by those under `label`."""
        with self._lock:
            pids = set(self.last) if label is None else self._under(label)
            return sum(self.last[pid] - self.first[pid] for pid in pids if pid in self.last)

    def peak_rss_mb(self, label: str) -> float:
        """The largest peak resident memory of one process under `label` (MiB)."""
        with self._lock:
            return max((self.peak_mb[pid] for pid in self._under(label) if pid in self.peak_mb),
                       default=float("nan"))

    def _under(self, label: str) -> set[int]:
        return {pid for pid, found in self.label_of.items() if found == label}

    def start(self) -> None:
        """Sample every `interval` seconds until `stop`."""
        self.started = time.time()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Take a last sample and stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None
