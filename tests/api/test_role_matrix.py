"""Every route's role rule over HTTP, on SQLite and PostgreSQL (the `backend` parameter).

Each case calls a route as each role (and as nobody) against a fresh alarm or task, and checks
that exactly the roles the rules name get through; the others get 403 (401 without a token).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.context import ApiContext
from collector.stores.embedded import EmbeddedStore
from maintenance.alarms import AlarmService
from maintenance.approvals import ApprovalService
from maintenance.auth import AuthService
from maintenance.models import Task, utc_from_epoch
from maintenance.reports import MonthlyReport
from maintenance.task_flow import ChecklistItem
from maintenance.tasks import TaskService
from maintenance.vocab import Role, TaskKind
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.readings import Reading
from pumpwatch.site import Severity, Text
from pumpwatch.sitefile import load_site
from tests.support.state import People

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
ROLES = ("operator", "technician", "supervisor", "director", "admin", "deputy")


@dataclass
class Api:
    client: httpx.AsyncClient
    headers: dict[str, dict[str, str]]
    alarms: AlarmService
    tasks: TaskService
    approvals: ApprovalService
    people: People
    clock: FakeClock
    store: EmbeddedStore
    serial: int = 0

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def new_alarm(self) -> int:
        """A fresh active alarm (and its task)."""
        self.serial += 1
        event = AlarmEvent(AlarmAction.RAISED, AlarmKey(f"asset-{self.serial}", "leak"), Severity.MAJOR,
                           self.clock.now(), "dom", Text(zh="漏水", en="leak"), 1.0, "dom-floor-leak")
        alarm = self.alarms.apply(event)
        assert alarm is not None
        return alarm.id

    def visit(self) -> dict[str, Any]:
        """An access request body for a visit tomorrow, escorted by the technician."""
        start = utc_from_epoch(self.clock.now()) + timedelta(days=1)
        return {"visitor": "Li Wei", "purpose": "meter reading", "room": "dom",
                "window_start": start.isoformat(), "window_end": (start + timedelta(hours=2)).isoformat(),
                "escort_id": self.people.technician.id}

    def new_visit(self) -> int:
        """A fresh pending access request."""
        body = self.visit()
        row = self.approvals.request_access(self.people.operator, body["visitor"], body["purpose"], "dom",
                                            datetime.fromisoformat(body["window_start"]),
                                            datetime.fromisoformat(body["window_end"]), body["escort_id"])
        return row.id

    def new_change(self) -> int:
        """A fresh pending change request."""
        return self.approvals.request_change(self.people.technician, "Rewire", "Move the panel").id

    def new_task(self, state: str = "raised") -> int:
        """A fresh fault task, moved to `state` (raised, assigned, in_progress, done)."""
        p = self.people
        task = self.tasks.create_task(p.operator, Text(zh="故障", en="fault"), room="dom")
        if state in ("assigned", "in_progress", "done"):
            self.tasks.assign(task.id, p.supervisor, [p.technician.id])
        if state in ("in_progress", "done"):
            self.tasks.start(task.id, p.technician)
        if state == "done":
            self.tasks.complete(task.id, p.technician, "worn seal", "replaced the seal")
        return task.id


@pytest.fixture
async def api(tmp_path: Path, sessions: sessionmaker[Session], clock: FakeClock, auth: AuthService,
              tasks: TaskService, alarms: AlarmService, people: People) -> AsyncIterator[Api]:
    site = load_site(EXAMPLE)
    store = EmbeddedStore(tmp_path / "series.db")
    await store.start()
    ctx = ApiContext(site=site, catalog=SensorCatalog(site), store=store, readings=LiveBus(),
                     alarm_events=LiveBus(), auth=auth, tasks=tasks, alarms=alarms, clock=clock,
                     attachments_dir=tmp_path / "files", reports=MonthlyReport(sessions),
                     approvals=ApprovalService(sessions, clock, tasks))
    # The deputy is a technician standing in for the absent supervisor.
    deputy = auth.create_user("dave", "correct horse battery", ["technician"], display_name="Dave")
    auth.add_deputy(people.supervisor.id, deputy.id, Role.SUPERVISOR, ctx.auth.now() - timedelta(hours=1),
                    ctx.auth.now() + timedelta(days=7), people.admin)
    users = {"operator": people.operator, "technician": people.technician, "supervisor": people.supervisor,
             "director": people.director, "admin": people.admin, "deputy": deputy}
    headers = {role: {"Authorization": f"Bearer {auth.issue_token(user).token}"}
               for role, user in users.items()}
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        assert ctx.approvals is not None
        yield Api(client, headers, alarms, tasks, ctx.approvals, people, clock, store)
    await store.close()


Call = Callable[[Api], tuple[str, str, dict[str, Any] | None]]
EVERYONE = set(ROLES)


CASES: list[tuple[str, Call, set[str]]] = [
    ("read site", lambda a: ("GET", "/api/site", None), EVERYONE),
    ("read sensors", lambda a: ("GET", "/api/sensors", None), EVERYONE),
    ("latest readings", lambda a: ("GET", "/api/rooms/dom/latest", None), EVERYONE),
    ("history", lambda a: ("GET", "/api/sensors/dom-header-pressure/history?start=0&end=3600&step=60",
                           None), EVERYONE),
    ("list alarms", lambda a: ("GET", "/api/alarms", None), EVERYONE),
    ("plans", lambda a: ("GET", "/api/plans", None), EVERYONE),
    ("calendar", lambda a: ("GET", "/api/calendar?room=dom&days=14", None), EVERYONE),
    ("list tasks", lambda a: ("GET", "/api/tasks", None), EVERYONE),
    ("who am I", lambda a: ("GET", "/api/auth/me", None), EVERYONE),
    ("acknowledge alarm", lambda a: ("POST", f"/api/alarms/{a.new_alarm()}/ack", None),
     {"operator", "supervisor", "admin", "deputy"}),
    ("report a fault", lambda a: ("POST", "/api/tasks", {"title": {"zh": "漏水", "en": "leak"}}), EVERYONE),
    ("create a corrective task", lambda a: ("POST", "/api/tasks", {
        "title": {"zh": "整改", "en": "fix"}, "kind": TaskKind.CORRECTIVE.value}),
     {"supervisor", "admin", "deputy"}),
    ("assign", lambda a: ("POST", f"/api/tasks/{a.new_task()}/assign",
                          {"assignees": [a.people.technician.id]}), {"supervisor", "admin", "deputy"}),
    ("cancel", lambda a: ("POST", f"/api/tasks/{a.new_task()}/cancel", {"reason": "not needed"}),
     {"supervisor", "admin", "deputy"}),
    ("send back", lambda a: ("POST", f"/api/tasks/{a.new_task('done')}/send-back", {"reason": "redo"}),
     {"supervisor", "admin", "deputy"}),
    ("verify", lambda a: ("POST", f"/api/tasks/{a.new_task('done')}/verify", None),
     {"supervisor", "admin", "deputy"}),
    ("add a note", lambda a: ("POST", f"/api/tasks/{a.new_task()}/notes", {"text": "seen it"}), EVERYONE),
    ("list users", lambda a: ("GET", "/api/users", None), {"admin"}),
    ("list people", lambda a: ("GET", "/api/people?role=technician", None), EVERYONE),
    ("request access", lambda a: ("POST", "/api/access-requests", a.visit()), EVERYONE),
    ("approve access", lambda a: ("POST", f"/api/access-requests/{a.new_visit()}/approve", None),
     {"supervisor", "director", "deputy"}),
    ("reject access", lambda a: ("POST", f"/api/access-requests/{a.new_visit()}/reject", {"reason": "no"}),
     {"supervisor", "director", "deputy"}),
    ("request a change", lambda a: ("POST", "/api/change-requests", {"title": "t", "description": "d"}),
     EVERYONE),
    ("approve a change", lambda a: ("POST", f"/api/change-requests/{a.new_change()}/approve", None),
     {"supervisor", "admin", "deputy"}),
    ("monthly report", lambda a: ("GET", "/api/reports/monthly/2026-01", None),
     {"supervisor", "director", "admin", "deputy"}),
    ("create a user", lambda a: ("POST", "/api/users", {
        "username": f"new{a.next_serial()}", "display_name": "New", "password": "long enough password",
        "roles": ["operator"]}), {"admin"}),
]


@pytest.mark.parametrize(("name", "call", "allowed"), CASES, ids=[c[0] for c in CASES])
async def test_role_rule(api: Api, name: str, call: Call, allowed: set[str]) -> None:
    outcomes: dict[str, int] = {}
    for role in (*ROLES, "nobody"):
        method, url, body = await asyncio.to_thread(call, api)
        headers = api.headers.get(role, {})
        resp = await api.client.request(method, url, json=body, headers=headers)
        outcomes[role] = resp.status_code
        if role == "nobody":
            assert resp.status_code == 401, (name, resp.text)
        elif role in allowed:
            assert resp.status_code < 300, (name, role, resp.status_code, resp.text)
        else:
            assert resp.status_code == 403, (name, role, resp.status_code, resp.text)
            assert resp.headers["content-type"].startswith("application/problem+json")


async def test_health_and_metrics_are_open(api: Api) -> None:
    assert (await api.client.get("/healthz")).status_code == 200
    resp = await api.client.get("/metrics")
    assert resp.status_code == 200


async def test_the_calendar_lists_two_weeks_of_a_room_soonest_first(api: Api) -> None:
    headers = api.headers["operator"]
    resp = await api.client.get("/api/calendar", params={"room": "dom", "days": 14}, headers=headers)
    assert resp.status_code == 200
    data = resp.json()["data"]
    due = [datetime.fromisoformat(o["due_at"]) for o in data]
    assert due == sorted(due)
    assert {o["room"] for o in data} == {"dom"}
    rotations = [o for o in data if o["plan"] == "duty-rotation"]
    assert len(rotations) == 7  # every other day for two weeks
    sweeps = [o for o in data if o["plan"] == "weekly-sweep"]
    assert len(sweeps) == 2
    missing = await api.client.get("/api/calendar", params={"room": "nowhere"}, headers=headers)
    assert missing.status_code == 404
    plans = (await api.client.get("/api/plans", headers=headers)).json()
    assert {"duty-rotation", "weekly-sweep", "pipe-anti-rust"} <= {p["id"] for p in plans["data"]}


async def test_anonymous_calendar_is_refused(api: Api) -> None:
    assert (await api.client.get("/api/calendar")).status_code == 401


async def test_a_gauge_reading_is_compared_with_its_sensor(api: Api) -> None:
    p = api.people
    await api.store.write([Reading("dom-header-pressure", api.clock.now(), 0.45)])
    items = [ChecklistItem("gauge", Text(zh="压力表", en="Pressure gauge"))]
    task = api.tasks.create_task(p.supervisor, Text(zh="巡检", en="Round"), kind=TaskKind.INSPECTION,
                                 checklist=items)
    api.tasks.assign(task.id, p.supervisor, [p.technician.id])
    api.tasks.start(task.id, p.technician)
    with api.tasks._sessions.begin() as session:  # what the scheduler gives a gauge item
        row = session.get(Task, task.id)
        assert row is not None
        row.checklist = [row.checklist[0] | {"type": "number", "unit": "MPa", "expected": [0.3, 0.6],
                                             "min": 0.3, "max": 0.6, "compare": ["dom-header-pressure"]}]
    url = f"/api/tasks/{task.id}/checklist/gauge"
    headers = api.headers["technician"]
    agree = await api.client.put(url, json={"result": "ok", "value": 0.46}, headers=headers)
    assert agree.status_code == 200, agree.text
    item = agree.json()["checklist"][0]
    assert item["sensor_values"] == {"dom-header-pressure": 0.45}
    assert item["disagrees"] is False
    off = await api.client.put(url, json={"result": "ok", "value": 0.35}, headers=headers)
    assert off.json()["checklist"][0]["disagrees"] is True  # the gauge or the transmitter is wrong


async def test_people_lists_active_colleagues_by_role_without_logins(api: Api) -> None:
    resp = await api.client.get("/api/people", params={"role": "technician"},
                                headers=api.headers["supervisor"])
    assert resp.status_code == 200
    body = resp.json()
    ids = {p["id"] for p in body["data"]}
    assert {api.people.technician.id, api.people.technician2.id} <= ids
    assert api.people.supervisor.id not in ids
    assert all(set(p) == {"id", "display_name", "roles"} for p in body["data"])  # no usernames
    assert body["count"] == len(body["data"])
    bad = await api.client.get("/api/people", params={"role": "plumber"}, headers=api.headers["operator"])
    assert bad.status_code == 422
