"""Login rate limit: at most N attempts per client address in a sliding window.

Bounded: at most `max_clients` addresses are tracked; past that the least recently seen is forgotten
(the per-account throttle in the auth service still slows each name from each address).
"""

from __future__ import annotations

from collections import OrderedDict, deque

from pumpwatch.clock import Clock


class RateLimiter:
    """Sliding-window counter per key."""

    def __init__(self, clock: Clock, attempts: int = 10, window: float = 60.0,
                 max_clients: int = 10_000) -> None:
        self.clock = clock
        self.attempts = attempts
        self.window = window
        self.max_clients = max_clients
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str) -> float | None:
        """Count an attempt; None if allowed, else seconds until the next one is."""
        now = self.clock.now()
        hits = self._hits.pop(key, None) or deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        self._hits[key] = hits
        if len(self._hits) > self.max_clients:
            self._hits.popitem(last=False)
        if len(hits) >= self.attempts:
            return max(0.0, hits[0] + self.window - now)
        hits.append(now)
        return None
