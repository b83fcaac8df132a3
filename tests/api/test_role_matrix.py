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
from maintenance.audit import AuditTrail
from maintenance.auth import AuthService
from maintenance.exceptions import ExceptionService
from maintenance.handover import HandoverService
from maintenance.models import Task, User, utc_from_epoch
from maintenance.reports import MonthlyReport
from maintenance.task_flow import ChecklistItem, CheckResult
from maintenance.tasks import TaskService
from maintenance.vocab import Role, TaskKind
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.portfolio import Portfolio
from pumpwatch.readings import Reading
from pumpwatch.site import Severity, Text
from pumpwatch.sitefile import load_site
from tests.support.state import People

HV = "harbour-view"  # the estate of examples/site.yaml

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
    ctx: ApiContext | None = None  # the services the record routes use (exceptions, handovers)
    escort_of: User | None = None  # the technician who escorts visits (people.technician if None)
    writer_of: User | None = None  # the operator who writes handovers (people.operator if None)

    @property
    def escort(self) -> User:
        """The technician named as the escort of the visits the cases create."""
        return self.escort_of or self.people.technician

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def new_alarm(self) -> int:
        """A fresh active alarm (and its task)."""
        self.serial += 1
        event = AlarmEvent(AlarmAction.RAISED, AlarmKey(f"asset-{self.serial}", "leak", HV), Severity.MAJOR,
                           self.clock.now(), "dom", Text(zh="漏水", en="leak"), 1.0, "dom-floor-leak")
        alarm = self.alarms.apply(event)
        assert alarm is not None
        return alarm.id

    def visit(self) -> dict[str, Any]:
        """An access request body for a visit tomorrow, escorted by the technician."""
        start = utc_from_epoch(self.clock.now()) + timedelta(days=1)
        return {"visitor": "Li Wei", "purpose": "meter reading", "room": "dom",
                "window_start": start.isoformat(), "window_end": (start + timedelta(hours=2)).isoformat(),
                "escort_id": self.escort.id}

    def new_visit(self) -> int:
        """A fresh pending access request."""
        body = self.visit()
        row = self.approvals.request_access(self.people.operator, body["visitor"], body["purpose"], "dom",
                                            datetime.fromisoformat(body["window_start"]),
                                            datetime.fromisoformat(body["window_end"]), body["escort_id"],
                                            estate=HV)
        return row.id

    def new_change(self) -> int:
        """A fresh pending change request."""
        return self.approvals.request_change(self.people.technician, "Rewire", "Move the panel", estate=HV).id

    def new_task(self, state: str = "raised") -> int:
        """A fresh fault task, moved to `state` (raised, assigned, in_progress, done)."""
        p = self.people
        task = self.tasks.create_task(p.operator, Text(zh="故障", en="fault"), room="dom", estate=HV)
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
                     approvals=ApprovalService(sessions, clock, tasks),
                     exceptions=ExceptionService(sessions, clock, tasks, site),
                     handovers=HandoverService(sessions, clock, site), audit=AuditTrail(sessions))
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
        yield Api(client, headers, alarms, tasks, ctx.approvals, people, clock, store, ctx=ctx)
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
     {"supervisor", "deputy"}),  # a supervisor's review: never an admin alone
    ("verify", lambda a: ("POST", f"/api/tasks/{a.new_task('done')}/verify", None),
     {"supervisor", "deputy"}),
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
     {"supervisor", "deputy"}),  # never an admin alone
    ("log a visitor's entry", lambda a: ("POST", f"/api/access-requests/{visit_now(a)}/enter", None),
     {"technician"}),  # the escort named on the request, no one else
    ("log a visitor's exit", lambda a: ("POST", f"/api/access-requests/{visit_now(a, entered=True)}/exit",
                                        None), {"technician"}),
    ("list exceptions", lambda a: ("GET", "/api/exceptions", None), EVERYONE),
    ("request an exception", lambda a: ("POST", "/api/exceptions", exception_body(a)), EVERYONE),
    ("approve an exception", lambda a: ("POST", f"/api/exceptions/{new_exception(a)}/approve", None),
     {"supervisor", "deputy"}),
    ("reject an exception", lambda a: ("POST", f"/api/exceptions/{new_exception(a)}/reject",
                                       {"reason": "no"}), {"supervisor", "deputy"}),
    ("handover draft", lambda a: ("GET", "/api/handovers/draft?room=dom", None), EVERYONE),
    ("search handovers", lambda a: ("GET", "/api/handovers?q=pump", None), EVERYONE),
    ("hand over a shift", lambda a: ("POST", "/api/handovers", {"room": "dom", "notes": "quiet"}),
     {"operator", "technician", "deputy"}),
    ("dispute a handover", lambda a: ("POST", f"/api/handovers/{new_handover(a)}/dispute", {"reason": "no"}),
     {"technician", "deputy"}),  # the incoming shift; not the operator who wrote it
    ("read the audit trail", lambda a: ("GET", "/api/audit?entity=task", None),
     {"supervisor", "director", "admin", "deputy"}),
    ("export the audit trail", lambda a: ("GET", "/api/audit?format=csv", None),
     {"supervisor", "director", "admin", "deputy"}),
    ("monthly report", lambda a: ("GET", "/api/reports/monthly/2026-01", None),
     {"supervisor", "director", "admin", "deputy"}),
    ("create a user", lambda a: ("POST", "/api/users", {
        "username": f"new{a.next_serial()}", "display_name": "New", "password": "long enough password",
        "roles": ["operator"]}), {"admin"}),
]


def visit_now(a: Api, entered: bool = False) -> int:
    """An approved visit inside its window, escorted by the technician (entered already if asked)."""
    start = utc_from_epoch(a.clock.now()) - timedelta(minutes=5)
    p = a.people
    row = a.approvals.request_access(p.operator, "Li Wei", "meter reading", "dom", start,
                                     start + timedelta(hours=2), a.escort.id, estate=HV)
    a.approvals.approve_access(row.id, p.supervisor)
    a.approvals.approve_access(row.id, p.director)
    if entered:
        a.approvals.log_entry(row.id, a.escort)
    return row.id


def exception_body(a: Api) -> dict[str, Any]:
    """An exception for pump 2's switch for four hours, each in its own window (approvals may not overlap)."""
    start = utc_from_epoch(a.clock.now()) + timedelta(hours=5 * a.next_serial())
    return {"sensor": "dom-p2-switch", "reason": "check valve replaced", "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=4)).isoformat()}


def new_exception(a: Api) -> int:
    """A fresh pending exception, asked for by the technician."""
    assert a.ctx is not None
    assert a.ctx.exceptions is not None
    body = exception_body(a)
    start, end = datetime.fromisoformat(body["starts_at"]), datetime.fromisoformat(body["ends_at"])
    return a.ctx.exceptions.request(a.people.technician, body["reason"], start, end, sensor=body["sensor"],
                                    estate=HV).id


def new_handover(a: Api) -> int:
    """A fresh handover of the dom room, written by the operator."""
    assert a.ctx is not None
    assert a.ctx.handovers is not None
    writer = a.writer_of or a.people.operator
    return a.ctx.handovers.submit(writer, "dom", None, notes="pump 2 noisy", estate=HV).id


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
    await api.store.write([Reading("harbour-view/dom-header-pressure", api.clock.now(), 0.45)])
    items = [ChecklistItem("gauge", Text(zh="压力表", en="Pressure gauge"))]
    task = api.tasks.create_task(p.supervisor, Text(zh="巡检", en="Round"), kind=TaskKind.INSPECTION,
                                 checklist=items, estate=HV)
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


# Separation of duties on tasks: whoever worked in the cycle may not review it, whatever roles they hold.
DUTIES = ["started it", "checked an item", "fitted a part", "signed it"]


@pytest.mark.parametrize("did", DUTIES)
@pytest.mark.parametrize("review", ["verify", "send-back"])
async def test_a_reviewer_who_worked_in_the_cycle_is_refused(api: Api, auth: AuthService, did: str,
                                                             review: str) -> None:
    p, tasks = api.people, api.tasks
    lead = auth.create_user(f"lead{api.next_serial()}", "correct horse battery", ["technician", "supervisor"])
    items = [ChecklistItem("noise", Text(zh="异响", en="Noise"))]
    task = tasks.create_task(p.supervisor, Text(zh="巡检", en="Round"), kind=TaskKind.INSPECTION,
                             checklist=items)
    tasks.assign(task.id, p.supervisor, [lead.id, p.technician.id])
    signer = lead if did == "signed it" else p.technician
    tasks.start(task.id, lead if did == "started it" else signer)
    tasks.record_check(task.id, lead if did == "checked an item" else signer, "noise", CheckResult.OK)
    if did == "fitted a part":
        tasks.add_part(task.id, lead, "seal", 1)
    tasks.complete(task.id, signer, "worn seal", "replaced the seal")
    body = {"reason": "redo"} if review == "send-back" else None
    url = f"/api/tasks/{task.id}/{review}"
    refused = await api.client.post(url, json=body, headers={
        "Authorization": f"Bearer {auth.issue_token(lead).token}"})
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "did the work" in refused.json()["detail"]
    admin = await api.client.post(url, json=body, headers=api.headers["admin"])
    assert admin.status_code == 403
    assert "supervisor role" in admin.json()["detail"]
    assert (await api.client.post(url, json=body, headers=api.headers["supervisor"])).status_code == 200


# --- the scope axis: the same role held for this estate, or for another one ---------------------------

TWIN = "twin-towers"  # a second estate beside HV: same equipment, another id
ESTATE_FREE = {"who am I", "list users", "list people", "create a user"}  # about people, not estates
SCOPED_CASES = [c for c in CASES if c[0] not in ESTATE_FREE]


def in_estate(url: str, estate: str) -> str:
    """The URL naming `estate` (record routes ignore it: the record's own estate decides)."""
    return f"{url}{'&' if '?' in url else '?'}estate={estate}"


@pytest.fixture(params=[HV, TWIN], ids=["own estate", "other estate"])
async def scoped_api(request: pytest.FixtureRequest, tmp_path: Path, sessions: sessionmaker[Session],
                     clock: FakeClock, auth: AuthService, tasks: TaskService, alarms: AlarmService,
                     people: People) -> AsyncIterator[tuple[Api, str]]:
    """A deployment of HV and its twin; every role held only for the estate of the parameter."""
    site = load_site(EXAMPLE)
    twin = site.model_copy(update={"site": site.site.model_copy(update={"id": TWIN})})
    portfolio = Portfolio.of(site, twin)
    catalog = SensorCatalog(portfolio)
    store = EmbeddedStore(tmp_path / "series.db", catalog)
    await store.start()
    ctx = ApiContext(site=site, catalog=catalog, store=store, readings=LiveBus(),
                     alarm_events=LiveBus(), auth=auth, tasks=tasks, alarms=alarms, clock=clock,
                     attachments_dir=tmp_path / "files", reports=MonthlyReport(sessions, site=portfolio),
                     approvals=ApprovalService(sessions, clock, tasks),
                     exceptions=ExceptionService(sessions, clock, tasks, portfolio),
                     handovers=HandoverService(sessions, clock, portfolio), audit=AuditTrail(sessions))
    estate: str = request.param
    users = {role: auth.create_user(f"{role}-{estate}", "correct horse battery", [role], estates=[estate])
             for role in ("operator", "technician", "supervisor", "director", "admin")}
    users["deputy"] = auth.create_user(f"dave-{estate}", "correct horse battery", ["technician"],
                                       estates=[estate])
    auth.add_deputy(users["supervisor"].id, users["deputy"].id, Role.SUPERVISOR,
                    ctx.auth.now() - timedelta(hours=1), ctx.auth.now() + timedelta(days=7), people.admin)
    headers = {role: {"Authorization": f"Bearer {auth.issue_token(user).token}"}
               for role, user in users.items()}
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        assert ctx.approvals is not None
        # Visits are escorted by the technician of the estate in question, so "own" can log them.
        yield Api(client, headers, alarms, tasks, ctx.approvals, people, clock, store, ctx=ctx,
                  escort_of=users["technician"], writer_of=users["operator"]), estate
    await store.close()


@pytest.mark.parametrize(("name", "call", "allowed"), SCOPED_CASES, ids=[c[0] for c in SCOPED_CASES])
async def test_role_rule_by_scope(scoped_api: tuple[Api, str], name: str, call: Call,
                                  allowed: set[str]) -> None:
    """Every case works on HV's records: the same role held for HV gets through as the matrix says; held
    for the twin estate, it gets 404 (never a 2xx, never a 403 that confirms the record exists)."""
    api, estate = scoped_api
    for role in ROLES:
        method, url, body = await asyncio.to_thread(call, api)
        resp = await api.client.request(method, in_estate(url, HV), json=body, headers=api.headers[role])
        if estate == HV and role in allowed:
            assert resp.status_code < 300, (name, role, resp.status_code, resp.text)
        elif estate == HV:
            assert resp.status_code == 403, (name, role, resp.status_code, resp.text)
        elif role in allowed:
            assert resp.status_code == 404, (name, role, resp.status_code, resp.text)
            assert resp.headers["content-type"].startswith("application/problem+json")
        else:  # refused for the role already; 404 where the record's scope is checked first
            assert resp.status_code in (403, 404), (name, role, resp.status_code, resp.text)
