"""Shift handovers on SQLite and PostgreSQL: the draft, handing over, accepting with a signature,
disputing, searching, and the escalation of one nobody accepted within 30 minutes (exactly once)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from maintenance.alarms import AlarmService
from maintenance.db import session_factory
from maintenance.errors import Conflict, Forbidden, InvalidInput, NotFound
from maintenance.handover import (
    AbnormalReading,
    HandoverFilter,
    HandoverService,
    ItemState,
    KeyOrTool,
    Signature,
)
from maintenance.models import AuditLog
from maintenance.notify.notices import NoticeFormatter
from maintenance.service import MaintenanceService
from maintenance.tasks import TaskService
from pumpwatch.alarm_events import AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import FakeClock
from pumpwatch.settings import CollectorSettings, JsonWebhookSettings, NotifySettings, Settings
from pumpwatch.site import Severity, Site, Text
from pumpwatch.sitefile import load_site
from tests.support.state import People, advance, clock_time

HV = "harbour-view"  # the estate of examples/site.yaml

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.yaml"


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(EXAMPLE)


@pytest.fixture
def handovers(sessions: sessionmaker[Session], clock: FakeClock, site: Site) -> HandoverService:
    return HandoverService(sessions, clock, site)


def raise_alarm(alarms: AlarmService, clock: FakeClock, asset: str, room: str, kind: str = "leak") -> int:
    alarm = alarms.apply(AlarmEvent(AlarmAction.RAISED, AlarmKey(asset, kind, HV), Severity.MAJOR,
                                    clock.now(),
                                    room, Text(zh=f"{asset} 漏水", en=f"{asset} leak"), 1.0))
    assert alarm is not None
    return alarm.id


def hand_over(handovers: HandoverService, people: People, room: str | None = "dom",
              notes: str = "quiet night", incoming: int | None = None) -> int:
    return handovers.submit(people.operator, room, None, notes=notes, incoming_id=incoming).id


def actions(sessions: sessionmaker[Session], handover_id: int) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(AuditLog.action).where(
            AuditLog.entity == "handover", AuditLog.entity_id == str(handover_id)).order_by(AuditLog.id)))


def test_the_draft_carries_the_rooms_open_alarms_and_tasks_and_the_shifts_alarms(
        handovers: HandoverService, alarms: AlarmService, tasks: TaskService, people: People,
        clock: FakeClock) -> None:
    before_shift = raise_alarm(alarms, clock, "dom-p1", "dom")
    for action in (AlarmAction.RAISED, AlarmAction.CLEARED):
        alarms.apply(AlarmEvent(action, AlarmKey("dom-tank", "leak", HV), Severity.MINOR, clock.now(), "dom",
                                Text(zh="水箱漏水", en="tank leak")))
    advance(clock, 3 * 3600)
    shift_start = clock_time(clock)
    advance(clock, 3600)
    during = raise_alarm(alarms, clock, "dom-p2", "dom", "dry_run")
    raise_alarm(alarms, clock, "fire-p1", "fire")
    fault = tasks.create_task(people.operator, Text(zh="门锁坏", en="door lock broken"), room="dom",
                              estate=HV)
    draft = handovers.draft("dom", shift_start)
    assert draft.room == "dom"
    assert draft.shift_started_at == shift_start
    assert {a["id"] for a in draft.open_alarms} == {before_shift, during}  # not the cleared one, not fire's
    assert [a["id"] for a in draft.shift_alarms] == [during]
    assert fault.id in {t["id"] for t in draft.open_tasks}
    assert {t["room"] for t in draft.open_tasks} == {"dom"}
    assert draft.open_alarms[0]["message"] == {"zh": "dom-p1 漏水", "en": "dom-p1 leak"}
    everywhere = handovers.draft(None, shift_start)
    assert len(everywhere.open_alarms) == 3
    with pytest.raises(InvalidInput, match="no room"):
        handovers.draft("attic")


def test_a_handover_is_submitted_and_accepted_with_a_typed_signature(
        handovers: HandoverService, alarms: AlarmService, people: People, clock: FakeClock,
        sessions: sessionmaker[Session]) -> None:
    alarm = raise_alarm(alarms, clock, "dom-p1", "dom")
    start = clock_time(clock) - timedelta(hours=8)
    row = handovers.submit(
        people.operator, "dom", start,
        abnormal_readings=[AbnormalReading("dom-header-pressure", 0.21, clock_time(clock), "low at 03:00")],
        keys_tools=[KeyOrTool("pump-room key", 2), KeyOrTool("multimeter", 1, ItemState.LENT, "with Tom")],
        notes="pump 1 leaks at the flange", urgent="watch the header pressure",
        incoming_id=people.technician.id)
    assert row.state == "submitted"
    assert [a["id"] for a in row.open_alarms] == [alarm]
    assert row.abnormal_readings == [{"sensor": "dom-header-pressure", "value": 0.21,
                                      "at": clock_time(clock).isoformat(), "note": "low at 03:00"}]
    assert row.keys_tools[1] == {"item": "multimeter", "quantity": 1, "state": "lent", "note": "with Tom"}
    advance(clock, 600)
    accepted = handovers.accept(row.id, people.technician, signed_name="Tom")
    assert (accepted.state, accepted.received_by) == ("accepted", people.technician.id)
    assert accepted.signed_name == "Tom"
    assert accepted.received_at == clock_time(clock)
    assert actions(sessions, row.id) == ["submitted", "accepted"]
    with pytest.raises(Conflict, match="accepted"):
        handovers.dispute(row.id, people.technician, "too late")


def test_a_drawn_signature_is_kept(handovers: HandoverService, people: People) -> None:
    row_id = hand_over(handovers, people)
    drawn = Signature("image/png", "ab" * 32, "/var/pumpwatch/signatures/abab")
    accepted = handovers.accept(row_id, people.technician, signature=drawn)
    assert (accepted.signature_type, accepted.signature_sha256) == ("image/png", "ab" * 32)
    assert (accepted.signature_path, accepted.signed_name) == ("/var/pumpwatch/signatures/abab", None)


def test_who_hands_over_and_who_takes_over(handovers: HandoverService, people: People) -> None:
    for someone in (people.supervisor, people.director, people.admin):
        with pytest.raises(Forbidden, match="operator or technician"):
            handovers.submit(someone, "dom", None)
    open_one = hand_over(handovers, people)
    with pytest.raises(Forbidden, match="own"):
        handovers.accept(open_one, people.operator, signed_name="Olivia")
    with pytest.raises(Forbidden, match="operator or technician"):
        handovers.accept(open_one, people.supervisor, signed_name="Sam")
    named = hand_over(handovers, people, incoming=people.technician.id)
    with pytest.raises(Forbidden, match="names"):
        handovers.accept(named, people.technician2, signed_name="Tina")
    with pytest.raises(InvalidInput, match="sign"):
        handovers.accept(named, people.technician, signed_name="  ")
    with pytest.raises(InvalidInput, match="image"):
        handovers.accept(named, people.technician, signature=Signature("application/pdf", "00" * 32, "/x"))
    assert handovers.accept(named, people.technician, signed_name="Tom").state == "accepted"
    with pytest.raises(NotFound):
        handovers.accept(99999, people.technician, signed_name="Tom")


def test_a_handover_can_be_disputed_with_a_reason(handovers: HandoverService, people: People,
                                                  sessions: sessionmaker[Session]) -> None:
    row_id = hand_over(handovers, people)
    with pytest.raises(InvalidInput, match="wrong"):
        handovers.dispute(row_id, people.technician, " ")
    disputed = handovers.dispute(row_id, people.technician, "the tool cabinet key is missing, not listed")
    assert (disputed.state, disputed.received_by) == ("disputed", people.technician.id)
    with pytest.raises(Conflict):
        handovers.accept(row_id, people.technician, signed_name="Tom")
    assert actions(sessions, row_id) == ["submitted", "disputed"]


def test_bad_handovers_are_refused(handovers: HandoverService, people: People, clock: FakeClock) -> None:
    now = clock_time(clock)
    cases: list[tuple[dict[str, Any], str]] = [
             ({"room": "attic"}, "no room"),
             ({"shift_started_at": now + timedelta(minutes=1)}, "future"),
             ({"shift_started_at": now - timedelta(hours=25)}, "24 hours"),
             ({"incoming_id": people.operator.id}, "other than"),
             ({"incoming_id": people.supervisor.id}, "cannot take over"),
             ({"abnormal_readings": [AbnormalReading("no-such-sensor", 1.0)]}, "no sensor"),
             ({"keys_tools": [KeyOrTool(" ")]}, "name each"),
             ({"keys_tools": [KeyOrTool("key", -1)]}, "negative")]
    for extra, match in cases:
        values: dict[str, Any] = {"room": "dom", "shift_started_at": None} | extra
        with pytest.raises(InvalidInput, match=match):
            handovers.submit(people.operator, **values)


def test_an_unaccepted_handover_escalates_after_30_minutes_exactly_once(
        handovers: HandoverService, people: People, clock: FakeClock, sessions: sessionmaker[Session],
        site: Site) -> None:
    waiting = hand_over(handovers, people, incoming=people.technician.id)
    accepted = hand_over(handovers, people)
    handovers.accept(accepted, people.technician, signed_name="Tom")
    advance(clock, 29 * 60)
    assert handovers.escalate() == []
    advance(clock, 60)
    steps = handovers.escalate()
    assert [(s.handover_id, s.state, s.outgoing, s.incoming, s.room) for s in steps] == [
        (waiting, "submitted", "Olivia", "Tom", "dom")]
    assert handovers.get(waiting).escalated_at == clock_time(clock)
    advance(clock, 3600)
    assert handovers.escalate() == []
    assert HandoverService(sessions, clock, site).escalate() == []  # another replica
    assert actions(sessions, waiting) == ["submitted", "escalated"]
    # Accepting it late is still possible; it stays escalated.
    assert handovers.accept(waiting, people.technician, signed_name="Tom").escalated_at is not None


def test_a_disputed_handover_is_not_accepted_either_and_escalates(handovers: HandoverService, people: People,
                                                                  clock: FakeClock) -> None:
    row_id = hand_over(handovers, people)
    handovers.dispute(row_id, people.technician, "the log is incomplete")
    advance(clock, 31 * 60)
    assert [(s.handover_id, s.state) for s in handovers.escalate()] == [(row_id, "disputed")]


def test_concurrent_escalation_checks_escalate_once(engine: Engine, handovers: HandoverService,
                                                   people: People, clock: FakeClock, site: Site) -> None:
    row_id = hand_over(handovers, people)
    advance(clock, 31 * 60)
    replicas = [HandoverService(session_factory(engine), clock, site) for _ in range(4)]
    found: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(replicas))

    def run(service: HandoverService) -> None:
        try:
            barrier.wait()
            found.extend(s.handover_id for s in service.escalate())
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert found == [row_id]


def test_the_history_is_searchable(handovers: HandoverService, people: People, clock: FakeClock) -> None:
    first = handovers.submit(people.operator, "dom", None, notes="valve 3 drips; 100% sure").id
    advance(clock, 12 * 3600)
    middle = clock_time(clock)
    second = handovers.submit(people.technician, "fire", None, urgent="jockey pump cycles often",
                              incoming_id=people.technician2.id).id
    handovers.dispute(second, people.technician2, "sprinkler log missing")
    third = handovers.submit(people.technician2, None, None, notes="all quiet").id

    def ids(**filters: object) -> list[int]:
        rows, total = handovers.search(HandoverFilter(**filters))  # type: ignore[arg-type]
        assert total == len(rows)
        return [r.id for r in rows]

    assert ids() == [third, second, first]
    assert ids(room="fire") == [second]
    assert ids(person=people.technician2.id) == [third, second]  # wrote one, named and received the other
    assert ids(person=people.operator.id) == [first]
    assert ids(since=middle) == [third, second]
    assert ids(until=middle) == [first]
    assert ids(state="disputed") == [second]
    assert ids(text="JOCKEY") == [second]
    assert ids(text="sprinkler log") == [second]
    assert ids(text="100%") == [first]
    assert ids(text="%") == [first]  # a literal percent sign, not a wildcard
    assert ids(text="_") == []
    rows, total = handovers.search(HandoverFilter(), offset=1, limit=1)
    assert ([r.id for r in rows], total) == ([second], 3)
    with pytest.raises(InvalidInput):
        handovers.search(HandoverFilter(state="lost"))


def test_the_escalation_notice_tells_the_supervisor_in_both_languages(
        handovers: HandoverService, people: People, clock: FakeClock) -> None:
    hand_over(handovers, people, incoming=people.technician.id)
    advance(clock, 31 * 60)
    (step,) = handovers.escalate()
    notice = NoticeFormatter("Asia/Shanghai", "示范小区").handover(step)
    assert notice.headline == ("【示范小区】交接班超时未被接收，已通知主管 / "
                               "handover not accepted in time: supervisor told")
    assert "交班 from: Olivia  接班 to: Tom" in notice.text
    assert "提交 submitted: 2026-01-01 08:00" in notice.text  # the site's time zone
    assert notice.data["kind"] == "handover"
    assert notice.data["notify"] == "supervisor"
    assert notice.severity is None  # told on every channel


async def test_the_periodic_check_tells_the_supervisor_once(tmp_path: Path, engine: Engine, site: Site,
                                                            clock: FakeClock, people: People) -> None:
    settings = Settings(collector=CollectorSettings(state_dir=tmp_path), notify=NotifySettings(
        channels=[JsonWebhookSettings(url=SecretStr("http://127.0.0.1:9/never"))]))
    state = MaintenanceService(site, settings, clock, engine)
    row = state.handovers.submit(people.operator, "dom", None)
    await clock.advance(31 * 60)
    await state.check_deadlines()
    await state.check_deadlines()
    told = [n.data for n in state.notifier.outboxes["json"].queue]
    assert [(d["kind"], d["handover_id"]) for d in told] == [("handover", row.id)]
