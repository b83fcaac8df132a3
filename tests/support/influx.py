"""InfluxDB 1.x over its HTTP API: InfluxQL queries and what is stored for one sensor."""

from __future__ import annotations

from typing import Any

import httpx


async def influx_query(url: str, database: str, query: str) -> list[list[Any]]:
    """The rows of every series an InfluxQL query returns (times in ns)."""
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.get(f"{url}/query", params={"db": database, "q": query, "epoch": "ns"})
        resp.raise_for_status()
        result = resp.json()["results"][0]
        rows: list[list[Any]] = []
        for series in result.get("series", []):
            rows.extend(series["values"])
        return rows


async def stored_counts(url: str, database: str, sensor: str) -> tuple[int, int]:
    """(points, distinct values) stored for one sensor."""
    rows = await influx_query(url, database,
                              f"SELECT count(value), count(distinct(value)) FROM reading "
                              f"WHERE sensor = '{sensor}'")
    if not rows:
        return 0, 0
    return int(rows[0][1]), int(rows[0][2])
