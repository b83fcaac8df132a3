"""Approved exceptions (rule 4: "switches stay in AUTO unless there is a special reason").

Someone asks for a control-cabinet switch to stay out of AUTO for a time, saying why; a supervisor
(not the requester, not in the requester's name as their deputy) approves it. While approved and inside
its window it silences exactly one alarm, the switch-not-in-AUTO alarm of its (asset, alarm type): the
alarm service records the alarm but opens no task and tells nobody (maintenance/alarms.py). When the
exception ends (expired by the periodic check, or revoked) while that alarm is still active, its task
is opened then. Every step is audited; everything lives in the state database, so a restart changes
nothing.

The collector's alarm engine has an in-memory `silence` call; it is not used: the collector belongs to
another role (layer rules), and an in-memory silence would neither be approved, nor audited, nor
survive a restart. The collector keeps raising the alarm; the maintenance state decides what it means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from maintenance import audit
from maintenance.duties import not_the_requester, require_decider
from maintenance.errors import Conflict, Forbidden, InvalidInput, NotFound
from maintenance.estates import estate_of
from maintenance.exception_models import SWITCH_ALARM, SwitchException
from maintenance.models import Alarm, Task, User, utc_from_epoch
from maintenance.roles import has_role, require_any_role
from maintenance.tasks import MAX_PAGE, TaskService
from maintenance.vocab import CLOSED_TASK_STATES, AlarmState, Role, TaskState
from pumpwatch.clock import Clock
from pumpwatch.portfolio import Portfolio, as_portfolio
from pumpwatch.site import SensorKind, Severity, Site

MAX_EXCEPTION = timedelta(days=31)  # a longer special reason is asked for again, so a supervisor looks again
_REQUESTERS = (Role.OPERATOR, Role.TECHNICIAN, Role.SUPERVISOR, Role.DIRECTOR, Role.ADMIN)
_ENTITY = "exception"


@dataclass(frozen=True, slots=True)
class SwitchTarget:
    """A switch whose not-in-AUTO alarm an exception can silence: the alarm's key and where it is."""

    asset: str
    alarm_type: str
    sensor: str
    room: str
    estate: str = ""


def switch_targets(site: Site) -> dict[str, SwitchTarget]:
    """Every switch of the site with an AUTO position, by sensor id, keyed as the rulebook keys its alarm.

    The rulebook (collector/rules/rulebook.py) gives the alarm the key (equipment or room id,
    `switch_not_auto`), and `switch_not_auto:<sensor>` to a second switch of the same asset. The collector
    cannot be imported here (layer rules), so the naming is repeated; tests/maintenance/test_exceptions.py
    checks that the two agree on the example site.
    """
    targets: dict[str, SwitchTarget] = {}
    taken: set[str] = set()
    for room, equipment, sensor in site.iter_sensors():
        if sensor.kind is not SensorKind.SWITCH_POSITION or "AUTO" not in sensor.state_codes:
            continue
        asset = equipment.id if equipment is not None else room.id
        alarm_type = SWITCH_ALARM if asset not in taken else f"{SWITCH_ALARM}:{sensor.id}"
        taken.add(asset)
        targets[sensor.id] = SwitchTarget(asset, alarm_type, sensor.id, room.id, site.site.id)
    return targets


@dataclass(frozen=True, slots=True)
class ExceptionEnded:
    """An exception the periodic check ended: the alarm it held, still active, and the task opened for it."""

    exception_id: int
    alarm: Alarm | None
    task_id: int | None


def holding_exception(session: Session, estate: str, asset: str, alarm_type: str, now: datetime,
                      lock: bool = True) -> SwitchException | None:
    """The approved exception silencing (estate, asset, alarm_type) at `now`, if any (locked for the caller).

    Locking it orders the alarm service against an exception that is ending at the same moment: the
    exception's row is always locked before the alarm's, by both.
    """
    query = (select(SwitchException)
             .where(SwitchException.estate == estate, SwitchException.asset == asset,
                    SwitchException.alarm_type == alarm_type,
                    SwitchException.state == "approved", SwitchException.starts_at <= now,
                    SwitchException.ends_at > now)
             .order_by(SwitchException.ends_at.desc(), SwitchException.id).limit(1))
    return session.scalar(query.with_for_update() if lock else query)


class ExceptionService:
    """Requests, decisions and ends of approved exceptions; each step audited."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, tasks: TaskService,
                 site: Site | Portfolio) -> None:
        self._sessions = sessions
        self._clock = clock
        self._tasks = tasks
        self.set_portfolio(as_portfolio(site))

    def set_portfolio(self, portfolio: Portfolio) -> None:
        """The estates' switches as their site files now have them (a reload)."""
        self.portfolio = portfolio
        self.switches = {estate: switch_targets(site) for estate, site in portfolio.estates.items()}

    @property
    def targets(self) -> dict[str, SwitchTarget]:
        """The switches of the only estate (of a single-estate deployment), by sensor id."""
        return self.switches[estate_of(self.portfolio, None)]

    def now(self) -> datetime:
        """The injected clock as an aware UTC datetime."""
        return utc_from_epoch(self._clock.now())

    def target(self, asset: str | None, sensor: str | None, estate: str | None = None) -> SwitchTarget:
        """The switch named by its sensor, or by its asset when the asset has exactly one switch.

        Within `estate`, or the only estate of a single-estate deployment.
        """
        targets = self.switches[estate_of(self.portfolio, estate)]
        if sensor is not None:
            found = targets.get(sensor)
            if found is None:
                raise InvalidInput(f"{sensor!r} is not a switch with an AUTO position on this site")
            if asset is not None and asset != found.asset:
                raise InvalidInput(f"switch {sensor!r} belongs to {found.asset!r}, not {asset!r}")
            return found
        if asset is None:
            raise InvalidInput("name the switch: its sensor, or the pump (asset) it belongs to")
        of_asset = [t for t in targets.values() if t.asset == asset]
        if not of_asset:
            raise InvalidInput(f"{asset!r} has no switch with an AUTO position on this site")
        if len(of_asset) > 1:
            names = ", ".join(t.sensor for t in of_asset)
            raise InvalidInput(f"{asset!r} has several switches ({names}): name the sensor")
        return of_asset[0]

    # --- requests and decisions --------------------------------------------------------------------

    def request(self, user: User, reason: str, starts_at: datetime, ends_at: datetime,
                asset: str | None = None, sensor: str | None = None,
                estate: str | None = None) -> SwitchException:
        """Ask for a switch to stay out of AUTO from `starts_at` until `ends_at`, saying why (staff)."""
        why = (reason or "").strip()
        if not why:
            raise InvalidInput("say why the switch must stay out of AUTO")
        if ends_at <= starts_at:
            raise InvalidInput("the exception must end after it starts")
        if ends_at - starts_at > MAX_EXCEPTION:
            raise InvalidInput("an exception lasts at most 31 days; ask again for longer")
        now = self.now()
        if ends_at <= now:
            raise InvalidInput("the exception's time is already over")
        target = self.target(asset, sensor, estate)
        with self._sessions.begin() as session:
            actor = _user(session, user.id)
            require_any_role(session, actor, _REQUESTERS, now, "requesting an exception")
            row = SwitchException(estate=target.estate, asset=target.asset, alarm_type=target.alarm_type,
                                  sensor=target.sensor,
                                  room=target.room, reason=why, starts_at=starts_at, ends_at=ends_at,
                                  state="pending", requested_by=actor.id, created_at=now, updated_at=now)
            session.add(row)
            session.flush()
            audit.record(session, audit.actor_id(actor), _ENTITY, row.id, "requested", None,
                         audit.snapshot(row), now)
            return row

    def approve(self, exception_id: int, user: User) -> SwitchException:
        """The supervisor's approval (held or deputised; never the requester, nor in the requester's name)."""
        def change(session: Session, row: SwitchException, actor: User, now: datetime) -> str:
            not_the_requester(actor, row.requested_by, "an exception")
            require_decider(session, actor, Role.SUPERVISOR, now, (row.requested_by,),
                            "approving an exception")
            _pending(row)
            if row.ends_at <= now:
                raise Conflict("the exception's time is already over; ask again")
            overlapping = session.scalar(select(SwitchException.id).where(
                SwitchException.estate == row.estate, SwitchException.asset == row.asset,
                SwitchException.alarm_type == row.alarm_type,
                SwitchException.state == "approved", SwitchException.starts_at < row.ends_at,
                SwitchException.ends_at > row.starts_at, SwitchException.id != row.id).limit(1))
            if overlapping is not None:
                raise Conflict(f"exception {overlapping} already covers this switch in that time")
            row.state, row.decided_by, row.decided_at = "approved", actor.id, now
            if row.starts_at <= now:
                alarm = _active_alarm(session, row, lock=False)
                row.alarm_id = alarm.id if alarm is not None else None
            return "approved"

        return self._change(exception_id, user, change)

    def reject(self, exception_id: int, user: User, reason: str) -> SwitchException:
        """Refuse a pending exception (supervisor, held or deputised), with a reason."""
        why = (reason or "").strip()
        if not why:
            raise InvalidInput("say why the exception is refused")

        def change(session: Session, row: SwitchException, actor: User, now: datetime) -> str:
            require_decider(session, actor, Role.SUPERVISOR, now, (), "refusing an exception")
            _pending(row)
            row.state, row.decided_by, row.decided_at, row.decided_reason = "rejected", actor.id, now, why
            return "rejected"

        return self._change(exception_id, user, change)

    def revoke(self, exception_id: int, user: User, reason: str) -> SwitchException:
        """End an exception early (the supervisor, or the requester).

        A pending one is cancelled, an approved one revoked; an alarm it held that is still active gets
        its task now.
        """
        why = (reason or "").strip()
        if not why:
            raise InvalidInput("say why the exception ends")

        def change(session: Session, row: SwitchException, actor: User, now: datetime) -> str:
            if actor.id != row.requested_by and not has_role(session, actor, Role.SUPERVISOR, now):
                raise Forbidden("an exception is ended by the supervisor or by the person who asked for it")
            if row.state not in ("pending", "approved"):
                raise Conflict(f"the exception is {row.state} already")
            ending = "revoked" if row.state == "approved" else "cancelled"
            row.state, row.ended_by, row.ended_at, row.end_reason = ending, actor.id, now, why
            if ending == "revoked" and row.starts_at <= now:  # one not yet in effect held nothing
                self._settle(session, row, now)
            return ending

        return self._change(exception_id, user, change)

    # --- the periodic check ------------------------------------------------------------------------

    def expire(self) -> list[ExceptionEnded]:
        """End approved exceptions whose time is over; open the task of an alarm still active.

        Every API replica runs this: each exception is ended in its own transaction, locked with
        SKIP LOCKED and checked again under the lock, so exactly one replica ends it and opens its task.
        """
        now = self.now()
        with self._sessions() as session:
            due = list(session.scalars(select(SwitchException.id).where(
                SwitchException.state == "approved", SwitchException.ends_at <= now)
                .order_by(SwitchException.ends_at, SwitchException.id)))
        ended: list[ExceptionEnded] = []
        for exception_id in due:
            with self._sessions.begin() as session:
                row = session.scalar(select(SwitchException).where(
                    SwitchException.id == exception_id, SwitchException.state == "approved",
                    SwitchException.ends_at <= now).with_for_update(skip_locked=True))
                if row is None:
                    continue  # another replica has it, or had it
                before = audit.snapshot(row)
                row.state, row.ended_at, row.updated_at = "expired", row.ends_at, now
                task = self._settle(session, row, now)
                audit.record_change(session, audit.SYSTEM, _ENTITY, row.id, "expired", before,
                                    audit.snapshot(row), now)
                alarm = None if task is None or task.alarm_id is None else session.get(Alarm, task.alarm_id)
                ended.append(ExceptionEnded(row.id, alarm, None if task is None else task.id))
        return ended

    def _settle(self, session: Session, row: SwitchException, now: datetime) -> Task | None:
        """After `row` stopped applying, the alarm it held, if still active, gets its task.

        Unless another approved exception covers the alarm now: that one holds it on. Returns the task
        opened or reopened. The successor is locked before the alarm, the order the alarm service keeps.
        """
        successor = session.scalar(
            select(SwitchException).where(
                SwitchException.estate == row.estate, SwitchException.asset == row.asset,
                SwitchException.alarm_type == row.alarm_type,
                SwitchException.state == "approved", SwitchException.starts_at <= now,
                SwitchException.ends_at > now, SwitchException.id != row.id)
            .order_by(SwitchException.ends_at.desc()).limit(1).with_for_update())
        alarm = _active_alarm(session, row, lock=True)
        if alarm is None:
            return None
        if successor is not None:
            if successor.alarm_id != alarm.id:
                before = audit.snapshot(successor)
                successor.alarm_id, successor.updated_at = alarm.id, now
                audit.record_change(session, audit.SYSTEM, _ENTITY, successor.id, "holds_alarm", before,
                                    audit.snapshot(successor), now)
            return None
        task = session.scalar(select(Task).where(Task.alarm_id == alarm.id).with_for_update())
        if task is None:
            task = self._tasks.open_for_alarm(session, alarm, now)
        elif TaskState(task.state) in CLOSED_TASK_STATES:
            self._tasks.reopen_for_alarm(session, task, Severity(alarm.severity), now)
        else:
            return None  # raised before the exception and still being worked: nothing more is owed
        row.task_id = task.id
        return task

    # --- reading -----------------------------------------------------------------------------------

    def get(self, exception_id: int) -> SwitchException:
        """One exception; NotFound otherwise."""
        with self._sessions() as session:
            row = session.get(SwitchException, exception_id)
            if row is None:
                raise NotFound("exception", exception_id)
            return row

    def list_exceptions(self, state: str | None = None, asset: str | None = None, room: str | None = None,
                        offset: int = 0, limit: int = 100,
                        estate: str | None = None) -> tuple[list[SwitchException], int]:
        """Exceptions, newest first, and how many match (of one estate, or of all when None)."""
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"offset must be >= 0 and limit between 1 and {MAX_PAGE}")
        conditions: list[Any] = []
        for column, value in ((SwitchException.state, state), (SwitchException.asset, asset),
                              (SwitchException.room, room), (SwitchException.estate, estate)):
            if value is not None:
                conditions.append(column == value)
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(SwitchException).where(*conditions)) or 0
            rows = session.scalars(select(SwitchException).where(*conditions)
                                   .order_by(SwitchException.id.desc()).offset(offset).limit(limit))
            return list(rows), total

    # --- plumbing ----------------------------------------------------------------------------------

    def _change(self, exception_id: int, user: User,
                change: Callable[[Session, SwitchException, User, datetime], str]) -> SwitchException:
        now = self.now()
        with self._sessions.begin() as session:
            actor = _user(session, user.id)
            row = session.get(SwitchException, exception_id, with_for_update=True)
            if row is None:
                raise NotFound("exception", exception_id)
            before = audit.snapshot(row)
            action = change(session, row, actor, now)
            row.updated_at = now
            session.flush()
            audit.record_change(session, audit.actor_id(actor), _ENTITY, row.id, action, before,
                                audit.snapshot(row), now)
            return row


def _active_alarm(session: Session, row: SwitchException, lock: bool) -> Alarm | None:
    query = select(Alarm).where(Alarm.estate == row.estate, Alarm.asset == row.asset,
                                Alarm.alarm_type == row.alarm_type, Alarm.state == AlarmState.ACTIVE.value)
    return session.scalar(query.with_for_update() if lock else query)


def _pending(row: SwitchException) -> None:
    if row.state != "pending":
        raise Conflict(f"the exception is {row.state}, not pending")


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise Forbidden("an inactive or unknown user cannot act")
    return user
