"""The embedded series store: SQLite in the state directory, for a site without an InfluxDB server.

Points are keyed by (sensor, ts), so writing a reading twice keeps one point; a `latest` table
keeps the newest point of each sensor so the live board never scans history, and a `minutes` table
keeps sum, min, max and count per sensor and minute, recomputed from the points of every minute a
write touches, so history at steps of whole minutes reads one row per minute instead of every point.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collector.stores.lineprotocol import quality_of
from pumpwatch.catalog import SensorCatalog
from pumpwatch.errors import StoreUnavailable
from pumpwatch.readings import Reading
from pumpwatch.series import HistoryPoint

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    sensor TEXT NOT NULL, ts REAL NOT NULL, value REAL NOT NULL, quality INTEGER NOT NULL, state TEXT,
    PRIMARY KEY (sensor, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (
    sensor TEXT PRIMARY KEY, ts REAL NOT NULL, value REAL NOT NULL, quality INTEGER NOT NULL, state TEXT);
"""
# Minute m holds the points with m * 60 <= ts < (m + 1) * 60.
_MINUTES = """
CREATE TABLE minutes (
    sensor TEXT NOT NULL, minute INTEGER NOT NULL, total REAL NOT NULL, low REAL NOT NULL,
    high REAL NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (sensor, minute)) WITHOUT ROWID;
INSERT INTO minutes SELECT sensor, m - (m * 60 > ts) + (ts >= m * 60 + 60) AS minute, sum(value),
    min(value), max(value), count(*)
    FROM (SELECT sensor, ts, value, CAST(ts / 60 AS INTEGER) AS m FROM points) GROUP BY sensor, minute;
"""
_REMINUTE = ("INSERT OR REPLACE INTO minutes SELECT sensor, ?, sum(value), min(value), max(value), count(*) "
             "FROM points WHERE sensor = ? AND ts >= ? AND ts < ? GROUP BY sensor")
_HISTORY_POINTS = ("SELECT CAST(ts / ? AS INTEGER) AS bucket, avg(value), min(value), max(value), count(*) "
                   "FROM points WHERE sensor = ? AND ts >= ? AND ts < ? GROUP BY bucket ORDER BY bucket")
# Whole minutes from `minutes`, the partial minutes at either end from `points`.
_HISTORY_MINUTES = (
    "SELECT bucket, sum(total) / sum(n), min(low), max(high), sum(n) FROM ("
    "SELECT minute / ? AS bucket, total, low, high, n FROM minutes WHERE sensor = ? AND minute >= ? "
    "AND minute < ? UNION ALL "
    "SELECT CAST(ts / ? AS INTEGER), value, value, value, 1 FROM points WHERE sensor = ? AND ts >= ? "
    "AND ts < ? UNION ALL "
    "SELECT CAST(ts / ? AS INTEGER), value, value, value, 1 FROM points WHERE sensor = ? AND ts >= ? "
    "AND ts < ?) GROUP BY bucket ORDER BY bucket")


class EmbeddedStore:
    """A `SeriesStore` in one SQLite file (WAL, fsync on commit)."""

    def __init__(self, path: str | Path, catalog: SensorCatalog | None = None) -> None:
        self.path = Path(path)
        self.catalog = catalog
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def start(self) -> None:
        """Open (and create) the database file."""
        await asyncio.to_thread(self._open)

    async def close(self) -> None:
        """Close the database file."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    async def write(self, readings: Sequence[Reading]) -> None:
        """Insert or replace points, and move each sensor's latest point forward."""
        if readings:
            await asyncio.to_thread(self._write, list(readings))

    async def latest(self, sensors: Sequence[str] | None = None) -> dict[str, Reading]:
        """The newest reading of each sensor."""
        rows = await asyncio.to_thread(self._select, "SELECT sensor, ts, value, quality, state FROM latest",
                                       ())
        wanted = set(sensors) if sensors is not None else None
        return {str(row[0]): _reading(row) for row in rows if wanted is None or row[0] in wanted}

    async def history(self, sensor: str, start: float, end: float, step: float) -> list[HistoryPoint]:
        """Mean, min, max and count per `step` seconds, buckets aligned to the epoch like InfluxDB's."""
        if step <= 0 or end <= start:
            return []
        first = minute_of(start)
        first += first * 60 < start
        last = minute_of(end)  # the whole minutes inside [start, end) are first .. last - 1
        args: tuple[object, ...]
        if step % 60 == 0 and start >= 0 and first < last:
            sql, args = _HISTORY_MINUTES, (int(step // 60), sensor, first, last, step, sensor, start,
                                           first * 60, step, sensor, last * 60, end)
        else:
            sql, args = _HISTORY_POINTS, (step, sensor, start, end)
        rows = await asyncio.to_thread(self._select, sql, args)
        return [HistoryPoint(int(bucket) * step, float(mean), float(low), float(high), int(n))
                for bucket, mean, low, high, n in rows]

    async def count(self, sensor: str | None = None) -> int:
        """Points stored, of one sensor or all."""
        if sensor is None:
            rows = await asyncio.to_thread(self._select, "SELECT count(*) FROM points", ())
        else:
            rows = await asyncio.to_thread(self._select, "SELECT count(*) FROM points WHERE sensor = ?",
                                           (sensor,))
        return int(rows[0][0])

    # --- internals -----------------------------------------------------------------------------

    def _open(self) -> None:
        with self._lock:
            if self._db is not None:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_SCHEMA)
                if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'minutes'").fetchone():
                    db.executescript(f"BEGIN; {_MINUTES} COMMIT;")  # a file from before the table
            except (OSError, sqlite3.Error) as err:
                raise StoreUnavailable(f"embedded store {self.path}: {err}") from err
            self._db = db

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable(f"embedded store {self.path} is not open")
        return self._db

    def _write(self, readings: list[Reading]) -> None:
        rows = [(r.sensor, r.ts, r.value, int(r.quality), r.state) for r in readings]
        minutes = {(r.sensor, minute_of(r.ts)) for r in readings}
        newest: dict[str, tuple[str, float, float, int, str | None]] = {}
        for row in rows:
            if row[0] not in newest or row[1] >= newest[row[0]][1]:
                newest[row[0]] = row
        with self._lock:
            db = self._connection()
            try:
                db.execute("BEGIN")
                db.executemany("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?)", rows)
                db.executemany(_REMINUTE, [(m, sensor, m * 60, m * 60 + 60) for sensor, m in minutes])
                db.executemany(
                    "INSERT INTO latest VALUES (?, ?, ?, ?, ?) ON CONFLICT (sensor) DO UPDATE SET "
                    "ts = excluded.ts, value = excluded.value, quality = excluded.quality, "
                    "state = excluded.state WHERE excluded.ts >= latest.ts", list(newest.values()))
                db.execute("COMMIT")
            except sqlite3.Error as err:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise StoreUnavailable(f"embedded store write: {err}") from err

    def _select(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connection().execute(sql, args).fetchall()
            except sqlite3.Error as err:
                raise StoreUnavailable(f"embedded store query: {err}") from err


def minute_of(ts: float) -> int:
    """The minute m with m * 60 <= ts < (m + 1) * 60, exact even where ts / 60 rounds across a minute."""
    m = math.floor(ts / 60)
    return m - (m * 60 > ts) + (ts >= m * 60 + 60)


def _reading(row: tuple[Any, ...]) -> Reading:
    sensor, ts, value, quality, state = row
    return Reading(str(sensor), float(ts), float(value),
                   quality_of(quality), None if state is None else str(state))
