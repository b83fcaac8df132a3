"""The audit trail read back on SQLite and PostgreSQL: filters, pages, actor names, CSV export with inert
formula cells, and rows that can be added but never changed or deleted."""

from __future__ import annotations

import csv
import inspect
import io
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from maintenance import audit
from maintenance.alarms import AlarmService
from maintenance.audit import AuditFilter, AuditTrail
from maintenance.auth import AuthService
from maintenance.errors import Forbidden, InvalidInput
from maintenance.models import AuditLog
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import FakeClock
from pumpwatch.site import Severity, Text
from tests.support.state import PASSWORD, People, advance, clock_time

HV = "harbour-view"  # the estate of examples/site.yaml


@pytest.fixture
def trail(sessions: sessionmaker[Session]) -> AuditTrail:
    return AuditTrail(sessions)


def leak(alarms: AlarmService, clock: FakeClock, asset: str) -> int:
    alarm = alarms.apply(AlarmEvent(AlarmAction.RAISED, AlarmKey(asset, "leak", HV), Severity.MAJOR,
                                    clock.now(),
                                    "dom", Text(zh="漏水", en="leak")))
    assert alarm is not None
    return alarm.id


def rows(trail: AuditTrail, **filters: Any) -> list[tuple[str, str, str]]:
    found, total = trail.search(AuditFilter(**filters), limit=500)
    assert total == len(found)
    return [(e.entity, e.entity_id, e.action) for e in found]


def test_filters_by_user_entity_id_asset_and_period(
        trail: AuditTrail, alarms: AlarmService, tasks: TaskService, people: People,
        clock: FakeClock) -> None:
    start = clock_time(clock)
    p1_alarm = leak(alarms, clock, "dom-p1")
    p1_task = alarms.task_for(p1_alarm)
    assert p1_task is not None
    advance(clock, 3600)
    middle = clock_time(clock)
    tasks.assign(p1_task.id, people.supervisor, [people.technician.id])
    p2_alarm = leak(alarms, clock, "dom-p2")
    by_hand = tasks.create_task(people.operator, Text(zh="门坏", en="door broken"), asset="dom-p1")

    assert rows(trail, actor=str(people.supervisor.id)) == [("task", str(p1_task.id), "assign")]
    assert rows(trail, actor=str(people.operator.id)) == [("task", str(by_hand.id), "created")]
    assert ("alarm", str(p2_alarm), "raised") in rows(trail, actor="system")
    assert rows(trail, entity="alarm") == [("alarm", str(p2_alarm), "raised"),
                                           ("alarm", str(p1_alarm), "raised")]
    assert rows(trail, entity="task", entity_id=str(p1_task.id)) == [
        ("task", str(p1_task.id), "assign"), ("task", str(p1_task.id), "created")]
    # The asset's tasks and alarms, whoever made them; nothing of the other pump.
    of_p1 = rows(trail, asset="dom-p1")
    assert sorted(of_p1) == sorted([
        ("task", str(by_hand.id), "created"), ("task", str(p1_task.id), "assign"),
        ("task", str(p1_task.id), "created"), ("alarm", str(p1_alarm), "raised")])
    # The first hour: the first alarm and its task; the users were made then too.
    assert rows(trail, since=start, until=middle, actor="system", entity="task") == [
        ("task", str(p1_task.id), "created")]
    assert ("alarm", str(p1_alarm), "raised") in rows(trail, since=start, until=middle)
    assert ("alarm", str(p2_alarm), "raised") in rows(trail, since=middle)
    assert ("alarm", str(p2_alarm), "raised") not in rows(trail, until=middle)


def test_pages_count_every_match_and_name_the_actor(trail: AuditTrail, tasks: TaskService,
                                                    people: People) -> None:
    for n in range(5):
        tasks.create_task(people.operator, Text(zh=f"故障 {n}", en=f"fault {n}"))
    page, total = trail.search(AuditFilter(entity="task"), offset=1, limit=2)
    assert total == 5
    assert [e.entity_id for e in page] == ["4", "3"]  # newest first
    assert {e.actor_name for e in page} == {"Olivia"}
    users, _ = trail.search(AuditFilter(entity="user"), limit=1)
    assert users[0].actor == "system"
    assert users[0].actor_name is None
    with pytest.raises(InvalidInput):
        trail.search(AuditFilter(), limit=501)


def test_the_csv_export_is_every_row_oldest_first_with_formula_cells_inert(
        trail: AuditTrail, tasks: TaskService, auth: AuthService, people: People,
        sessions: sessionmaker[Session]) -> None:
    mallory = auth.create_user("mallory", PASSWORD, ["operator"], display_name="=HYPERLINK(\"http://x\")",
                               actor=people.admin)
    task = tasks.create_task(mallory, Text(zh="漏水", en="leak"), description="@SUM(A1)")
    tasks.add_note(task.id, mallory, "+1 looks fine")
    text = trail.export_csv(AuditFilter(entity="task"))
    assert text.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert table[0] == ["id", "ts", "actor", "actor_name", "entity", "entity_id", "action", "before", "after"]
    assert [row[6] for row in table[1:]] == ["created", "note"]
    assert {row[3] for row in table[1:]} == {"'=HYPERLINK(\"http://x\")"}  # shown as text, never run
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in table for cell in row)
    assert '"description": "@SUM(A1)"' in table[1][8]


def test_an_export_too_large_is_refused_with_a_clear_error(sessions: sessionmaker[Session],
                                                           tasks: TaskService, people: People) -> None:
    for n in range(3):
        tasks.create_task(people.operator, Text(zh=f"故障 {n}", en=f"fault {n}"))
    small = AuditTrail(sessions, max_export=2)
    with pytest.raises(InvalidInput, match="narrow the filter"):
        small.export_csv(AuditFilter(entity="task"))
    assert small.export_csv(AuditFilter(entity="task", entity_id="1")).count("\r\n") == 2


def test_rows_are_append_only(sessions: sessionmaker[Session], people: People, clock: FakeClock) -> None:
    with sessions.begin() as session:
        row = audit.record(session, "system", "task", 1, "created", None, {"state": "raised"},
                           clock_time(clock))
    with sessions() as session:
        stored = session.get(AuditLog, row.id)
        assert stored is not None
        stored.action = "verified"
        with pytest.raises(Forbidden, match="append-only"):
            session.flush()
        session.rollback()
        session.delete(stored)
        with pytest.raises(Forbidden, match="append-only"):
            session.flush()
    with pytest.raises(Forbidden, match="append-only"), sessions.begin() as session:
        session.execute(update(AuditLog).where(AuditLog.id == row.id).values(actor=str(people.admin.id)))
    with pytest.raises(Forbidden, match="append-only"), sessions.begin() as session:
        session.execute(delete(AuditLog))
    with sessions() as session:
        kept = session.get(AuditLog, row.id)
        assert kept is not None
        assert (kept.actor, kept.action) == ("system", "created")
        assert (session.scalar(select(func.count()).select_from(AuditLog)) or 0) >= 1
    # Adding stays possible.
    with sessions.begin() as session:
        audit.record(session, "system", "task", 1, "note", None, None,
                     clock_time(clock) + timedelta(seconds=1))


def test_the_read_side_offers_no_way_to_write() -> None:
    public = {name for name in dir(AuditTrail) if not name.startswith("_")}
    assert public == {"search", "export_csv"}
    functions = {name for name, value in vars(audit).items()
                 if inspect.isfunction(value) and value.__module__ == audit.__name__ and name[0] != "_"}
    assert {"record", "record_change", "history"} <= functions
    rewriting = ("update", "delete", "remove", "edit", "change", "set", "clear", "purge", "truncate")
    assert [name for name in functions if name.startswith(rewriting)] == []
