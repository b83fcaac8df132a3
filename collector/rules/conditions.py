"""Conditions alarm rules test, over a rolling view of recent readings.

A condition answers True, False or None (cannot tell: no data yet). `active` tells a threshold that
its alarm is already raised, so it clears only past its hysteresis band.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pumpwatch.clock import Clock
from pumpwatch.readings import Quality, Reading

_UNUSABLE = (Quality.DEVICE_ERROR, Quality.STALE)


def _time(point: tuple[float, float]) -> float:
    return point[0]


@dataclass
class _Track:
    points: deque[tuple[float, float]] = field(default_factory=deque)
    seen_at: float | None = None  # when the newest usable reading arrived (transport clock)
    run: int = 0  # how many of the newest points hold the newest value (a flatline is asked in O(1))


class SensorView:
    """The latest value and a short history of each sensor, as much as the rules need."""

    def __init__(self, keep: dict[str, float], transport: Clock) -> None:
        self.keep = keep  # sensor -> seconds of history the rules look back
        self.transport = transport  # arrival times: real time even when the model runs faster
        self.started = transport.now()
        # When this collector took the estate's rules over from another member of its group: the view
        # held only this collector's share of the readings until then (see `Silent`).
        self.taken_over = -math.inf
        self._tracks: dict[str, _Track] = {}

    def update(self, readings: Iterable[Reading], *, only_newer: bool = False,
               names: Mapping[str, str] | None = None) -> set[str]:
        """Take readings in; returns the sensors that changed. Unusable qualities are not data.

        A reading older than the newest one held is late and left out; with `only_newer` so is one of
        the same time (a reading heard twice: from this collector and back from its group). `names`:
        each reading's sensor id by its `sensor` field (the collector's readings carry sensor keys).
        """
        received = self.transport.now()
        changed: set[str] = set()
        tracks = self._tracks
        keep = self.keep
        for sensor, ts, value, quality, _state in readings:
            if quality in _UNUSABLE:
                continue
            if names is not None:
                sensor = names[sensor]
            track = tracks.get(sensor)
            if track is None:
                track = tracks[sensor] = _Track()
            points = track.points
            if points and (ts < points[-1][0] or (only_newer and ts == points[-1][0])):
                continue  # late arrival: the newest value stands
            track.run = track.run + 1 if points and points[-1][1] == value else 1
            points.append((ts, value))
            horizon = ts - keep.get(sensor, 0.0)
            while len(points) > 2 and points[1][0] <= horizon:
                points.popleft()  # keep one point at or before the horizon for change()
            if track.run > len(points):
                track.run = len(points)
            track.seen_at = received
            changed.add(sensor)
        return changed

    def value(self, sensor: str) -> float | None:
        """The newest value, or None before the first reading."""
        track = self._tracks.get(sensor)
        return track.points[-1][1] if track and track.points else None

    def seen_at(self, sensor: str) -> float | None:
        """When the newest usable reading of the sensor arrived."""
        track = self._tracks.get(sensor)
        return track.seen_at if track else None

    def change(self, sensor: str, window: float) -> float | None:
        """Newest value minus the value `window` seconds before it; None while history is shorter."""
        track = self._tracks.get(sensor)
        if not track or len(track.points) < 2:
            return None
        newest_ts, newest = track.points[-1]
        horizon = newest_ts - window
        if track.points[0][0] > horizon:
            return None
        # The newest point at or before the horizon (a binary search: the window may be a short part
        # of what the view keeps for the sensor's other rules).
        before = track.points[bisect_right(track.points, horizon, key=_time) - 1][1]
        return newest - before

    def still(self, sensor: str, window: float) -> bool | None:
        """True when every value over the last `window` seconds is the same."""
        track = self._tracks.get(sensor)
        if not track or len(track.points) < 3:
            return None
        points = track.points
        newest_ts, newest = points[-1]
        horizon = newest_ts - window
        if points[0][0] > horizon:
            return None
        if newest != newest:  # NaN equals nothing, itself included
            return False
        # Flat over the window: the newest point that differs (just before the run) is older than it.
        return track.run >= len(points) or points[len(points) - track.run - 1][0] < horizon


class Condition(Protocol):
    """A test over the view."""

    @property
    def sensors(self) -> frozenset[str]:
        """The sensors the test reads."""
        ...

    def holds(self, view: SensorView, now: float, active: bool) -> bool | None:
        """True, False, or None when it cannot tell yet."""
        ...


@dataclass(frozen=True)
class _OneSensor:
    """A condition on one sensor."""

    sensor: str

    @property
    def sensors(self) -> frozenset[str]:
        """The one sensor read."""
        return frozenset((self.sensor,))


@dataclass(frozen=True)
class Compare(_OneSensor):
    """The value is above (or below) a limit; once active it clears only past the hysteresis."""

    limit: float
    above: bool
    hysteresis: float = 0.0


    def holds(self, view: SensorView, now: float, active: bool) -> bool | None:
        """Compare the newest value with the limit (shifted by the hysteresis while active)."""
        value = view.value(self.sensor)
        if value is None:
            return None
        band = self.hysteresis if active else 0.0
        return value > self.limit - band if self.above else value < self.limit + band


@dataclass(frozen=True)
class StateIn(_OneSensor):
    """The state code is one of `codes` (or, negated, none of them)."""

    codes: frozenset[int]
    negate: bool = False


    def holds(self, view: SensorView, now: float, active: bool) -> bool | None:
        """Test the newest state code."""
        value = view.value(self.sensor)
        if value is None:
            return None
        return (round(value) in self.codes) != self.negate


@dataclass(frozen=True)
class Change(_OneSensor):
    """The value rose (or fell) by at least `amount` over `window` seconds."""

    amount: float
    window: float
    rising: bool


    def holds(self, view: SensorView, now: float, active: bool) -> bool | None:
        """Compare the change over the window with the amount."""
        delta = view.change(self.sensor, self.window)
        if delta is None:
            return None
        return delta >= self.amount if self.rising else delta <= -self.amount


@dataclass(frozen=True)
class FastChange(_OneSensor):
    """The value moved by more than `per_minute` within the last minute, either way."""

    per_minute: float


    def holds(self, view: SensorView, now: float, active: bool) -> bool | None:
        """Compare the last minute's change with the limit."""
        delta = view.change(self.sensor, 60.0)
        return None if delta is None else abs(delta) > self.per_minute


@dataclass(frozen=True)
class Still(_OneSensor):
    """The value has not moved at all for `window` seconds (a stuck sensor)."""

    window: float


    def holds(self, view: SensorView, now: float, active: bool) -> bool | None:
        """True when the history over the window is flat."""
        return view.still(self.sensor, self.window)


@dataclass(frozen=True)
class Silent:
    """None of `watched` has delivered a usable reading for `after` seconds (transport clock)."""

    watched: frozenset[str]
    after: float

    @property
    def sensors(self) -> frozenset[str]:
        """The sensors whose silence is watched."""
        return self.watched

    def holds(self, view: SensorView, now: float, active: bool) -> bool | None:
        """Measured on the view's transport clock, from start-up for sensors never heard from.

        Unknown for one period after the view was taken over: the sensors whose readings went to
        another collector have had no time to show up here yet.
        """
        arrived = view.transport.now()
        if arrived - view.taken_over < self.after:
            return None
        newest = max((view.seen_at(s) or view.started for s in self.watched), default=view.started)
        return arrived - newest >= self.after


@dataclass(frozen=True)
class AllOf:
    """Every condition holds (unknown if one is unknown and none fails)."""

    conditions: Sequence[Condition]

    @property
    def sensors(self) -> frozenset[str]:
        """Sensors of every part."""
        return frozenset().union(*(c.sensors for c in self.conditions))

    def holds(self, view: SensorView, now: float, active: bool) -> bool | None:
        """AND with unknowns."""
        results = [c.holds(view, now, active) for c in self.conditions]
        if False in results:
            return False
        return None if None in results else True


@dataclass(frozen=True)
class AnyOf:
    """At least one condition holds (unknown if none holds and one is unknown)."""

    conditions: Sequence[Condition]

    @property
    def sensors(self) -> frozenset[str]:
        """Sensors of every part."""
        return frozenset().union(*(c.sensors for c in self.conditions))

    def holds(self, view: SensorView, now: float, active: bool) -> bool | None:
        """OR with unknowns."""
        results = [c.holds(view, now, active) for c in self.conditions]
        if True in results:
            return True
        return None if None in results else False


def timed(condition: Condition) -> bool:
    """Whether the answer can change with time alone, with no new reading: a no-data test.

    Every other condition reads the view only, and the view changes only with readings (windows are
    measured back from the newest reading, not from now), so its answer stands until the next one.
    A condition of an unknown kind counts as timed.
    """
    if isinstance(condition, (AllOf, AnyOf)):
        return any(timed(part) for part in condition.conditions)
    return not isinstance(condition, (Compare, StateIn, Change, FastChange, Still))
