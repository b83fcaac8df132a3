"""The routes of a deployment of two estates with the same room and sensor ids, on both databases.

A route that takes a room or sensor id resolves it within the estate named by `estate`; without it, the
only estate of a single-estate deployment, else 422 (the paths move under the estate later).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.context import ApiContext
from collector.stores.embedded import EmbeddedStore
from maintenance.alarms import AlarmService
from maintenance.auth import AuthService
from maintenance.handover import HandoverService
from maintenance.reports import MonthlyReport
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.portfolio import Portfolio
from pumpwatch.readings import Reading
from pumpwatch.site import Severity, Site, Text
from pumpwatch.sitefile import load_site
from tests.support.state import People

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
A, B = "harbour-view", "twin-towers"


def _twin(site: Site, estate: str) -> Site:
    return site.model_copy(update={"site": site.site.model_copy(update={"id": estate})})


@dataclass
class Api:
    client: httpx.AsyncClient
    headers: dict[str, str]
    store: EmbeddedStore


@pytest.fixture
async def api(tmp_path: Path, sessions: sessionmaker[Session], clock: FakeClock, auth: AuthService,
              tasks: TaskService, alarms: AlarmService, people: People) -> AsyncIterator[Api]:
    site = load_site(EXAMPLE)
    portfolio = Portfolio.of(site, _twin(site, B))
    catalog = SensorCatalog(portfolio)
    store = EmbeddedStore(tmp_path / "series.db", catalog)
    await store.start()
    ctx = ApiContext(site=site, catalog=catalog, store=store, readings=LiveBus(), alarm_events=LiveBus(),
                     auth=auth, tasks=tasks, alarms=alarms, clock=clock, attachments_dir=tmp_path / "files",
                     reports=MonthlyReport(sessions, site=portfolio, clock=clock),
                     handovers=HandoverService(sessions, clock, portfolio))
    for estate, value in ((A, 0.31), (B, 0.52)):
        await store.write([Reading(f"{estate}/dom-header-pressure", clock.now(), value)])
        alarms.apply(AlarmEvent(AlarmAction.RAISED, AlarmKey("dom-p1", "dry_run", estate), Severity.MAJOR,
                                clock.now(), "dom", Text(zh="干转", en="dry run")))
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        token = auth.issue_token(people.supervisor).token
        yield Api(client, {"Authorization": f"Bearer {token}"}, store)
    await store.close()


@pytest.mark.parametrize("path", ["/api/rooms/dom/latest", "/api/rooms/dom", "/api/site",
                                  "/api/sensors/dom-header-pressure/history?start=1767000000&end=1768000000&step=3600",
                                  "/api/calendar?room=dom", "/api/handovers/draft?room=dom",
                                  "/api/alarms?room=dom", "/api/reports/monthly/2026-01"])
async def test_a_room_or_sensor_without_its_estate_is_a_422_when_there_are_several(api: Api,
                                                                                  path: str) -> None:
    resp = await api.client.get(path, headers=api.headers)
    assert resp.status_code == 422, (path, resp.text)
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "2 estates" in resp.json()["detail"]
    joined = "&" if "?" in path else "?"
    assert (await api.client.get(f"{path}{joined}estate={B}", headers=api.headers)).status_code == 200, path
    # An estate the deployment does not have is a 404, as a record that does not exist.
    assert (await api.client.get(f"{path}{joined}estate=nowhere", headers=api.headers)).status_code == 404


async def test_the_same_ids_in_two_estates_are_read_apart(api: Api) -> None:
    for estate, value in ((A, 0.31), (B, 0.52)):
        resp = await api.client.get(f"/api/rooms/dom/latest?estate={estate}", headers=api.headers)
        pressure = [r for r in resp.json()["data"] if r["sensor"] == "dom-header-pressure"]
        assert [r["value"] for r in pressure] == [value]  # the sensor's own id, this estate's value
        alarms = (await api.client.get(f"/api/alarms?room=dom&estate={estate}", headers=api.headers)).json()
        assert [a["asset"] for a in alarms["data"]] == ["dom-p1"]
    every = (await api.client.get("/api/alarms", headers=api.headers)).json()
    assert every["count"] == 2  # no room named: every estate's alarms
    sensors = (await api.client.get("/api/sensors", headers=api.headers)).json()["data"]
    assert {s["estate"] for s in sensors if s["id"] == "dom-header-pressure"} == {A, B}
    tasks = (await api.client.get(f"/api/tasks?estate={B}", headers=api.headers)).json()
    assert tasks["count"] == 1
    site = (await api.client.get(f"/api/site?estate={B}", headers=api.headers)).json()
    assert site["id"] == B
    history = (await api.client.get("/api/sensors/dom-header-pressure/history?start=1767000000"
                                    f"&end=1768000000&step=3600&estate={A}", headers=api.headers)).json()
    assert [p["mean"] for p in history["data"]] == [0.31]
