"""What the operator's and technician's screens need from the server (both databases): a routine round done
without a fault cause, corrective tasks described in both languages, acknowledgement comments in an alarm's
own record (readable by the operator), and the thresholds in force beside each sensor.
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
from maintenance.audit import AuditTrail, history
from maintenance.auth import AuthService
from maintenance.errors import InvalidInput
from maintenance.models import User
from maintenance.task_flow import ChecklistItem, CheckResult
from maintenance.tasks import TaskFilter, TaskService
from maintenance.vocab import TaskKind
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.bus import LiveBus
from pumpwatch.catalog import SensorCatalog
from pumpwatch.clock import FakeClock
from pumpwatch.site import Severity, Text
from pumpwatch.sitefile import load_site
from tests.support.state import People

HV = "harbour-view"  # the estate of examples/site.yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"
ROUND = Text(zh="日常巡检：生活水泵房", en="Daily round: domestic pump room")
ITEMS = [ChecklistItem("noise", Text(zh="水泵无异响", en="No unusual pump noise")),
         ChecklistItem("gauge", Text(zh="出水压力表读数", en="Outlet pressure gauge reading"))]


def _round(tasks: TaskService, people: People, kind: TaskKind = TaskKind.INSPECTION) -> int:
    task = tasks.create_task(people.supervisor, ROUND, kind=kind, checklist=ITEMS)
    tasks.start(task.id, people.technician)
    return int(task.id)


def test_a_routine_round_whose_items_all_passed_is_completed_without_a_fault_cause(
        tasks: TaskService, people: People) -> None:
    task_id = _round(tasks, people)
    tasks.record_check(task_id, people.technician, "noise", CheckResult.OK)
    tasks.record_check(task_id, people.technician, "gauge", CheckResult.NOT_APPLICABLE)
    done = tasks.complete(task_id, people.technician, None, "round done, all in order")
    assert (done.state, done.fault_cause, done.action_taken) == ("done", None, "round done, all in order")
    with pytest.raises(InvalidInput, match="action taken"):  # what was done is still required
        tasks.complete(_round(tasks, people), people.technician, None, " ")


def test_a_round_that_found_a_fault_and_a_fault_report_still_need_their_cause(
        tasks: TaskService, people: People) -> None:
    task_id = _round(tasks, people)
    tasks.record_check(task_id, people.technician, "noise", CheckResult.FAULT, note="bearing rumble")
    tasks.record_check(task_id, people.technician, "gauge", CheckResult.OK)
    with pytest.raises(InvalidInput, match="fault cause"):
        tasks.complete(task_id, people.technician, "  ", "noted")
    assert tasks.complete(task_id, people.technician, "worn bearing", "noted").fault_cause == "worn bearing"

    fault = tasks.create_task(people.operator, Text(zh="报修：1号泵", en="Fault: pump 1"))
    tasks.start(fault.id, people.technician)
    with pytest.raises(InvalidInput, match="fault cause"):
        tasks.complete(fault.id, people.technician, None, "replaced the seal")


def test_a_corrective_task_is_described_in_both_languages_without_internal_keys(
        tasks: TaskService, people: People) -> None:
    task_id = _round(tasks, people)
    tasks.record_check(task_id, people.technician, "gauge", CheckResult.FAULT, value=0.62, note="压力偏高")
    [fix], _ = tasks.list_tasks(TaskFilter(kind=TaskKind.CORRECTIVE.value))
    assert fix.plan_key == f"corrective:{task_id}:gauge"
    assert fix.title_zh == "整改：出水压力表读数（0.62）"
    assert fix.title_en == "Fix: Outlet pressure gauge reading (0.62)"
    zh, en = (fix.description or "").split("\n")
    assert zh == f"来自任务 #{task_id}（日常巡检：生活水泵房）的检查项「出水压力表读数」：压力偏高"
    assert en == (f"From task #{task_id} (Daily round: domestic pump room), "
                  "item “Outlet pressure gauge reading”: 压力偏高")
    assert "gauge" not in zh + en.replace("gauge reading", "")  # the item's key is not shown, its name is


def _leak(clock: FakeClock) -> AlarmEvent:
    return AlarmEvent(action=AlarmAction.RAISED, key=AlarmKey("dom-ptank", "leak", HV),
                      severity=Severity.CRITICAL, ts=clock.now(), room="dom",
                      message=Text(zh="法兰漏水", en="Flange leak"), value=1.0, sensor="dom-flange-leak")


def test_acknowledgement_comments_are_kept_in_the_alarms_record(
        alarms: AlarmService, people: People, clock: FakeClock, sessions: sessionmaker[Session]) -> None:
    alarm = alarms.apply(_leak(clock))
    assert alarm is not None
    acked = alarms.acknowledge(alarm.id, people.operator, "  已通知维修，关闭进水阀 ")
    assert acked.acknowledged_by == people.operator.id
    again = alarms.acknowledge(alarm.id, people.supervisor, "已安排更换垫片")
    assert (again.acknowledged_by, again.acknowledged_at) == (acked.acknowledged_by, acked.acknowledged_at)
    alarms.acknowledge(alarm.id, people.supervisor)  # a second plain acknowledgement adds nothing
    with pytest.raises(InvalidInput):
        alarms.acknowledge(alarm.id, people.operator, "x" * 2001)
    with sessions() as session:
        rows = [(r.action, r.actor, (r.after or {}).get("comment"))
                for r in history(session, "alarm", alarm.id)]
    assert rows == [("raised", "system", None),
                    ("acknowledged", str(people.operator.id), "已通知维修，关闭进水阀"),
                    ("acknowledged", str(people.supervisor.id), "已安排更换垫片")]


@dataclass
class Client:
    http: httpx.AsyncClient
    auth: AuthService

    def as_(self, user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.auth.issue_token(user).token}"}


@pytest.fixture
async def client(tmp_path: Path, auth: AuthService, tasks: TaskService, alarms: AlarmService,
                 clock: FakeClock, sessions: sessionmaker[Session]) -> AsyncIterator[Client]:
    site = load_site(EXAMPLE)
    store = EmbeddedStore(tmp_path / "series.db")
    await store.start()
    ctx = ApiContext(site=site, catalog=SensorCatalog(site), store=store, readings=LiveBus(),
                     alarm_events=LiveBus(), auth=auth, tasks=tasks, alarms=alarms, clock=clock,
                     attachments_dir=tmp_path / "files", audit=AuditTrail(sessions))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)),
                                 base_url="http://api") as http:
        yield Client(http, auth)
    await store.close()


async def test_the_screens_get_comments_history_thresholds_and_routine_completion_over_http(
        client: Client, alarms: AlarmService, tasks: TaskService, people: People, clock: FakeClock) -> None:
    http, operator = client.http, client.as_(people.operator)
    alarm = alarms.apply(_leak(clock))
    assert alarm is not None
    resp = await http.post(f"/api/alarms/{alarm.id}/ack", json={"comment": "关闭进水阀"}, headers=operator)
    assert resp.status_code == 200, resp.text
    resp = await http.post(f"/api/alarms/{alarm.id}/ack", headers=operator)  # no body: as before
    assert resp.status_code == 200, resp.text
    resp = await http.get(f"/api/alarms/{alarm.id}/history", headers=operator)  # not only the audit readers
    assert resp.status_code == 200, resp.text
    entries = resp.json()["data"]
    assert [(e["action"], (e["after"] or {}).get("comment")) for e in entries] == [
        ("raised", None), ("acknowledged", "关闭进水阀")]
    assert entries[1]["actor_name"] == people.operator.display_name
    assert (await http.get("/api/alarms/999999/history", headers=operator)).status_code == 404
    assert (await http.get("/api/audit", headers=operator)).status_code == 403  # the rest stays closed

    sensors = {s["id"]: s for s in (await http.get("/api/sensors", headers=operator)).json()["data"]}
    assert sensors["dom-tank-level"]["thresholds"] == [
        {"when": "below", "value": 0.8, "severity": "major", "hysteresis": 0.1, "for_seconds": 60.0},
        {"when": "below", "value": 0.3, "severity": "critical", "hysteresis": 0.1, "for_seconds": 10.0}]
    assert sensors["dom-tank-level"]["threshold_source"] == "sensor"
    assert sensors["dom-p1-vibration"]["threshold_source"] == "site default"
    flow = sensors["dom-header-flow"]
    assert (flow["thresholds"], flow["threshold_source"]) == ([], "none")

    technician = client.as_(people.technician)
    routine = _round(tasks, people)
    for key in ("noise", "gauge"):
        resp = await http.put(f"/api/tasks/{routine}/checklist/{key}", json={"result": "ok"},
                              headers=technician)
        assert resp.status_code == 200, resp.text
    resp = await http.post(f"/api/tasks/{routine}/complete", json={"action_taken": "round done"},
                           headers=technician)
    assert resp.status_code == 200, resp.text
    assert resp.json()["fault_cause"] is None
    fault = tasks.create_task(people.operator, Text(zh="报修：1号泵", en="Fault: pump 1"))
    tasks.start(fault.id, people.technician)
    resp = await http.post(f"/api/tasks/{fault.id}/complete", json={"action_taken": "replaced"},
                           headers=technician)
    assert resp.status_code == 422
    assert resp.json()["type"].endswith("/invalid-input")
