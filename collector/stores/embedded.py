"""The embedded series store: SQLite in the state directory, for a site without an InfluxDB server.

A reading's sensor key (`<estate>/<sensor>`, `pumpwatch.portfolio`) is stored as two columns, estate
and sensor, so two estates with the same sensor ids keep apart. Points are keyed by (estate, sensor,
ts), so writing a reading twice keeps one point; a `latest` table
keeps the newest point of each sensor so the live board never scans history, and a `minutes` table
keeps sum, min, max and count per sensor and minute, recomputed from the points of every minute a
write touches, so history at steps of whole minutes reads one row per minute instead of every point.

A file from before estates (no estate column) is taken over when opened: its points become the
deployment's only estate's (with several estates they keep an empty estate, and are not shown).
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collector.stores.lineprotocol import quality_of
from pumpwatch.catalog import SensorCatalog
from pumpwatch.errors import StoreUnavailable
from pumpwatch.portfolio import sensor_key, split_key
from pumpwatch.readings import Reading
from pumpwatch.series import HistoryPoint

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    estate TEXT NOT NULL, sensor TEXT NOT NULL, ts REAL NOT NULL, value REAL NOT NULL,
    quality INTEGER NOT NULL, state TEXT, PRIMARY KEY (estate, sensor, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (
    estate TEXT NOT NULL, sensor TEXT NOT NULL, ts REAL NOT NULL, value REAL NOT NULL,
    quality INTEGER NOT NULL, state TEXT, PRIMARY KEY (estate, sensor)) WITHOUT ROWID;
"""
# Minute m holds the points with m * 60 <= ts < (m + 1) * 60.
_MINUTES = """
CREATE TABLE minutes (
    estate TEXT NOT NULL, sensor TEXT NOT NULL, minute INTEGER NOT NULL, total REAL NOT NULL,
    low REAL NOT NULL, high REAL NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (estate, sensor, minute)) WITHOUT ROWID;
INSERT INTO minutes SELECT estate, sensor, m - (m * 60 > ts) + (ts >= m * 60 + 60) AS minute, sum(value),
    min(value), max(value), count(*)
    FROM (SELECT estate, sensor, ts, value, CAST(ts / 60 AS INTEGER) AS m FROM points)
    GROUP BY estate, sensor, minute;
"""
# A file from before estates: its tables renamed aside, copied into the new ones with an estate.
_OLD_TABLES = ("points", "latest", "minutes")
_ADOPT = {
    "points": "INSERT INTO points SELECT ?, sensor, ts, value, quality, state FROM points_before_estates",
    "latest": "INSERT INTO latest SELECT ?, sensor, ts, value, quality, state FROM latest_before_estates",
}
_REMINUTE = ("INSERT OR REPLACE INTO minutes SELECT estate, sensor, ?, sum(value), min(value), max(value), "
             "count(*) FROM points WHERE estate = ? AND sensor = ? AND ts >= ? AND ts < ? "
             "GROUP BY estate, sensor")
_HISTORY_POINTS = ("SELECT CAST(ts / ? AS INTEGER) AS bucket, avg(value), min(value), max(value), count(*) "
                   "FROM points WHERE estate = ? AND sensor = ? AND ts >= ? AND ts < ? GROUP BY bucket "
                   "ORDER BY bucket")
# Whole minutes from `minutes`, the partial minutes at either end from `points`.
_HISTORY_MINUTES = (
    "SELECT bucket, sum(total) / sum(n), min(low), max(high), sum(n) FROM ("
    "SELECT minute / ? AS bucket, total, low, high, n FROM minutes WHERE estate = ? AND sensor = ? "
    "AND minute >= ? AND minute < ? UNION ALL "
    "SELECT CAST(ts / ? AS INTEGER), value, value, value, 1 FROM points WHERE estate = ? AND sensor = ? "
    "AND ts >= ? AND ts < ? UNION ALL "
    "SELECT CAST(ts / ? AS INTEGER), value, value, value, 1 FROM points WHERE estate = ? AND sensor = ? "
    "AND ts >= ? AND ts < ?) GROUP BY bucket ORDER BY bucket")


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
        """The newest reading of each sensor key."""
        rows = await asyncio.to_thread(
            self._select, "SELECT estate, sensor, ts, value, quality, state FROM latest", ())
        wanted = set(sensors) if sensors is not None else None
        found: dict[str, Reading] = {}
        for estate, sensor, ts, value, quality, state in rows:
            key = _key(str(estate), str(sensor))
            if wanted is None or key in wanted:
                found[key] = _reading((key, ts, value, quality, state))
        return found

    async def history(self, sensor: str, start: float, end: float, step: float) -> list[HistoryPoint]:
        """Mean, min, max and count per `step` seconds, buckets aligned to the epoch like InfluxDB's.

        `sensor` is a sensor key: the points of that estate's sensor.
        """
        if step <= 0 or end <= start:
            return []
        estate, sensor = split_key(sensor)
        first = minute_of(start)
        first += first * 60 < start
        last = minute_of(end)  # the whole minutes inside [start, end) are first .. last - 1
        args: tuple[object, ...]
        if step % 60 == 0 and start >= 0 and first < last:
            sql, args = _HISTORY_MINUTES, (int(step // 60), estate, sensor, first, last, step, estate, sensor,
                                           start, first * 60, step, estate, sensor, last * 60, end)
        else:
            sql, args = _HISTORY_POINTS, (step, estate, sensor, start, end)
        rows = await asyncio.to_thread(self._select, sql, args)
        return [HistoryPoint(int(bucket) * step, float(mean), float(low), float(high), int(n))
                for bucket, mean, low, high, n in rows]

    async def count(self, sensor: str | None = None) -> int:
        """Points stored, of one sensor key or all."""
        if sensor is None:
            rows = await asyncio.to_thread(self._select, "SELECT count(*) FROM points", ())
        else:
            rows = await asyncio.to_thread(self._select, "SELECT count(*) FROM points WHERE estate = ? AND "
                                           "sensor = ?", split_key(sensor))
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
                before = _before_estates(db)
                if before:
                    for table in before:
                        db.execute(f"ALTER TABLE {table} RENAME TO {table}_before_estates")
                db.executescript(_SCHEMA)
                if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'minutes'").fetchone():
                    db.executescript(f"BEGIN; {_MINUTES} COMMIT;")  # a new file, or one from before the table
                if before:
                    self._adopt(db, before)
            except (OSError, sqlite3.Error) as err:
                raise StoreUnavailable(f"embedded store {self.path}: {err}") from err
            self._db = db

    def _adopt(self, db: sqlite3.Connection, before: list[str]) -> None:
        """Copy a file's points from before estates into the new tables, as the only estate's."""
        portfolio = self.catalog.portfolio if self.catalog is not None else None
        estate = portfolio.only if portfolio is not None else None
        db.execute("BEGIN")
        for table in before:
            if table in _ADOPT:
                db.execute(_ADOPT[table], (estate or "",))
            db.execute(f"DROP TABLE {table}_before_estates")
        db.execute("DELETE FROM minutes")
        db.execute(_MINUTES.split(";", 1)[1].strip().rstrip(";"))  # the minutes, made again from the points
        db.execute("COMMIT")
        if estate is None:
            log.warning("embedded store %s: its points from before estates keep no estate (the deployment "
                        "has several); they are not shown", self.path)
        else:
            log.info("embedded store %s: points from before estates are estate %s's", self.path, estate)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable(f"embedded store {self.path} is not open")
        return self._db

    def _write(self, readings: list[Reading]) -> None:
        places: dict[str, tuple[str, str]] = {}  # sensor key -> (estate, sensor), split once per batch
        rows = []
        for r in readings:
            place = places.get(r.sensor)
            if place is None:
                place = places[r.sensor] = split_key(r.sensor)
            rows.append((place[0], place[1], r.ts, r.value, int(r.quality), r.state))
        minutes = {(row[0], row[1], minute_of(row[2])) for row in rows}
        newest: dict[tuple[str, str], tuple[str, str, float, float, int, str | None]] = {}
        for row in rows:
            known = newest.get((row[0], row[1]))
            if known is None or row[2] >= known[2]:
                newest[(row[0], row[1])] = row
        with self._lock:
            db = self._connection()
            try:
                db.execute("BEGIN")
                db.executemany("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?)", rows)
                db.executemany(_REMINUTE, [(m, estate, sensor, m * 60, m * 60 + 60)
                                           for estate, sensor, m in minutes])
                db.executemany(
                    "INSERT INTO latest VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (estate, sensor) DO UPDATE SET "
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


def _key(estate: str, sensor: str) -> str:
    """A stored point's key: `<estate>/<sensor>`, or the bare sensor of a point without an estate."""
    return sensor_key(estate, sensor) if estate else sensor


def _before_estates(db: sqlite3.Connection) -> list[str]:
    """The tables of a file written before estates (no estate column), to be renamed and taken over."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(points)")}
    if not columns or "estate" in columns:
        return []
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return [table for table in _OLD_TABLES if db.execute(query, (table,)).fetchone()]


def _reading(row: tuple[Any, ...]) -> Reading:
    sensor, ts, value, quality, state = row
    return Reading(str(sensor), float(ts), float(value),
                   quality_of(quality), None if state is None else str(state))
