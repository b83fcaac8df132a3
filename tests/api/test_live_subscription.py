"""The live stream by subscription, over a real server on both databases: one room's or one estate's
readings and alarm events only, the overview's summaries and their changes, always inside the caller's
scope (an estate or room outside it is a 404)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.context import ApiContext
from api.latest_cache import LatestCache
from collector.stores.embedded import EmbeddedStore
from maintenance.alarms import AlarmService
from maintenance.auth import AuthService
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.portfolio import Portfolio
from pumpwatch.readings import Reading
from pumpwatch.site import Severity, Site, Text
from pumpwatch.sitefile import load_site
from tests.support.state import PASSWORD, People

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
A, B = "harbour-view", "twin-towers"
WAIT = 20.0  # seconds a test waits for an event before it fails


def _twin(site: Site, estate: str) -> Site:
    return site.model_copy(update={"site": site.site.model_copy(update={"id": estate})})


@dataclass
class Server:
    url: str
    ctx: ApiContext
    auth: AuthService
    clock: FakeClock

    def as_(self, username: str) -> dict[str, str]:
        user = self.auth.get_by_username(username)
        assert user is not None
        return {"Authorization": f"Bearer {self.auth.issue_token(user).token}"}

    def event(self, estate: str, room: str, asset: str, severity: Severity = Severity.MAJOR) -> AlarmEvent:
        return AlarmEvent(AlarmAction.RAISED, AlarmKey(asset, "dry_run", estate), severity, self.clock.now(),
                          room, Text(zh="干转", en="dry run"))


@pytest.fixture
async def server(tmp_path: Path, clock: FakeClock, auth: AuthService, tasks: TaskService,
                 alarms: AlarmService, people: People) -> AsyncIterator[Server]:
    site = load_site(EXAMPLE)
    portfolio = Portfolio.of(site, _twin(site, B))
    catalog = SensorCatalog(portfolio)
    store = EmbeddedStore(tmp_path / "series.db", catalog)
    await store.start()
    ctx = ApiContext(site=site, catalog=catalog, store=store, readings=LiveBus(), alarm_events=LiveBus(),
                     auth=auth, tasks=tasks, alarms=alarms, clock=clock, attachments_dir=tmp_path / "files",
                     latest=LatestCache(store))
    auth.create_user("tech-a", PASSWORD, roles=["technician"], estates=[A])
    del people  # the whole organisation's operator signs in by name
    config = uvicorn.Config(create_app(ctx), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    http = uvicorn.Server(config)
    serving = asyncio.create_task(http.serve())
    try:
        while not http.started:
            await asyncio.sleep(0.01)
        port = http.servers[0].sockets[0].getsockname()[1]
        yield Server(f"http://127.0.0.1:{port}", ctx, auth, clock)
    finally:
        http.should_exit = True
        ctx.shutdown.set()
        await serving
        await store.close()


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, Any]]:
    """(event name, data) of a text/event-stream."""
    name = "message"
    async for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])
            name = "message"


async def _first(events: AsyncIterator[tuple[str, Any]], wanted: str) -> Any:
    async with asyncio.timeout(WAIT):
        async for name, data in events:
            if name == wanted:
                return data
    raise AssertionError(f"the stream ended before an {wanted} event")


async def test_a_room_subscriber_gets_only_that_rooms_readings_and_alarms(server: Server,
                                                                          people: People) -> None:
    now = server.clock.now()
    me = server.as_(people.operator.username)
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http, \
            http.stream("GET", f"/api/live?estate={A}&room=dom", headers=me) as stream:
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry:")
        # What the room does not want goes first on each bus: the first event that arrives tells.
        server.ctx.readings.publish([Reading(f"{A}/fire-main-pressure", now, 0.7),
                                     Reading(f"{B}/dom-header-pressure", now, 0.9)])
        server.ctx.readings.publish([Reading(f"{A}/fire-main-pressure", now, 0.6),
                                     Reading(f"{A}/dom-header-pressure", now, 0.4)])
        server.ctx.alarm_events.publish(server.event(A, "fire", "fire-p1"))
        server.ctx.alarm_events.publish(server.event(B, "dom", "dom-p1"))
        server.ctx.alarm_events.publish(server.event(A, "dom", "dom-p2"))
        events = _events(lines)
        seen: dict[str, list[Any]] = {"readings": [], "alarm": []}
        async with asyncio.timeout(WAIT):
            async for name, data in events:
                seen[name].append(data)
                if seen["readings"] and seen["alarm"]:
                    break
    assert [[(r["sensor"], r["value"]) for r in batch] for batch in seen["readings"]] == [
        [("dom-header-pressure", 0.4)]]
    assert [(a["estate"], a["room"], a["asset"]) for a in seen["alarm"]] == [(A, "dom", "dom-p2")]


async def test_an_estate_subscriber_gets_every_room_of_that_estate_only(server: Server,
                                                                        people: People) -> None:
    now, me = server.clock.now(), server.as_(people.director.username)
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http, \
            http.stream("GET", f"/api/live?estate={B}", headers=me) as stream:
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry:")
        server.ctx.readings.publish([Reading(f"{A}/dom-header-pressure", now, 0.1)])
        server.ctx.readings.publish([Reading(f"{A}/dom-header-pressure", now, 0.2),
                                     Reading(f"{B}/fire-main-pressure", now, 0.3),
                                     Reading(f"{B}/dom-header-pressure", now, 0.5)])
        batch = await _first(_events(lines), "readings")
    assert sorted((r["sensor"], r["value"]) for r in batch) == [("dom-header-pressure", 0.5),
                                                                ("fire-main-pressure", 0.3)]


@pytest.mark.parametrize("query", [f"estate={B}", f"estate={B}&room=dom", f"estate={A}&room=no-such-room",
                                   "estate=no-such-estate", f"estate={B}&view=overview"])
async def test_an_estate_or_room_outside_the_scope_is_a_404(server: Server, query: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        resp = await http.get(f"/api/live?{query}", headers=server.as_("tech-a"))
        if "view=overview" in query:  # the overview takes no estate: the scope narrows it
            assert resp.status_code == 422
            return
        assert resp.status_code == 404, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")


async def test_one_estate_in_scope_needs_no_estate_for_a_room(server: Server) -> None:
    now = server.clock.now()
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http, \
            http.stream("GET", "/api/live?room=dom", headers=server.as_("tech-a")) as stream:
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry:")
        server.ctx.readings.publish([Reading(f"{B}/dom-header-pressure", now, 0.9),
                                     Reading(f"{A}/dom-header-pressure", now, 0.4)])
        batch = await _first(_events(lines), "readings")
    assert [(r["sensor"], r["value"]) for r in batch] == [("dom-header-pressure", 0.4)]


async def test_the_overview_view_sends_every_estate_then_only_what_changed(
        server: Server, alarms: AlarmService, people: People) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http, \
            http.stream("GET", "/api/live?view=overview", headers=server.as_(people.operator.username)) \
            as stream, http.stream("GET", "/api/live?view=overview", headers=server.as_("tech-a")) as mine:
        events = _events(stream.aiter_lines())
        first = await _first(events, "overview")
        assert [e["id"] for e in first["changed"]] == [A, B]  # nothing read yet: both amber, by id
        assert {e["colour"] for e in first["changed"]} == {"amber"}
        assert server.ctx.readings.subscriber_count == 0  # the overview's screens take no readings at all
        scoped = await _first(_events(mine.aiter_lines()), "overview")
        assert [e["id"] for e in scoped["changed"]] == [A]
        alarms.apply(server.event(B, "fire", "fire-p1", Severity.CRITICAL))
        await server.clock.advance(2)  # past the overview's cache
        change = await _first(events, "overview")
    assert [(e["id"], e["colour"], e["counts"]["critical"]) for e in change["changed"]] == [(B, "red", 1)]
    assert change["removed"] == []
