"""The durable buffer: readings on disk (SQLite WAL, fsync on commit) until the series store has them.

Readings are stored in rows of up to `ROW_READINGS`, column by column (sensor ids joined by a unit
separator, timestamps and values as arrays of float64, one quality byte each, state names as a JSON
array when there are any), so the disk work per reading is a share of one row, not a row each.
A reading's position is `row * ROW_SLOTS + index`; the writer hands positions back to remove what
the store accepted, and a row removed in part keeps the rest (its `start` moves on).

Policy when full: `append` refuses (raises `BufferFull`) and the caller waits; nothing already in the
buffer is ever dropped to make room. MQTT messages are then not acknowledged, so the broker keeps them.

Delivery keys: a source may commit a key with its readings (an MQTT message's packet id and digest),
so a message the broker delivers again after a crash is recognised and not stored twice. The newest
`DELIVERED_KEEP` keys are kept (fewer than MQTT's 65535 packet ids, so a reused id is never mistaken).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pumpwatch.readings import Quality, Reading

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    size INTEGER NOT NULL,              -- entries in `readings`
    start INTEGER NOT NULL DEFAULT 0,   -- entries before it are in the store
    live INTEGER NOT NULL,              -- entries from `start` on still waiting
    sensors TEXT NOT NULL,              -- ids joined by U+001F (ids are identifiers: never in one)
    ts BLOB NOT NULL,                   -- float64 epoch seconds, machine byte order
    vals BLOB NOT NULL,                 -- float64
    qualities BLOB NOT NULL,            -- one byte each; SET_ASIDE marks a reading moved to `rejected`
    states TEXT                         -- JSON array of names or nulls; NULL when the row has none
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

ROW_READINGS = 1000  # readings per row at most
ROW_SLOTS = 1 << 20  # positions per row (more than ROW_READINGS, so positions never collide)
DELIVERED_KEEP = 30_000
SET_ASIDE = 255  # quality byte of a reading the store refused (kept in `rejected`)
_SEPARATOR = "\x1f"
_INSERT = ("INSERT INTO batches (size, live, sensors, ts, vals, qualities, states) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)")
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
        self._adopt_rows_of_one_reading()
        self._depth: int = self._db.execute("SELECT coalesce(sum(live), 0) FROM batches").fetchone()[0]
        self._delivered: int = self._db.execute("SELECT count(*) FROM delivered").fetchone()[0]

    @property
    def depth(self) -> int:
        """Readings waiting for the series store."""
        return self._depth

    def append(self, readings: Sequence[Reading], keys: Sequence[str] = ()) -> None:
        """Store readings (and delivery keys) durably, all or none; `BufferFull` if they do not fit."""
        if not readings and not keys:
            return
        rows = [_row(readings[i:i + ROW_READINGS]) for i in range(0, len(readings), ROW_READINGS)]
        with self._lock:
            if self._depth + len(readings) > self.capacity:
                raise BufferFull(f"{self._depth} of {self.capacity} readings buffered")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(_INSERT, rows)
                if keys:
                    self._remember(keys)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth += len(readings)

    def _remember(self, keys: Sequence[str]) -> None:
        self._db.executemany("INSERT OR IGNORE INTO delivered (key) VALUES (?)", [(k,) for k in keys])
        self._delivered += len(keys)
        if self._delivered > DELIVERED_KEEP * 1.2:
            self._db.execute("DELETE FROM delivered WHERE id <= (SELECT max(id) FROM delivered) - ?",
                             (DELIVERED_KEEP,))
            self._delivered = DELIVERED_KEEP

    def delivered(self, key: str) -> bool:
        """Whether readings with this delivery key were committed (recently)."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM delivered WHERE key = ?", (key,)).fetchone() is not None

    def peek(self, limit: int) -> tuple[list[int], list[Reading]]:
        """The oldest `limit` readings, oldest first, with their positions."""
        positions: list[int] = []
        readings: list[Reading] = []
        with self._lock:
            cursor = self._db.execute(
                "SELECT seq, start, sensors, ts, vals, qualities, states FROM batches ORDER BY seq")
            try:
                for seq, start, *columns in cursor:
                    row = _unpack(columns)
                    base = seq * ROW_SLOTS
                    for index in range(start, len(row)):
                        reading = row[index]
                        if reading is not None:
                            positions.append(base + index)
                            readings.append(reading)
                    if len(readings) >= limit:
                        break
            finally:
                cursor.close()
        return positions[:limit], readings[:limit]

    def remove_through(self, position: int) -> int:
        """Forget every reading up to and including `position` (the store has them); returns how many."""
        seq, index = divmod(position, ROW_SLOTS)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                removed: int = self._db.execute(
                    "SELECT coalesce(sum(live), 0) FROM batches WHERE seq < ?", (seq,)).fetchone()[0]
                self._db.execute("DELETE FROM batches WHERE seq < ?", (seq,))
                removed += self._remove_head(seq, index)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth -= removed
            return removed

    def _remove_head(self, seq: int, index: int) -> int:
        """Within row `seq`, forget the entries up to `index`; returns how many were waiting."""
        row = self._db.execute("SELECT size, start, live, qualities FROM batches WHERE seq = ?",
                               (seq,)).fetchone()
        if row is None:
            return 0
        size, start, live, qualities = row
        if index + 1 >= size:
            self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
            return int(live)
        if index < start:
            return 0
        if live == size - start:  # nothing set aside since `start`: count without reading the row
            gone = index + 1 - start
        else:
            gone = sum(q != SET_ASIDE for q in qualities[start:index + 1])
        self._db.execute("UPDATE batches SET start = ?, live = ? WHERE seq = ?",
                         (index + 1, live - gone, seq))
        return int(gone)

    def set_aside(self, position: int, reason: str) -> None:
        """Move one reading the store refuses into the `rejected` table, kept for inspection."""
        seq, index = divmod(position, ROW_SLOTS)
        with self._lock:
            found = self._db.execute(
                "SELECT live, sensors, ts, vals, qualities, states FROM batches WHERE seq = ?",
                (seq,)).fetchone()
            if found is None:
                return
            live, *columns = found
            row = _unpack(columns)
            reading = row[index] if 0 <= index < len(row) else None
            if reading is None:
                return
            qualities = bytearray(columns[3])
            qualities[index] = SET_ASIDE
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR REPLACE INTO rejected VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (position, reading.sensor, reading.ts, reading.value,
                                  int(reading.quality), reading.state, reason))
                if live <= 1:
                    self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
                else:
                    self._db.execute("UPDATE batches SET live = ?, qualities = ? WHERE seq = ?",
                                     (live - 1, bytes(qualities), seq))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth -= 1

    def rejected_count(self) -> int:
        """Readings set aside because the store refused them."""
        with self._lock:
            count: int = self._db.execute("SELECT count(*) FROM rejected").fetchone()[0]
            return count

    def close(self) -> None:
        """Close the database (everything committed is kept)."""
        with self._lock:
            self._db.close()

    def _adopt_rows_of_one_reading(self) -> None:
        """Move readings left by a collector that kept one row per reading (table `pending`)."""
        found = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pending'").fetchone()
        if found is None:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            rows = self._db.execute("SELECT sensor, ts, value, quality, state FROM pending ORDER BY seq")
            old = [Reading(sensor, ts, value, _QUALITIES[quality], state)
                   for sensor, ts, value, quality, state in rows]
            self._db.executemany(_INSERT, [_row(old[i:i + ROW_READINGS])
                                           for i in range(0, len(old), ROW_READINGS)])
            self._db.execute("DROP TABLE pending")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise


def _row(readings: Sequence[Reading]) -> tuple[int, int, str, bytes, bytes, bytes, str | None]:
    """One row's columns: (size, live, sensors, ts, vals, qualities, states)."""
    states = [r.state for r in readings]
    return (len(readings), len(readings), _SEPARATOR.join([r.sensor for r in readings]),
            array("d", [r.ts for r in readings]).tobytes(), array("d", [r.value for r in readings]).tobytes(),
            bytes([r.quality for r in readings]),
            json.dumps(states, ensure_ascii=False) if any(x is not None for x in states) else None)


def _unpack(columns: Sequence[Any]) -> list[Reading | None]:
    """A row's readings by index; None where a reading was set aside."""
    sensors, ts_bytes, value_bytes, qualities, states_json = columns
    ts, values = array("d"), array("d")
    ts.frombytes(ts_bytes)
    values.frombytes(value_bytes)
    states = json.loads(states_json) if states_json is not None else [None] * len(ts)
    return list(map(_reading, sensors.split(_SEPARATOR), ts, values, qualities, states))


def _reading(sensor: str, ts: float, value: float, quality: int, state: str | None) -> Reading | None:
    return Reading(sensor, ts, value, _QUALITIES[quality], state) if quality != SET_ASIDE else None
