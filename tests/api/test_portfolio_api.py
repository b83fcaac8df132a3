"""`GET /api/reports/portfolio` over HTTP on both databases: each reader sees the estates of their scope
only, the CSV says what the JSON says, and the roles are those that read the monthly reports."""

from __future__ import annotations

import csv
import io
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
from maintenance.reports import MonthlyReport
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.portfolio import Portfolio
from pumpwatch.site import Severity, Site, Text
from pumpwatch.sitefile import load_site
from tests.support.state import PASSWORD, People

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
A, B = "harbour-view", "twin-towers"
JANUARY = "/api/reports/portfolio?month=2026-01"


def _twin(site: Site, estate: str) -> Site:
    return site.model_copy(update={"site": site.site.model_copy(update={"id": estate})})


@dataclass
class Deployment:
    client: httpx.AsyncClient
    auth: AuthService
    people: People

    def as_(self, user_name: str) -> dict[str, str]:
        user = self.auth.get_by_username(user_name)
        assert user is not None
        return {"Authorization": f"Bearer {self.auth.issue_token(user).token}"}


@pytest.fixture
async def deployment(tmp_path: Path, sessions: sessionmaker[Session], clock: FakeClock, auth: AuthService,
                     tasks: TaskService, alarms: AlarmService, people: People) -> AsyncIterator[Deployment]:
    """Two estates; in January B has a critical alarm nobody took on, A a minor one handled at once."""
    site = load_site(EXAMPLE)
    portfolio = Portfolio.of(site, _twin(site, B))
    catalog = SensorCatalog(portfolio)
    store = EmbeddedStore(tmp_path / "series.db", catalog)
    await store.start()
    ctx = ApiContext(site=site, catalog=catalog, store=store, readings=LiveBus(), alarm_events=LiveBus(),
                     auth=auth, tasks=tasks, alarms=alarms, clock=clock, attachments_dir=tmp_path / "files",
                     reports=MonthlyReport(sessions, site=portfolio, clock=clock))
    await clock.advance(5 * 86400)
    for estate, severity in ((A, Severity.MINOR), (B, Severity.CRITICAL)):
        alarm = alarms.apply(AlarmEvent(AlarmAction.RAISED, AlarmKey("dom-p1", "dry_run", estate), severity,
                                        clock.now(), "dom", Text(zh="干转", en="dry run")))
        assert alarm is not None
        task = alarms.task_for(alarm.id)
        assert task is not None
        if estate == A:
            tasks.assign(task.id, people.supervisor, [people.technician.id])
            tasks.start(task.id, people.technician)
            tasks.complete(task.id, people.technician, "air in the pipe", "vented")
    await clock.advance(40 * 86400)  # February: January is over
    auth.create_user("sup-a", PASSWORD, roles=["supervisor"], estates=[A])
    auth.create_user("tech-a", PASSWORD, roles=["technician"], estates=[A])
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield Deployment(client, auth, people)
    await store.close()


async def test_the_director_ranks_every_estate_a_supervisor_only_theirs(deployment: Deployment) -> None:
    director = await deployment.client.get(JANUARY, headers=deployment.as_("dora"))
    assert director.status_code == 200, director.text
    body = director.json()
    assert (body["month"], body["final"], body["count"]) == ("2026-01", True, 2)
    assert [row["estate"] for row in body["data"]] == [A, B]  # A met its SLA; B has an open critical
    rows = {row["estate"]: row for row in body["data"]}
    assert (rows[A]["sla"]["share"], rows[A]["open_critical"]) == (1.0, 0)
    assert (rows[B]["sla"]["share"], rows[B]["open_critical"]) == (0.0, 1)
    assert rows[A]["name"]["zh"]  # the estate's own name, in both languages
    mine = (await deployment.client.get(JANUARY, headers=deployment.as_("sup-a"))).json()
    assert [row["estate"] for row in mine["data"]] == [A]
    assert mine["data"][0] == rows[A] | {"rank": 1}


async def test_the_csv_says_what_the_json_says(deployment: Deployment) -> None:
    me = deployment.as_(deployment.people.director.username)
    body = (await deployment.client.get(JANUARY, headers=me)).json()
    resp = await deployment.client.get(f"{JANUARY}&format=csv", headers=me)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    assert 'filename="pumpwatch-portfolio-2026-01.csv"' in resp.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.text.removeprefix("\ufeff"))))
    assert [(r["rank"], r["estate"], r["sla_share"], r["open_critical"], r["repeats"]) for r in rows] == [
        (str(row["rank"]), row["estate"], str(row["sla"]["share"]), str(row["open_critical"]),
         str(row["repeats"])) for row in body["data"]]


@pytest.mark.parametrize(("who", "status"), [("tech-a", 403), ("olivia", 403), ("ada", 200), ("sam", 200)])
async def test_who_may_read_it(deployment: Deployment, who: str, status: int) -> None:
    resp = await deployment.client.get(JANUARY, headers=deployment.as_(who))
    assert resp.status_code == status, resp.text


@pytest.mark.parametrize("query", ["", "?month=2026-1", "?month=2026-13", "?month=2027-01",
                                   "?month=2026-01&format=pdf"])
async def test_a_bad_or_future_month_is_a_422(deployment: Deployment, query: str) -> None:
    resp = await deployment.client.get(f"/api/reports/portfolio{query}",
                                       headers=deployment.as_(deployment.people.director.username))
    assert resp.status_code == 422, (query, resp.text)
    assert resp.headers["content-type"].startswith("application/problem+json")
