"""The API benchmark's load generator: keep-alive GETs, refusals, and the open loop's fixed schedule."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.api_latency import ROUTES, closed_loop, open_loop
from bench.http_client import Browser, HttpError


class CountingServer:
    """Answers GET with 200 and the path as body (404 for /missing); counts connections and requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.paths: list[str] = []
        self.tokens: set[str] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                path = head.split(" ")[1]
                self.paths.append(path)
                self.tokens |= {line.split("Bearer ")[1] for line in head.split("\r\n") if "Bearer " in line}
                status = "404 Not Found" if path == "/missing" else "200 OK"
                body = path.encode()
                writer.write(f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[CountingServer, str]]:
    counting = CountingServer()
    listening = await asyncio.start_server(counting.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield counting, f"http://127.0.0.1:{port}"


async def test_a_browser_reuses_its_connection_and_refuses_anything_but_200(
        server: tuple[CountingServer, str]) -> None:
    counting, url = server
    browser = Browser(url, "secret")
    assert await browser.get("/api/a") == b"/api/a"
    assert await browser.get("/api/b?x=1") == b"/api/b?x=1"
    assert counting.connections == 1
    both = await asyncio.gather(browser.get("/one"), browser.get("/two"))  # both busy: a second connection
    assert list(both) == [b"/one", b"/two"]
    assert counting.connections == 2
    with pytest.raises(HttpError, match="404"):
        await browser.get("/missing")
    assert counting.tokens == {"secret"}
    browser.close()


async def test_closed_loop_alternates_both_routes_for_every_client(
        server: tuple[CountingServer, str]) -> None:
    counting, url = server
    out = await closed_loop([url], "t", clients=3, seconds=0.2)
    assert len(out["latest"]) == len(out["tasks"]) > 0
    assert counting.connections == 3
    assert counting.paths.count(ROUTES[0][1]) == len(out["latest"])


async def test_open_loop_sends_every_scheduled_poll_and_times_it_from_its_schedule(
        server: tuple[CountingServer, str]) -> None:
    counting, url = server
    clients, seconds, interval = 4, 0.5, 0.1
    out = await open_loop([url, url], "t", clients, seconds, interval, jitter=0.1)
    polls = len(out["latest"])
    assert polls == len(out["tasks"]) == len(out["lag"]) // 2
    # Each client's polls fall at its phase + k * interval (+- jitter) inside the window.
    assert clients * (seconds / interval - 1) <= polls <= clients * (seconds / interval + 1)
    assert sorted(set(counting.paths)) == sorted(path for _, path in ROUTES)


async def test_the_filled_history_is_the_one_the_history_route_reads(tmp_path: Path) -> None:
    """The fill writes under the sensor's key in its estate, the key the API's history route looks up."""
    from bench.api_latency import SENSOR, SITE, fill
    from collector.stores.embedded import EmbeddedStore
    from pumpwatch.catalog import SensorCatalog
    from pumpwatch.portfolio import load_portfolio, sensor_key

    portfolio = load_portfolio(SITE)
    key = sensor_key(portfolio.first.site.id, SENSOR)  # what the route makes of it (`ApiContext.sensor_key`)
    assert key in SensorCatalog(portfolio)
    store = EmbeddedStore(tmp_path / "series.db")
    await store.start()
    try:
        now = 1_800_000_000.0
        assert await fill(store, 1, now) == 86_400
        points = await store.history(key, now - 86_400, now, 3600)
        assert len(points) in (24, 25)
        assert sum(p.count for p in points) == 86_400
    finally:
        await store.close()
