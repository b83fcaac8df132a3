"""The audit trail: every change the services make is one row saying who, when, what, before and after."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from maintenance.models import AuditLog, Base, JsonDict, User

SYSTEM = "system"
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
