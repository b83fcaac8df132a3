"""Two estates with the same sensor ids in one series store: stored apart by their estate tag, read apart.

Real InfluxDB and the embedded store; and the points written before estates, which stay readable.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from collector.stores.embedded import EmbeddedStore
from collector.stores.influx import InfluxStore
from pumpwatch.catalog import SensorCatalog
from pumpwatch.portfolio import Portfolio
from pumpwatch.readings import Quality, Reading
from pumpwatch.series import SeriesStore
from pumpwatch.site import Site
from pumpwatch.sitefile import load_site
from tests.support.services import InfluxDB

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
T0 = 1_767_225_600.0
A, B = "harbour-view", "twin-towers"


def twin(site: Site, estate: str) -> Site:
    """The same site file under another estate id (sensor ids repeat, as they do across estates)."""
    return site.model_copy(update={"site": site.site.model_copy(update={"id": estate})})


@pytest.fixture(scope="module")
def portfolio() -> Portfolio:
    site = load_site(EXAMPLE)
    return Portfolio.of(site, twin(site, B))


@pytest.fixture(params=["influxdb", "embedded"])
async def store(request: pytest.FixtureRequest, tmp_path: Path,
                portfolio: Portfolio) -> AsyncIterator[SeriesStore]:
    catalog = SensorCatalog(portfolio)
    s: SeriesStore
    if request.param == "influxdb":
        influx: InfluxDB = request.getfixturevalue("influxdb")
        s = InfluxStore(influx.url, f"estates_{uuid.uuid4().hex[:8]}", catalog, timeout=5)
    else:
        s = EmbeddedStore(tmp_path / "series.db", catalog)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


async def test_two_estates_with_the_same_sensor_ids_are_stored_apart_and_read_back_apart(
        store: SeriesStore) -> None:
    a, b = f"{A}/dom-p1-current", f"{B}/dom-p1-current"
    await store.write([Reading(a, T0 + i, 10.0 + i) for i in range(6)]
                      + [Reading(b, T0 + i, 50.0 + i) for i in range(3)]  # same sensor, same instants
                      + [Reading(f"{B}/dom-floor-leak", T0, 1.0, state="WET")])
    assert await store.count(a) == 6
    assert await store.count(b) == 3
    latest = await store.latest([a, b, f"{A}/dom-floor-leak"])
    assert latest == {a: Reading(a, T0 + 5, 15.0), b: Reading(b, T0 + 2, 52.0)}  # A's leak never read
    everything = await store.latest()
    assert everything[f"{B}/dom-floor-leak"] == Reading(f"{B}/dom-floor-leak", T0, 1.0, Quality.GOOD, "WET")
    assert f"{A}/dom-floor-leak" not in everything
    history_a = await store.history(a, T0, T0 + 6, 3)
    history_b = await store.history(b, T0, T0 + 6, 3)
    assert [(p.mean, p.count) for p in history_a] == [(11.0, 3), (14.0, 3)]
    assert [(p.mean, p.count) for p in history_b] == [(51.0, 3)]


async def test_every_influxdb_point_carries_its_estate_and_sensor_as_tags(influxdb: InfluxDB,
                                                                          portfolio: Portfolio) -> None:
    database = f"tags_{uuid.uuid4().hex[:8]}"
    store = InfluxStore(influxdb.url, database, SensorCatalog(portfolio), timeout=5)
    await store.start()
    try:
        await store.write([Reading(f"{A}/dom-p1-current", T0, 10.0),
                           Reading(f"{B}/dom-p1-current", T0, 50.0)])
    finally:
        await store.close()
    async with httpx.AsyncClient(base_url=influxdb.url) as client:
        resp = await client.get("/query", params={
            "db": database, "q": 'SELECT value, estate, site, sensor, room FROM reading ORDER BY time'})
    rows = resp.json()["results"][0]["series"][0]["values"]
    assert sorted((estate, site, sensor, room, value) for _t, value, estate, site, sensor, room in rows) == [
        (A, A, "dom-p1-current", "dom", 10.0), (B, B, "dom-p1-current", "dom", 50.0)]


async def test_influxdb_points_from_before_estates_are_read_as_their_sites_estate(
        influxdb: InfluxDB, portfolio: Portfolio) -> None:
    database = f"legacy_{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=influxdb.url) as client:
        (await client.post("/query", params={"q": f'CREATE DATABASE "{database}"'})).raise_for_status()
        old = f"reading,kind=current,room=dom,sensor=dom-p1-current,site={A} value=7.5,quality=0i"
        resp = await client.post("/write", params={"db": database, "precision": "s"},
                                 content=f"{old} {int(T0)}")
        assert resp.status_code == 204
    store = InfluxStore(influxdb.url, database, SensorCatalog(portfolio), timeout=5)
    await store.start()
    try:
        await store.write([Reading(f"{A}/dom-p1-current", T0 + 10, 8.5)])
        key = f"{A}/dom-p1-current"
        assert await store.count(key) == 2  # the old point and the new one
        assert [p.count for p in await store.history(key, T0, T0 + 20, 20)] == [2]
        assert (await store.latest([key]))[key].value == 8.5
        assert await store.count(f"{B}/dom-p1-current") == 0  # another estate's site tag never matches
    finally:
        await store.close()


async def test_an_embedded_store_from_before_estates_is_taken_over_by_its_only_estate(tmp_path: Path) -> None:
    path = tmp_path / "series.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE points (sensor TEXT NOT NULL, ts REAL NOT NULL, value REAL NOT NULL,
            quality INTEGER NOT NULL, state TEXT, PRIMARY KEY (sensor, ts)) WITHOUT ROWID;
        CREATE TABLE latest (sensor TEXT PRIMARY KEY, ts REAL NOT NULL, value REAL NOT NULL,
            quality INTEGER NOT NULL, state TEXT);
        CREATE TABLE minutes (sensor TEXT NOT NULL, minute INTEGER NOT NULL, total REAL NOT NULL,
            low REAL NOT NULL, high REAL NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (sensor, minute))
            WITHOUT ROWID;
    """)
    db.executemany("INSERT INTO points VALUES (?, ?, ?, 0, NULL)",
                   [("dom-p1-current", T0 + i, float(i)) for i in range(120)])
    db.execute("INSERT INTO latest VALUES ('dom-p1-current', ?, 119.0, 0, NULL)", (T0 + 119,))
    db.commit()
    db.close()
    store = EmbeddedStore(path, SensorCatalog(load_site(EXAMPLE)))
    await store.start()
    try:
        key = f"{A}/dom-p1-current"
        assert await store.count(key) == 120
        assert (await store.latest([key]))[key].value == 119.0
        minutes = await store.history(key, T0, T0 + 120, 60)
        assert [(p.count, p.max) for p in minutes] == [(60, 59.0), (60, 119.0)]
        assert await store.count("dom-p1-current") == 0  # nothing is left without its estate
    finally:
        await store.close()
