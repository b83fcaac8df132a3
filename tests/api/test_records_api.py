"""Approvals' separation of duties, approved exceptions, shift handovers and the audit trail over HTTP,
on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
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
from maintenance.approvals import ApprovalService
from maintenance.audit import AuditTrail
from maintenance.auth import AuthService
from maintenance.exceptions import ExceptionService
from maintenance.handover import HandoverService
from maintenance.models import User
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.site import Severity, Text
from pumpwatch.sitefile import load_site
from tests.support.state import PASSWORD, People, clock_time

HV = "harbour-view"  # the estate of examples/site.yaml

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 64
PDF = b"%PDF-1.4\n" + b"\x00" * 64


@dataclass
class Records:
    client: httpx.AsyncClient
    ctx: ApiContext
    people: People
    clock: FakeClock
    tokens: dict[str, dict[str, str]]

    def as_(self, user: User) -> dict[str, str]:
        return self.tokens[user.username]

    def later(self, hours: float) -> str:
        return (clock_time(self.clock) + timedelta(hours=hours)).isoformat()


@pytest.fixture
async def api(tmp_path: Path, sessions: sessionmaker[Session], clock: FakeClock, auth: AuthService,
              tasks: TaskService, alarms: AlarmService, people: People) -> AsyncIterator[Records]:
    site = load_site(EXAMPLE)
    store = EmbeddedStore(tmp_path / "series.db")
    await store.start()
    ctx = ApiContext(site=site, catalog=SensorCatalog(site), store=store, readings=LiveBus(),
                     alarm_events=LiveBus(), auth=auth, tasks=tasks, alarms=alarms, clock=clock,
                     attachments_dir=tmp_path / "files", approvals=ApprovalService(sessions, clock, tasks),
                     exceptions=ExceptionService(sessions, clock, tasks, site),
                     handovers=HandoverService(sessions, clock, site), audit=AuditTrail(sessions))
    everyone = (people.operator, people.technician, people.technician2, people.supervisor, people.supervisor2,
                people.director, people.admin)
    tokens = {u.username: {"Authorization": f"Bearer {auth.issue_token(u).token}"} for u in everyone}
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield Records(client, ctx, people, clock, tokens)
    await store.close()


def refused(resp: httpx.Response, reason: str) -> None:
    """A 403 problem whose detail says why."""
    assert resp.status_code == 403, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert problem["type"].endswith("/forbidden")
    assert reason in problem["detail"], problem["detail"]


def switch_alarm(ctx: ApiContext, clock: FakeClock, asset: str) -> int:
    message = Text(zh="开关未置于自动", en="switch not in AUTO")
    key = AlarmKey(asset, "switch_not_auto", HV)
    alarm = ctx.alarms.apply(AlarmEvent(AlarmAction.RAISED, key, Severity.MINOR, clock.now(), "dom", message,
                                        1.0, f"{asset}-switch"))
    assert alarm is not None
    return alarm.id


# --- separation of duties ------------------------------------------------------------------------------


async def test_each_separation_of_duties_refusal_is_a_403_problem_with_its_reason(api: Records) -> None:
    p, c = api.people, api.client
    visit = {"visitor": "Li Wei", "purpose": "meter reading", "room": "dom", "window_start": api.later(-0.1),
             "window_end": api.later(2), "escort_id": p.technician.id}
    own_visit = (await c.post("/api/access-requests", json=visit, headers=api.as_(p.supervisor))).json()
    refused(await c.post(f"/api/access-requests/{own_visit['id']}/approve", headers=api.as_(p.supervisor)),
            "filed them")
    own_change = (await c.post("/api/change-requests", json={"title": "K1", "description": "new contactor"},
                               headers=api.as_(p.supervisor))).json()
    refused(await c.post(f"/api/change-requests/{own_change['id']}/approve", headers=api.as_(p.supervisor)),
            "filed them")
    change = (await c.post("/api/change-requests", json={"title": "K1", "description": "new contactor"},
                           headers=api.as_(p.technician))).json()
    refused(await c.post(f"/api/change-requests/{change['id']}/approve", headers=api.as_(p.admin)),
            "needs the supervisor")
    refused(await c.post(f"/api/change-requests/{change['id']}/reject", json={"reason": "no"},
                         headers=api.as_(p.admin)), "needs the supervisor")
    # The visit approved by the other supervisor and the director: only the escort logs the entry.
    for approver in (p.supervisor2, p.director):
        assert (await c.post(f"/api/access-requests/{own_visit['id']}/approve",
                             headers=api.as_(approver))).status_code == 200
    for someone in (p.supervisor, p.technician2, p.admin):
        refused(await c.post(f"/api/access-requests/{own_visit['id']}/enter", headers=api.as_(someone)),
                "escort")
    assert (await c.post(f"/api/access-requests/{own_visit['id']}/enter",
                         headers=api.as_(p.technician))).status_code == 200
    exception = (await c.post("/api/exceptions", json={
        "sensor": "dom-p1-switch", "reason": "valve", "starts_at": api.later(0), "ends_at": api.later(4)},
        headers=api.as_(p.supervisor))).json()
    refused(await c.post(f"/api/exceptions/{exception['id']}/approve", headers=api.as_(p.supervisor)),
            "filed them")
    refused(await c.post(f"/api/exceptions/{exception['id']}/approve", headers=api.as_(p.admin)),
            "needs the supervisor")


async def test_the_deputy_escort_is_named_on_the_request_and_may_confirm(api: Records) -> None:
    p, c = api.people, api.client
    body = {"visitor": "Li Wei", "purpose": "meter reading", "room": "dom", "window_start": api.later(-0.1),
            "window_end": api.later(2), "escort_id": p.technician.id, "escort_deputy_id": p.technician2.id}
    created = await c.post("/api/access-requests", json=body, headers=api.as_(p.operator))
    assert created.status_code == 201, created.text
    visit = created.json()
    assert visit["escort_deputy_id"] == p.technician2.id
    for approver in (p.supervisor, p.director):
        await c.post(f"/api/access-requests/{visit['id']}/approve", headers=api.as_(approver))
    entered = await c.post(f"/api/access-requests/{visit['id']}/enter", headers=api.as_(p.technician2))
    assert entered.status_code == 200, entered.text
    same = await c.post("/api/access-requests", json=body | {"escort_deputy_id": p.technician.id},
                        headers=api.as_(p.operator))
    assert same.status_code == 422


# --- approved exceptions -------------------------------------------------------------------------------


async def test_an_exception_silences_its_alarm_on_the_board_until_revoked(api: Records) -> None:
    p, c = api.people, api.client
    asked = await c.post("/api/exceptions", json={
        "asset": "dom-p1", "reason": "pump 1 on MANUAL: check valve replaced", "starts_at": api.later(0),
        "ends_at": api.later(8)}, headers=api.as_(p.technician))
    assert asked.status_code == 201, asked.text
    exception = asked.json()
    assert (exception["asset"], exception["alarm_type"], exception["sensor"], exception["state"]) == (
        "dom-p1", "switch_not_auto", "dom-p1-switch", "pending")
    approved = await c.post(f"/api/exceptions/{exception['id']}/approve", headers=api.as_(p.supervisor2))
    assert approved.json()["state"] == "approved"
    silenced = switch_alarm(api.ctx, api.clock, "dom-p1")
    other = switch_alarm(api.ctx, api.clock, "dom-p2")
    board = (await c.get("/api/alarms", params={"state": "active"}, headers=api.as_(p.operator))).json()
    shown = {a["id"]: (a["silenced_by_exception"], a["silenced_until"]) for a in board["data"]}
    assert shown[silenced][0] == exception["id"]
    assert shown[silenced][1] is not None
    assert shown[silenced][1].replace("Z", "+00:00") == exception["ends_at"].replace("Z", "+00:00")
    assert shown[other] == (None, None)
    one = (await c.get(f"/api/alarms/{silenced}", headers=api.as_(p.operator))).json()
    assert one["silenced_by_exception"] == exception["id"]
    assert (await c.get(f"/api/alarms/{silenced}/task", headers=api.as_(p.operator))).json() is None
    assert (await c.get(f"/api/alarms/{other}/task", headers=api.as_(p.operator))).json() is not None
    revoked = await c.post(f"/api/exceptions/{exception['id']}/revoke",
                           json={"reason": "valve in; AUTO again"}, headers=api.as_(p.supervisor))
    assert revoked.json()["state"] == "revoked"
    task = (await c.get(f"/api/alarms/{silenced}/task", headers=api.as_(p.operator))).json()
    assert task is not None
    assert revoked.json()["task_id"] == task["id"]
    after = (await c.get(f"/api/alarms/{silenced}", headers=api.as_(p.operator))).json()
    assert after["silenced_by_exception"] is None
    listed = (await c.get("/api/exceptions", params={"state": "revoked"}, headers=api.as_(p.operator))).json()
    assert [e["id"] for e in listed["data"]] == [exception["id"]]


async def test_bad_exception_requests_are_422(api: Records) -> None:
    p, c = api.people, api.client
    base = {"sensor": "dom-p1-switch", "reason": "valve", "starts_at": api.later(0), "ends_at": api.later(4)}
    for change in ({"sensor": "dom-p1-temp"}, {"starts_at": "2026-01-01T01:00:00"},  # naive: whose time?
                   {"ends_at": api.later(-1)}, {"reason": ""}, {"color": "red"}):
        resp = await c.post("/api/exceptions", json=base | change, headers=api.as_(p.technician))
        assert resp.status_code == 422, (change, resp.text)
    assert (await c.get("/api/exceptions", params={"state": "lost"}, headers=api.as_(p.technician))
            ).status_code == 422
    assert (await c.get("/api/exceptions/999", headers=api.as_(p.technician))).status_code == 404


# --- shift handovers -----------------------------------------------------------------------------------


async def test_a_handover_is_drafted_submitted_accepted_with_a_drawn_signature_and_found(
        api: Records) -> None:
    p, c = api.people, api.client
    alarm = switch_alarm(api.ctx, api.clock, "dom-p2")
    draft = (await c.get("/api/handovers/draft", params={"room": "dom"}, headers=api.as_(p.operator))).json()
    assert [a["id"] for a in draft["open_alarms"]] == [alarm]
    assert [a["id"] for a in draft["shift_alarms"]] == [alarm]
    assert [t["title"]["en"] for t in draft["open_tasks"]] == ["switch not in AUTO"]
    body = {"room": "dom", "incoming_id": p.technician.id, "notes": "pump 2 left on MANUAL by the contractor",
            "abnormal_readings": [{"sensor": "dom-header-pressure", "value": 0.19, "note": "low at night"}],
            "keys_tools": [{"item": "pump-room key", "quantity": 2},
                           {"item": "clamp meter", "state": "lent", "note": "with the contractor"}]}
    created = await c.post("/api/handovers", json=body, headers=api.as_(p.operator))
    assert created.status_code == 201, created.text
    handover = created.json()
    assert handover["open_alarms"][0]["id"] == alarm
    assert handover["keys_tools"][1]["state"] == "lent"
    url = f"/api/handovers/{handover['id']}"
    refused(await c.post(f"{url}/accept", data={"signed_name": "Tina"}, headers=api.as_(p.technician2)),
            "names")
    unsigned = await c.post(f"{url}/accept", data={"signed_name": " "}, headers=api.as_(p.technician))
    assert unsigned.status_code == 422
    pdf = await c.post(f"{url}/accept", files={"signature": ("sig.pdf", PDF, "application/pdf")},
                       headers=api.as_(p.technician))
    assert pdf.status_code == 422
    accepted = await c.post(f"{url}/accept", data={"signed_name": "Tom"},
                            files={"signature": ("sig.png", PNG, "image/png")}, headers=api.as_(p.technician))
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["state"], accepted.json()["signed_name"]) == ("accepted", "Tom")
    assert accepted.json()["signature_type"] == "image/png"
    image = await c.get(f"{url}/signature", headers=api.as_(p.supervisor))
    assert (image.status_code, image.content, image.headers["content-type"]) == (200, PNG, "image/png")
    found = (await c.get("/api/handovers", params={"q": "contractor", "person": p.technician.id,
                                                   "state": "accepted"}, headers=api.as_(p.director))).json()
    assert [h["id"] for h in found["data"]] == [handover["id"]]
    assert (await c.get("/api/handovers", params={"since": "2026-01-01T00:00:00"},
                        headers=api.as_(p.director))).status_code == 422  # a naive time is refused
    nowhere = [{"sensor": "nowhere", "value": 1}]
    bad = await c.post("/api/handovers", json=body | {"abnormal_readings": nowhere},
                       headers=api.as_(p.operator))
    assert bad.status_code == 422


async def test_a_handover_without_a_drawn_signature_has_no_image(api: Records) -> None:
    p, c = api.people, api.client
    handover = (await c.post("/api/handovers", json={"room": "fire"}, headers=api.as_(p.technician))).json()
    accepted = await c.post(f"/api/handovers/{handover['id']}/accept", data={"signed_name": "Olivia"},
                            headers=api.as_(p.operator))
    assert accepted.status_code == 200, accepted.text
    assert (await c.get(f"/api/handovers/{handover['id']}/signature",
                        headers=api.as_(p.operator))).status_code == 404


# --- the audit trail -----------------------------------------------------------------------------------


async def test_the_audit_route_filters_pages_and_exports_inert_csv(api: Records, auth: AuthService) -> None:
    p, c = api.people, api.client
    mallory = auth.create_user("mallory", PASSWORD, ["operator"], display_name="=cmd|' /C calc'!A0",
                               actor=p.admin)
    headers = {"Authorization": f"Bearer {auth.issue_token(mallory).token}"}
    for n in range(3):
        await c.post("/api/tasks", json={"title": {"zh": f"故障{n}", "en": f"fault {n}"}, "asset": "dom-p1"},
                     headers=headers)
    page = (await c.get("/api/audit", params={"user": mallory.id, "entity": "task", "limit": 2},
                        headers=api.as_(p.director))).json()
    assert page["count"] == 3
    assert [e["action"] for e in page["data"]] == ["created", "created"]
    assert {e["actor_name"] for e in page["data"]} == {"=cmd|' /C calc'!A0"}  # JSON keeps it as it is
    assert page["data"][0]["after"]["asset"] == "dom-p1"
    by_asset = (await c.get("/api/audit", params={"asset": "dom-p1"}, headers=api.as_(p.supervisor))).json()
    assert by_asset["count"] == 3
    other = await c.get("/api/audit", params={"asset": "dom-p2"}, headers=api.as_(p.admin))
    assert other.json()["count"] == 0
    until = (await c.get("/api/audit", params={"until": api.later(-1)}, headers=api.as_(p.admin))).json()
    assert until["count"] == 0
    exported = await c.get("/api/audit", params={"user": mallory.id, "entity": "task", "format": "csv"},
                           headers=api.as_(p.supervisor))
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert len(table) == 4
    assert {row[3] for row in table[1:]} == {"'=cmd|' /C calc'!A0"}  # a spreadsheet shows it as text
    for params in ({"user": "bob"}, {"since": "2026-01-01T00:00:00"}, {"format": "xlsx"}, {"limit": 501}):
        resp = await c.get("/api/audit", params=params, headers=api.as_(p.admin))
        assert resp.status_code == 422, params
    for someone in (p.technician, p.operator):
        refused(await c.get("/api/audit", headers=api.as_(someone)), "supervisor")
        refused(await c.get("/api/audit", params={"format": "csv"}, headers=api.as_(someone)), "supervisor")


async def test_no_route_writes_the_audit_trail(api: Records) -> None:
    # Every API route, as the app publishes them: only reads reach the trail.
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    audit_paths = {path: set(operations) for path, operations in paths.items() if "audit" in path}
    assert audit_paths == {"/api/audit": {"get"}}
    writes = {(method, path) for path, operations in paths.items() for method, operation in operations.items()
              if method != "get" and "audit" in operation.get("tags", [])}
    assert writes == set()
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for url in ("/api/audit", "/api/audit/1"):
            resp = await api.client.request(method, url, json={"action": "erased"},
                                            headers=api.as_(api.people.admin))
            assert resp.status_code in (404, 405), (method, url, resp.status_code)
