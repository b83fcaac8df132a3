"""Jittered exponential backoff: the one retry pause of every loop that waits for something to come back.

Used by the writer (series store away), the Modbus pollers (device away), the notification
channels (webhook or mail server away) and the maintenance state's alarm intake (database away).
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays first, first*2, ... up to `cap`, each +/- `jitter` share (0: exact)."""

    def __init__(self, first: float = 0.5, cap: float = 30.0, jitter: float = 0.2,
                 rng: Callable[[], float] = random.random) -> None:
        if first <= 0 or cap < first:
            raise ValueError(f"backoff needs 0 < first <= cap, got first={first}, cap={cap}")
        self.first = first
        self.cap = cap
        self.jitter = jitter
        self._rng = rng
        self._next = first
        self.failures = 0  # delays handed out since the last reset

    def next(self) -> float:
        """The delay to wait now; each call doubles the following one up to the cap."""
        base = self._next
        self._next = min(self.cap, self._next * 2)
        self.failures += 1
        return base * (1 + self.jitter * (2 * self._rng() - 1))

    def reset(self) -> None:
        """Start again from the first delay (after a success)."""
        self._next = self.first
        self.failures = 0
