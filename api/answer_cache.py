"""Answers of a list route kept for a second: fifty centre screens polling one list share one query.

An answer is keyed by what asked for it (the filters, the page and the caller's scope) and reused while it
is younger than `max_age` seconds and the version it was computed at still holds (`maintenance.writes`:
it moves on with every commit of this process that wrote to the state database). What another process
writes (another API replica, the scheduler) shows within `max_age` and one computation: an answer
older than `max_age` at a version that still holds is given at once while one background thread
computes its successor (stale while revalidating), so no screen waits for the query that the second's
first asker used to pay. At most `size` answers are kept; the oldest goes first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)


class AnswerCache:
    """Encoded answers by key, each with the version and the time it was computed at."""

    def __init__(self, max_age: float = 1.0, size: int = 256) -> None:
        self.max_age = max_age
        self.size = size
        self.hits = 0
        self.misses = 0
        self.stale = 0  # answers given while their successor was computed
        self._answers: OrderedDict[Hashable, tuple[int, float, bytes]] = OrderedDict()
        self._refreshing: set[Hashable] = set()  # keys whose successor a thread computes now
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
        """The kept answer for `key` at `version`, else `compute()`'s, kept from the moment it started.

        An answer at `version` older than `max_age` is given as it is, and `compute` runs on a thread of
        its own for the next asker (one at a time per key).
        """
        with self._lock:
            found = self._answers.get(key)
            if found is not None and found[0] == version:
                if time.monotonic() - found[1] < self.max_age:
                    self.hits += 1
                    return found[2]
                self.stale += 1
                if key not in self._refreshing:
                    self._refreshing.add(key)
                    threading.Thread(target=self._refresh, args=(key, version, compute), daemon=True,
                                     name="answer-refresh").start()
                return found[2]
            self.misses += 1
        started = time.monotonic()
        answer = compute()
        self.put(key, version, answer, started)
        return answer

    def _refresh(self, key: Hashable, version: int, compute: Callable[[], bytes]) -> None:
        """A background thread: the successor of a stale answer (a failure leaves the old one in place)."""
        try:
            started = time.monotonic()
            answer = compute()
            with self._lock:
                current = self._answers.get(key)
                newer = current is not None and current[0] != version  # an asker computed at another
            if not newer:
                self.put(key, version, answer, started)
        except Exception:  # the next asker tries again; the route itself would report the failure
            log.exception("computing the next answer for %r failed", key)
        finally:
            with self._lock:
                self._refreshing.discard(key)
