"""The task record over HTTP (both databases): every cycle in `GET /api/tasks/{id}`, documents for items."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
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
from maintenance.task_flow import ChecklistItem, CheckResult
from maintenance.tasks import TaskService
from maintenance.vocab import TaskKind
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.site import Text
from pumpwatch.sitefile import load_site
from tests.support.state import People

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
TITLE = Text(zh="水箱清洗消毒", en="Tank cleaning and disinfection")
ITEMS = [ChecklistItem("drain", Text(zh="排空并清洗水箱", en="Tank drained and cleaned")),
         ChecklistItem("water-report", Text(zh="水质检测报告", en="Water-quality test report"))]


@dataclass
class Client:
    http: httpx.AsyncClient
    auth: AuthService

    def as_(self, user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.auth.issue_token(user).token}"}


@pytest.fixture
async def client(tmp_path: Path, auth: AuthService, tasks: TaskService, alarms: AlarmService,
                 clock: FakeClock) -> AsyncIterator[Client]:
    site = load_site(EXAMPLE)
    store = EmbeddedStore(tmp_path / "series.db")
    await store.start()
    ctx = ApiContext(site=site, catalog=SensorCatalog(site), store=store, readings=LiveBus(),
                     alarm_events=LiveBus(), auth=auth, tasks=tasks, alarms=alarms, clock=clock,
                     attachments_dir=tmp_path / "files")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)),
                                 base_url="http://api") as http:
        yield Client(http, auth)
    await store.close()


def _cleaning(tasks: TaskService, people: People, sessions: sessionmaker[Session]) -> int:
    task = tasks.create_task(people.supervisor, TITLE, kind=TaskKind.INSPECTION, checklist=ITEMS)
    with sessions.begin() as session:  # what the scheduler sets for a plan item that needs a document
        row = session.get(Task, task.id)
        assert row is not None
        row.checklist = [item | {"attachment": "required"} if item["key"] == "water-report" else item
                         for item in row.checklist]
    tasks.assign(task.id, people.supervisor, [people.technician.id])
    tasks.start(task.id, people.technician)
    for item in ITEMS:
        tasks.record_check(task.id, people.technician, item.key, CheckResult.OK)
    return task.id


async def test_one_task_comes_with_all_its_cycles_oldest_first(client: Client, tasks: TaskService,
                                                               people: People, clock: FakeClock) -> None:
    p = people
    task = tasks.create_task(p.operator, TITLE)
    tasks.assign(task.id, p.supervisor, [p.technician.id])
    tasks.start(task.id, p.technician)
    tasks.complete(task.id, p.technician, "sediment", "flushed")
    await clock.advance(60)
    sent = await client.http.post(f"/api/tasks/{task.id}/send-back", json={"reason": "no lab report"},
                                  headers=client.as_(p.supervisor))
    assert sent.status_code == 200, sent.text
    assert [(c["number"], c["current"]) for c in sent.json()["cycles"]] == [(1, False), (2, True)]
    body = (await client.http.get(f"/api/tasks/{task.id}", headers=client.as_(p.operator))).json()
    assert (body["cycle"], body["state"], body["fault_cause"]) == (2, "sent_back", None)
    first, second = body["cycles"]
    assert (first["reason"], first["fault_cause"], first["technician_signed_by"]) == (
        "created", "sediment", p.technician.id)
    assert (first["sent_back_by"], first["sent_back_reason"]) == (p.supervisor.id, "no lab report")
    assert (first["responded_by"], first["started_by"], first["workers"]) == (
        p.supervisor.id, p.technician.id, [p.technician.id])
    assert (second["reason"], second["opened_by"], second["fault_cause"]) == (
        "sent_back", p.supervisor.id, None)
    assert datetime.fromisoformat(body["due_at"]) == datetime.fromisoformat(second["resolution_due_at"])
    assert body["responded_at"] is None  # the rework is not taken on until the technician starts again
    listed = (await client.http.get("/api/tasks", headers=client.as_(p.operator))).json()["data"]
    assert "cycles" not in listed[0]  # lists stay light
    assert (listed[0]["cycle"], listed[0]["response_due_at"]) == (2, second["response_due_at"])


async def test_a_document_uploaded_for_its_item_lets_the_task_be_verified(
        client: Client, tasks: TaskService, people: People, sessions: sessionmaker[Session]) -> None:
    p = people
    task_id = _cleaning(tasks, p, sessions)
    tasks.complete(task_id, p.technician, "sediment", "drained, flushed, disinfected")
    url = f"/api/tasks/{task_id}"
    refused = await client.http.post(f"{url}/verify", headers=client.as_(p.supervisor))
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "'water-report' (Water-quality test report / 水质检测报告)" in refused.json()["detail"]

    files = {"file": ("report.pdf", PDF, "application/pdf")}
    wrong = await client.http.post(f"{url}/attachments", files=files, data={"checklist_key": "lab"},
                                   headers=client.as_(p.technician))
    assert wrong.status_code == 422
    assert "no item 'lab'" in wrong.json()["detail"]
    plain = await client.http.post(f"{url}/attachments", files=files, headers=client.as_(p.technician))
    assert plain.json()["checklist_key"] is None
    assert (await client.http.post(f"{url}/verify", headers=client.as_(p.supervisor))).status_code == 409
    linked = await client.http.post(f"{url}/attachments", files=files, data={"checklist_key": "water-report"},
                                    headers=client.as_(p.technician))
    assert linked.status_code == 201, linked.text
    assert (linked.json()["checklist_key"], linked.json()["cycle"]) == ("water-report", 1)
    verified = await client.http.post(f"{url}/verify", headers=client.as_(p.supervisor))
    assert verified.status_code == 200, verified.text
    assert verified.json()["cycles"][0]["supervisor_signed_by"] == p.supervisor.id


def _after_creation(body: dict[str, str], field: str) -> timedelta:
    return datetime.fromisoformat(body[field]) - datetime.fromisoformat(body["created_at"])


async def test_the_response_deadline_and_response_time_are_on_the_task(
        client: Client, tasks: TaskService, people: People, clock: FakeClock) -> None:
    task = tasks.create_task(people.operator, TITLE)
    created = (await client.http.get(f"/api/tasks/{task.id}", headers=client.as_(people.operator))).json()
    assert _after_creation(created, "response_due_at") == timedelta(hours=24)
    await clock.advance(3600)
    assigned = await client.http.post(f"/api/tasks/{task.id}/assign",
                                      json={"assignees": [people.technician.id]},
                                      headers=client.as_(people.supervisor))
    body = assigned.json()
    assert _after_creation(body, "responded_at") == timedelta(hours=1)
    assert body["cycles"][0]["responded_by"] == people.supervisor.id
