"""Answers of a list route kept for a second: fifty centre screens polling one list share one query.

An answer is keyed by what asked for it (the filters, the page and the caller's scope) and reused while it
is younger than `max_age` seconds and the version it was computed at still holds (`maintenance.writes`:
it moves on with every commit of this process that wrote to the state database). What another process
writes (another API replica, the scheduler) shows within `max_age`. At most `size` answers are kept;
the oldest goes first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class AnswerCache:
    """Encoded answers by key, each with the version and the time it was computed at."""

    def __init__(self, max_age: float = 1.0, size: int = 256) -> None:
        self.max_age = max_age
        self.size = size
        self.hits = 0
        self.misses = 0
        self._answers: OrderedDict[Hashable, tuple[int, float, bytes]] = OrderedDict()
        self._lock = threading.Lock()  # routes run on worker threads

    def get(self, key: Hashable, version: int) -> bytes | None:
        """The answer for `key` if it was computed at `version` under `max_age` seconds ago."""
        with self._lock:
            found = self._answers.get(key)
            if found is not None and found[0] == version and time.monotonic() - found[1] < self.max_age:
                self.hits += 1
                return found[2]
            self.misses += 1
            return None

    def put(self, key: Hashable, version: int, answer: bytes, computed_at: float) -> None:
        """Keep an answer computed at `version`, from `computed_at` (`time.monotonic()` before the query)."""
        with self._lock:
            self._answers[key] = (version, computed_at, answer)
            self._answers.move_to_end(key)
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)

    def answer(self, key: Hashable, version: int, compute: Callable[[], bytes]) -> bytes:
        """The kept answer for `key` at `version`, else `compute()`'s, kept from the moment it started."""
        found = self.get(key, version)
        if found is None:
            started = time.monotonic()
            found = compute()
            self.put(key, version, found, started)
        return found
