"""The durable buffer: readings on disk (SQLite WAL, fsync on commit) until the series store has them.

Readings are stored in rows of up to `ROW_READINGS`, column by column (sensor ids joined by a unit
separator, timestamps and values as arrays of float64, one quality byte each, state names as a JSON
array when there are any), so the disk work per reading is a share of one row, not a row each.
A reading's position is `row * ROW_SLOTS + index`; the writer hands positions back to remove what
the store accepted, and a row removed in part keeps the rest (its `start` moves on).

Policy when full (`when_full`): `wait` (the centre's collector): `append` refuses (raises
`BufferFull`) and the caller waits; nothing already in the buffer is ever dropped to make room, MQTT
messages are then not acknowledged, so the broker keeps them. An edge cannot make a PLC wait, so it
chooses: `drop_oldest` deletes the oldest readings to take the new ones, `refuse_newest` keeps what
it has and leaves out what does not fit; either way every reading lost is counted (`dropped`, kept in
the file across restarts, and `on_dropped`).

Recent rows stay in memory as the readings that were appended (up to `RECENT_READINGS`, the oldest
forgotten first), so a writer keeping up takes them from there instead of reading and rebuilding them
from the file; a row changed since (a reading set aside) or forgotten is read from the file.

Two ends: `peek`/`remove_through` take the oldest readings (first in, first out); `peek_newest`/
`remove_rows` take the newest whole rows, so an edge catching up after an outage sends fresh
readings ahead of the backlog.

Removing what the store has is the one commit that does not wait for the disk (`synchronous=NORMAL`
for it alone): should the machine lose power before the next commit's fsync carries it, the rows come
back and are written again, and the store keeps one point per series and timestamp. Every other
commit is on disk before it returns.

Delivery keys: a source may commit a key with its readings (an MQTT message's packet id and digest),
so a message the broker delivers again after a crash is recognised and not stored twice. The newest
`DELIVERED_KEEP` keys are kept (fewer than MQTT's 65535 packet ids, so a reused id is never mistaken).
Keys of edge batches (`edge_batch_key`) are kept apart, the newest `EDGE_BATCHES_KEEP` numbers of
each edge, so a busy MQTT intake never pushes out the record of a batch an edge may send again.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
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
CREATE TABLE IF NOT EXISTS edge_batches (
    edge TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (edge, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
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
RECENT_READINGS = 100_000  # readings of the newest rows kept in memory for `peek` (a few seconds' worth)
ROW_SLOTS = 1 << 20  # positions per row (more than ROW_READINGS, so positions never collide)
DELIVERED_KEEP = 30_000
EDGE_BATCHES_KEEP = 100_000  # batch numbers remembered per edge
EDGE_KEY_PREFIX = "edge:"
WHEN_FULL = ("wait", "drop_oldest", "refuse_newest")
SET_ASIDE = 255  # quality byte of a reading the store refused (kept in `rejected`)
_SEPARATOR = "\x1f"
_INSERT = ("INSERT INTO batches (size, live, sensors, ts, vals, qualities, states) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)")
_QUALITIES = tuple(sorted(Quality))  # code -> Quality (codes are 0, 1, 2, ...)


class BufferFull(Exception):
    """The buffer holds `capacity` readings; wait for the writer to drain it."""


def edge_batch_key(edge: str, seq: int) -> str:
    """The delivery key of an edge's batch number `seq` (see the module's note on delivery keys)."""
    return f"{EDGE_KEY_PREFIX}{edge}:{seq}"


class DurableBuffer:
    """A bounded FIFO of readings on disk; safe to use from several threads."""

    def __init__(self, path: str | Path, capacity: int = 5_000_000, *, when_full: str = "wait",
                 on_dropped: Callable[[int], None] | None = None) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        if when_full not in WHEN_FULL:
            raise ValueError(f"when_full must be one of {', '.join(WHEN_FULL)}, not {when_full!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        self.when_full = when_full
        self.on_dropped = on_dropped
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit is on disk before we acknowledge
        self._db.executescript(_SCHEMA)
        self._adopt_rows_of_one_reading()
        self._depth: int = self._db.execute("SELECT coalesce(sum(live), 0) FROM batches").fetchone()[0]
        self._delivered: int = self._db.execute("SELECT count(*) FROM delivered").fetchone()[0]
        found = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        self._dropped: int = found[0] if found is not None else 0
        self._recent: dict[int, Sequence[Reading]] = {}  # row number -> its readings, oldest row first
        self._recent_count = 0

    @property
    def depth(self) -> int:
        """Readings waiting for the series store."""
        return self._depth

    @property
    def dropped(self) -> int:
        """Readings lost to a full buffer (`drop_oldest`, `refuse_newest`) since the file was made."""
        return self._dropped

    def append(self, readings: Sequence[Reading], keys: Sequence[str] = ()) -> None:
        """Store readings (and delivery keys) durably, all or none.

        When they do not fit: `BufferFull` (`wait`), or the oldest readings make room
        (`drop_oldest`), or what does not fit is left out (`refuse_newest`), counted in the same commit.
        """
        if not readings and not keys:
            return
        with self._lock:
            excess = self._depth + len(readings) - self.capacity
            if excess > 0 and self.when_full == "wait":
                raise BufferFull(f"{self._depth} of {self.capacity} readings buffered")
            lost = 0
            if excess > 0 and self.when_full == "refuse_newest":
                lost = min(excess, len(readings))
                readings = readings[:len(readings) - lost]
            chunks = [readings[i:i + ROW_READINGS] for i in range(0, len(readings), ROW_READINGS)]
            rows = [_row(chunk) for chunk in chunks]
            self._db.execute("BEGIN IMMEDIATE")
            try:
                made_room = 0
                if excess > 0 and self.when_full == "drop_oldest":
                    made_room = lost = self._drop_oldest(excess)
                self._db.executemany(_INSERT, rows)
                last_row: int = self._db.execute("SELECT last_insert_rowid()").fetchone()[0]
                if keys:
                    self._remember(keys)
                if lost:
                    self._db.execute("INSERT INTO counters (name, value) VALUES ('dropped', ?) ON CONFLICT "
                                     "(name) DO UPDATE SET value = value + excluded.value", (lost,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth += len(readings) - made_room
            self._dropped += lost
            if made_room:
                self._forget_recent()
            self._remember_recent(last_row - len(chunks) + 1, chunks)
        if lost and self.on_dropped is not None:
            self.on_dropped(lost)

    def _drop_oldest(self, count: int) -> int:
        """Within a transaction, forget the oldest `count` waiting readings (fewer if fewer wait)."""
        dropped = 0
        rows = self._db.execute("SELECT seq, start, size, live, qualities FROM batches ORDER BY seq")
        for seq, start, size, live, qualities in rows.fetchall():
            if dropped >= count:
                break
            if live <= count - dropped:
                self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
                dropped += live
                continue
            index = start  # the position in this row through which `count - dropped` live readings go
            left = count - dropped
            while left > 0 and index < size:
                if qualities[index] != SET_ASIDE:
                    left -= 1
                index += 1
            self._db.execute("UPDATE batches SET start = ?, live = ? WHERE seq = ?",
                             (index, live - (count - dropped), seq))
            dropped = count
        return dropped

    def _remember(self, keys: Sequence[str]) -> None:
        plain = [(k,) for k in keys if not k.startswith(EDGE_KEY_PREFIX)]
        if plain:
            self._db.executemany("INSERT OR IGNORE INTO delivered (key) VALUES (?)", plain)
            self._delivered += len(plain)
        if self._delivered > DELIVERED_KEEP * 1.2:
            self._db.execute("DELETE FROM delivered WHERE id <= (SELECT max(id) FROM delivered) - ?",
                             (DELIVERED_KEEP,))
            self._delivered = DELIVERED_KEEP
        for key in keys:
            parsed = _edge_key(key)
            if parsed is not None:
                edge, seq = parsed
                self._db.execute("INSERT OR IGNORE INTO edge_batches (edge, seq) VALUES (?, ?)", (edge, seq))
                if seq % 1000 == 0:  # now and then, not on every batch
                    self._db.execute("DELETE FROM edge_batches WHERE edge = ? AND seq < ?",
                                     (edge, seq - EDGE_BATCHES_KEEP))

    def delivered(self, key: str) -> bool:
        """Whether readings with this delivery key were committed (recently)."""
        parsed = _edge_key(key)
        with self._lock:
            if parsed is not None:
                return self._db.execute("SELECT 1 FROM edge_batches WHERE edge = ? AND seq = ?",
                                        parsed).fetchone() is not None
            return self._db.execute("SELECT 1 FROM delivered WHERE key = ?", (key,)).fetchone() is not None

    def peek(self, limit: int) -> tuple[list[int], list[Reading]]:
        """The oldest `limit` readings, oldest first, with their positions."""
        positions: list[int] = []
        readings: list[Reading] = []
        with self._lock:
            cursor = self._db.execute("SELECT seq, start FROM batches ORDER BY seq")
            try:
                for seq, start in cursor:
                    base = seq * ROW_SLOTS
                    recent = self._recent.get(seq)
                    if recent is not None:  # as appended: nothing in it set aside
                        readings += recent[start:]
                        positions += range(base + start, base + len(recent))
                    else:
                        row = self._row_readings(seq)
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

    def peek_newest(self, limit: int) -> tuple[list[int], list[Reading]]:
        """The newest whole rows holding up to `limit` readings (at least one row), oldest first.

        Returns the rows' numbers (for `remove_rows`) and their waiting readings.
        """
        rows: list[tuple[int, list[Reading]]] = []
        taken = 0
        with self._lock:
            cursor = self._db.execute("SELECT seq, start FROM batches ORDER BY seq DESC")
            try:
                for seq, start in cursor:
                    recent = self._recent.get(seq)
                    waiting = (list(recent[start:]) if recent is not None
                               else [r for r in self._row_readings(seq)[start:] if r is not None])
                    if rows and taken + len(waiting) > limit:
                        break
                    rows.append((seq, waiting))
                    taken += len(waiting)
                    if taken >= limit:
                        break
            finally:
                cursor.close()
        rows.reverse()
        return [seq for seq, _ in rows], [r for _, waiting in rows for r in waiting]

    def remove_rows(self, seqs: Sequence[int]) -> int:
        """Forget whole rows (as `peek_newest` gave them: the store has them); returns readings removed."""
        if not seqs:
            return 0
        with self._lock:
            with self._forgetting():
                removed = 0
                for seq in seqs:
                    found = self._db.execute("SELECT live FROM batches WHERE seq = ?", (seq,)).fetchone()
                    if found is not None:
                        removed += int(found[0])
                        self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
            self._depth -= removed
            for seq in seqs:
                self._forget_recent(seq)
            return removed

    def oldest_ts(self) -> float | None:
        """The timestamp of the oldest waiting reading (None when the buffer is empty)."""
        with self._lock:
            found = self._db.execute(
                "SELECT start, ts, qualities FROM batches ORDER BY seq LIMIT 1").fetchone()
        if found is None:
            return None
        start, ts_bytes, qualities = found
        times = array("d")
        times.frombytes(ts_bytes)
        return next((times[i] for i in range(start, len(times)) if qualities[i] != SET_ASIDE), None)

    def remove_through(self, position: int) -> int:
        """Forget every reading up to and including `position` (the store has them); returns how many."""
        seq, index = divmod(position, ROW_SLOTS)
        with self._lock:
            with self._forgetting():
                removed: int = self._db.execute(
                    "SELECT coalesce(sum(live), 0) FROM batches WHERE seq < ?", (seq,)).fetchone()[0]
                self._db.execute("DELETE FROM batches WHERE seq < ?", (seq,))
                removed += self._remove_head(seq, index)
            self._depth -= removed
            while self._recent and next(iter(self._recent)) < seq:
                self._forget_recent(next(iter(self._recent)))
            return removed

    @contextlib.contextmanager
    def _forgetting(self) -> Iterator[None]:
        """A transaction that only forgets what the store has, not waiting for the disk (see the module).

        The connection waits for the disk again afterwards, whatever happened.
        """
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

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
            self._forget_recent(seq)  # it changes: read from the file from now on
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
            self._forget_recent()

    def _row_readings(self, seq: int) -> list[Reading | None]:
        """Row `seq`'s readings by index, read from the file (None where one was set aside)."""
        columns = self._db.execute("SELECT sensors, ts, vals, qualities, states FROM batches WHERE seq = ?",
                                   (seq,)).fetchone()
        return _unpack(columns) if columns is not None else []

    def _remember_recent(self, first: int, chunks: Sequence[Sequence[Reading]]) -> None:
        """Keep the rows just appended (numbers `first`, `first + 1`, ...) in memory, within the bound."""
        for offset, chunk in enumerate(chunks):
            self._recent[first + offset] = chunk
            self._recent_count += len(chunk)
        while self._recent_count > RECENT_READINGS:
            self._forget_recent(next(iter(self._recent)))

    def _forget_recent(self, seq: int | None = None) -> None:
        """Forget row `seq`'s readings in memory (every row's when None)."""
        if seq is None:
            self._recent.clear()
            self._recent_count = 0
        elif (chunk := self._recent.pop(seq, None)) is not None:
            self._recent_count -= len(chunk)

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


def _edge_key(key: str) -> tuple[str, int] | None:
    """(edge, batch number) of an edge batch's delivery key, else None."""
    if not key.startswith(EDGE_KEY_PREFIX):
        return None
    edge, _, seq = key[len(EDGE_KEY_PREFIX):].rpartition(":")
    return (edge, int(seq)) if edge and seq.isdigit() else None


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
