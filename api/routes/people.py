"""Colleagues by name: who can be assigned, escorted by or signed off by (any signed-in user)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CallerScope, Ctx, CurrentUser
from api.schemas import Page, PersonPublic
from maintenance.vocab import Role

router = APIRouter(prefix="/api/people", tags=["users"])


@router.get("", response_model=Page[PersonPublic])
def list_people(ctx: Ctx, _user: CurrentUser, scope: CallerScope,
                role: Annotated[Role | None, Query()] = None) -> Page[PersonPublic]:
    """Active users with their display names and roles (no logins, no lockouts), optionally of one role.

    Only colleagues who share an estate with the caller's scope: the organisation's people (no estates)
    and those holding a role for an estate the caller covers; another estate's staff are not listed.
    """
    people = [PersonPublic.model_validate(u) for u in ctx.auth.list_users()
              if u.active and (role is None or role.value in u.roles)
              and (u.estates is None or any(scope.covers(e) for e in u.estates))]
    people.sort(key=lambda p: (p.display_name, p.id))
    return Page(data=people, count=len(people))
