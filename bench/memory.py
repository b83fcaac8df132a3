"""Resource samples of running processes (RSS, USS, CPU, open fds, threads) and their growth over time."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psutil  # type: ignore[import-untyped]

MB = 1024 * 1024


@dataclass(frozen=True)
class ProcessSample:
    """One look at one process, `t` seconds after the run started."""

    t: float
    rss_mb: float
    uss_mb: float | None  # None where the platform cannot tell
    cpu_s: float  # user + system since the process started
    fds: int
    threads: int


def sample(proc: psutil.Process, t: float) -> ProcessSample:
    """RSS, USS (from /proc/<pid>/smaps on Linux), CPU seconds, open fds and threads of `proc`."""
    with proc.oneshot():
        try:
            full = proc.memory_full_info()
            rss, uss = full.rss, getattr(full, "uss", None)
        except psutil.AccessDenied:
            rss, uss = proc.memory_info().rss, None
        times = proc.cpu_times()
        return ProcessSample(t=round(t, 2), rss_mb=rss / MB, uss_mb=None if uss is None else uss / MB,
                             cpu_s=float(times.user + times.system), fds=proc.num_fds(),
                             threads=proc.num_threads())


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, in value units per hour; NaN under two points."""
    if len(points) < 2:
        return math.nan
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return math.nan
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 3600


def summarise(samples: Sequence[ProcessSample], warmup: float) -> dict[str, Any]:
    """Start (first sample after `warmup` s), end, max and growth of RSS/USS; CPU, fds and threads.

    Growth is the least-squares slope over the samples after the warm-up, and over their second half.
    """
    steady = [s for s in samples if s.t >= warmup] or list(samples[-1:])
    if not steady:
        return {"samples": 0}
    first, last = steady[0], steady[-1]
    window = last.t - first.t
    out: dict[str, Any] = {
        "samples": len(steady),
        "window_s": round(window, 1),
        "rss_start_mb": first.rss_mb, "rss_end_mb": last.rss_mb,
        "rss_max_mb": max(s.rss_mb for s in samples),
        "rss_growth_mb_per_h": slope_per_hour([(s.t, s.rss_mb) for s in steady]),
        # the second half alone: a process still settling slows down here, a leak does not
        "rss_growth_late_mb_per_h": slope_per_hour([(s.t, s.rss_mb) for s in steady
                                                    if s.t >= first.t + window / 2]),
        "cpu_pct_of_core": (last.cpu_s - first.cpu_s) / window * 100 if window > 0 else math.nan,
        "fds_start": first.fds, "fds_end": last.fds, "fds_max": max(s.fds for s in samples),
        "threads_start": first.threads, "threads_end": last.threads,
        "threads_max": max(s.threads for s in samples),
    }
    uss = [s for s in steady if s.uss_mb is not None]
    if uss:
        out.update(uss_start_mb=uss[0].uss_mb, uss_end_mb=uss[-1].uss_mb,
                   uss_max_mb=max(s.uss_mb for s in uss if s.uss_mb is not None),
                   uss_growth_mb_per_h=slope_per_hour([(s.t, s.uss_mb) for s in uss if s.uss_mb is not None]))
    return out


def as_rows(samples: Sequence[ProcessSample]) -> list[dict[str, Any]]:
    """Samples as JSON-ready dicts."""
    return [asdict(s) for s in samples]
