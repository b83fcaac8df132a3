"""People scoped to estates, over HTTP on both databases: a technician of estate A sees only A, and
anything of estate B is a 404 exactly like a record that does not exist; deputies inherit the scope."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.context import ApiContext
from api.deps import SESSION_COOKIE
from collector.stores.embedded import EmbeddedStore
from maintenance.alarms import AlarmService
from maintenance.approvals import ApprovalService
from maintenance.audit import AuditTrail
from maintenance.auth import AuthService
from maintenance.handover import HandoverFilter, HandoverService
from maintenance.models import utc_from_epoch
from maintenance.reports import MonthlyReport
from maintenance.tasks import TaskService
from maintenance.vocab import Role, TokenKind
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


def _twin(site: Site, estate: str) -> Site:
    return site.model_copy(update={"site": site.site.model_copy(update={"id": estate})})


@dataclass
class Scoped:
    client: httpx.AsyncClient
    auth: AuthService
    people: People
    ctx: ApiContext
    tasks: dict[str, int]  # estate -> the task of its alarm
    alarms: dict[str, int]
    handovers: dict[str, int]

    def as_(self, user_name: str) -> dict[str, str]:
        user = self.auth.get_by_username(user_name)
        assert user is not None
        return {"Authorization": f"Bearer {self.auth.issue_token(user).token}"}


@pytest.fixture
async def scoped(tmp_path: Path, sessions: sessionmaker[Session], clock: FakeClock, auth: AuthService,
                 tasks: TaskService, alarms: AlarmService, people: People) -> AsyncIterator[Scoped]:
    site = load_site(EXAMPLE)
    portfolio = Portfolio.of(site, _twin(site, B))
    catalog = SensorCatalog(portfolio)
    store = EmbeddedStore(tmp_path / "series.db", catalog)
    await store.start()
    ctx = ApiContext(site=site, catalog=catalog, store=store, readings=LiveBus(), alarm_events=LiveBus(),
                     auth=auth, tasks=tasks, alarms=alarms, clock=clock, attachments_dir=tmp_path / "files",
                     reports=MonthlyReport(sessions, site=portfolio, clock=clock), audit=AuditTrail(sessions),
                     handovers=HandoverService(sessions, clock, portfolio),
                     approvals=ApprovalService(sessions, clock, tasks))
    task_of: dict[str, int] = {}
    alarm_of: dict[str, int] = {}
    for estate, value in ((A, 0.31), (B, 0.52)):
        await store.write([Reading(f"{estate}/dom-header-pressure", clock.now(), value)])
        alarms.apply(AlarmEvent(AlarmAction.RAISED, AlarmKey("dom-p1", "dry_run", estate), Severity.MAJOR,
                                clock.now(), "dom", Text(zh="干转", en="dry run")))
    for alarm in alarms.list_alarms()[0]:
        alarm_of[alarm.estate] = alarm.id
        task = alarms.task_for(alarm.id)
        assert task is not None
        task_of[alarm.estate] = task.id
    assert ctx.handovers is not None
    for estate in (A, B):
        ctx.handovers.submit(people.technician, "dom", None, notes=f"{estate} shift", estate=estate)
    auth.create_user("tech-a", PASSWORD, roles=["technician"], estates=[A])
    auth.create_user("sup-b", PASSWORD, roles=["supervisor"], estates=[B])
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        handover_of = {h.estate: h.id for h in ctx.handovers.search(HandoverFilter(), 0, 10)[0]}
        yield Scoped(client, auth, people, ctx, task_of, alarm_of, handover_of)
    await store.close()


async def test_a_technician_of_one_estate_lists_only_that_estate(scoped: Scoped) -> None:
    me = scoped.as_("tech-a")
    for path in ("/api/tasks", "/api/alarms"):
        body = (await scoped.client.get(path, headers=me)).json()
        assert {row["estate"] for row in body["data"]} == {A}, path
        assert body["count"] == 1
    sensors = (await scoped.client.get("/api/sensors", headers=me)).json()["data"]
    assert sensors
    assert {s["estate"] for s in sensors} == {A}
    # One estate in scope: a room or sensor needs no `estate` although the deployment has two.
    latest = (await scoped.client.get("/api/rooms/dom/latest", headers=me)).json()["data"]
    assert [r["value"] for r in latest if r["sensor"] == "dom-header-pressure"] == [0.31]
    assert (await scoped.client.get("/api/site", headers=me)).json()["id"] == A
    assert [e["id"] for e in (await scoped.client.get("/api/estates", headers=me)).json()["data"]] == [A]
    organisation = scoped.as_(scoped.people.supervisor.username)
    everyone = (await scoped.client.get("/api/estates", headers=organisation)).json()["data"]
    assert [e["id"] for e in everyone] == [A, B]
    assert {r["id"] for r in everyone[0]["rooms"]} == {"dom", "fire"}
    handovers = (await scoped.client.get("/api/handovers", headers=me)).json()
    assert [h["estate"] for h in handovers["data"]] == [A]
    # Colleagues: the organisation's people and A's, never another estate's staff.
    colleagues = {p["id"] for p in (await scoped.client.get("/api/people", headers=me)).json()["data"]}
    ids = {name: user.id for name in ("tech-a", "sup-b", scoped.people.supervisor.username)
           if (user := scoped.auth.get_by_username(name)) is not None}
    assert {ids["tech-a"], ids[scoped.people.supervisor.username]} <= colleagues
    assert ids["sup-b"] not in colleagues
    # The whole organisation's supervisor still sees both.
    every = (await scoped.client.get("/api/tasks", headers=scoped.as_(scoped.people.supervisor.username)))
    assert every.json()["count"] == 2


@pytest.mark.parametrize("path", [
    "/api/tasks/{task}", "/api/tasks/{task}/attachments/1", "/api/alarms/{alarm}", "/api/alarms/{alarm}/task",
    "/api/alarms/{alarm}/history", f"/api/rooms/dom/latest?estate={B}", f"/api/site?estate={B}",
    f"/api/sensors/dom-header-pressure/history?start=1767000000&end=1768000000&step=3600&estate={B}",
    f"/api/tasks?estate={B}", f"/api/alarms?estate={B}", f"/api/sensors?estate={B}",
    f"/api/calendar?estate={B}", "/api/handovers/{handover}", f"/api/plans?estate={B}",
])
async def test_anything_of_another_estate_is_a_404_like_a_record_that_does_not_exist(scoped: Scoped,
                                                                                    path: str) -> None:
    me = scoped.as_("tech-a")
    theirs = path.format(task=scoped.tasks[B], alarm=scoped.alarms[B], handover=scoped.handovers[B])
    resp = await scoped.client.get(theirs, headers=me)
    assert resp.status_code == 404, (theirs, resp.text)
    assert resp.headers["content-type"].startswith("application/problem+json")
    if "{" in path:  # the same answer as for an id that was never used
        never = path.format(task=999_999, alarm=999_999, handover=999_999)
        missing = await scoped.client.get(never, headers=me)
        assert missing.status_code == 404
        assert resp.json()["title"] == missing.json()["title"]
        assert re.sub(r"\d+", "N", resp.json()["detail"]) == re.sub(r"\d+", "N", missing.json()["detail"])
    mine = path.format(task=scoped.tasks[A], alarm=scoped.alarms[A], handover=scoped.handovers[A])
    mine = mine.replace(f"estate={B}", f"estate={A}")
    if "attachments" not in mine:
        assert (await scoped.client.get(mine, headers=me)).status_code == 200, mine


async def test_writes_on_another_estates_records_are_404_and_change_nothing(scoped: Scoped) -> None:
    me = scoped.as_("tech-a")
    theirs = scoped.tasks[B]
    before = (await scoped.client.get(f"/api/tasks/{theirs}", headers=scoped.as_("sup-b"))).json()
    for path, body in ((f"/api/tasks/{theirs}/start", None), (f"/api/tasks/{theirs}/notes", {"text": "x"}),
                       (f"/api/alarms/{scoped.alarms[B]}/ack", None)):
        resp = await scoped.client.post(path, headers=me, json=body)
        assert resp.status_code == 404, (path, resp.text)
    created = await scoped.client.post(f"/api/tasks?estate={B}", headers=me,
                                       json={"title": {"zh": "漏水", "en": "leak"}, "room": "dom"})
    assert created.status_code == 404
    after = (await scoped.client.get(f"/api/tasks/{theirs}", headers=scoped.as_("sup-b"))).json()
    assert after == before
    alarm = (await scoped.client.get(f"/api/alarms/{scoped.alarms[B]}", headers=scoped.as_("sup-b"))).json()
    assert alarm["acknowledged_at"] is None


async def test_a_supervisor_of_one_estate_reads_only_that_estates_monthly_report(scoped: Scoped) -> None:
    sup_b = scoped.as_("sup-b")
    assert (await scoped.client.get(f"/api/reports/monthly/2026-01?estate={B}", headers=sup_b)).status_code \
        == 200
    other = await scoped.client.get(f"/api/reports/monthly/2026-01?estate={A}", headers=sup_b)
    assert other.status_code == 404
    assert (await scoped.client.get("/api/reports/monthly/2026-01", headers=sup_b)).status_code == 200


async def test_a_deputy_inherits_the_principals_estates_while_deputising(scoped: Scoped,
                                                                        clock: FakeClock) -> None:
    tech = scoped.auth.get_by_username("tech-a")
    sup_b = scoped.auth.get_by_username("sup-b")
    assert tech is not None
    assert sup_b is not None
    path = f"/api/tasks/{scoped.tasks[B]}"
    assert (await scoped.client.get(path, headers=scoped.as_("tech-a"))).status_code == 404
    now = utc_from_epoch(clock.now())
    scoped.auth.add_deputy(sup_b.id, tech.id, Role.SUPERVISOR, now, now + timedelta(days=1), None)
    assert (await scoped.client.get(path, headers=scoped.as_("tech-a"))).status_code == 200
    listed = (await scoped.client.get("/api/tasks", headers=scoped.as_("tech-a"))).json()
    assert {row["estate"] for row in listed["data"]} == {A, B}
    await clock.advance(2 * 86400)  # the deputyship has ended
    assert (await scoped.client.get(path, headers=scoped.as_("tech-a"))).status_code == 404


async def test_an_admin_sets_a_users_estates_and_it_is_audited(scoped: Scoped) -> None:
    admin = scoped.as_(scoped.people.admin.username)
    created = await scoped.client.post("/api/users", headers=admin, json={
        "username": "tech-new", "display_name": "New", "password": "a-long-password", "roles": ["technician"],
        "estates": [B]})
    assert created.status_code == 201, created.text
    assert created.json()["estates"] == [B]
    user_id = created.json()["id"]
    bad = await scoped.client.patch(f"/api/users/{user_id}", headers=admin, json={"estates": ["nowhere"]})
    assert bad.status_code == 422
    assert "nowhere" in bad.json()["detail"]
    both = await scoped.client.patch(f"/api/users/{user_id}", headers=admin,
                                     json={"estates": [A], "whole_organisation": True})
    assert both.status_code == 422
    whole = await scoped.client.patch(f"/api/users/{user_id}", headers=admin,
                                      json={"whole_organisation": True})
    assert whole.json()["estates"] is None
    narrowed = await scoped.client.patch(f"/api/users/{user_id}", headers=admin, json={"estates": [A]})
    assert narrowed.json()["estates"] == [A]
    audit = (await scoped.client.get(f"/api/audit?entity=user&entity_id={user_id}", headers=admin)).json()
    assert "estates_changed" in {row["action"] for row in audit["data"]}
    not_admin = await scoped.client.patch(f"/api/users/{user_id}", headers=scoped.as_("sup-b"),
                                          json={"whole_organisation": True})
    assert not_admin.status_code == 403


async def test_a_supervisor_of_another_estate_neither_sees_nor_decides_a_change_request(
        scoped: Scoped) -> None:
    filed = await scoped.client.post(f"/api/change-requests?estate={A}", headers=scoped.as_(
        scoped.people.supervisor2.username), json={"title": "K1", "description": "new contactor"})
    assert filed.status_code == 201, filed.text
    request_id = filed.json()["id"]
    sup_b = scoped.as_("sup-b")
    assert (await scoped.client.get("/api/change-requests", headers=sup_b)).json()["data"] == []
    decided = await scoped.client.post(f"/api/change-requests/{request_id}/approve", headers=sup_b)
    assert decided.status_code == 404
    assert decided.json()["detail"] == f"change request {request_id} not found"
    listed = (await scoped.client.get("/api/change-requests", headers=scoped.as_(
        scoped.people.supervisor.username))).json()["data"]
    assert [(r["id"], r["state"]) for r in listed] == [(request_id, filed.json()["state"])]
    assert listed[0]["estate"] == filed.json()["estate"] == A  # the web UI names its room from A's site


async def test_the_live_stream_carries_only_the_estates_in_scope(scoped: Scoped, clock: FakeClock) -> None:
    """Over a real server: the stream is read while it flows."""
    app_ctx = scoped.ctx
    config = uvicorn.Config(create_app(app_ctx), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http, \
                http.stream("GET", "/api/live", headers=scoped.as_("tech-a")) as stream:
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith("retry:")
            app_ctx.readings.publish([Reading(f"{B}/dom-header-pressure", clock.now(), 0.9),
                                      Reading(f"{A}/dom-header-pressure", clock.now(), 0.4)])
            app_ctx.readings.publish([Reading(f"{B}/dom-header-pressure", clock.now(), 0.8)])
            app_ctx.readings.publish([Reading(f"{A}/dom-header-pressure", clock.now(), 0.5)])
            data: list[list[dict[str, object]]] = []
            async for line in lines:
                if line.startswith("data: "):
                    data.append(json.loads(line[6:]))
                if len(data) == 2:
                    break
        # Only estate A's readings, and no event at all for B's batch.
        assert [[r["value"] for r in batch] for batch in data] == [[0.4], [0.5]]
    finally:
        server.should_exit = True
        app_ctx.shutdown.set()
        await serving


async def test_the_qr_labels_of_another_estate_are_a_404(scoped: Scoped) -> None:
    tech = scoped.auth.get_by_username("tech-a")
    assert tech is not None
    cookies = {SESSION_COOKIE: scoped.auth.issue_token(tech, TokenKind.SESSION).token}
    scoped.client.cookies.update(cookies)
    try:
        assert (await scoped.client.get(f"/labels?estate={A}")).status_code == 200
        assert (await scoped.client.get("/labels")).status_code == 200  # one estate in scope: unnamed
        theirs = await scoped.client.get(f"/labels?estate={B}")
        assert theirs.status_code == 404
        assert (await scoped.client.get(f"/label/dom-p1?estate={B}")).status_code == 404
    finally:
        scoped.client.cookies.clear()


async def test_an_estate_scoped_supervisor_reads_only_the_audit_rows_of_that_estates_records(
        scoped: Scoped) -> None:
    mine = scoped.as_("sup-b")
    rows = (await scoped.client.get("/api/audit?limit=500", headers=mine)).json()["data"]
    seen = {(r["entity"], r["entity_id"]) for r in rows}
    assert ("task", str(scoped.tasks[B])) in seen
    assert ("alarm", str(scoped.alarms[B])) in seen
    assert ("handover", str(scoped.handovers[B])) in seen
    for theirs in (("task", str(scoped.tasks[A])), ("alarm", str(scoped.alarms[A])),
                   ("handover", str(scoped.handovers[A]))):
        assert theirs not in seen
    assert not {r["entity"] for r in rows} & {"user", "api_token", "deputy"}  # people: no estate
    narrowed = await scoped.client.get(f"/api/audit?entity=task&entity_id={scoped.tasks[A]}", headers=mine)
    assert narrowed.json() == {"data": [], "count": 0}
    csv = (await scoped.client.get("/api/audit?format=csv", headers=mine)).text
    assert f",task,{scoped.tasks[B]}," in csv
    assert f",task,{scoped.tasks[A]}," not in csv
    organisation = scoped.as_(scoped.people.supervisor.username)
    every = (await scoped.client.get("/api/audit?limit=500", headers=organisation)).json()["data"]
    wanted = {("task", str(scoped.tasks[A])), ("task", str(scoped.tasks[B])),
              ("user", str(scoped.people.admin.id))}
    assert wanted <= {(r["entity"], r["entity_id"]) for r in every}


async def test_the_estate_qualified_paths_serve_the_same_routes_within_the_scope(scoped: Scoped) -> None:
    me = scoped.as_("tech-a")
    latest = (await scoped.client.get(f"/api/estates/{A}/rooms/dom/latest", headers=me)).json()["data"]
    assert [r["value"] for r in latest if r["sensor"] == "dom-header-pressure"] == [0.31]
    tasks = (await scoped.client.get(f"/api/estates/{A}/tasks", headers=me)).json()
    assert [t["estate"] for t in tasks["data"]] == [A]
    assert (await scoped.client.get(f"/api/estates/{A}", headers=me)).json()["id"] == A
    for path in (f"/api/estates/{B}", f"/api/estates/{B}/rooms/dom/latest", f"/api/estates/{B}/tasks",
                 f"/api/estates/{B}/sensors/dom-header-pressure/history?start=0&end=3600&step=60",
                 f"/api/estates/{B}/calendar",
                 f"/api/estates/{B}/handovers", "/api/estates/nowhere/tasks", "/api/estates/nowhere",
                 f"/api/estates/{A}/tasks/{scoped.tasks[A]}",  # a record route has no estate form
                 ):
        resp = await scoped.client.get(path, headers=me)
        assert resp.status_code == 404, (path, resp.text)
    sup_b = scoped.as_("sup-b")
    assert (await scoped.client.get(f"/api/estates/{B}/reports/monthly/2026-01", headers=sup_b)).status_code \
        == 200
    assert (await scoped.client.get(f"/api/estates/{A}/reports/monthly/2026-01", headers=sup_b)).status_code \
        == 404
    # The path's estate wins over a query naming another one.
    sneaky = await scoped.client.get(f"/api/estates/{B}/tasks?estate={A}", headers=me)
    assert sneaky.status_code == 404
    organisation = scoped.as_(scoped.people.supervisor.username)
    theirs = (await scoped.client.get(f"/api/estates/{B}/rooms/dom/latest?estate={A}",
                                      headers=organisation)).json()["data"]
    assert [r["value"] for r in theirs if r["sensor"] == "dom-header-pressure"] == [0.52]
    schema = (await scoped.client.get("/openapi.json")).json()
    assert "/api/estates/{estate}" in schema["paths"]


async def test_the_alarm_lists_answer_shared_within_a_second_is_per_scope_and_news_shows_at_once(
        scoped: Scoped, alarms: AlarmService) -> None:
    """Fifty centre screens asking for one list within a second share one query (`api.answer_cache`); the
    answer is never another scope's, and an acknowledgement or a new alarm shows in the very next one."""
    organisation = scoped.as_(scoped.people.supervisor.username)
    cache = scoped.ctx.alarm_lists
    first = (await scoped.client.get("/api/alarms?state=active", headers=organisation)).json()
    again = (await scoped.client.get("/api/alarms?state=active", headers=organisation)).json()
    assert again == first
    assert first["count"] == 2
    assert (cache.hits, cache.misses) == (1, 1)  # the second screen's answer came without a query
    mine = (await scoped.client.get("/api/alarms?state=active", headers=scoped.as_("tech-a"))).json()
    assert [row["estate"] for row in mine["data"]] == [A]  # a narrower scope: its own answer
    acked = await scoped.client.post(f"/api/alarms/{scoped.alarms[B]}/ack", headers=scoped.as_("sup-b"))
    assert acked.status_code == 200
    after_ack = (await scoped.client.get("/api/alarms?state=active", headers=organisation)).json()
    acknowledged = {row["estate"]: row["acknowledged_at"] is not None for row in after_ack["data"]}
    assert acknowledged == {A: False, B: True}
    alarms.apply(AlarmEvent(AlarmAction.RAISED, AlarmKey("dom-p2", "dry_run", A), Severity.CRITICAL, 0.0,
                            "dom", Text(zh="干转", en="dry run")))
    after_event = (await scoped.client.get("/api/alarms?state=active", headers=organisation)).json()
    assert after_event["count"] == 3
    # The answer is what the route always gave: the page model's JSON.
    assert set(after_event) == {"data", "count"}
    assert {"id", "estate", "severity", "silenced_by_exception"} <= set(after_event["data"][0])


async def test_the_task_lists_answer_is_shared_within_a_second_and_a_new_task_shows_at_once(
        scoped: Scoped) -> None:
    organisation = scoped.as_(scoped.people.supervisor.username)
    cache = scoped.ctx.task_lists
    first = (await scoped.client.get("/api/tasks?limit=50", headers=organisation)).json()
    assert (await scoped.client.get("/api/tasks?limit=50", headers=organisation)).json() == first
    assert (cache.hits, cache.misses) == (1, 1)
    assert first["count"] == 2
    mine = (await scoped.client.get("/api/tasks?limit=50", headers=scoped.as_("tech-a"))).json()
    assert [row["estate"] for row in mine["data"]] == [A]
    reported = await scoped.client.post(f"/api/tasks?estate={A}", headers=scoped.as_("tech-a"), json={
        "title": {"zh": "漏水", "en": "a leak"}, "room": "dom"})
    assert reported.status_code == 201, reported.text
    after = (await scoped.client.get("/api/tasks?limit=50", headers=organisation)).json()
    assert after["count"] == 3
    assert reported.json()["id"] in {row["id"] for row in after["data"]}
