"""The audit trail: every change the services make is one row saying who, when, what, before and after.

Append-only: rows are added with `record` / `record_change` in the transaction of the change they
describe; the ORM refuses to update or delete one (`_refuse_changes` below), and the read side
(`AuditTrail`) only reads.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, and_, cast, event, false, func, inspect, or_, select
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from maintenance.approval_models import AccessRequest, ChangeRequest
from maintenance.errors import Forbidden, InvalidInput
from maintenance.exception_models import SwitchException
from maintenance.exports import csv_text
from maintenance.handover_models import Handover
from maintenance.models import Alarm, Attachment, AuditLog, Base, JsonDict, Task, User

SYSTEM = "system"
MAX_PAGE = 500
MAX_EXPORT = 100_000  # rows in one CSV export; narrow the filter for more
# Never copied into the trail: a hash is still a secret worth guessing against.
_SECRET_COLUMNS = frozenset({"password_hash", "token_hash", "csrf_hash"})


def actor_id(user: User | None) -> str:
    """Return the audit actor for `user`: its id, or "system" for automatic changes."""
    return SYSTEM if user is None else str(user.id)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


def snapshot(obj: Base) -> JsonDict:
    """Return the entity's column values as JSON-ready data, secrets left out."""
    mapper = inspect(obj).mapper
    return {attr.key: _json_value(getattr(obj, attr.key))
            for attr in mapper.column_attrs if attr.key not in _SECRET_COLUMNS}


def diff(before: JsonDict, after: JsonDict) -> tuple[JsonDict, JsonDict]:
    """Return only the fields that changed, as (before, after)."""
    keys = [k for k in after if before.get(k) != after[k]] + [k for k in before if k not in after]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def record(session: Session, actor: str, entity: str, entity_id: object, action: str,
           before: JsonDict | None, after: JsonDict | None, now: datetime) -> AuditLog:
    """Add one audit row to the session's transaction, so it commits or rolls back with the change."""
    row = AuditLog(ts=now, actor=actor, entity=entity, entity_id=str(entity_id), action=action,
                   before=None if before is None else _json_value(before),
                   after=None if after is None else _json_value(after))
    session.add(row)
    return row


def record_change(session: Session, actor: str, entity: str, entity_id: object, action: str,
                  before: JsonDict, after: JsonDict, now: datetime) -> AuditLog:
    """Record an update, keeping only the fields that changed between two snapshots."""
    changed_before, changed_after = diff(before, after)
    return record(session, actor, entity, entity_id, action, changed_before, changed_after, now)


def history(session: Session, entity: str, entity_id: object) -> list[AuditLog]:
    """Return the audit rows of one entity, oldest first."""
    query = (select(AuditLog).where(AuditLog.entity == entity, AuditLog.entity_id == str(entity_id))
             .order_by(AuditLog.id))
    return list(session.scalars(query))


# --- append-only -------------------------------------------------------------------------------------


def _refuse(*_args: Any) -> None:
    raise Forbidden("the audit trail is append-only: its rows are never changed or deleted")


event.listen(AuditLog, "before_update", _refuse)
event.listen(AuditLog, "before_delete", _refuse)


@event.listens_for(Session, "do_orm_execute")
def _refuse_changes(state: ORMExecuteState) -> None:
    """Refuse bulk UPDATE and DELETE statements on the audit trail run through a session."""
    if (state.is_update or state.is_delete) and state.bind_mapper is not None \
            and state.bind_mapper.class_ is AuditLog:
        _refuse()


# --- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which audit rows to read; None means any.

    `actor` is a user id or "system"; `asset` keeps the rows of the tasks, alarms, attachments, change
    requests and exceptions of that asset; `since` is inclusive, `until` exclusive. `within` (a reader
    scoped to estates) keeps the rows of records in those estates (tasks, alarms, attachments, access and
    change requests, exceptions, handovers, reports, the estates themselves); rows about people and
    tokens, which belong to no estate, are left to readers of the whole organisation (None).
    """

    actor: str | None = None
    entity: str | None = None
    entity_id: str | None = None
    asset: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    within: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit row with the display name of its actor (None for the system or a deleted user)."""

    id: int
    ts: datetime
    actor: str
    actor_name: str | None
    entity: str
    entity_id: str
    action: str
    before: JsonDict | None
    after: JsonDict | None


_CSV_HEADER = ("id", "ts", "actor", "actor_name", "entity", "entity_id", "action", "before", "after")


class AuditTrail:
    """Reads the audit trail: filtered pages and CSV exports. It has no way to write."""

    def __init__(self, sessions: sessionmaker[Session], max_export: int = MAX_EXPORT) -> None:
        self._sessions = sessions
        self.max_export = max_export

    def search(self, filters: AuditFilter = AuditFilter(), offset: int = 0,
               limit: int = 100) -> tuple[list[AuditEntry], int]:
        """One page of rows, newest first, and how many match in all."""
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"offset must be >= 0 and limit between 1 and {MAX_PAGE}")
        conditions = _conditions(filters)
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(AuditLog).where(*conditions)) or 0
            rows = list(session.scalars(select(AuditLog).where(*conditions).order_by(AuditLog.id.desc())
                                        .offset(offset).limit(limit)))
            return _entries(session, rows), total

    def export_csv(self, filters: AuditFilter = AuditFilter()) -> str:
        """Every matching row as CSV, oldest first; cells that look like formulas are made inert."""
        conditions = _conditions(filters)
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(AuditLog).where(*conditions)) or 0
            if total > self.max_export:
                raise InvalidInput(f"{total} rows match; an export holds at most {self.max_export}: "
                                   "narrow the filter")
            rows = list(session.scalars(select(AuditLog).where(*conditions).order_by(AuditLog.id)))
            entries = _entries(session, rows)
        return csv_text(_CSV_HEADER, ([e.id, e.ts.isoformat(), e.actor, e.actor_name, e.entity, e.entity_id,
                                       e.action, _json_cell(e.before), _json_cell(e.after)] for e in entries))


def _conditions(filters: AuditFilter) -> list[Any]:
    conditions: list[Any] = []
    for column, value in ((AuditLog.actor, filters.actor), (AuditLog.entity, filters.entity),
                          (AuditLog.entity_id, filters.entity_id)):
        if value is not None:
            conditions.append(column == value)
    if filters.since is not None:
        conditions.append(AuditLog.ts >= filters.since)
    if filters.until is not None:
        conditions.append(AuditLog.ts < filters.until)
    if filters.asset is not None:
        conditions.append(or_(*(and_(AuditLog.entity == entity, AuditLog.entity_id.in_(ids))
                                for entity, ids in _of_asset(filters.asset))))
    if filters.within is not None:
        conditions.append(_within(filters.within))
    return conditions


def _within(estates: frozenset[str]) -> Any:
    """Rows of records in one of `estates`; a report's id is `<estate>:<month>`."""
    if not estates:
        return false()
    return or_(*(and_(AuditLog.entity == entity, AuditLog.entity_id.in_(ids))
                 for entity, ids in _of_estates(estates)),
               and_(AuditLog.entity == "report",
                    or_(*(AuditLog.entity_id.startswith(f"{e}:", autoescape=True)
                          for e in sorted(estates)))))


def _of_asset(asset: str) -> list[tuple[str, Any]]:
    """Per entity, the ids (as the trail stores them: text) of the rows that belong to `asset`."""
    def ids(model: Any, *where: Any) -> Any:
        return select(cast(model.id, String)).where(*where)

    task_ids = select(Task.id).where(Task.asset == asset)
    return [("task", ids(Task, Task.asset == asset)), ("alarm", ids(Alarm, Alarm.asset == asset)),
            ("attachment", ids(Attachment, Attachment.task_id.in_(task_ids))),
            ("change_request", ids(ChangeRequest, ChangeRequest.asset == asset)),
            ("exception", ids(SwitchException, SwitchException.asset == asset))]


def _of_estates(estates: frozenset[str]) -> list[tuple[str, Any]]:
    """Per entity, the ids (as the trail stores them: text) of the rows that belong to `estates`."""
    def ids(model: Any) -> Any:
        return select(cast(model.id, String)).where(model.estate.in_(estates))

    task_ids = select(Task.id).where(Task.estate.in_(estates))
    return [("task", ids(Task)), ("alarm", ids(Alarm)),
            ("attachment", select(cast(Attachment.id, String)).where(Attachment.task_id.in_(task_ids))),
            ("access_request", ids(AccessRequest)), ("change_request", ids(ChangeRequest)),
            ("exception", ids(SwitchException)), ("handover", ids(Handover)),
            ("estate", sorted(estates))]


def _entries(session: Session, rows: Sequence[AuditLog]) -> list[AuditEntry]:
    user_ids = {int(r.actor) for r in rows if r.actor.isdigit()}
    names: dict[int, str] = {} if not user_ids else {
        user_id: name for user_id, name in session.execute(
            select(User.id, User.display_name).where(User.id.in_(user_ids)))}
    return [AuditEntry(r.id, r.ts, r.actor, names.get(int(r.actor)) if r.actor.isdigit() else None, r.entity,
                       r.entity_id, r.action, r.before, r.after) for r in rows]


def _json_cell(value: JsonDict | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)
