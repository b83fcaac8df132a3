"""X-Forwarded-For is believed only from configured proxies, so it cannot dodge the sign-in limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from api.service import ApiService
from collector.stores.embedded import EmbeddedStore
from maintenance.service import MaintenanceService
from pumpwatch.bus import LiveBus
from pumpwatch.clock import FakeClock
from pumpwatch.settings import ApiSettings, CollectorSettings, Settings
from pumpwatch.sitefile import load_site

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # the database plays no part here: one is enough


@asynccontextmanager
async def _serving(tmp_path: Path, engine: Engine, clock: FakeClock,
                   proxies: list[str]) -> AsyncIterator[str]:
    settings = Settings(api=ApiSettings(port=0, trusted_proxies=proxies),
                        collector=CollectorSettings(state_dir=tmp_path))
    state = MaintenanceService(load_site(EXAMPLE), settings, clock, engine)
    store = EmbeddedStore(tmp_path / "series.db")
    api = ApiService(settings, state, store, LiveBus(), LiveBus())
    task = asyncio.create_task(api.run())
    try:
        while api.server is None or not api.server.started:
            assert not task.done(), task
            await asyncio.sleep(0.02)
        yield api.url
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


async def _statuses(url: str) -> list[int]:
    async with httpx.AsyncClient(base_url=url) as http:
        return [(await http.post("/api/auth/token", data={"username": f"guess-{i}", "password": "x"},
                                 headers={"X-Forwarded-For": f"203.0.113.{i}"})).status_code
                for i in range(11)]


async def test_a_forwarded_for_header_from_an_unconfigured_peer_changes_nothing(
        tmp_path: Path, engine: Engine, clock: FakeClock) -> None:
    async with _serving(tmp_path, engine, clock, []) as url:
        statuses = await _statuses(url)
    assert statuses == [401] * 10 + [429]  # every attempt counted against 127.0.0.1


async def test_a_configured_proxy_names_the_client(tmp_path: Path, engine: Engine, clock: FakeClock) -> None:
    async with _serving(tmp_path, engine, clock, ["127.0.0.1"]) as url:
        statuses = await _statuses(url)
    assert statuses == [401] * 11  # eleven clients behind the proxy, one attempt each
