"""Access requests (two approvals, escort, entry and exit) and change requests (supervisor consent).

Separation of duties lives in the approval service: no one approves what they filed (not even as a
deputy), a change is decided by a supervisor and never by an administrator alone, and only the escort
named on the request (or the deputy escort named with it) confirms the entry and the exit; each
refusal is a 403 problem saying why.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.deps import CallerScope, Ctx, CurrentUser, access_in_scope, change_in_scope, place_in_scope
from api.schemas import Body, DbId, Page, PathId, ReasonIn
from maintenance.approvals import ApprovalService

router = APIRouter(prefix="/api", tags=["approvals"])


class AccessCreate(Body):
    """A visit to request."""

    visitor: str = Field(min_length=1, max_length=200)
    organisation: str | None = Field(None, max_length=200)
    purpose: str = Field(min_length=1, max_length=2000)
    room: str = Field(min_length=1, max_length=100)
    window_start: AwareDatetime  # a naive time is refused (422): whose clock would it be?
    window_end: AwareDatetime
    escort_id: DbId
    escort_deputy_id: DbId | None = None  # who may accompany the visitor in the escort's place


class AccessPublic(BaseModel):
    """An access request and its approvals."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    estate: str
    visitor: str
    organisation: str | None
    purpose: str
    room: str
    window_start: datetime
    window_end: datetime
    escort_id: DbId
    escort_deputy_id: int | None
    requested_by: int
    state: str
    supervisor_approved_by: int | None
    supervisor_approved_at: datetime | None
    director_approved_by: int | None
    director_approved_at: datetime | None
    decided_reason: str | None
    entered_at: datetime | None
    exited_at: datetime | None
    created_at: datetime


class ChangeCreate(Body):
    """A change to wiring or equipment."""

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=4000)
    room: str | None = Field(None, max_length=100)
    asset: str | None = Field(None, max_length=100)


class ChangePublic(BaseModel):
    """A change request and its decision."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    estate: str
    title: str
    description: str
    room: str | None
    asset: str | None
    requested_by: int
    state: str
    decided_by: int | None
    decided_at: datetime | None
    decided_reason: str | None
    task_id: PathId | None
    created_at: datetime


def _service(ctx: Ctx) -> ApprovalService:
    assert ctx.approvals is not None
    return ctx.approvals


@router.get("/access-requests", response_model=Page[AccessPublic])
def list_access(ctx: Ctx, user: CurrentUser, scope: CallerScope, state: str | None = None,
                room: str | None = None, estate: str | None = None) -> Page[AccessPublic]:
    """Access requests, newest first (any signed-in user); a room is one estate's (`estate`)."""
    place = place_in_scope(ctx, scope, estate, room is not None)
    rows = [r for r in _service(ctx).list_access(state, room, place) if scope.covers(r.estate)]
    return Page(data=[AccessPublic.model_validate(r) for r in rows], count=len(rows))


@router.post("/access-requests", response_model=AccessPublic, status_code=201)
def request_access(ctx: Ctx, user: CurrentUser, body: AccessCreate,
                   estate: str | None = None) -> AccessPublic:
    """Request a visit (staff) to a room of `estate` (needed when the deployment has several)."""
    row = _service(ctx).request_access(user, body.visitor, body.purpose, body.room, body.window_start,
                                       body.window_end, body.escort_id, body.organisation,
                                       body.escort_deputy_id, estate=ctx.estate(estate))
    return AccessPublic.model_validate(row)


@router.post("/access-requests/{request_id}/approve", response_model=AccessPublic,
             dependencies=[Depends(access_in_scope)])
def approve_access(request_id: PathId, ctx: Ctx, user: CurrentUser) -> AccessPublic:
    """Give the supervisor's or the director's approval (deputies allowed; never the requester's own)."""
    return AccessPublic.model_validate(_service(ctx).approve_access(request_id, user))


@router.post("/access-requests/{request_id}/reject", response_model=AccessPublic,
             dependencies=[Depends(access_in_scope)])
def reject_access(request_id: PathId, ctx: Ctx, user: CurrentUser, body: ReasonIn) -> AccessPublic:
    """Refuse a visit (supervisor or director)."""
    return AccessPublic.model_validate(_service(ctx).reject_access(request_id, user, body.reason))


@router.post("/access-requests/{request_id}/enter", response_model=AccessPublic,
             dependencies=[Depends(access_in_scope)])
def enter(request_id: PathId, ctx: Ctx, user: CurrentUser) -> AccessPublic:
    """Confirm the visitor's entry (the escort named on the request, or its deputy escort)."""
    return AccessPublic.model_validate(_service(ctx).log_entry(request_id, user))


@router.post("/access-requests/{request_id}/exit", response_model=AccessPublic,
             dependencies=[Depends(access_in_scope)])
def leave(request_id: PathId, ctx: Ctx, user: CurrentUser) -> AccessPublic:
    """Confirm the visitor's exit (the escort, or its deputy escort)."""
    return AccessPublic.model_validate(_service(ctx).log_exit(request_id, user))


@router.get("/change-requests", response_model=Page[ChangePublic])
def list_changes(ctx: Ctx, user: CurrentUser, scope: CallerScope, state: str | None = None,
                 estate: str | None = None) -> Page[ChangePublic]:
    """Change requests, newest first (every estate's, or `estate`'s)."""
    place = place_in_scope(ctx, scope, estate, False)
    rows = [r for r in _service(ctx).list_changes(state, place) if scope.covers(r.estate)]
    return Page(data=[ChangePublic.model_validate(r) for r in rows], count=len(rows))


@router.post("/change-requests", response_model=ChangePublic, status_code=201)
def request_change(ctx: Ctx, user: CurrentUser, body: ChangeCreate,
                   estate: str | None = None) -> ChangePublic:
    """Ask for a change to wiring or equipment (staff) of `estate` (needed with several estates)."""
    row = _service(ctx).request_change(user, body.title, body.description, body.room, body.asset,
                                       estate=ctx.estate(estate))
    return ChangePublic.model_validate(row)


@router.post("/change-requests/{request_id}/approve", response_model=ChangePublic,
             dependencies=[Depends(change_in_scope)])
def approve_change(request_id: PathId, ctx: Ctx, user: CurrentUser) -> ChangePublic:
    """Consent to the change (a supervisor, not the requester); its work task is created."""
    return ChangePublic.model_validate(_service(ctx).decide_change(request_id, user, True))


@router.post("/change-requests/{request_id}/reject", response_model=ChangePublic,
             dependencies=[Depends(change_in_scope)])
def reject_change(request_id: PathId, ctx: Ctx, user: CurrentUser, body: ReasonIn) -> ChangePublic:
    """Refuse the change (supervisor), with a reason."""
    return ChangePublic.model_validate(_service(ctx).decide_change(request_id, user, False, body.reason))
