"""Approved exceptions: a switch kept out of AUTO for a special reason, for a time (rule 4).

Requested by staff, approved or refused by a supervisor who is not the requester, ended early by the
supervisor or the requester; the service holds the rules (403 when broken, 409 when the state forbids).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import CallerScope, Ctx, CurrentUser, exception_in_scope, place_in_scope
from api.schemas import MAX_ID, ExceptionCreate, ExceptionPublic, Page, PathId, ReasonIn
from maintenance.errors import InvalidInput
from maintenance.exception_models import EXCEPTION_STATES
from maintenance.exceptions import ExceptionService

router = APIRouter(prefix="/api/exceptions", tags=["exceptions"], dependencies=[Depends(exception_in_scope)])


def _service(ctx: Ctx) -> ExceptionService:
    assert ctx.exceptions is not None
    return ctx.exceptions


def _out(row: object) -> ExceptionPublic:
    return ExceptionPublic.model_validate(row)


@router.get("", response_model=Page[ExceptionPublic])
def list_exceptions(ctx: Ctx, _user: CurrentUser, scope: CallerScope, state: str | None = None,
                    asset: str | None = None,
                    room: str | None = None, offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
                    limit: Annotated[int, Query(ge=1, le=500)] = 100,
                    estate: str | None = None) -> Page[ExceptionPublic]:
    """Exceptions, newest first (any signed-in user); a room or asset is one estate's (`estate`)."""
    if state is not None and state not in EXCEPTION_STATES:
        raise InvalidInput(f"state is one of {', '.join(EXCEPTION_STATES)}")
    place = place_in_scope(ctx, scope, estate, room is not None or asset is not None)
    rows, total = _service(ctx).list_exceptions(state, asset, room, offset, limit, estate=place)
    if place is None and not scope.whole:  # several estates in scope: this page's rows of them
        rows = [r for r in rows if scope.covers(r.estate)]
        total = len(rows)
    return Page(data=[_out(r) for r in rows], count=total)


@router.post("", response_model=ExceptionPublic, status_code=201)
def request_exception(ctx: Ctx, user: CurrentUser, body: ExceptionCreate,
                      estate: str | None = None) -> ExceptionPublic:
    """Ask for a switch to stay out of AUTO from `starts_at` until `ends_at`, and why (staff)."""
    return _out(_service(ctx).request(user, body.reason, body.starts_at, body.ends_at, body.asset,
                                      body.sensor, ctx.estate(estate)))


@router.get("/{exception_id}", response_model=ExceptionPublic)
def get_exception(exception_id: PathId, ctx: Ctx, _user: CurrentUser) -> ExceptionPublic:
    """One exception."""
    return _out(_service(ctx).get(exception_id))


@router.post("/{exception_id}/approve", response_model=ExceptionPublic)
def approve(exception_id: PathId, ctx: Ctx, user: CurrentUser) -> ExceptionPublic:
    """Approve (a supervisor, held or deputised, who did not ask for it)."""
    return _out(_service(ctx).approve(exception_id, user))


@router.post("/{exception_id}/reject", response_model=ExceptionPublic)
def reject(exception_id: PathId, ctx: Ctx, user: CurrentUser, body: ReasonIn) -> ExceptionPublic:
    """Refuse, with a reason (a supervisor)."""
    return _out(_service(ctx).reject(exception_id, user, body.reason))


@router.post("/{exception_id}/revoke", response_model=ExceptionPublic)
def revoke(exception_id: PathId, ctx: Ctx, user: CurrentUser, body: ReasonIn) -> ExceptionPublic:
    """End early (the supervisor or the requester); a silenced alarm still active gets its task now."""
    return _out(_service(ctx).revoke(exception_id, user, body.reason))
