"""Both series stores behind one contract: real InfluxDB 1.6.7 and the embedded SQLite store."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from collector.embedded_store import EmbeddedStore
from collector.influx import InfluxStore
from pumpwatch.catalog import SensorCatalog
from pumpwatch.errors import StoreRejected, StoreUnavailable
from pumpwatch.readings import Quality, Reading
from pumpwatch.series import SeriesStore
from pumpwatch.sitefile import load_site
from tests.services import InfluxDB

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
