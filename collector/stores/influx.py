"""InfluxDB through its v1 HTTP API (InfluxDB 1.x, and 2.x/3.x through their v1 compatibility API).

Schema: measurement `reading`; tags estate, site (the same id), room, equipment, sensor, kind; fields
value (float), quality (integer, see `Quality`) and state (string, for state sensors). Timestamps in
nanoseconds, so writing the same reading twice keeps one point. Queries pass user-supplied names as
bound parameters, never spliced into InfluxQL.

A reading's sensor key (`<estate>/<sensor>`) is split into the estate and sensor tags; queries ask for
both, so two estates with the same sensor ids keep apart. Points written before estates have no estate
tag, only `site` (the estate's id): a query of an estate's sensor takes those too.
"""

from __future__ import annotations

import gzip
import json
import logging
import ssl
from collections.abc import Sequence
from typing import Any

import httpx

from collector.stores.lineprotocol import MEASUREMENT, lines, quality_of, quote_identifier, series_key
from pumpwatch.catalog import SensorCatalog
from pumpwatch.errors import StoreRejected, StoreUnavailable
from pumpwatch.portfolio import sensor_key, split_key
from pumpwatch.readings import Reading
from pumpwatch.series import HistoryPoint

log = logging.getLogger(__name__)


LATEST_PART = 500  # sensor keys per `latest` query: the centre's first overview asks for every sensor


class InfluxStore:
    """A `SeriesStore` on an InfluxDB server."""

    def __init__(self, url: str, database: str, catalog: SensorCatalog | None = None, *,
                 retention_policy: str | None = None, username: str | None = None,
                 password: str | None = None, token: str | None = None,
                 create_database: bool = True, timeout: float = 10.0, gzip_level: int = 1,
                 ca_file: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.catalog = catalog
        self.retention_policy = retention_policy
        self.create_database = create_database
        self.gzip_level = gzip_level
        headers = {"Authorization": f"Token {token}"} if token else {}
        auth = httpx.BasicAuth(username, password or "") if username else None
        # https:// to a server whose certificate the site's own CA signed (default: the system's CAs)
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout, headers=headers, auth=auth,
                                         verify=verify)
        self._keys: dict[str, str] = {}
        self._gone: dict[str, str] = {}  # series keys of sensors an estate's reload dropped
        if catalog is not None:
            catalog.listeners.append(self.forget_estate)
        self._database_ready = False
        target = quote_identifier(database)
        if retention_policy:
            target += "." + quote_identifier(retention_policy)
        self._from = f"{target}.{MEASUREMENT}" if retention_policy else MEASUREMENT

    async def start(self) -> None:
        """Create the database when allowed; an unreachable server is retried by the first write."""
        try:
            await self._ensure_database()
        except StoreUnavailable as err:
            log.warning("InfluxDB at %s not ready yet (%s); readings wait in the buffer", self.url, err)

    async def reachable(self) -> bool:
        """Whether the server answers its /ping (the writer asks while it waits to retry a write)."""
        try:
            resp = await self._client.get("/ping", timeout=min(2.0, self._client.timeout.connect or 2.0))
        except httpx.HTTPError:
            return False
        return resp.status_code == 204

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    async def write(self, readings: Sequence[Reading]) -> None:
        """Write a batch as gzip-compressed line protocol."""
        if not readings:
            return
        await self._ensure_database()
        body = lines(readings, self._key).encode()
        params = {"db": self.database, "precision": "n"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip_level:
            body = gzip.compress(body, self.gzip_level)
            headers["Content-Encoding"] = "gzip"
        try:
            resp = await self._client.post("/write", params=params, content=body, headers=headers)
        except httpx.HTTPError as err:
            raise StoreUnavailable(f"InfluxDB write: {type(err).__name__}: {err}") from err
        if resp.status_code == 204:
            return
        message = _error_text(resp)
        if resp.status_code == 404 and "database not found" in message:
            self._database_ready = False
            raise StoreUnavailable(f"InfluxDB: {message}")
        if resp.status_code in (400, 413):
            raise StoreRejected(f"InfluxDB refused the batch ({resp.status_code}): {message}")
        raise StoreUnavailable(f"InfluxDB write failed ({resp.status_code}): {message}")

    async def latest(self, sensors: Sequence[str] | None = None) -> dict[str, Reading]:
        """The newest point of each sensor key.

        Many keys (more than `LATEST_PART`, a monitoring centre's whole portfolio) are asked for by their
        estates, whole estates of up to `LATEST_PART` keys a query, the unwanted sensors dropped here: the
        newest of 16,000 keys of 200 estates took InfluxDB 25.9 s asked sensor by sensor in parts of 500,
        1.1 s asked estate by estate.
        """
        if sensors is not None and not sensors:
            return {}
        if sensors is None or len(sensors) <= LATEST_PART:
            return await self._latest(*_sensor_filter(sensors), sensors)
        found: dict[str, Reading] = {}
        for estates, keys in _estate_parts(sensors, LATEST_PART):
            found |= await self._latest(*_estate_filter(estates), keys)
        return found

    async def _latest(self, where: str, params: dict[str, str],
                      sensors: Sequence[str] | None) -> dict[str, Reading]:
        series = await self._query(
            f"SELECT last(value) AS value, quality, state FROM {self._from}{where} "
            "GROUP BY estate, site, sensor", params)
        wanted = None if sensors is None else {split_key(key): key for key in sensors}
        latest: dict[str, Reading] = {}
        for tags, rows in series:
            sensor, estate = tags["sensor"], tags.get("estate") or ""
            place = (estate or tags.get("site") or "", sensor)  # a point from before estates: its site's
            if wanted is None:
                key = sensor_key(place[0], sensor) if place[0] else sensor
            elif place in wanted:
                key = wanted[place]
            elif not estate and ("", sensor) in wanted:
                key = wanted[("", sensor)]  # asked for without an estate: points that have none
            else:
                continue
            for row in rows:
                known = latest.get(key)
                if row.get("value") is not None and (known is None or row["time"] / 1e9 >= known.ts):
                    latest[key] = Reading(key, row["time"] / 1e9, float(row["value"]),
                                          quality_of(row.get("quality")), row.get("state"))
        return latest

    async def history(self, sensor: str, start: float, end: float, step: float) -> list[HistoryPoint]:
        """Mean, min, max and count per `step` seconds (buckets aligned to the epoch, empty ones left out).

        `sensor` is a sensor key: the points of that estate's sensor.
        """
        if step <= 0 or end <= start:
            return []
        step_us = max(1, round(step * 1e6))
        where, params = _sensor_filter([sensor])
        series = await self._query(
            f"SELECT mean(value), min(value), max(value), count(value) FROM {self._from}{where} "
            f"AND time >= {round(start * 1e9)} AND time < {round(end * 1e9)} "
            f"GROUP BY time({step_us}u) fill(none)", params)
        return [HistoryPoint(row["time"] / 1e9, float(row["mean"]), float(row["min"]), float(row["max"]),
                             int(row["count"]))
                for _tags, rows in series for row in rows]

    async def count(self, sensor: str | None = None) -> int:
        """Points stored, of one sensor key or all."""
        where, params = _sensor_filter([sensor] if sensor is not None else None)
        series = await self._query(f"SELECT count(value) AS n FROM {self._from}{where}", params)
        return sum(int(row["n"]) for _tags, rows in series for row in rows)

    # --- internals -----------------------------------------------------------------------------

    def _key(self, sensor: str) -> str:
        key = self._keys.get(sensor)
        if key is None:
            info = self.catalog.get(sensor) if self.catalog is not None else None
            # A sensor its estate's new file dropped keeps the tags it had (readings still buffered).
            gone = self._gone.get(sensor)
            key = self._keys[sensor] = gone if info is None and gone is not None else series_key(sensor, info)
        return key

    def forget_estate(self, estate: str) -> None:
        """Drop the cached series keys of an estate whose site changed (its rooms and kinds may have)."""
        prefix = sensor_key(estate, "")
        for key in [k for k in self._keys if k.startswith(prefix)]:
            self._gone[key] = self._keys.pop(key)

    async def _ensure_database(self) -> None:
        if self._database_ready or not self.create_database:
            return
        await self._post_query(f"CREATE DATABASE {quote_identifier(self.database)}")
        self._database_ready = True

    async def _post_query(self, statement: str) -> None:
        try:
            resp = await self._client.post("/query", params={"q": statement})
        except httpx.HTTPError as err:
            raise StoreUnavailable(f"InfluxDB: {type(err).__name__}: {err}") from err
        if resp.status_code != 200:
            raise StoreUnavailable(f"InfluxDB {statement!r} failed ({resp.status_code}): {_error_text(resp)}")

    async def _query(self, statement: str,
                     params: dict[str, str]) -> list[tuple[dict[str, str], list[dict[str, Any]]]]:
        """Run one SELECT; returns (tags, rows by column) per series, `time` in epoch nanoseconds."""
        query = {"db": self.database, "q": statement, "epoch": "ns"}
        if params:
            query["params"] = json.dumps(params)
        try:  # POST: a statement naming many sensors does not fit in a URL
            resp = await self._client.post("/query", data=query)
        except httpx.HTTPError as err:
            raise StoreUnavailable(f"InfluxDB query: {type(err).__name__}: {err}") from err
        if resp.status_code != 200:
            raise StoreUnavailable(f"InfluxDB query failed ({resp.status_code}): {_error_text(resp)}")
        result = resp.json()["results"][0]
        if "error" in result:
            if "database not found" in result["error"]:
                return []
            raise StoreUnavailable(f"InfluxDB query: {result['error']}")
        return [(series.get("tags", {}), [dict(zip(series["columns"], values, strict=True))
                                          for values in series["values"]])
                for series in result.get("series", [])]


def _estate_parts(sensors: Sequence[str], size: int) -> list[tuple[list[str], list[str]]]:
    """(estates, their keys) per part: whole estates together, up to `size` keys a part.

    An estate with more keys than `size` is a part of its own.
    """
    by_estate: dict[str, list[str]] = {}
    for key in sensors:
        by_estate.setdefault(split_key(key)[0], []).append(key)
    parts: list[tuple[list[str], list[str]]] = []
    for estate, keys in by_estate.items():
        if not parts or len(parts[-1][1]) + len(keys) > size:
            parts.append(([], []))
        parts[-1][0].append(estate)
        parts[-1][1].extend(keys)
    return parts


def _estate_filter(estates: Sequence[str]) -> tuple[str, dict[str, str]]:
    """A WHERE clause with bound parameters: every point of these estates (`""`: points without one)."""
    params: dict[str, str] = {}
    terms = []
    for i, estate in enumerate(estates):
        if estate:
            params[f"e{i}"] = estate
            terms.append(f"estate = $e{i} OR (estate = '' AND site = $e{i})")
        else:
            terms.append("estate = ''")
    return " WHERE (" + " OR ".join(terms) + ")", params


def _sensor_filter(sensors: Sequence[str] | None) -> tuple[str, dict[str, str]]:
    """A WHERE clause with bound parameters: each sensor key's estate and sensor.

    A point without an estate tag counts as the estate its `site` tag names (written before estates).
    """
    if sensors is None:
        return "", {}
    params: dict[str, str] = {}
    terms = []
    for i, key in enumerate(sensors):
        estate, sensor = split_key(key)
        params[f"s{i}"] = sensor
        params[f"e{i}"] = estate
        terms.append(f"(sensor = $s{i} AND (estate = $e{i} OR (estate = '' AND site = $e{i})))" if estate
                     else f"(sensor = $s{i} AND estate = '')")
    return " WHERE (" + " OR ".join(terms) + ")", params


def _error_text(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error", resp.text))
    except ValueError:
        return resp.text.strip()[:200]
