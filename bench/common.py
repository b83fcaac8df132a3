"""Shared helpers of the benchmarks: tables, JSON results, CPU per process and per thread, percentiles."""

from __future__ import annotations

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
