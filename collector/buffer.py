"""The durable buffer: readings on disk (SQLite WAL, fsync on commit) until the series store has them.

Policy when full: `append` refuses (raises `BufferFull`) and the caller waits; nothing already in the
buffer is ever dropped to make room. MQTT messages are then not acknowledged, so the broker keeps them.

Delivery keys: a source may commit a key with its readings (an MQTT message's packet id and digest),
so a message the broker delivers again after a crash is recognised and not stored twice. The newest
`DELIVERED_KEEP` keys are kept (fewer than MQTT's 65535 packet ids, so a reused id is never mistaken).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from pumpwatch.readings import Quality, Reading

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sensor TEXT NOT NULL,
    ts REAL NOT NULL,
    value REAL NOT NULL,
    quality INTEGER NOT NULL,
    state TEXT
);
CREATE TABLE IF NOT EXISTS delivered (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY,
    sensor TEXT NOT NULL,
    ts REAL NOT NULL,
    value REAL NOT NULL,
    quality INTEGER NOT NULL,
    state TEXT,
    reason TEXT NOT NULL
);
"""


DELIVERED_KEEP = 30_000
_QUALITIES = tuple(sorted(Quality))  # code -> Quality (codes are 0, 1, 2, ...)


class BufferFull(Exception):
    """The buffer holds `capacity` readings; wait for the writer to drain it."""


class DurableBuffer:
    """A bounded FIFO of readings on disk; safe to use from several threads."""

    def __init__(self, path: str | Path, capacity: int = 5_000_000) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit is on disk before we acknowledge
        self._db.executescript(_SCHEMA)
        self._depth: int = self._db.execute("SELECT count(*) FROM pending").fetchone()[0]
        self._delivered: int = self._db.execute("SELECT count(*) FROM delivered").fetchone()[0]

    @property
    def depth(self) -> int:
        """Readings waiting for the series store."""
        return self._depth

    def append(self, readings: Sequence[Reading], keys: Sequence[str] = ()) -> None:
        """Store readings (and delivery keys) durably, all or none; `BufferFull` if they do not fit."""
        if not readings and not keys:
            return
        with self._lock:
            if self._depth + len(readings) > self.capacity:
                raise BufferFull(f"{self._depth} of {self.capacity} readings buffered")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO pending (sensor, ts, value, quality, state) VALUES (?, ?, ?, ?, ?)",
                    [(r.sensor, r.ts, r.value, int(r.quality), r.state) for r in readings],
                )
                if keys:
                    self._db.executemany("INSERT OR IGNORE INTO delivered (key) VALUES (?)",
                                         [(k,) for k in keys])
                    self._delivered += len(keys)
                    if self._delivered > DELIVERED_KEEP * 1.2:
                        self._db.execute("DELETE FROM delivered WHERE id <= "
                                         "(SELECT max(id) FROM delivered) - ?", (DELIVERED_KEEP,))
                        self._delivered = DELIVERED_KEEP
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth += len(readings)

    def delivered(self, key: str) -> bool:
        """Whether readings with this delivery key were committed (recently)."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM delivered WHERE key = ?", (key,)).fetchone() is not None

    def peek(self, limit: int) -> tuple[list[int], list[Reading]]:
        """The oldest `limit` readings, oldest first, with their sequence numbers."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, sensor, ts, value, quality, state FROM pending ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        qualities = _QUALITIES  # an index instead of an enum lookup per row: this runs per reading
        return [r[0] for r in rows], [Reading(r[1], r[2], r[3], qualities[r[4]], r[5]) for r in rows]

    def remove_through(self, seq: int) -> int:
        """Forget every reading up to and including `seq` (the store has them); returns how many."""
        with self._lock:
            cur = self._db.execute("DELETE FROM pending WHERE seq <= ?", (seq,))
            self._depth -= cur.rowcount
            return cur.rowcount

    def set_aside(self, seq: int, reason: str) -> None:
        """Move one reading the store refuses into the `rejected` table, kept for inspection."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO rejected SELECT seq, sensor, ts, value, quality, state, ? "
                "FROM pending WHERE seq = ?", (reason, seq))
            cur = self._db.execute("DELETE FROM pending WHERE seq = ?", (seq,))
            self._db.execute("COMMIT")
            self._depth -= cur.rowcount

    def rejected_count(self) -> int:
        """Readings set aside because the store refused them."""
        with self._lock:
            count: int = self._db.execute("SELECT count(*) FROM rejected").fetchone()[0]
            return count

    def close(self) -> None:
        """Close the database (everything committed is kept)."""
        with self._lock:
            self._db.close()
