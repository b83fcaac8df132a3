"""Approvals the regulation asks for.

Access requests: a non-staff person enters a pump room only with the approval of BOTH the engineering
supervisor and the management-office director (either order, deputies allowed, two different people),
escorted by a named member of staff; entry and exit are logged; requests whose window passes expire.

Change requests: no change to wiring or equipment without the supervisor's consent; the work task
is created only when the change is approved.

Separation of duties (maintenance/duties.py): no one approves what they requested, not even through a
deputyship; change requests are decided by a supervisor (held or deputised), never by an administrator
alone; the escort named on an access request confirms the entry and the exit in person, or the deputy
escort named on the same request does. A deputy escort is a column of the request rather than a row
of the deputies table: escorting is not a role held for a period but a duty for one visit, named
when the request is filed, so the approvers see who may accompany the visitor.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from maintenance import audit
from maintenance.approval_models import AccessRequest, ChangeRequest
from maintenance.duties import may_decide_as, not_the_requester, require_decider
from maintenance.errors import Conflict, Forbidden, InvalidInput, NotFound
from maintenance.models import User, utc_from_epoch
from maintenance.roles import has_role, holds_role, require_any_role
from maintenance.tasks import TaskService
from maintenance.vocab import Priority, Role, TaskKind
from pumpwatch.clock import Clock
from pumpwatch.site import Text

MAX_WINDOW = timedelta(days=31)
_STAFF = (Role.OPERATOR, Role.TECHNICIAN, Role.SUPERVISOR, Role.DIRECTOR, Role.ADMIN)


class ApprovalService:
    """Access and change requests, every step audited."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, tasks: TaskService) -> None:
        self._sessions = sessions
        self._clock = clock
        self._tasks = tasks

    def now(self) -> datetime:
        """The injected clock as an aware UTC datetime."""
        return utc_from_epoch(self._clock.now())

    # --- access requests ---------------------------------------------------------------------------

    def request_access(self, user: User, visitor: str, purpose: str, room: str, window_start: datetime,
                       window_end: datetime, escort_id: int, organisation: str | None = None,
                       escort_deputy_id: int | None = None, estate: str = "") -> AccessRequest:
        """File a request (any staff member); the escort, and the deputy escort if one is named, are staff.

        `estate` is the estate of the room (the caller resolves it).
        """
        if window_end <= window_start:
            raise InvalidInput("the visit must end after it starts")
        if window_end - window_start > MAX_WINDOW:
            raise InvalidInput("a visit window is at most 31 days")
        if not visitor.strip() or not purpose.strip():
            raise InvalidInput("name the visitor and the purpose")
        now = self.now()
        if window_end <= now:
            raise InvalidInput("the visit window is already over")
        with self._sessions.begin() as session:
            actor = _user(session, user.id)
            require_any_role(session, actor, _STAFF, now, "requesting pump-room access")
            escort = session.get(User, escort_id)
            if escort is None or not any(has_role(session, escort, r, now) for r in _STAFF):
                raise InvalidInput(f"user {escort_id} cannot escort: not an active member of staff")
            if escort_deputy_id is not None:
                deputy = session.get(User, escort_deputy_id)
                if escort_deputy_id == escort.id:
                    raise InvalidInput("the deputy escort must be someone other than the escort")
                if deputy is None or not any(has_role(session, deputy, r, now) for r in _STAFF):
                    raise InvalidInput(f"user {escort_deputy_id} cannot be the deputy escort: "
                                       "not an active member of staff")
            row = AccessRequest(estate=estate, visitor=visitor.strip(),
                                organisation=(organisation or "").strip() or None,
                                purpose=purpose.strip(), room=room, window_start=window_start,
                                window_end=window_end, escort_id=escort.id, escort_deputy_id=escort_deputy_id,
                                requested_by=actor.id, state="pending", created_at=now, updated_at=now)
            session.add(row)
            session.flush()
            audit.record(session, audit.actor_id(actor), "access_request", row.id, "requested", None,
                         audit.snapshot(row), now)
            return row

    def approve_access(self, request_id: int, user: User) -> AccessRequest:
        """Add the supervisor's or the director's approval (whichever this user may give and is missing).

        Not the requester's own, not in the name of a principal who filed it or approved it already.
        """
        def change(session: Session, row: AccessRequest, actor: User, now: datetime) -> str:
            if row.state != "pending":
                raise Conflict(f"the request is {row.state}, not pending")
            not_the_requester(actor, row.requested_by, "an access request")
            if actor.id in (row.supervisor_approved_by, row.director_approved_by):
                raise Forbidden("the two approvals must come from two different people")
            slot = _approval_slot(session, row, actor, now)
            if slot == "supervisor":
                row.supervisor_approved_by, row.supervisor_approved_at = actor.id, now
            elif slot == "director":
                row.director_approved_by, row.director_approved_at = actor.id, now
            elif any(has_role(session, actor, r, now) for r in (Role.SUPERVISOR, Role.DIRECTOR)):
                raise Conflict("the approval this user can give is already there")
            else:
                raise Forbidden("access is approved by the engineering supervisor and the director")
            if row.supervisor_approved_by is not None and row.director_approved_by is not None:
                row.state = "approved"
            return "approved"

        return self._access(request_id, user, change)

    def reject_access(self, request_id: int, user: User, reason: str) -> AccessRequest:
        """Refuse a pending request (supervisor or director), with a reason."""
        why = _required(reason, "a reason")

        def change(session: Session, row: AccessRequest, actor: User, now: datetime) -> str:
            require_any_role(session, actor, (Role.SUPERVISOR, Role.DIRECTOR), now, "rejecting access")
            if row.state != "pending":
                raise Conflict(f"the request is {row.state}, not pending")
            row.state, row.decided_reason = "rejected", why
            return "rejected"

        return self._access(request_id, user, change)

    def log_entry(self, request_id: int, user: User) -> AccessRequest:
        """The visitor enters: only approved, inside the window, confirmed by the escort (or their deputy)."""
        def change(session: Session, row: AccessRequest, actor: User, now: datetime) -> str:
            self._may_log(session, row, actor, now)
            if row.state != "approved":
                raise Conflict(f"entry needs an approved request; this one is {row.state}")
            if row.entered_at is not None:
                raise Conflict("the entry is logged already")
            if not row.window_start <= now < row.window_end:
                raise Conflict("outside the approved time window")
            row.entered_at = now
            return "entered"

        return self._access(request_id, user, change)

    def log_exit(self, request_id: int, user: User) -> AccessRequest:
        """The visitor leaves; the request closes."""
        def change(session: Session, row: AccessRequest, actor: User, now: datetime) -> str:
            self._may_log(session, row, actor, now)
            if row.entered_at is None or row.exited_at is not None:
                raise Conflict("no entry to close")
            row.exited_at, row.state = now, "closed"
            return "exited"

        return self._access(request_id, user, change)

    def expire(self) -> list[int]:
        """Close requests whose window has passed without an entry; returns their ids."""
        now = self.now()
        expired = []
        with self._sessions.begin() as session:
            rows = session.scalars(select(AccessRequest).where(
                AccessRequest.state.in_(("pending", "approved")), AccessRequest.entered_at.is_(None),
                AccessRequest.window_end <= now).with_for_update(skip_locked=True))
            for row in rows:
                before = audit.snapshot(row)
                row.state, row.updated_at = "expired", now
                audit.record(session, audit.SYSTEM, "access_request", row.id, "expired", before,
                             audit.snapshot(row), now)
                expired.append(row.id)
        return expired

    def list_access(self, state: str | None = None, room: str | None = None,
                    estate: str | None = None) -> list[AccessRequest]:
        """Requests, newest first (of one estate, or of all when None)."""
        query = select(AccessRequest).order_by(AccessRequest.id.desc()).limit(500)
        if estate is not None:
            query = query.where(AccessRequest.estate == estate)
        if state is not None:
            query = query.where(AccessRequest.state == state)
        if room is not None:
            query = query.where(AccessRequest.room == room)
        with self._sessions() as session:
            return list(session.scalars(query))

    def _may_log(self, session: Session, row: AccessRequest, actor: User, now: datetime) -> None:
        # The escort's confirmation is what records that the visitor was accompanied: nobody else's counts.
        if actor.id not in (row.escort_id, row.escort_deputy_id):
            raise Forbidden("entry and exit are confirmed by the escort named on the request (or the deputy "
                            "escort named with it), who accompanies the visitor")

    def estate_of(self, kind: str, request_id: int) -> str:
        """The estate of an access (`kind` "access") or change request; NotFound otherwise."""
        with self._sessions() as session:
            row = (session.get(AccessRequest, request_id) if kind == "access"
                   else session.get(ChangeRequest, request_id))
            if row is None:
                raise NotFound(f"{kind} request", request_id)
            return row.estate

    def _access(self, request_id: int, user: User,
                change: Callable[[Session, AccessRequest, User, datetime], str]) -> AccessRequest:
        now = self.now()
        with self._sessions.begin() as session:
            actor = _user(session, user.id)
            row = session.get(AccessRequest, request_id, with_for_update=True)
            if row is None:
                raise NotFound("access request", request_id)
            before = audit.snapshot(row)
            action = change(session, row, actor, now)
            row.updated_at = now
            audit.record(session, audit.actor_id(actor), "access_request", row.id, action, before,
                         audit.snapshot(row), now)
            return row

    # --- change requests ---------------------------------------------------------------------------

    def request_change(self, user: User, title: str, description: str, room: str | None = None,
                       asset: str | None = None, estate: str = "") -> ChangeRequest:
        """File a change to wiring or equipment (any staff member), in `estate` (the caller resolves it)."""
        now = self.now()
        with self._sessions.begin() as session:
            actor = _user(session, user.id)
            require_any_role(session, actor, _STAFF, now, "requesting a change")
            row = ChangeRequest(estate=estate, title=_required(title, "a title"),
                                description=_required(description, "a description"), room=room,
                                asset=asset, requested_by=actor.id, state="pending", created_at=now,
                                updated_at=now)
            session.add(row)
            session.flush()
            audit.record(session, audit.actor_id(actor), "change_request", row.id, "requested", None,
                         audit.snapshot(row), now)
            return row

    def decide_change(self, request_id: int, user: User, approve: bool,
                      reason: str | None = None) -> ChangeRequest:
        """The supervisor's decision; an approval creates the work task (kind `change`).

        Decided by a supervisor in person or by a supervisor's deputy, never by an administrator alone; the
        requester may refuse (withdraw) their own request but never approve it.
        """
        now = self.now()
        with self._sessions.begin() as session:
            actor = _user(session, user.id)
            row = session.get(ChangeRequest, request_id, with_for_update=True)
            if row is None:
                raise NotFound("change request", request_id)
            if approve:
                not_the_requester(actor, row.requested_by, "a change request")
            require_decider(session, actor, Role.SUPERVISOR, now, (row.requested_by,) if approve else (),
                            "deciding a change request")
            if row.state != "pending":
                raise Conflict(f"the request is {row.state}, not pending")
            if not approve and not (reason or "").strip():
                raise InvalidInput("say why the change is refused")
            before = audit.snapshot(row)
            row.state = "approved" if approve else "rejected"
            row.decided_by, row.decided_at, row.decided_reason = actor.id, now, (reason or "").strip() or None
            row.updated_at = now
            audit.record(session, audit.actor_id(actor), "change_request", row.id, row.state, before,
                         audit.snapshot(row), now)
        if approve:
            task = self._tasks.create_task(actor, Text(zh=f"变更：{row.title}", en=f"Change: {row.title}"),
                                           TaskKind.CHANGE, Priority.NORMAL, row.asset, row.room,
                                           row.description, estate=row.estate)
            with self._sessions.begin() as session:
                stored = session.get(ChangeRequest, request_id)
                assert stored is not None
                stored.task_id = task.id
                row = stored
        return row

    def list_changes(self, state: str | None = None, estate: str | None = None) -> list[ChangeRequest]:
        """Change requests, newest first (of one estate, or of all when None)."""
        query = select(ChangeRequest).order_by(ChangeRequest.id.desc()).limit(500)
        if estate is not None:
            query = query.where(ChangeRequest.estate == estate)
        if state is not None:
            query = query.where(ChangeRequest.state == state)
        with self._sessions() as session:
            return list(session.scalars(query))


def _approval_slot(session: Session, row: AccessRequest, actor: User, now: datetime) -> str | None:
    """Which missing approval this user gives: a role held in person first, then one held as deputy.

    A deputy approves in a principal's name: not for the requester, nor for the person who gave the
    other approval (Forbidden says so when that is the only deputyship the user has).
    """
    open_slots = [(role, name) for role, name, taken in (
        (Role.SUPERVISOR, "supervisor", row.supervisor_approved_by),
        (Role.DIRECTOR, "director", row.director_approved_by)) if taken is None]
    for role, name in open_slots:
        if holds_role(actor, role):
            return name
    excluded = (row.requested_by, row.supervisor_approved_by, row.director_approved_by)
    refusal = None
    for role, name in open_slots:
        verdict = may_decide_as(session, actor, role, now, excluded)
        if verdict is True:
            return name
        if isinstance(verdict, str):
            refusal = verdict
    if refusal is not None:
        raise Forbidden(f"approving access: {refusal}")
    return None


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise Forbidden("an inactive or unknown user cannot act")
    return user


def _required(text: str | None, what: str) -> str:
    value = (text or "").strip()
    if not value:
        raise InvalidInput(f"give {what}")
    return value
