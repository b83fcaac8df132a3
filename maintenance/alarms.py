"""AlarmService: alarm events from the rules become alarm rows (one active per key) and their tasks.

A key is (estate, asset, alarm type): the same alarm on the same asset id in two estates is two alarms
with two tasks. An event without its estate cannot be told apart and is refused (InvalidInput).

A switch-not-in-AUTO alarm raised while an approved exception covers its key (maintenance/exceptions.py)
is recorded silenced: no task, no notice; the exception's end opens the task if the alarm is still on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from maintenance import audit
from maintenance.errors import InvalidInput, NotFound
from maintenance.exception_models import SWITCH_ALARM, SwitchException
from maintenance.exceptions import holding_exception
from maintenance.models import Alarm, Task, User, utc_from_epoch
from maintenance.roles import require_any_role
from maintenance.tasks import MAX_PAGE, TaskService
from maintenance.vocab import AlarmState, Role
from maintenance.writes import writes_of
from pumpwatch.alarm_events import SEVERITY_RANK, AlarmAction, AlarmEvent, AlarmKey
from pumpwatch.clock import Clock
from pumpwatch.site import Severity

_ACKNOWLEDGERS = (Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN)
_APPLY_ATTEMPTS = 5  # each retry follows a concurrent writer's commit, so one retry normally settles it


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    """What an alarm list shows; None means any. `since` keeps alarms that started at or after it."""

    state: AlarmState | None = None
    acknowledged: bool | None = None
    severity: Severity | None = None
    room: str | None = None
    asset: str | None = None
    since: datetime | None = None
    estate: str | None = None
    within: frozenset[str] | None = None  # the caller's scope: only these estates (None: every one)


@dataclass(frozen=True, slots=True)
class Silence:
    """An active alarm silenced by an approved exception, until the exception ends."""

    exception_id: int
    until: datetime


def _worse(a: str, b: str) -> str:
    return a if SEVERITY_RANK[Severity(a)] >= SEVERITY_RANK[Severity(b)] else b


class AlarmService:
    """Applies alarm events idempotently and safely across processes; acknowledges and lists alarms."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Clock, tasks: TaskService,
                 reopen_window: timedelta = timedelta(hours=24)) -> None:
        self._sessions = session_factory
        self._clock = clock
        self._tasks = tasks
        self.reopen_window = reopen_window
        self.writes = writes_of(session_factory)  # moves on with every committed write of this process

    def now(self) -> datetime:
        """Return the injected clock's time as an aware UTC datetime."""
        return utc_from_epoch(self._clock.now())

    def apply(self, event: AlarmEvent) -> Alarm | None:
        """Apply one event; returns the alarm it touched (None: a clear for an alarm that is not open)."""
        return self.apply_change(event)[0]

    def apply_change(self, event: AlarmEvent) -> tuple[Alarm | None, str | None]:
        """Apply one event; returns the alarm and what this call did to it (its audit action).

        Another process may apply the same event at the same moment: the partial unique index lets only
        one active row per key exist, and the loser of that race rolls back and re-reads the winner's row
        (so only one of them reports `raised`; the other reports `updated`).
        """
        for attempt in range(1, _APPLY_ATTEMPTS + 1):
            try:
                with self._sessions.begin() as session:
                    return self._apply(session, event)
            except IntegrityError:
                if attempt == _APPLY_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def _active(self, session: Session, key: AlarmKey) -> Alarm | None:
        query = select(Alarm).where(Alarm.estate == key.estate, Alarm.asset == key.asset,
                                    Alarm.alarm_type == key.alarm_type,
                                    Alarm.state == AlarmState.ACTIVE.value)
        return session.scalar(query.with_for_update())

    def _apply(self, session: Session, event: AlarmEvent) -> tuple[Alarm | None, str | None]:
        if not event.key.estate:
            raise InvalidInput(f"alarm event {event.key} names no estate")
        now = self.now()
        at = utc_from_epoch(event.ts)
        held = None
        if event.action is not AlarmAction.CLEARED and event.key.alarm_type.startswith(SWITCH_ALARM):
            # Looked up (and locked) before the alarm row: the exception's end locks in the same order.
            held = holding_exception(session, event.key.estate, event.key.asset, event.key.alarm_type, now)
        alarm = self._active(session, event.key)
        if event.action is AlarmAction.CLEARED:
            if alarm is not None:
                self._update(session, alarm, "cleared", now, state=AlarmState.CLEARED.value, ended_at=at,
                             last_value=event.value if event.value is not None else alarm.last_value)
                return alarm, "cleared"
            return None, None
        if alarm is None:
            if held is not None:
                return self._raise_silenced(session, event, at, now, held)
            # Any news of an alarm we do not hold open (a missed RAISED after a restart) opens it.
            return self._raise(session, event, at, now)
        severity = Severity(event.severity).value
        if event.action is AlarmAction.PEAK:
            self._update(session, alarm, "peak", now, peak_value=event.value,
                         last_value=event.value if event.value is not None else alarm.last_value)
            return alarm, "peak"
        # RAISED again (a duplicate, or a replay), ESCALATED or DEESCALATED: the severity is the news.
        action = {AlarmAction.RAISED: "updated", AlarmAction.ESCALATED: "escalated",
                  AlarmAction.DEESCALATED: "deescalated"}[event.action]
        self._update(session, alarm, action, now, severity=severity,
                     peak_severity=_worse(alarm.peak_severity, severity),
                     last_value=event.value if event.value is not None else alarm.last_value,
                     message_zh=event.message.zh, message_en=event.message.en)
        task = None if held is not None else session.scalar(
            select(Task).where(Task.alarm_id == alarm.id).with_for_update())
        if task is not None:
            self._tasks.raise_priority(session, task, Severity(severity), now)
        return alarm, action

    def _raise(self, session: Session, event: AlarmEvent, at: datetime, now: datetime) -> tuple[Alarm, str]:
        severity = Severity(event.severity).value
        recent = session.scalar(
            select(Alarm).where(Alarm.estate == event.key.estate, Alarm.asset == event.key.asset,
                                Alarm.alarm_type == event.key.alarm_type,
                                Alarm.state == AlarmState.CLEARED.value, Alarm.ended_at.is_not(None),
                                Alarm.ended_at >= at - self.reopen_window)
            .order_by(Alarm.ended_at.desc(), Alarm.id.desc()).limit(1).with_for_update())
        task = None if recent is None else session.scalar(
            select(Task).where(Task.alarm_id == recent.id).with_for_update())
        if recent is not None and task is not None:
            # The same fault is back soon after it cleared: one alarm and one task, counted as a repeat.
            self._update(session, recent, "reopened", now, state=AlarmState.ACTIVE.value, ended_at=None,
                         started_at=at, severity=severity, peak_severity=severity, peak_value=event.value,
                         last_value=event.value, room=event.room, sensor=event.sensor,
                         message_zh=event.message.zh, message_en=event.message.en,
                         repeat_count=recent.repeat_count + 1, acknowledged_by=None, acknowledged_at=None)
            self._tasks.reopen_for_alarm(session, task, Severity(severity), now)
            return recent, "reopened"
        alarm = Alarm(estate=event.key.estate, asset=event.key.asset, alarm_type=event.key.alarm_type,
                      room=event.room,
                      sensor=event.sensor, severity=severity, peak_severity=severity,
                      state=AlarmState.ACTIVE.value, started_at=at, peak_value=event.value,
                      last_value=event.value, message_zh=event.message.zh, message_en=event.message.en,
                      repeat_count=0, updated_at=now)
        session.add(alarm)
        session.flush()  # IntegrityError here: another process raised it first; apply() retries
        audit.record(session, audit.SYSTEM, "alarm", alarm.id, "raised", None, audit.snapshot(alarm), now)
        self._tasks.open_for_alarm(session, alarm, now)
        return alarm, "raised"

    def _raise_silenced(self, session: Session, event: AlarmEvent, at: datetime, now: datetime,
                        held: SwitchException) -> tuple[Alarm, str]:
        """A new alarm under an approved exception: recorded, held by the exception, no task, not told.

        Never the reopening of a recent alarm and its task: the switch is out of AUTO with permission,
        which is not a repeat fault.
        """
        severity = Severity(event.severity).value
        alarm = Alarm(estate=event.key.estate, asset=event.key.asset, alarm_type=event.key.alarm_type,
                      room=event.room,
                      sensor=event.sensor, severity=severity, peak_severity=severity,
                      state=AlarmState.ACTIVE.value, started_at=at, peak_value=event.value,
                      last_value=event.value, message_zh=event.message.zh, message_en=event.message.en,
                      repeat_count=0, updated_at=now)
        session.add(alarm)
        session.flush()  # IntegrityError here: another process raised it first; apply() retries
        audit.record(session, audit.SYSTEM, "alarm", alarm.id, "silenced", None,
                     audit.snapshot(alarm) | {"exception_id": held.id, "silenced_until": held.ends_at}, now)
        before = audit.snapshot(held)
        held.alarm_id, held.updated_at = alarm.id, now
        audit.record_change(session, audit.SYSTEM, "exception", held.id, "holds_alarm", before,
                            audit.snapshot(held), now)
        return alarm, "silenced"

    def _update(self, session: Session, alarm: Alarm, action: str, now: datetime, actor: str = audit.SYSTEM,
                **values: Any) -> None:
        before = audit.snapshot(alarm)
        for name, value in values.items():
            setattr(alarm, name, value)
        alarm.updated_at = now
        session.flush()
        audit.record_change(session, actor, "alarm", alarm.id, action, before, audit.snapshot(alarm), now)

    def acknowledge(self, alarm_id: int, user: User, comment: str | None = None) -> Alarm:
        """Acknowledge an alarm (operator, supervisor or admin); acknowledging twice changes nothing.

        A comment is kept with the acknowledgement in the alarm's audit record; a later acknowledgement
        with a comment (someone else looking at it too) adds that comment to the record.
        """
        note = (comment or "").strip() or None
        if note is not None and len(note) > 2000:
            raise InvalidInput("a comment is at most 2000 characters")
        now = self.now()
        with self._sessions.begin() as session:
            actor = session.get(User, user.id)
            if actor is None:
                raise NotFound("user", user.id)
            require_any_role(session, actor, _ACKNOWLEDGERS, now, "acknowledging an alarm")
            alarm = session.get(Alarm, alarm_id, with_for_update=True)
            if alarm is None:
                raise NotFound("alarm", alarm_id)
            if alarm.acknowledged_at is None:
                before = audit.snapshot(alarm)
                alarm.acknowledged_by, alarm.acknowledged_at, alarm.updated_at = actor.id, now, now
                session.flush()
                was, now_is = audit.diff(before, audit.snapshot(alarm))
                audit.record(session, audit.actor_id(actor), "alarm", alarm.id, "acknowledged", was,
                             now_is | ({"comment": note} if note else {}), now)
            elif note is not None:
                audit.record(session, audit.actor_id(actor), "alarm", alarm.id, "acknowledged", None,
                             {"comment": note}, now)
            return alarm

    def get(self, alarm_id: int) -> Alarm:
        """Return one alarm; NotFound otherwise."""
        with self._sessions() as session:
            alarm = session.get(Alarm, alarm_id)
            if alarm is None:
                raise NotFound("alarm", alarm_id)
            return alarm

    def task_for(self, alarm_id: int) -> Task | None:
        """Return the task of an alarm, if it has one."""
        with self._sessions() as session:
            return session.scalar(select(Task).where(Task.alarm_id == alarm_id))

    def silences(self, alarms: Sequence[Alarm]) -> dict[int, Silence]:
        """Which of these alarms an approved exception silences now: alarm id -> exception and its end."""
        keys = {(a.estate, a.asset, a.alarm_type): a.id for a in alarms
                if a.state == AlarmState.ACTIVE.value and a.alarm_type.startswith(SWITCH_ALARM)}
        if not keys:
            return {}
        now = self.now()
        found: dict[int, Silence] = {}
        with self._sessions() as session:
            rows = session.scalars(select(SwitchException).where(
                SwitchException.asset.in_({asset for _, asset, _ in keys}),
                SwitchException.state == "approved",
                SwitchException.starts_at <= now, SwitchException.ends_at > now)
                .order_by(SwitchException.ends_at))
            for row in rows:  # the latest end wins when two approved exceptions follow each other
                alarm_id = keys.get((row.estate, row.asset, row.alarm_type))
                if alarm_id is not None:
                    found[alarm_id] = Silence(row.id, row.ends_at)
        return found

    def list_alarms(self, filters: AlarmFilter = AlarmFilter(), offset: int = 0,
                    limit: int = 50) -> tuple[list[Alarm], int]:
        """Return one page of alarms, newest first, and how many match in all."""
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"offset must be >= 0 and limit between 1 and {MAX_PAGE}")
        conditions: list[Any] = []
        if filters.state is not None:
            conditions.append(Alarm.state == AlarmState(filters.state).value)
        if filters.acknowledged is not None:
            acked = Alarm.acknowledged_at.is_not(None)
            conditions.append(acked if filters.acknowledged else Alarm.acknowledged_at.is_(None))
        if filters.severity is not None:
            conditions.append(Alarm.severity == Severity(filters.severity).value)
        if filters.room is not None:
            conditions.append(Alarm.room == filters.room)
        if filters.asset is not None:
            conditions.append(Alarm.asset == filters.asset)
        if filters.estate is not None:
            conditions.append(Alarm.estate == filters.estate)
        if filters.within is not None:
            conditions.append(Alarm.estate.in_(sorted(filters.within)))
        if filters.since is not None:
            conditions.append(Alarm.started_at >= filters.since)
        query = (select(Alarm).where(*conditions).order_by(Alarm.started_at.desc(), Alarm.id.desc())
                 .offset(offset).limit(limit))
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(Alarm).where(*conditions)) or 0
            return list(session.scalars(query)), total
