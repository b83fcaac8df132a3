"""GET /api/overview on both databases: estates most urgent first with their colours and rooms, the region
and group filters, the caller's scope, and the short cache that serves every screen."""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.context import ApiContext
from api.latest_cache import LatestCache
from api.routes.overview import OverviewCache
from collector.stores.embedded import EmbeddedStore
from maintenance.alarms import AlarmService
from maintenance.auth import AuthService
from maintenance.overview import OverviewFigures
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.portfolio import Portfolio
from pumpwatch.readings import Reading
from pumpwatch.site import Severity, Site, Text
from pumpwatch.sitefile import load_site
from tests.support.state import PASSWORD, People, clock_time

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
# estate -> (region, group)
ESTATES = {"quiet": ("north", "team-1"), "overdue": ("north", "team-2"), "offline": ("south", "team-1"),
           "major": ("south", "team-2"), "critical": ("east", "team-1")}


def estate_copy(site: Site, estate: str, region: str | None = None, group: str | None = None) -> Site:
    """The example site as another estate (its own id, name, region and group)."""
    name = Text(zh=f"小区 {estate}", en=f"Estate {estate}")
    info = site.site.model_copy(update={"id": estate, "name": name, "region": region, "group": group})
    return site.model_copy(update={"site": info})


@dataclass
class Centre:
    client: httpx.AsyncClient
    ctx: ApiContext
    auth: AuthService
    clock: FakeClock
    latest: LatestCache
    app_state: Any

    def as_(self, username: str) -> dict[str, str]:
        user = self.auth.get_by_username(username)
        assert user is not None
        return {"Authorization": f"Bearer {self.auth.issue_token(user).token}"}

    def readings(self, *, silent: AbstractSet[tuple[str, str]] = frozenset()) -> None:
        """A fresh reading of every sensor but those of the (estate, Modbus device) pairs in `silent`."""
        quiet = {f"{estate}/{p.sensor}" for estate, device in silent
                 for d in self.ctx.portfolio.estate(estate).modbus if d.id == device for p in d.points}
        now = self.clock.now()
        self.latest.update([Reading(i.key, now, 1.0) for i in self.ctx.catalog if i.key not in quiet])


def raise_alarm(alarms: AlarmService, clock: FakeClock, estate: str, asset: str, alarm_type: str,
                severity: Severity, room: str) -> None:
    alarms.apply(AlarmEvent(AlarmAction.RAISED, AlarmKey(asset, alarm_type, estate), severity, clock.now(),
                            room, Text(zh="告警", en="alarm")))


@pytest.fixture
async def centre(tmp_path: Path, clock: FakeClock, auth: AuthService, tasks: TaskService,
                 alarms: AlarmService, people: People) -> AsyncIterator[Centre]:
    site = load_site(EXAMPLE)
    portfolio = Portfolio.of(*(estate_copy(site, e, *place) for e, place in ESTATES.items()))
    catalog = SensorCatalog(portfolio)
    store = EmbeddedStore(tmp_path / "series.db", catalog)
    await store.start()
    latest = LatestCache(store)
    ctx = ApiContext(site=portfolio.first, catalog=catalog, store=store, readings=LiveBus(),
                     alarm_events=LiveBus(), auth=auth, tasks=tasks, alarms=alarms, clock=clock,
                     attachments_dir=tmp_path / "files", latest=latest)
    app = create_app(ctx)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield Centre(client, ctx, auth, clock, latest, app.state)
    await store.close()


async def seed(centre: Centre, tasks: TaskService, alarms: AlarmService, people: People) -> None:
    """One estate of each kind: quiet (a minor alarm only), overdue, offline, major, critical."""
    clock = centre.clock
    tasks.create_task(people.operator, Text(zh="漏水", en="leak"), room="dom", estate="overdue",
                      due_at=clock_time(clock) + timedelta(minutes=1))
    await clock.advance(120)
    raise_alarm(alarms, clock, "quiet", "dom-p1", "current_high", Severity.MINOR, "dom")
    raise_alarm(alarms, clock, "major", "dom-p1", "dry_run", Severity.MAJOR, "dom")
    raise_alarm(alarms, clock, "critical", "fire-p1", "failed_start", Severity.CRITICAL, "fire")
    raise_alarm(alarms, clock, "critical", "dom-p2", "dry_run", Severity.MAJOR, "dom")
    centre.readings(silent={("offline", "plc-fire")})


async def test_estates_come_most_urgent_first_with_their_colour_number_and_rooms(
        centre: Centre, tasks: TaskService, alarms: AlarmService, people: People) -> None:
    centre.app_state.overview = OverviewCache(OverviewFigures(tasks.sessions), max_age=0, max_stale=0)
    await seed(centre, tasks, alarms, people)
    resp = await centre.client.get("/api/overview", headers=centre.as_(people.operator.username))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    rows = {e["id"]: e for e in body["data"]}
    assert [e["id"] for e in body["data"]] == ["critical", "major", "offline", "overdue", "quiet"]
    assert [e["colour"] for e in body["data"]] == ["red", "amber", "amber", "amber", "green"]
    assert body["totals"] == {"red": 1, "amber": 3, "green": 1}
    assert rows["critical"]["counts"] == {"critical": 1, "major": 1, "minor": 0, "offline": 0, "overdue": 0}
    assert rows["critical"]["attention"] == 2
    assert rows["quiet"]["counts"]["minor"] == 1
    assert rows["quiet"]["attention"] == 0
    assert rows["overdue"]["counts"]["overdue"] == 1
    assert rows["offline"]["counts"]["offline"] == 1
    # Drilling down: each room has the same counts, and the estate's are their sum.
    critical_rooms = {r["id"]: r for r in rows["critical"]["rooms"]}
    assert critical_rooms["fire"]["colour"] == "red"
    assert critical_rooms["dom"]["colour"] == "amber"
    assert critical_rooms["dom"]["counts"]["major"] == 1
    offline_rooms = {r["id"]: r["counts"]["offline"] for r in rows["offline"]["rooms"]}
    assert offline_rooms == {"dom": 0, "fire": 1}
    assert rows["offline"]["region"] == "south"
    assert rows["offline"]["name"] == {"zh": "小区 offline", "en": "Estate offline"}


async def test_a_cleared_alarm_and_a_reading_back_turn_an_estate_green(
        centre: Centre, tasks: TaskService, alarms: AlarmService, people: People) -> None:
    centre.app_state.overview = OverviewCache(OverviewFigures(tasks.sessions), max_age=0, max_stale=0)
    await seed(centre, tasks, alarms, people)
    alarms.apply(AlarmEvent(AlarmAction.CLEARED, AlarmKey("dom-p1", "dry_run", "major"), Severity.MAJOR,
                            centre.clock.now(), "dom", Text(zh="告警", en="alarm")))
    centre.readings()
    body = (await centre.client.get("/api/overview", headers=centre.as_(people.operator.username))).json()
    colours = {e["id"]: e["colour"] for e in body["data"]}
    assert colours["major"] == "green"
    assert colours["offline"] == "green"
    # Everything goes quiet for longer than three expected periods: every device is offline.
    await centre.clock.advance(31)
    body = (await centre.client.get("/api/overview", headers=centre.as_(people.operator.username))).json()
    assert {e["id"]: e["counts"]["offline"] for e in body["data"]}["quiet"] == 11  # 2 PLCs, 9 wireless


async def test_region_and_group_filter_the_estates(centre: Centre, tasks: TaskService, alarms: AlarmService,
                                                    people: People) -> None:
    await seed(centre, tasks, alarms, people)
    me = centre.as_(people.director.username)
    south = (await centre.client.get("/api/overview?region=south", headers=me)).json()
    assert [e["id"] for e in south["data"]] == ["major", "offline"]
    assert south["regions"] == ["east", "north", "south"]
    assert south["groups"] == ["team-1", "team-2"]
    team = (await centre.client.get("/api/overview?group=team-1", headers=me)).json()
    assert [e["id"] for e in team["data"]] == ["critical", "offline", "quiet"]
    both = (await centre.client.get("/api/overview?region=north&group=team-2", headers=me)).json()
    assert [e["id"] for e in both["data"]] == ["overdue"]
    assert (await centre.client.get("/api/overview?region=west", headers=me)).json()["count"] == 0
    bad = await centre.client.get("/api/overview?region=" + "x" * 65, headers=me)
    assert bad.status_code == 422


async def test_a_person_sees_only_the_estates_of_their_scope(centre: Centre, tasks: TaskService,
                                                            alarms: AlarmService, people: People) -> None:
    await seed(centre, tasks, alarms, people)
    centre.auth.create_user("sup-south", PASSWORD, roles=["supervisor"], estates=["offline", "major"])
    body = (await centre.client.get("/api/overview", headers=centre.as_("sup-south"))).json()
    assert [e["id"] for e in body["data"]] == ["major", "offline"]
    assert body["regions"] == ["south"]
    assert body["totals"] == {"red": 0, "amber": 2, "green": 0}
    assert (await centre.client.get("/api/overview")).status_code == 401


async def test_one_computation_serves_every_screen_and_nobody_waits_for_the_next(
        centre: Centre, tasks: TaskService, alarms: AlarmService, people: People) -> None:
    await seed(centre, tasks, alarms, people)
    me = centre.as_(people.operator.username)
    first = (await centre.client.get("/api/overview", headers=me)).json()
    raise_alarm(alarms, centre.clock, "quiet", "fire-p1", "failed_start", Severity.CRITICAL, "fire")
    again = (await centre.client.get("/api/overview", headers=me)).json()
    assert again == first  # within the cache's two seconds
    await centre.clock.advance(2)
    centre.readings()
    cache = centre.app_state.overview
    stale = (await centre.client.get("/api/overview", headers=me)).json()
    assert stale == first  # answered at once with the last one; the next is computed meanwhile
    await cache.refreshed()
    later = (await centre.client.get("/api/overview", headers=me)).json()
    # Two estates with a critical alarm now: the one with a major alarm too comes first.
    assert [(e["id"], e["colour"]) for e in later["data"][:2]] == [("critical", "red"), ("quiet", "red")]
    assert later["at"] == first["at"] + 2
    # After a quiet spell longer than ten seconds the last one is too old to show: the caller waits.
    await centre.clock.advance(11)
    centre.readings()
    alarms.apply(AlarmEvent(AlarmAction.CLEARED, AlarmKey("fire-p1", "failed_start", "quiet"),
                            Severity.CRITICAL, centre.clock.now(), "fire", Text(zh="告警", en="alarm")))
    fresh = (await centre.client.get("/api/overview", headers=me)).json()
    assert fresh["at"] == first["at"] + 13
    assert {e["id"]: e["colour"] for e in fresh["data"]}["quiet"] == "green"
