"""Resource samples and their growth figures, as the soak benchmark reports them."""

from __future__ import annotations

import math
import os

import psutil  # type: ignore[import-untyped]

from bench.memory import ProcessSample, sample, slope_per_hour, summarise


def _at(t: float, rss: float) -> ProcessSample:
    return ProcessSample(t=t, rss_mb=rss, uss_mb=rss - 10, cpu_s=t / 10, fds=5, threads=3)


def test_the_slope_of_a_line_is_its_rate_per_hour() -> None:
    assert math.isclose(slope_per_hour([(t, 100 + t / 60) for t in range(0, 600, 5)]), 60.0)
    assert math.isnan(slope_per_hour([(0, 1.0)]))
    assert math.isnan(slope_per_hour([(5, 1.0), (5, 2.0)]))


def test_a_process_that_settles_grows_only_before_the_second_half() -> None:
    samples = [_at(t, 50 + min(t, 300) / 30) for t in range(0, 900, 5)]  # +10 MB over 5 min, then flat
    out = summarise(samples, warmup=60)
    assert out["rss_start_mb"] == samples[12].rss_mb  # the first sample at or after the warm-up
    assert out["rss_end_mb"] == 60.0
    assert out["rss_max_mb"] == 60.0
    assert out["rss_growth_mb_per_h"] > 10
    assert out["rss_growth_late_mb_per_h"] == 0.0
    assert math.isclose(out["cpu_pct_of_core"], 10.0)
    assert out["uss_end_mb"] == 50.0


def test_a_leak_keeps_its_slope_in_the_second_half() -> None:
    out = summarise([_at(t, 50 + t / 36) for t in range(0, 900, 5)], warmup=60)  # 100 MB/h throughout
    assert math.isclose(out["rss_growth_mb_per_h"], 100.0)
    assert math.isclose(out["rss_growth_late_mb_per_h"], 100.0)


def test_a_sample_of_this_process() -> None:
    got = sample(psutil.Process(os.getpid()), 1.0)
    assert got.rss_mb > 10
    assert got.uss_mb is None or 0 < got.uss_mb <= got.rss_mb
    assert got.fds > 0
    assert got.threads >= 1
