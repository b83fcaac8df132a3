"""Users, roles and deputies (admin only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from api.deps import Ctx, CurrentUser, require
from api.schemas import DeputyCreate, Page, PathId, SignInFailurePublic, UserCreate, UserPublic, UserUpdate
from maintenance.errors import InvalidInput
from maintenance.models import User
from maintenance.vocab import Role

router = APIRouter(prefix="/api/users", tags=["users"])
Admin = Annotated[User, Depends(require(Role.ADMIN))]


class DeputyPublic(BaseModel):
    """A deputy period: `deputy_id` acts for `principal_id` in `role` from `valid_from` to `valid_until`."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    deputy_id: int
    principal_id: int
    role: str
    valid_from: datetime
    valid_until: datetime | None
    created_at: datetime


@router.get("", response_model=Page[UserPublic])
def list_users(ctx: Ctx, _admin: Admin) -> Page[UserPublic]:
    """Every user."""
    users = ctx.auth.list_users()
    return Page(data=[UserPublic.model_validate(u) for u in users], count=len(users))


@router.get("/sign-in-failures", response_model=Page[SignInFailurePublic])
def sign_in_failures(ctx: Ctx, admin: Admin) -> Page[SignInFailurePublic]:
    """Failed sign-ins by account name and address, newest first (known and unknown names alike)."""
    rows = ctx.auth.sign_in_failures(admin)
    return Page(data=[SignInFailurePublic.model_validate(r) for r in rows], count=len(rows))


@router.post("", response_model=UserPublic, status_code=201)
def create_user(ctx: Ctx, admin: Admin, body: UserCreate) -> UserPublic:
    """Create a user."""
    user = ctx.auth.create_user(body.username, body.password, [r.value for r in body.roles],
                                display_name=body.display_name, actor=admin,
                                estates=_known_estates(ctx, body.estates))
    return UserPublic.model_validate(user)


@router.patch("/{user_id}", response_model=UserPublic)
def update_user(user_id: PathId, ctx: Ctx, admin: Admin, body: UserUpdate) -> UserPublic:
    """Change roles, activity, password, estates; unlock (clears the failed sign-ins of the name)."""
    if body.estates is not None and body.whole_organisation:
        raise InvalidInput("give estates or whole_organisation, not both")
    user = ctx.auth.get_user(user_id)
    if body.roles is not None:
        user = ctx.auth.set_roles(user_id, [r.value for r in body.roles], admin)
    if body.active is not None:
        user = ctx.auth.set_active(user_id, body.active, admin)
        if not body.active:
            ctx.auth.revoke_all(user, admin)
    if body.password is not None:
        ctx.auth.set_password(user_id, body.password, admin)
        user = ctx.auth.get_user(user_id)
    if body.unlock:
        user = ctx.auth.unlock(user_id, admin)
    if body.estates is not None or body.whole_organisation:
        user = ctx.auth.set_estates(user_id, _known_estates(ctx, body.estates), admin)
    return UserPublic.model_validate(user)


def _known_estates(ctx: Ctx, estates: list[str] | None) -> list[str] | None:
    """The estates, each one of the deployment's; InvalidInput names one that is not."""
    if estates is not None:
        unknown = sorted(set(estates) - set(ctx.portfolio.estates))
        if unknown:
            raise InvalidInput(f"not an estate of the deployment: {', '.join(unknown)}; the estates are "
                               f"{', '.join(ctx.portfolio.estates)}")
    return estates


@router.get("/deputies", response_model=Page[DeputyPublic])
def list_deputies(ctx: Ctx, user: CurrentUser) -> Page[DeputyPublic]:
    """Deputy periods, newest first: every one for an admin, else those the signed-in user is part of."""
    involving = None if Role.ADMIN.value in user.roles else user.id
    rows = ctx.auth.list_deputies(involving)
    return Page(data=[DeputyPublic.model_validate(r) for r in rows], count=len(rows))


@router.post("/deputies/{deputy_row_id}/end", response_model=DeputyPublic)
def end_deputy(deputy_row_id: PathId, ctx: Ctx, admin: Admin) -> DeputyPublic:
    """End a deputy period now."""
    return DeputyPublic.model_validate(ctx.auth.end_deputy(deputy_row_id, admin))


@router.post("/deputies", status_code=201)
def add_deputy(ctx: Ctx, admin: Admin, body: DeputyCreate) -> dict[str, int]:
    """Let a deputy act for a principal in one role for a period."""
    row = ctx.auth.add_deputy(body.principal_id, body.deputy_id, body.role, body.valid_from,
                              body.valid_until, admin)
    return {"id": row.id}


@router.post("/{user_id}/revoke-tokens")
def revoke_tokens(user_id: PathId, ctx: Ctx, admin: Admin) -> dict[str, int]:
    """Sign a user out everywhere."""
    return {"revoked": ctx.auth.revoke_all(ctx.auth.get_user(user_id), admin)}
