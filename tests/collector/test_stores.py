"""Both series stores behind one contract: real InfluxDB 1.6.7 and the embedded SQLite store."""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from collector.stores.embedded import EmbeddedStore
from collector.stores.influx import InfluxStore
from pumpwatch.catalog import SensorCatalog
from pumpwatch.errors import StoreRejected, StoreUnavailable
from pumpwatch.readings import Quality, Reading
from pumpwatch.series import SeriesStore
from pumpwatch.sitefile import load_site
from tests.support.services import InfluxDB

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z

HOSTILE = ["pump 1, north", "a=b", 'say "hi"', "泵房一号 出水压力", "back\\slash", "tab\tin", "'single'",
           "emoji 💧", "trailing space "]


@pytest.fixture(params=["influxdb", "embedded"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SeriesStore]:
    catalog = SensorCatalog(load_site(EXAMPLE))
    s: SeriesStore
    if request.param == "influxdb":
        influx: InfluxDB = request.getfixturevalue("influxdb")
        s = InfluxStore(influx.url, f"store_{uuid.uuid4().hex[:8]}", catalog, timeout=5)
    else:
        s = EmbeddedStore(tmp_path / "series.db", catalog)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


async def test_latest_returns_the_newest_point_of_each_sensor_with_quality_and_state(
        store: SeriesStore) -> None:
    await store.write([
        Reading("dom-p1-current", T0, 10.0),
        Reading("dom-p1-current", T0 + 2, 12.5, Quality.OUT_OF_RANGE),
        Reading("dom-p1-current", T0 + 1, 11.0),
        Reading("dom-floor-leak", T0 + 1, 1.0, state="WET"),
    ])
    latest = await store.latest()
    assert latest["dom-p1-current"] == Reading("dom-p1-current", T0 + 2, 12.5, Quality.OUT_OF_RANGE)
    assert latest["dom-floor-leak"] == Reading("dom-floor-leak", T0 + 1, 1.0, Quality.GOOD, "WET")
    only = await store.latest(["dom-floor-leak"])
    assert list(only) == ["dom-floor-leak"]


async def test_writing_the_same_batch_twice_keeps_one_point_per_sensor_and_instant(
        store: SeriesStore) -> None:
    batch = [Reading("dom-p1-current", T0 + i * 0.001, float(i)) for i in range(500)]
    await store.write(batch)
    await store.write(batch)  # a writer retry after a timeout whose write had landed
    assert await store.count("dom-p1-current") == 500
    assert await store.count() == 500


async def test_history_downsamples_to_mean_min_max_count_per_step_aligned_to_the_epoch(
        store: SeriesStore) -> None:
    # 1 Hz for 10 minutes, value = minute index * 10 + second within the minute / 60
    readings = [Reading("dom-header-pressure", T0 + s, (s // 60) * 10 + (s % 60) / 60) for s in range(600)]
    await store.write(readings)
    history = await store.history("dom-header-pressure", T0 + 60, T0 + 300, 60)
    assert [p.ts for p in history] == [T0 + 60 * m for m in range(1, 5)]
    for minute, point in zip(range(1, 5), history, strict=True):
        values = [(minute * 10) + s / 60 for s in range(60)]
        assert point.count == 60
        assert point.min == pytest.approx(min(values))
        assert point.max == pytest.approx(max(values))
        assert point.mean == pytest.approx(sum(values) / 60)
    assert await store.history("dom-header-pressure", T0 + 700, T0 + 800, 60) == []
    assert await store.history("no-such-sensor", T0, T0 + 600, 60) == []


def _expected_history(points: dict[float, float], start: float, end: float,
                      step: float) -> list[tuple[float, float, float, float, int]]:
    """(ts, mean, min, max, count) per step, worked out point by point."""
    buckets: dict[int, list[float]] = {}
    for ts, value in points.items():
        if start <= ts < end:
            buckets.setdefault(int(ts // step), []).append(value)
    return [(b * step, sum(v) / len(v), min(v), max(v), len(v)) for b, v in sorted(buckets.items())]


async def test_history_at_whole_minute_steps_matches_the_points_after_rewrites_and_late_points(
        store: SeriesStore) -> None:
    sensor = "dom-header-pressure"
    points = {T0 + s * 7.5: float((s * 37) % 101) for s in range(1200)}  # 2.5 h, uneven values
    await store.write([Reading(sensor, ts, v) for ts, v in points.items()])
    late = {T0 + 1800 + s * 7.5 + 3.25: -float(s) for s in range(40)}  # late points inside stored minutes
    rewritten = {ts: 500.0 + v for ts, v in list(points.items())[300:340]}  # same instants, new values
    points |= late | rewritten
    await store.write([Reading(sensor, ts, v) for ts, v in (late | rewritten).items()])
    await store.write([Reading(sensor, ts, v) for ts, v in rewritten.items()])  # a retried batch
    for start, end, step in [(T0, T0 + 9000, 3600.0), (T0 + 17.3, T0 + 8999.9, 600.0),
                             (T0 + 59.999, T0 + 3000.5, 60.0), (T0 + 1790, T0 + 1830, 60.0)]:
        history = await store.history(sensor, start, end, step)
        expected = _expected_history(points, start, end, step)
        assert [(p.ts, p.count) for p in history] == [(e[0], e[4]) for e in expected]
        for point, (_ts, mean, low, high, _n) in zip(history, expected, strict=True):
            assert (point.min, point.max) == (low, high)
            assert point.mean == pytest.approx(mean)


async def test_hostile_sensor_names_round_trip_exactly(tmp_path: Path, store: SeriesStore) -> None:
    await store.write([Reading(name, T0 + i, float(i), state=name) for i, name in enumerate(HOSTILE)])
    latest = await store.latest(HOSTILE)
    assert set(latest) == set(HOSTILE)
    for i, name in enumerate(HOSTILE):
        assert latest[name] == Reading(name, T0 + i, float(i), Quality.GOOD, name)
        assert await store.count(name) == 1
        [point] = await store.history(name, T0, T0 + 100, 100)
        assert point.mean == float(i)


async def test_influxdb_down_raises_store_unavailable_so_the_writer_retries() -> None:
    store = InfluxStore("http://127.0.0.1:9", "nowhere", timeout=1)
    await store.start()  # a server that is not there yet is not an error at start
    with pytest.raises(StoreUnavailable):
        await store.write([Reading("x", T0, 1.0)])
    await store.close()


async def test_influxdb_refusing_a_point_raises_store_rejected(influxdb: InfluxDB) -> None:
    database = f"conflict_{uuid.uuid4().hex[:8]}"
    store = InfluxStore(influxdb.url, database, timeout=5)
    await store.start()
    async with httpx.AsyncClient() as client:  # someone else wrote `value` as a string first
        resp = await client.post(f"{influxdb.url}/write", params={"db": database},
                                 content=f'reading,sensor=x value="text" {int(T0 * 1e9)}')
        assert resp.status_code == 204
    with pytest.raises(StoreRejected, match="conflict"):
        await store.write([Reading("x", T0, 1.0)])
    await store.close()


async def test_influxdb_with_a_retention_policy_writes_and_reads_through_it(influxdb: InfluxDB) -> None:
    database = f"rp_{uuid.uuid4().hex[:8]}"
    store = InfluxStore(influxdb.url, database, retention_policy="ninety_days", timeout=5)
    await store.start()
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{influxdb.url}/query", params={
            "q": f'CREATE RETENTION POLICY ninety_days ON "{database}" DURATION 90d REPLICATION 1'})
        assert resp.status_code == 200
    await store.write([Reading("x", time.time(), 4.0)])  # inside the policy's 90 days
    assert (await store.latest())["x"].value == 4.0
    async with httpx.AsyncClient() as client:  # the point went to the named policy, not the default
        resp = await client.get(f"{influxdb.url}/query", params={
            "db": database, "q": 'SELECT count(value) FROM "autogen"."reading"'})
        assert "series" not in resp.json()["results"][0]
    await store.close()


async def test_embedded_store_keeps_points_across_a_restart(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "series.db")
    await store.start()
    await store.write([Reading("x", T0, 1.0), Reading("x", T0 + 1, 2.0)])
    await store.close()
    again = EmbeddedStore(tmp_path / "series.db")
    await again.start()
    assert await again.count("x") == 2
    assert (await again.latest())["x"].value == 2.0
    await again.close()


async def test_embedded_store_file_from_before_minute_summaries_answers_history_from_its_points(
        tmp_path: Path) -> None:
    path = tmp_path / "series.db"
    with contextlib.closing(sqlite3.connect(path)) as old:  # the schema before the `minutes` table
        old.executescript("CREATE TABLE points (sensor TEXT NOT NULL, ts REAL NOT NULL, value REAL NOT NULL, "
                          "quality INTEGER NOT NULL, state TEXT, PRIMARY KEY (sensor, ts)) WITHOUT ROWID;")
        old.executemany("INSERT INTO points VALUES ('x', ?, ?, 0, NULL)",
                        [(T0 - 30 + s, float(s % 13)) for s in range(400)])
        old.commit()
    store = EmbeddedStore(path)
    await store.start()
    [first, *_rest] = await store.history("x", T0, T0 + 600, 300)
    assert (first.ts, first.count, first.min, first.max) == (T0, 300, 0.0, 12.0)
    assert first.mean == pytest.approx(sum(float((s + 30) % 13) for s in range(300)) / 300)
    await store.close()


async def test_latest_of_a_whole_portfolio_of_sensor_keys_answers_each(store: SeriesStore) -> None:
    """A monitoring centre's first overview asks for every sensor of 200 estates at once: far more keys
    than a query URL holds (InfluxDB is asked with POST, a part of the keys at a time)."""
    keys = [f"estate-{e:03d}/sensor-{s:02d}" for e in range(200) for s in range(40)]
    await store.write([Reading(key, T0 + i % 60, float(i)) for i, key in enumerate(keys) if i % 3 == 0])
    await store.write([Reading("estate-000/not-asked", T0, 1.0)])  # asked by estate: dropped, not answered
    latest = await store.latest(keys)
    assert sorted(latest) == sorted(key for i, key in enumerate(keys) if i % 3 == 0)  # the unwritten: absent
    assert latest[keys[6000]] == Reading(keys[6000], T0 + 6000 % 60, 6000.0)
