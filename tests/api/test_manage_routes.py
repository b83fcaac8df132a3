"""What the management pages of the web UI ask of the API, on SQLite and PostgreSQL: tasks due in a period
(the plan calendar's month), a task that takes a plan's checklist as its template, tasks created late by the
scheduler marked as such, and deputy periods listed and ended."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.context import ApiContext
from collector.stores.embedded import EmbeddedStore
from maintenance.alarms import AlarmService
from maintenance.auth import AuthService
from maintenance.models import Task, User
from maintenance.tasks import TaskService
from maintenance.vocab import Role, TaskKind
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.site import Text
from pumpwatch.sitefile import load_site
from tests.support.state import People, clock_time

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"


@dataclass
class Api:
    client: httpx.AsyncClient
    people: People
    clock: FakeClock
    tokens: dict[str, dict[str, str]]

    def as_(self, user: User) -> dict[str, str]:
        return self.tokens[user.username]


@pytest.fixture
async def api(tmp_path: Path, clock: FakeClock, auth: AuthService, tasks: TaskService, alarms: AlarmService,
              people: People) -> AsyncIterator[Api]:
    site = load_site(EXAMPLE)
    store = EmbeddedStore(tmp_path / "series.db")
    await store.start()
    ctx = ApiContext(site=site, catalog=SensorCatalog(site), store=store, readings=LiveBus(),
                     alarm_events=LiveBus(), auth=auth, tasks=tasks, alarms=alarms, clock=clock,
                     attachments_dir=tmp_path / "files")
    everyone = (people.operator, people.technician, people.technician2, people.supervisor, people.director,
                people.admin)
    tokens = {u.username: {"Authorization": f"Bearer {auth.issue_token(u).token}"} for u in everyone}
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield Api(client, people, clock, tokens)
    await store.close()


async def test_tasks_are_listed_by_the_period_they_fall_due_in(api: Api, tasks: TaskService) -> None:
    now = clock_time(api.clock)
    due = {name: now + timedelta(days=days) for name, days in (("before", 1), ("first", 2), ("inside", 3),
                                                                 ("end", 4), ("after", 5))}
    ids = {name: tasks.create_task(api.people.supervisor, Text(zh=name, en=name), kind=TaskKind.CORRECTIVE,
                                   due_at=at).id for name, at in due.items()}
    params = {"due_after": due["first"].isoformat(), "due_before": due["end"].isoformat()}
    resp = await api.client.get("/api/tasks", params=params, headers=api.as_(api.people.operator))
    assert resp.status_code == 200, resp.text
    found = {t["id"] for t in resp.json()["data"]}
    assert found == {ids["first"], ids["inside"]}  # from inclusive, until exclusive
    assert resp.json()["count"] == 2


async def test_a_task_takes_the_checklist_of_a_plan_as_its_template(api: Api) -> None:
    body = {"title": {"zh": "巡检", "en": "Round"}, "kind": "inspection", "room": "dom",
            "template": "daily-round"}
    resp = await api.client.post("/api/tasks", json=body, headers=api.as_(api.people.supervisor))
    assert resp.status_code == 201, resp.text
    items = {i["key"]: i for i in resp.json()["checklist"]}
    assert len(items) == 10
    gauge = items["pressure-gauge"]
    assert (gauge["type"], gauge["unit"], gauge["min"], gauge["max"]) == ("number", "MPa", 0.25, 1.2)
    assert (gauge["result"], gauge["zh"]) == (None, "机械压力表读数（与出水压力传感器对照）")
    assert items["noise-vibration"]["type"] == "pass_fail"

    tank = await api.client.post("/api/tasks", json=body | {"template": "tank-cleaning"},
                                 headers=api.as_(api.people.supervisor))
    assert tank.status_code == 201, tank.text
    needs_file = [i["key"] for i in tank.json()["checklist"] if i.get("attachment") == "required"]
    assert needs_file  # the laboratory's report: verification waits for the file

    unknown = await api.client.post("/api/tasks", json=body | {"template": "no-such-plan"},
                                    headers=api.as_(api.people.supervisor))
    assert unknown.status_code == 422
    assert "no-such-plan" in unknown.json()["detail"]


async def test_a_task_the_scheduler_created_late_says_so(api: Api, tasks: TaskService,
                                                        sessions: sessionmaker[Session]) -> None:
    task = tasks.create_from_plan("daily-round:dom@2026-01-05", Text(zh="巡检", en="Round"))
    on_time = tasks.create_from_plan("daily-round:dom@2026-01-06", Text(zh="巡检", en="Round"))
    with sessions.begin() as session:
        row = session.get(Task, task.id)
        assert row is not None
        row.late = True  # what the scheduler records when it makes up for a downtime
    resp = await api.client.get("/api/tasks", headers=api.as_(api.people.supervisor))
    late = {t["id"]: t["late"] for t in resp.json()["data"]}
    assert late[task.id] is True
    assert late[on_time.id] is False


async def test_deputy_periods_are_listed_to_admins_and_to_those_in_them_and_ended_by_an_admin(
        api: Api, auth: AuthService) -> None:
    p = api.people
    now = clock_time(api.clock)
    row = auth.add_deputy(p.supervisor.id, p.technician.id, Role.SUPERVISOR, now - timedelta(hours=1),
                          now + timedelta(days=7), p.admin)
    url = "/api/users/deputies"
    for user, sees in ((p.admin, True), (p.technician, True), (p.supervisor, True), (p.operator, False)):
        resp = await api.client.get(url, headers=api.as_(user))
        assert resp.status_code == 200, resp.text
        assert [d["id"] for d in resp.json()["data"]] == ([row.id] if sees else []), user.username
    listed = (await api.client.get(url, headers=api.as_(p.admin))).json()["data"][0]
    assert (listed["deputy_id"], listed["principal_id"], listed["role"]) == (p.technician.id, p.supervisor.id,
                                                                            "supervisor")

    refused = await api.client.post(f"{url}/{row.id}/end", headers=api.as_(p.supervisor))
    assert refused.status_code == 403
    ended = await api.client.post(f"{url}/{row.id}/end", headers=api.as_(p.admin))
    assert ended.status_code == 200, ended.text
    assert ended.json()["valid_until"] is not None
    assert not auth.has_role(p.technician, Role.SUPERVISOR)
    missing = await api.client.post(f"{url}/999999/end", headers=api.as_(p.admin))
    assert missing.status_code == 404
