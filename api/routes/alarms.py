"""Alarms: list and filter (any signed-in user), acknowledge (operator, supervisor, admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api.deps import CallerScope, Ctx, CurrentUser, alarm_in_scope
from api.schemas import MAX_ID, AckIn, AlarmOnBoard, AlarmPublic, AuditEntryPublic, Page, PathId, TaskPublic
from maintenance.alarms import AlarmFilter
from maintenance.audit import AuditFilter
from maintenance.models import Alarm
from maintenance.vocab import AlarmState
from pumpwatch.site import Severity

router = APIRouter(prefix="/api/alarms", tags=["alarms"], dependencies=[Depends(alarm_in_scope)])


@router.get("", response_model=Page[AlarmOnBoard])
def list_alarms(ctx: Ctx, _user: CurrentUser, scope: CallerScope, state: AlarmState | None = None,
                acknowledged: bool | None = None, severity: Severity | None = None,
                room: str | None = None, asset: str | None = None, since: datetime | None = None,
                offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
                limit: Annotated[int, Query(ge=1, le=500)] = 100,
                estate: str | None = None) -> Response:
    """Alarms, newest first, filtered; a room or asset is one estate's (`estate`, needed with several).

    The same question from the same scope within a second, with nothing written by this process since,
    gets the same answer without a query (`api.answer_cache`).
    """
    place = ctx.estate(estate) if estate is not None or room is not None or asset is not None else None
    filters = AlarmFilter(state=state, acknowledged=acknowledged, severity=severity, room=room, asset=asset,
                          since=since, estate=place, within=scope.estates)

    def page() -> bytes:
        items, total = ctx.alarms.list_alarms(filters, offset, limit)
        return Page[AlarmOnBoard](data=_on_board(ctx, items), count=total).model_dump_json().encode()

    answer = ctx.alarm_lists.answer((filters, offset, limit), ctx.alarms.writes.version, page)
    return Response(answer, media_type="application/json")


@router.get("/{alarm_id}", response_model=AlarmOnBoard)
def get_alarm(alarm_id: PathId, ctx: Ctx, _user: CurrentUser) -> AlarmOnBoard:
    """One alarm."""
    return _on_board(ctx, [ctx.alarms.get(alarm_id)])[0]


def _on_board(ctx: Ctx, alarms: list[Alarm]) -> list[AlarmOnBoard]:
    """The alarms with the approved exception that silences each, if any (maintenance/exceptions.py)."""
    silences = ctx.alarms.silences(alarms)
    board = [AlarmOnBoard.model_validate(a) for a in alarms]
    for alarm in board:
        if (silence := silences.get(alarm.id)) is not None:
            alarm.silenced_by_exception, alarm.silenced_until = silence.exception_id, silence.until
    return board


@router.get("/{alarm_id}/task", response_model=TaskPublic | None)
def alarm_task(alarm_id: PathId, ctx: Ctx, _user: CurrentUser) -> TaskPublic | None:
    """The task raised for an alarm."""
    task = ctx.alarms.task_for(alarm_id)
    return TaskPublic.model_validate(task) if task is not None else None


@router.get("/{alarm_id}/history", response_model=Page[AuditEntryPublic])
def alarm_history(alarm_id: PathId, ctx: Ctx, _user: CurrentUser) -> Page[AuditEntryPublic]:
    """The alarm's own record, oldest first (any signed-in user, unlike the rest of the audit trail).

    Raised, escalated and de-escalated, peaks, acknowledgements with their comments, cleared, reopened.
    """
    ctx.alarms.get(alarm_id)  # 404 for an alarm that does not exist
    assert ctx.audit is not None
    rows, total = ctx.audit.search(AuditFilter(entity="alarm", entity_id=str(alarm_id)), 0, 500)
    return Page(data=[AuditEntryPublic.model_validate(r) for r in reversed(rows)], count=total)


@router.post("/{alarm_id}/ack", response_model=AlarmPublic)
def acknowledge(alarm_id: PathId, ctx: Ctx, user: CurrentUser, body: AckIn | None = None) -> AlarmPublic:
    """Acknowledge an alarm (operator, supervisor, admin), with an optional comment kept in its record."""
    return AlarmPublic.model_validate(ctx.alarms.acknowledge(alarm_id, user, body.comment if body else None))
