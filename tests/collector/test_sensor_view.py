"""The rules' view of recent readings: a flatline and a change over a window, asked without a scan,
give what a scan over the kept points gives."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.rules.conditions import SensorView
from pumpwatch.clock import FakeClock
from pumpwatch.readings import Reading


def scanned_still(points: deque[tuple[float, float]], window: float) -> bool | None:
    """Every kept value over the window equals the newest (the scan the view used to do)."""
    if len(points) < 3:
        return None
    newest_ts, newest = points[-1]
    if points[0][0] > newest_ts - window:
        return None
    return all(value == newest for ts, value in points if ts >= newest_ts - window)


def scanned_change(points: deque[tuple[float, float]], window: float) -> float | None:
    """Newest value minus the newest one at or before the window's start, found by walking the points."""
    if len(points) < 2:
        return None
    newest_ts, newest = points[-1]
    horizon = newest_ts - window
    if points[0][0] > horizon:
        return None
    before = points[0][1]
    for ts, value in points:
        if ts > horizon:
            break
        before = value
    return newest - before


steps = st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0, 1.0, 3.0, -1.0]),  # time step (-1: late)
                           st.sampled_from([1.0, 1.0, 1.0, 2.0, -0.0, 0.0])),  # few values: long runs
                 min_size=1, max_size=120)


@settings(max_examples=300, deadline=None)
@given(steps=steps, keep=st.sampled_from([0.0, 5.0, 12.0, 30.0]),
       windows=st.lists(st.sampled_from([0.0, 1.0, 4.0, 10.0, 12.0, 29.0]), min_size=1, max_size=3))
def test_flatline_and_change_answer_as_a_scan_of_the_kept_points(
        steps: list[tuple[float, float]], keep: float, windows: list[float]) -> None:
    view = SensorView({"p": keep}, FakeClock())
    ts = 1_000.0
    for step, value in steps:
        ts += step
        view.update([Reading("p", ts, value)])
        points = view._tracks["p"].points
        for window in windows:
            assert view.still("p", window) == scanned_still(points, window), (window, list(points))
            assert view.change("p", window) == scanned_change(points, window), (window, list(points))


def test_a_long_steady_value_is_a_flatline_once_it_covers_the_window_and_not_after_a_move() -> None:
    view = SensorView({"p": 905.0}, FakeClock())
    for second in range(1000):
        view.update([Reading("p", float(second), 7.0)])
    assert view.still("p", 900.0) is True
    view.update([Reading("p", 1000.0, 7.5)])
    assert view.still("p", 900.0) is False
    for second in range(1001, 1901):
        view.update([Reading("p", float(second), 7.5)])
    assert view.still("p", 900.0) is True  # the move is now older than the window
