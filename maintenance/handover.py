"""Shift handover (交接班): open items and what must be handled urgently, handed from one shift to the next.

The outgoing operator or technician writes a handover for a room (or the whole site): the open alarms and
open tasks are filled in from the state when it is submitted (a draft shows them beforehand, with the
alarms raised during the shift), and the writer adds the abnormal readings they saw, the keys and tools
handed over, what is urgent and free notes. The incoming person accepts it with their signature (a
typed name, a drawn signature image, or both) or disputes it with a reason. A handover nobody accepted
within 30 minutes is escalated to the supervisor, once. Every step is audited.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from maintenance import audit
from maintenance.errors import Conflict, Forbidden, InvalidInput, NotFound
from maintenance.estates import estate_of
from maintenance.handover_models import HANDOVER_STATES, Handover
from maintenance.models import Alarm, JsonDict, Task, User, utc_from_epoch
from maintenance.roles import has_any_role, require_any_role
from maintenance.vocab import OPEN_TASK_STATES, AlarmState, Role
from pumpwatch.clock import Clock
from pumpwatch.portfolio import Portfolio, as_portfolio
from pumpwatch.site import Site

ACCEPT_WITHIN = timedelta(minutes=30)  # then the supervisor hears of it
MAX_SHIFT = timedelta(hours=24)
MAX_CARRIED = 200  # open alarms, open tasks or shift alarms carried by one handover
MAX_PAGE = 500
_SHIFT_STAFF = (Role.OPERATOR, Role.TECHNICIAN)
_ENTITY = "handover"
_SEVERITY_ORDER = case({"critical": 4, "major": 3, "minor": 2, "warning": 1}, value=Alarm.severity, else_=0)


class ItemState(StrEnum):
    """What became of a key or tool at the handover."""

    PRESENT = "present"  # handed over
    MISSING = "missing"
    LENT = "lent"  # out with someone, named in the note
    DAMAGED = "damaged"


@dataclass(frozen=True, slots=True)
class AbnormalReading:
    """A reading the outgoing shift found abnormal: the sensor, the value seen, when, and a note."""

    sensor: str
    value: float
    at: datetime | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class KeyOrTool:
    """A key or tool of the pump room and what became of it."""

    item: str
    quantity: int = 1
    state: ItemState = ItemState.PRESENT
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Signature:
    """A drawn signature stored as an image by `maintenance.uploads.store_upload`."""

    content_type: str
    sha256: str
    path: str


@dataclass(frozen=True, slots=True)
class HandoverDraft:
    """What a handover of `room` would carry if submitted now."""

    room: str | None
    shift_started_at: datetime
    open_alarms: list[JsonDict]
    open_tasks: list[JsonDict]
    shift_alarms: list[JsonDict]


@dataclass(frozen=True, slots=True)
class HandoverFilter:
    """Which handovers a search shows; None means any.

    `person` wrote, was named for or received it; `text` is found in the notes, the urgent items, a
    dispute's reason or the signed name; `since` is inclusive, `until` exclusive.
    """

    room: str | None = None
    person: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    state: str | None = None
    text: str | None = None
    estate: str | None = None


@dataclass(frozen=True, slots=True)
class HandoverEscalation:
    """A handover not accepted in time, for the notifier to tell the supervisor."""

    handover_id: int
    room: str | None
    state: str
    outgoing: str
    incoming: str | None
    submitted_at: datetime
    estate: str = ""


class HandoverService:
    """Drafts, submits, accepts, disputes, searches and escalates shift handovers."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, site: Site | Portfolio | None = None,
                 accept_within: timedelta = ACCEPT_WITHIN) -> None:
        self._sessions = sessions
        self._clock = clock
        self.accept_within = accept_within
        self.portfolio: Portfolio | None = None
        self._rooms: dict[str, frozenset[str]] = {}
        self._sensors: dict[str, frozenset[str]] = {}
        if site is not None:
            self.set_portfolio(as_portfolio(site))

    def set_portfolio(self, portfolio: Portfolio) -> None:
        """The estates' rooms and sensors as their site files now have them (a reload)."""
        self.portfolio = portfolio
        self._rooms = {estate: frozenset(r.id for r in site.rooms)
                       for estate, site in portfolio.estates.items()}
        self._sensors = {estate: frozenset(s.id for _r, _e, s in site.iter_sensors())
                         for estate, site in portfolio.estates.items()}

    def estate(self, estate: str | None) -> str:
        """The estate a handover is of: the one given, or the only one (InvalidInput with several)."""
        if self.portfolio is None:
            return estate or ""
        return estate_of(self.portfolio, estate)

    def now(self) -> datetime:
        """The injected clock as an aware UTC datetime."""
        return utc_from_epoch(self._clock.now())

    # --- writing -----------------------------------------------------------------------------------

    def draft(self, room: str | None, shift_started_at: datetime | None = None,
              estate: str | None = None) -> HandoverDraft:
        """What a handover of `room` (None: every room of the estate) would carry if submitted now.

        The open alarms and tasks, and the alarms raised since the shift started (default: 12 hours ago).
        """
        now = self.now()
        estate = self.estate(estate)
        self._check_room(estate, room)
        start = self._shift_start(shift_started_at, now)
        with self._sessions() as session:
            return HandoverDraft(room, start, *_carried(session, estate, room, start))

    def submit(self, user: User, room: str | None, shift_started_at: datetime | None,
               abnormal_readings: Sequence[AbnormalReading] = (), keys_tools: Sequence[KeyOrTool] = (),
               notes: str | None = None, urgent: str | None = None,
               incoming_id: int | None = None, estate: str | None = None) -> Handover:
        """Hand the shift over (operator or technician); the open items are filled in now."""
        now = self.now()
        estate = self.estate(estate)
        self._check_room(estate, room)
        start = self._shift_start(shift_started_at, now)
        readings = [self._reading(estate, r) for r in abnormal_readings]
        items = [_item(i) for i in keys_tools]
        with self._sessions.begin() as session:
            actor = _user(session, user.id)
            require_any_role(session, actor, _SHIFT_STAFF, now, "handing over a shift")
            if incoming_id is not None:
                incoming = session.get(User, incoming_id)
                if incoming_id == actor.id:
                    raise InvalidInput("the incoming person is someone other than the outgoing one")
                if incoming is None or not has_any_role(session, incoming, _SHIFT_STAFF, now):
                    raise InvalidInput(f"user {incoming_id} cannot take over the shift: "
                                       "not an active operator or technician")
            open_alarms, open_tasks, shift_alarms = _carried(session, estate, room, start)
            row = Handover(estate=estate, room=room, shift_started_at=start, submitted_at=now,
                           outgoing_id=actor.id,
                           incoming_id=incoming_id, open_alarms=open_alarms, open_tasks=open_tasks,
                           shift_alarms=shift_alarms, abnormal_readings=readings, keys_tools=items,
                           notes=_optional(notes), urgent=_optional(urgent), state="submitted",
                           created_at=now, updated_at=now)
            session.add(row)
            session.flush()
            audit.record(session, audit.actor_id(actor), _ENTITY, row.id, "submitted", None,
                         audit.snapshot(row), now)
            return row

    def accept(self, handover_id: int, user: User, signed_name: str | None = None,
               signature: Signature | None = None) -> Handover:
        """The incoming person takes the shift over, signing with a typed name, a drawn image or both."""
        name = _optional(signed_name)
        if name is not None and len(name) > 128:
            raise InvalidInput("a signed name is at most 128 characters")
        if name is None and signature is None:
            raise InvalidInput("sign: type your name or draw your signature")
        if signature is not None and not signature.content_type.startswith("image/"):
            raise InvalidInput("a drawn signature is an image (PNG, JPEG or WebP)")

        def change(session: Session, row: Handover, actor: User, now: datetime) -> str:
            row.state, row.received_by, row.received_at, row.signed_name = "accepted", actor.id, now, name
            if signature is not None:
                row.signature_type, row.signature_sha256 = signature.content_type, signature.sha256
                row.signature_path = signature.path
            return "accepted"

        return self._receive(handover_id, user, change)

    def dispute(self, handover_id: int, user: User, reason: str) -> Handover:
        """The incoming person does not take the shift over as written, and says why."""
        why = _optional(reason)
        if why is None:
            raise InvalidInput("say what is wrong with the handover")

        def change(session: Session, row: Handover, actor: User, now: datetime) -> str:
            row.state, row.received_by, row.received_at, row.dispute_reason = "disputed", actor.id, now, why
            return "disputed"

        return self._receive(handover_id, user, change)

    def escalate(self) -> list[HandoverEscalation]:
        """Escalate each handover not accepted within `accept_within` of its submission, once.

        Every API replica runs this; SKIP LOCKED and `escalated_at` make each handover escalate exactly once.
        """
        now = self.now()
        steps: list[HandoverEscalation] = []
        with self._sessions.begin() as session:
            rows = session.scalars(select(Handover).where(
                Handover.state.in_(("submitted", "disputed")), Handover.escalated_at.is_(None),
                Handover.submitted_at <= now - self.accept_within)
                .order_by(Handover.submitted_at, Handover.id).with_for_update(skip_locked=True)).all()
            names = _names(session, {r.outgoing_id for r in rows}
                           | {r.incoming_id for r in rows if r.incoming_id is not None})
            for row in rows:
                row.escalated_at, row.updated_at = now, now
                audit.record(session, audit.SYSTEM, _ENTITY, row.id, "escalated", {"escalated_at": None},
                             {"escalated_at": now, "notify": Role.SUPERVISOR.value}, now)
                steps.append(HandoverEscalation(
                    row.id, row.room, row.state, names.get(row.outgoing_id, f"#{row.outgoing_id}"),
                    None if row.incoming_id is None else names.get(row.incoming_id, f"#{row.incoming_id}"),
                    row.submitted_at, row.estate))
        return steps

    # --- reading -----------------------------------------------------------------------------------

    def get(self, handover_id: int) -> Handover:
        """One handover; NotFound otherwise."""
        with self._sessions() as session:
            row = session.get(Handover, handover_id)
            if row is None:
                raise NotFound("handover", handover_id)
            return row

    def search(self, filters: HandoverFilter = HandoverFilter(), offset: int = 0,
               limit: int = 50) -> tuple[list[Handover], int]:
        """Handovers, newest first, and how many match in all."""
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"offset must be >= 0 and limit between 1 and {MAX_PAGE}")
        if filters.state is not None and filters.state not in HANDOVER_STATES:
            raise InvalidInput(f"state is one of {', '.join(HANDOVER_STATES)}")
        conditions: list[Any] = []
        if filters.room is not None:
            conditions.append(Handover.room == filters.room)
        if filters.estate is not None:
            conditions.append(Handover.estate == filters.estate)
        if filters.person is not None:
            person = filters.person
            conditions.append(or_(Handover.outgoing_id == person, Handover.incoming_id == person,
                                  Handover.received_by == person))
        if filters.since is not None:
            conditions.append(Handover.submitted_at >= filters.since)
        if filters.until is not None:
            conditions.append(Handover.submitted_at < filters.until)
        if filters.state is not None:
            conditions.append(Handover.state == filters.state)
        text = _optional(filters.text)
        if text is not None:
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append(or_(*(column.ilike(pattern, escape="\\") for column in (
                Handover.notes, Handover.urgent, Handover.dispute_reason, Handover.signed_name))))
        query = (select(Handover).where(*conditions)
                 .order_by(Handover.submitted_at.desc(), Handover.id.desc()).offset(offset).limit(limit))
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(Handover).where(*conditions)) or 0
            return list(session.scalars(query)), total

    # --- plumbing ----------------------------------------------------------------------------------

    def _receive(self, handover_id: int, user: User,
                 change: Callable[[Session, Handover, User, datetime], str]) -> Handover:
        now = self.now()
        with self._sessions.begin() as session:
            actor = _user(session, user.id)
            row = session.get(Handover, handover_id, with_for_update=True)
            if row is None:
                raise NotFound("handover", handover_id)
            if actor.id == row.outgoing_id:
                raise Forbidden("the outgoing person does not receive their own handover")
            if row.incoming_id is not None and actor.id != row.incoming_id:
                raise Forbidden("this handover is for the incoming person it names")
            require_any_role(session, actor, _SHIFT_STAFF, now, "taking over a shift")
            if row.state != "submitted":
                raise Conflict(f"the handover is {row.state} already")
            before = audit.snapshot(row)
            action = change(session, row, actor, now)
            row.updated_at = now
            session.flush()
            audit.record_change(session, audit.actor_id(actor), _ENTITY, row.id, action, before,
                                audit.snapshot(row), now)
            return row

    def _check_room(self, estate: str, room: str | None) -> None:
        rooms = self._rooms.get(estate)
        if room is not None and rooms is not None and room not in rooms:
            raise InvalidInput(f"there is no room {room!r} in estate {estate!r}")

    def _shift_start(self, start: datetime | None, now: datetime) -> datetime:
        if start is None:
            return now - timedelta(hours=12)
        if start > now:
            raise InvalidInput("the shift cannot start in the future")
        if now - start > MAX_SHIFT:
            raise InvalidInput("a shift is at most 24 hours long")
        return start

    def _reading(self, estate: str, reading: AbnormalReading) -> JsonDict:
        sensors = self._sensors.get(estate)
        if sensors is not None and reading.sensor not in sensors:
            raise InvalidInput(f"there is no sensor {reading.sensor!r} in estate {estate!r}")
        return {"sensor": reading.sensor, "value": reading.value,
                "at": None if reading.at is None else reading.at.isoformat(), "note": _optional(reading.note)}


def _carried(session: Session, estate: str, room: str | None,
             since: datetime) -> tuple[list[JsonDict], list[JsonDict], list[JsonDict]]:
    """The open alarms, open tasks and alarms raised since `since`, of `room` (None: all), as snapshots.

    Of `estate` (an empty estate: a service without a site, every estate).
    """
    alarm_room = [] if room is None else [Alarm.room == room]
    task_room = [] if room is None else [Task.room == room]
    if estate:
        alarm_room.append(Alarm.estate == estate)
        task_room.append(Task.estate == estate)
    open_alarms = session.scalars(
        select(Alarm).where(Alarm.state == AlarmState.ACTIVE.value, *alarm_room)
        .order_by(_SEVERITY_ORDER.desc(), Alarm.started_at, Alarm.id).limit(MAX_CARRIED))
    open_tasks = session.scalars(
        select(Task).where(Task.state.in_([s.value for s in OPEN_TASK_STATES]), *task_room)
        .order_by(Task.due_at.is_(None), Task.due_at, Task.id).limit(MAX_CARRIED))
    shift_alarms = session.scalars(
        select(Alarm).where(Alarm.started_at >= since, *alarm_room)
        .order_by(Alarm.started_at, Alarm.id).limit(MAX_CARRIED))
    return [_alarm(a) for a in open_alarms], [_task(t) for t in open_tasks], [_alarm(a) for a in shift_alarms]


def _alarm(alarm: Alarm) -> JsonDict:
    return {"id": alarm.id, "asset": alarm.asset, "alarm_type": alarm.alarm_type, "room": alarm.room,
            "severity": alarm.severity, "state": alarm.state, "started_at": alarm.started_at.isoformat(),
            "acknowledged": alarm.acknowledged_at is not None,
            "message": {"zh": alarm.message_zh, "en": alarm.message_en}}


def _task(task: Task) -> JsonDict:
    return {"id": task.id, "kind": task.kind, "title": {"zh": task.title_zh, "en": task.title_en},
            "state": task.state, "priority": task.priority, "asset": task.asset, "room": task.room,
            "due_at": None if task.due_at is None else task.due_at.isoformat(),
            "assignees": task.assignee_ids}


def _item(item: KeyOrTool) -> JsonDict:
    name = _optional(item.item)
    if name is None:
        raise InvalidInput("name each key or tool")
    if item.quantity < 0:
        raise InvalidInput("a quantity is never negative")
    return {"item": name, "quantity": item.quantity, "state": ItemState(item.state).value,
            "note": _optional(item.note)}


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {u.id: u.display_name for u in session.scalars(select(User).where(User.id.in_(ids)))}


def _optional(text: str | None) -> str | None:
    value = (text or "").strip()
    return value or None


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise Forbidden("an inactive or unknown user cannot act")
    return user
